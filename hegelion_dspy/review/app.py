"""The review web app (Starlette): the list, a trace page, labels, charts. A thin layer over the library.

Reading and filtering go through ``TraceIndex``, labels through ``LabelStore``, rows through the exporters: this
module only parses requests, calls them and renders server-side HTML (Jinja2, autoescaped). The one trace log is
fixed when the app is made; no request ever names a file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..curate.formats import preference_examples, shape_row, supervised_examples
from ..curate.labels import DECISIONS, Label, LabelStore, parse_pair
from ..curate.selection import Keep, TraceFilter
from ..curate.verdict import example_pair, judged_examples
from ..errors import InvalidTraceError
from ..review.index import PairView, TraceIndex, TraceQuery
from ..types import TraceRecord
from . import charts
from .diff import diff_ratio, word_diff
from .security import CSRF_FIELD, CSRF_HEADER, MAX_FORM_BYTES, Guard, new_csrf_token, token_matches

HERE = Path(__file__).parent
STATIC_FILES = {"review.js": "text/javascript", "review.css": "text/css"}
INLINE_SYNC_BYTES = 16 << 20  # a log that grew by less is indexed during the request; more goes to a background thread
PER_PAGE = 50
STATUSES = ("ok", "failed", "invalid")
REVIEWED = ("yes", "no")
LIST_PARAMS = (
    "status", "model", "exclude_model", "mode", "source", "tag", "exclude_tag", "since", "until", "include_demo",
    "min_score", "max_score", "reviewed", "q",
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


@dataclass(frozen=True)
class ReviewConfig:
    """What the app serves and under which export options it previews rows (``view``, ``min_chars``, ...)."""

    log_path: Path
    view: PairView = field(default_factory=PairView)
    min_chars: int = 0
    min_score: float | None = None
    reviewed_only: bool = False
    keep: Keep = "best"
    labeller: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    index_path: Path | None = None


class BadRequest(Exception):
    """A request parameter that cannot work; answered 400 with this message."""


@dataclass
class ListParams:
    query: TraceQuery
    page: int
    raw: dict[str, str] = field(default_factory=dict)

    def qs(self, **changes: Any) -> str:
        """The query string of this list (for links), with ``changes`` applied; empty values dropped."""
        values = {**self.raw, **{k: ("" if v is None else str(v)) for k, v in changes.items()}}
        kept = {k: v for k, v in values.items() if v not in ("", None)}
        return urlencode(kept)


def parse_list_params(params: Mapping[str, str]) -> ListParams:
    """The list filter from a request's query string; BadRequest for a value that cannot be meant."""
    raw = {k: params[k].strip() for k in (*LIST_PARAMS, "page") if params.get(k, "").strip()}
    status = raw.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status {status[:40]!r} is not one of {', '.join(STATUSES)}")
    reviewed = raw.get("reviewed")
    if reviewed is not None and reviewed not in REVIEWED:
        raise BadRequest(f"reviewed {reviewed[:40]!r} is not 'yes' or 'no'")
    scores = {}
    for name in ("min_score", "max_score"):
        if name in raw:
            try:
                scores[name] = float(raw[name])
            except ValueError:
                raise BadRequest(f"{name} {raw[name][:40]!r} is not a number from 0 to 1") from None
            if not 0 <= scores[name] <= 1:
                raise BadRequest(f"{name} {raw[name][:40]!r} is not a number from 0 to 1")
    try:
        page = int(raw.pop("page", "1"))
    except ValueError:
        raise BadRequest("page must be a whole number") from None
    for name in LIST_PARAMS:
        if len(raw.get(name, "")) > 500:
            raise BadRequest(f"{name} is longer than 500 characters")
    chosen: dict[str, Any] = {field: raw[name] for name, field in FILTER_PARAMS.items() if name in raw}
    if "include_demo" in chosen:
        chosen["include_demo"] = chosen["include_demo"] not in ("0", "false", "no", "off")
    try:
        traces = TraceFilter.model_validate(chosen)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = first.get("loc") or ("",)
        where = next((n for n, f in FILTER_PARAMS.items() if loc[0] == f), "filter")
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise BadRequest(f"{where}: {message}") from None
    query = TraceQuery(
        traces=traces,
        status=status,
        mode=raw.get("mode"),
        min_score=scores.get("min_score"),
        max_score=scores.get("max_score"),
        reviewed=reviewed,  # type: ignore[arg-type]
        text=raw.get("q", ""),
    )
    return ListParams(query=query, page=max(1, page), raw=raw)


class ReviewState:
    """The app's shared state: its index (kept fresh, big catch-ups in a background thread), labels, options."""

    def __init__(self, config: ReviewConfig):
        self.config = config
        self.index = TraceIndex(config.log_path, path=config.index_path)
        self.labels = LabelStore.beside(config.log_path)
        self._catching_up: threading.Thread | None = None
        self._lock = threading.Lock()
        self._charts: tuple[Any, Any] | None = None
        self.catch_up_error: str | None = None

    def refresh(self) -> Any:
        """Bring the index up to date: at once when little was appended, else in the background. Returns the state."""
        state = self.index.state()
        if state.complete:
            return state
        behind = (state.log_bytes - state.indexed_bytes) + (state.labels_bytes - state.indexed_label_bytes)
        if behind <= INLINE_SYNC_BYTES and not self.catching_up:
            return self.index.sync()
        with self._lock:
            if not self.catching_up:
                self._catching_up = threading.Thread(target=self._catch_up, name="hegelion-review-index", daemon=True)
                self._catching_up.start()
        return self.index.sync(log=False)  # labels are small: always current

    @property
    def catching_up(self) -> bool:
        return self._catching_up is not None and self._catching_up.is_alive()

    def _catch_up(self) -> None:
        try:
            self.index.sync()
        except Exception as exc:  # the edge of a background thread: shown on the next page
            self.catch_up_error = f"{type(exc).__name__}: {exc}"

    def shape(self, query: TraceQuery) -> Any:
        """The charts' aggregates, cached until the log, the labels or the filter change."""
        state = self.index.state()
        key = (state.indexed_bytes, state.indexed_label_bytes, query)
        cached = self._charts
        if cached is not None and cached[0] == key:
            return cached[1]
        shape = self.index.stats(
            query, view=self.config.view, min_chars=self.config.min_chars, min_score=self.config.min_score
        )
        self._charts = (key, shape)
        return shape


# -- rendering -----------------------------------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["score"] = lambda s: "—" if s is None else f"{s:.2f}"
    env.filters["pretty_json"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2)
    return env


def _when(value: float | datetime | None) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


# -- the app -------------------------------------------------------------------------------------------------------


def create_app(config: ReviewConfig, *, csrf_token: str | None = None) -> Guard:
    """The review app for one trace log, wrapped in its guard (Host check, CSRF, security headers).

    Mount it anywhere (``mount_review`` puts it at ``/review`` of the MCP server's HTTP app); links follow the
    mount's root path.
    """
    state = ReviewState(config)
    env = _environment()
    token = csrf_token or new_csrf_token()
    statics = {name: (HERE / "static" / name).read_bytes() for name in STATIC_FILES}
    started = time.time()

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(
            base=_base(request),
            csrf=token,
            config=config,
            log_name=config.log_path.name,
            labeller=config.labeller or "",
            version=int(started),
        )
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})

    def bad_request(request: Request, message: str, status_code: int = 400) -> HTMLResponse:
        return render(request, "error.html", status_code=status_code, message=message)

    def list_page(request: Request) -> Response:
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return bad_request(request, str(exc))
        index_state = state.refresh()
        per_page = PER_PAGE
        page = state.index.query(params.query, page=params.page, per_page=per_page, view=config.view)
        return render(
            request,
            "list.html",
            params=params,
            page=page,
            facets=state.index.facets(),
            index_state=index_state,
            catching_up=state.catching_up,
            catch_up_error=state.catch_up_error,
        )

    def trace_page(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return bad_request(request, str(exc))
        state.refresh()
        try:
            record = state.index.read(trace_id)
        except InvalidTraceError as exc:
            return bad_request(request, f"This line of the log is not a valid trace: {exc}", 422)
        if record is None:
            return bad_request(request, f"There is no trace {trace_id[:80]!r} in {config.log_path.name}.", 404)
        newer, older = state.index.neighbours(trace_id, params.query, view=config.view)
        labels = state.index.labels_for(trace_id)
        return render(
            request,
            "trace.html",
            params=params,
            record=record,
            newer=newer,
            older=older,
            pairs=_pairs(record, labels, config),
            rows=_rows(record, labels, config, state.index),
            diff=_diff(record),
            totals=_totals(record),
            judge=record.metadata.get("judge") if isinstance(record.metadata.get("judge"), dict) else None,
            judge_error=record.metadata.get("judge_error"),
            extra=_extra_fields(record),
        )

    async def label(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return PlainTextResponse("Refused: a label is sent as a form of at most 1 MB\n", status_code=413)
        form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_BYTES)
        if not token_matches(token, form.get(CSRF_FIELD), request.headers.get(CSRF_HEADER)):
            return PlainTextResponse("Refused: missing or wrong CSRF token; reload the page\n", status_code=403)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            saved = await run_in_threadpool(_save_label, state, trace_id, fields)
        except BadRequest as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        if CSRF_HEADER in request.headers or "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"label": json.loads(saved.model_dump_json())})
        qs = request.url.query
        return RedirectResponse(f"{_base(request)}/trace/{trace_id}" + (f"?{qs}" if qs else ""), status_code=303)

    def charts_page(request: Request) -> Response:
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return bad_request(request, str(exc))
        index_state = state.refresh()
        shape = state.shape(params.query)
        drawn = [(title, Markup(svg)) for title, svg in charts.all_charts(shape)]  # escaped in charts.py
        return render(request, "charts.html", params=params, charts=drawn, shape=shape, index_state=index_state)

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in statics:  # a fixed set of files: no path from the request reaches the file system
            return PlainTextResponse("not found\n", status_code=404)
        return Response(statics[name], media_type=STATIC_FILES[name], headers={"cache-control": "max-age=3600"})

    def api_state(request: Request) -> Response:
        index_state = state.refresh()
        return JSONResponse({**asdict(index_state), "complete": index_state.complete})

    routes = [
        Route("/", list_page),
        Route("/trace/{trace_id}", trace_page),
        Route("/trace/{trace_id}/label", label, methods=["POST"]),
        Route("/charts", charts_page),
        Route("/static/{name}", static),
        Route("/api/state", api_state),
    ]
    app = Starlette(routes=routes)
    app.state.review = state
    return Guard(app, csrf_token=token, allowed_hosts=config.allowed_hosts)


def mount_review(app: Starlette, log_path: str | Path, *, path: str = "/review", **options: Any) -> str:
    """Mount the review app for ``log_path`` on another Starlette app (the MCP server's HTTP app) at ``path``.

    Returns the path it is served under (with a trailing slash). ``options`` are ReviewConfig fields.
    """
    from starlette.routing import Mount

    app.router.routes.append(Mount(path, app=create_app(ReviewConfig(log_path=Path(log_path), **options))))
    return path.rstrip("/") + "/"


# -- what the pages show -------------------------------------------------------------------------------------------


@dataclass
class PairCard:
    key: str
    rejected_step: str
    rejected_round: int
    chosen_round: int
    chosen: str
    rejected: str
    label: Label | None

    @property
    def decision(self) -> str:
        return (self.label.decision if self.label else None) or ""


def _pairs(record: TraceRecord, labels: dict[str, Label], config: ReviewConfig) -> list[PairCard]:
    cards = []
    for ex in preference_examples(record, rejected=config.view.rejected, pairs=config.view.pairs):
        pair = example_pair(ex)
        step, rejected_round, chosen_round = parse_pair(pair)
        cards.append(PairCard(pair, step, rejected_round, chosen_round, ex.chosen, ex.rejected or "", labels.get(pair)))
    return cards


@dataclass
class RowPreview:
    format: str
    pair: str
    outcome: str
    reason: str | None
    row: dict[str, Any]


def _rows(record: TraceRecord, labels: dict[str, Label], config: ReviewConfig, index: TraceIndex) -> dict[str, Any]:
    """The dpo and sft rows this trace gives under the app's options (labels applied), or why it gives none."""
    trace_reason = None
    if not record.ok:
        trace_reason = "failed"
    elif config.min_score is not None and record.score is None:
        trace_reason = "no_score"
    elif config.min_score is not None and record.score is not None and record.score < config.min_score:
        trace_reason = "below_min_score"
    earlier = index.kept_instead(record.id, keep=config.keep, min_score=config.min_score) if record.ok else None

    def label_of(trace_id: str, pair: str) -> Label | None:
        return labels.get(pair)

    previews = []
    for fmt, examples in (
        ("dpo", preference_examples(record, rejected=config.view.rejected, pairs=config.view.pairs)),
        ("sft", supervised_examples(record)),
    ):
        for ex, outcome, reason in judged_examples(
            record, examples, label_of, min_chars=config.min_chars, reviewed_only=config.reviewed_only
        ):
            previews.append(RowPreview(fmt, example_pair(ex), outcome, reason, shape_row(fmt, ex)))  # type: ignore[arg-type]
    return {"trace_reason": trace_reason, "earlier": earlier, "previews": previews}


def _diff(record: TraceRecord) -> dict[str, Any] | None:
    if not record.rounds or not record.synthesis:
        return None
    runs, cut = word_diff(record.first_thesis, record.synthesis)
    return {"runs": runs, "cut": cut, "same": diff_ratio(runs)}


def _totals(record: TraceRecord) -> dict[str, Any]:
    seconds = sum(sum(r.seconds.values()) for r in record.rounds)
    tokens: dict[str, int] = {}
    cost = 0.0
    for r in record.rounds:
        for usage in r.usage.values():
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = getattr(usage, name)
                if value is not None:
                    tokens[name] = tokens.get(name, 0) + value
            cost += getattr(usage, "cost_usd", None) or 0.0
    total_cost = getattr(record, "cost_usd", None)
    return {"seconds": seconds, "tokens": tokens, "cost": total_cost if total_cost is not None else (cost or None)}


def _extra_fields(record: TraceRecord) -> dict[str, Any]:
    """Fields of newer trace schemas (demo flag, cost, program digest) when the record has them."""
    names = ("demo", "program_digest")
    return {n: getattr(record, n) for n in names if getattr(record, n, None) not in (None, False)}


def _save_label(state: ReviewState, trace_id: str, fields: dict[str, str]) -> Label:
    state.refresh()
    location = state.index.locate(trace_id)
    if location is None:
        raise BadRequest(f"there is no trace {trace_id[:80]!r} in the log")
    record = state.index.read(trace_id)
    assert record is not None
    pair = fields.get("pair", "")
    try:
        _, rejected_round, chosen_round = parse_pair(pair)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not (record.ok and rejected_round <= chosen_round <= len(record.rounds)):
        raise BadRequest(f"trace {trace_id[:80]!r} has no pair {pair!r}")
    decision = fields.get("decision", "").strip() or None
    if decision is not None and decision not in DECISIONS:
        raise BadRequest(f"decision {decision[:40]!r} is not one of {', '.join(DECISIONS)} (or empty)")
    chosen = fields.get("chosen")
    try:
        label = Label(
            trace_id=trace_id,
            pair=pair,
            decision=decision,  # type: ignore[arg-type]
            chosen=chosen if chosen and chosen.strip() else None,
            note=fields.get("note", ""),
            labeller=fields.get("labeller") or state.config.labeller,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadRequest(f"field {where!r}: {first.get('msg', 'invalid value')}") from None
    state.labels.append(label)
    state.index.sync(log=False)
    return label
