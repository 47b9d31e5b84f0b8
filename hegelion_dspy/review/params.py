"""Reading requests: the list's filter and page from a query string, and a label from a form. Anything that cannot
be meant is a ``BadRequest`` whose message the page shows (HTTP 400)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from pydantic import ValidationError

from ..curate.labels import DECISIONS, Label, parse_pair
from ..curate.selection import TraceFilter
from ..errors import HegelionError, from_validation
from ..quality import FLAGS
from ..types import TraceRecord
from .index import TraceQuery
from .index.model import Reviewed

STATUSES = ("ok", "failed", "invalid")
REVIEWED: tuple[Reviewed, ...] = ("yes", "no")
FLAG_CHOICES = (*FLAGS, "any", "none")  # a quality flag, any of them, or none
MAX_PARAM_CHARS = 500
MAX_PAGE_DIGITS = 30  # any page number up to 10**30 means "the last page"; longer is no page number
LIST_PARAMS = (
    "status", "model", "exclude_model", "mode", "source", "tag", "exclude_tag", "since", "until", "include_demo",
    "min_score", "max_score", "reviewed", "q", "flag",
)  # fmt: skip
# URL parameters that are TraceFilter fields (the library's filter, shared with exports), by their field name.
FILTER_PARAMS = {
    "model": "models",
    "exclude_model": "exclude_models",
    "source": "sources",
    "tag": "tags",
    "exclude_tag": "exclude_tags",
    "since": "since",
    "until": "until",
    "include_demo": "include_demo",
}


class BadRequest(Exception):
    """A request parameter that cannot work; answered 400 with this message."""


@dataclass
class ListParams:
    query: TraceQuery
    page: int
    raw: dict[str, str] = field(default_factory=dict)

    def qs(self, **changes: object) -> str:
        """The query string of this list (for links), with ``changes`` applied; empty values dropped."""
        values = {**self.raw, **{k: ("" if v is None else str(v)) for k, v in changes.items()}}
        kept = {k: v for k, v in values.items() if v not in ("", None)}
        return urlencode(kept)


def parse_page(text: str) -> int:
    """A page number as asked (1 when below 1; the index turns one past the last page into the last)."""
    digits = text.removeprefix("-").removeprefix("+")
    if not digits.isdigit() or not digits.isascii() or len(digits) > MAX_PAGE_DIGITS:
        raise BadRequest(f"page {text[:40]!r} is not a page number (a whole number from 1)")
    return max(1, int(text))


def _scores(raw: dict[str, str]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name in ("min_score", "max_score"):
        if name in raw:
            try:
                scores[name] = float(raw[name])
            except ValueError:
                raise BadRequest(f"{name} {raw[name][:40]!r} is not a number from 0 to 1") from None
            if not 0 <= scores[name] <= 1:
                raise BadRequest(f"{name} {raw[name][:40]!r} is not a number from 0 to 1")
    return scores


def _trace_filter(raw: dict[str, str]) -> TraceFilter:
    chosen: dict[str, str | bool] = {field: raw[name] for name, field in FILTER_PARAMS.items() if name in raw}
    if "include_demo" in chosen:
        chosen["include_demo"] = chosen["include_demo"] not in ("0", "false", "no", "off")
    try:
        return TraceFilter.model_validate(chosen)
    except ValidationError as exc:
        problem = from_validation(exc, source="", error=HegelionError)
        where = next((n for n, f in FILTER_PARAMS.items() if (problem.field or "").split(".")[0] == f), "filter")
        raise BadRequest(f"{where}: {problem}") from None


def parse_list_params(params: Mapping[str, str]) -> ListParams:
    """The list filter from a request's query string; BadRequest for a value that cannot be meant."""
    raw = {k: params[k].strip() for k in (*LIST_PARAMS, "page") if params.get(k, "").strip()}
    status = raw.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status {status[:40]!r} is not one of {', '.join(STATUSES)}")
    reviewed = raw.get("reviewed")
    if reviewed is not None and reviewed not in REVIEWED:
        raise BadRequest(f"reviewed {reviewed[:40]!r} is not 'yes' or 'no'")
    flag = raw.get("flag")
    if flag is not None and flag not in FLAG_CHOICES:
        raise BadRequest(f"flag {flag[:40]!r} is not one of {', '.join(FLAG_CHOICES)}")
    page = parse_page(raw.pop("page", "1"))
    for name in LIST_PARAMS:
        if len(raw.get(name, "")) > MAX_PARAM_CHARS:
            raise BadRequest(f"{name} is longer than {MAX_PARAM_CHARS} characters")
    scores = _scores(raw)
    query = TraceQuery(
        traces=_trace_filter(raw),
        status=status,
        mode=raw.get("mode"),
        min_score=scores.get("min_score"),
        max_score=scores.get("max_score"),
        reviewed=reviewed,
        text=raw.get("q", ""),
        flag=flag,
    )
    return ListParams(query=query, page=page, raw=raw)


def parse_label_form(record: TraceRecord, fields: Mapping[str, str], labeller: str | None) -> tuple[Label, int | None]:
    """The label a form asks for on a pair of ``record``, and the version of the pair it was made from (the form's
    ``base``; None when the form has none, as from a client that does not check)."""
    pair = fields.get("pair", "")
    try:
        _, rejected_round, chosen_round = parse_pair(pair)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not (record.ok and rejected_round <= chosen_round <= len(record.rounds)):
        raise BadRequest(f"trace {record.id[:80]!r} has no pair {pair!r}")
    decision = fields.get("decision", "").strip() or None
    if decision is not None and decision not in DECISIONS:
        raise BadRequest(f"decision {decision[:40]!r} is not one of {', '.join(DECISIONS)} (or empty)")
    base_text = fields.get("base", "").strip()
    if base_text and not (base_text.isdigit() and base_text.isascii() and len(base_text) <= 12):
        raise BadRequest(f"base {base_text[:40]!r} is not a label version (a whole number from 0)")
    chosen = fields.get("chosen")
    try:
        label = Label(
            trace_id=record.id,
            pair=pair,
            decision=decision,
            chosen=chosen if chosen and chosen.strip() else None,
            note=fields.get("note", ""),
            labeller=fields.get("labeller") or labeller,
        )
    except ValidationError as exc:
        raise BadRequest(str(from_validation(exc, source="field", error=HegelionError))) from None
    return label, int(base_text) if base_text else None
