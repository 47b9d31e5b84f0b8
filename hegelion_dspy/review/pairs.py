"""Review one pair at a time, anywhere: the pairs to label next, one label checked and written, one trace as a view.

The review web app and the MCP server's in-chat review (``review_pairs`` / ``label_pair``) both go through here, so a
label made in the chat is checked like one made in the browser and lands in the same sidecar (``<log>.labels``).
Pairs come from the trace index (``TraceIndex``: filters run in SQLite), one trace read per listed trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from ..curate.formats import preference_examples
from ..curate.labels import Label, LabelStore, parse_pair
from ..curate.selection import TraceFilter
from ..curate.verdict import example_pair
from ..errors import InvalidLabelError
from ..quality import flags_of
from ..types import JSONObject, TraceRecord
from .diff import diff_ratio, word_diff
from .index import PairView, TraceIndex, TraceQuery
from .index.model import Reviewed
from .params import BadRequest, parse_label_form

MAX_PAIRS = 50
SCAN_TRACES = 2000  # traces looked at for one list at most (a flag filter is applied after the index's filters)
_PAGE = 100
MAX_KNOWN_IDS = 100
# word_diff (difflib, autojunk off) grows fast with the texts: prose with 30% of words changed took 0.3 s at 4,900
# characters (both texts), 2.9 s at 9,700, 9.4 s at 19,400; a repetitive text rewritten word by word 8 s at 5,600 (2
# cores, loaded). The view diffs a round only when its two texts are this short together; longer, it says so.
VIEW_DIFF_CHARS = 6_000


@dataclass(frozen=True)
class PairQuery:
    """Which pairs to review: the review app's filters (models and tags as globs/names, one quality flag, demo
    traces), unlabelled pairs first, at most ``limit``."""

    models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    flag: str | None = None
    include_demo: bool = False
    unlabelled_first: bool = True
    limit: int = 10
    view: PairView = field(default_factory=PairView)


def trace_flags(record: TraceRecord) -> list[str]:
    """The quality flags of a trace (stored since schema v3, computed for older lines)."""
    return list(flags_of(record))


def label_fields(label: Label | None) -> JSONObject | None:
    return None if label is None else label.model_dump(mode="json")


class ChatPair(TypedDict):
    """One pair as the in-chat review shows it: both sides, the trace's facts, the latest label and its version."""

    trace_id: str
    pair: str  # "thesis:1>synthesis:1"
    task: str
    chosen: str
    rejected: str
    rejected_step: str
    rejected_round: int
    chosen_round: int
    model: str | None
    tags: list[str]
    flags: list[str]
    demo: bool
    label: JSONObject | None
    version: int


def pair_cards(
    record: TraceRecord, labels: dict[str, Label], versions: dict[str, int], view: PairView | None = None
) -> list[ChatPair]:
    """Every pair of one trace under ``view``, with its sides, the trace's facts, its latest label and its version
    (how many labels it has had: a label is written from it, ``base``, and refused if another came meanwhile)."""
    view = view or PairView()
    cards: list[ChatPair] = []
    for ex in preference_examples(record, rejected=view.rejected, pairs=view.pairs):
        pair = example_pair(ex)
        step, rejected_round, chosen_round = parse_pair(pair)
        label = labels.get(pair)
        cards.append(
            {
                "trace_id": record.id,
                "pair": pair,
                "task": record.task,
                "chosen": ex.chosen,
                "rejected": ex.rejected or "",
                "rejected_step": step,
                "rejected_round": rejected_round,
                "chosen_round": chosen_round,
                "model": record.model,
                "tags": list(record.tags),
                "flags": trace_flags(record),
                "demo": bool(getattr(record, "demo", False)),
                "label": label_fields(label),
                "version": versions.get(pair, 0),
            }
        )
    return cards


class PairDesk:
    """The pairs of one trace log and its labels sidecar, as the in-chat review reads and writes them."""

    def __init__(self, log_path: str | Path):
        self.log_path = Path(log_path)
        self.labels = LabelStore.beside(self.log_path)
        self._index: TraceIndex | None = None

    @property
    def index(self) -> TraceIndex:
        if self._index is None:
            self._index = TraceIndex(self.log_path)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()

    def _records(self, query: PairQuery, reviewed: Reviewed | None) -> Iterator[TraceRecord]:
        traces = TraceFilter(models=list(query.models), tags=list(query.tags), include_demo=query.include_demo)
        found = TraceQuery(traces=traces, status="ok", reviewed=reviewed)
        seen = 0
        page = 1
        while seen < SCAN_TRACES:
            items = self.index.query(found, page=page, per_page=_PAGE, view=query.view).items
            for item in items:
                record = self.index.read(item.id) if item.id else None
                seen += 1
                if record is not None and (query.flag is None or query.flag in trace_flags(record)):
                    yield record
            if len(items) < _PAGE:
                return
            page += 1

    def pairs(self, query: PairQuery) -> list[ChatPair]:
        """Up to ``query.limit`` pairs, newest traces first; with ``unlabelled_first`` the pairs nobody decided on
        come before the decided ones."""
        self.index.sync()
        limit = max(1, min(query.limit, MAX_PAIRS))
        open_pairs: list[ChatPair] = []
        decided: list[ChatPair] = []
        passes: tuple[Reviewed | None, ...] = ("no", None) if query.unlabelled_first else (None,)
        done: set[tuple[str, str]] = set()
        for reviewed in passes:
            for record in self._records(query, reviewed):
                labels, versions = self.index.labels_for(record.id), self.index.versions_for(record.id)
                for card in pair_cards(record, labels, versions, query.view):
                    key = (card["trace_id"], card["pair"])
                    if key in done:
                        continue
                    done.add(key)
                    undecided = card["label"] is None or card["label"].get("decision") is None
                    (open_pairs if undecided or not query.unlabelled_first else decided).append(card)
                if len(open_pairs) >= limit:
                    return open_pairs[:limit]
            if len(open_pairs) + len(decided) >= limit:
                break
        return (open_pairs + decided)[:limit]

    def known(self) -> dict[str, list[str]]:
        """The values the log's traces take, most frequent first: ``model``, ``tag``, ``mode``, ``source`` ... and
        ``trace_id`` (the newest ids): what a client completes an argument from."""
        self.index.sync()
        known = {name: [value for value, _ in counted] for name, counted in self.index.facets().items()}
        newest = self.index.query(TraceQuery(traces=TraceFilter(include_demo=True)), per_page=MAX_KNOWN_IDS).items
        known["trace_id"] = [item.id for item in newest if item.id]
        return known

    def record(self, trace_id: str) -> TraceRecord:
        self.index.sync()
        record = self.index.read(trace_id)
        if record is None:
            raise InvalidLabelError(
                f"there is no trace {trace_id[:80]!r} in the log; list pairs with review_pairs", path=self.log_path
            )
        return record

    def label(self, trace_id: str, fields: dict[str, str], labeller: str | None = None) -> tuple[Label, int]:
        """Check one label as the review app checks its form (``params.parse_label_form``: pair, decision, chosen,
        note, labeller, base) and write it; returns it and the pair's new version. InvalidLabelError names what is
        wrong; LabelConflictError says that another reviewer labelled the pair since version ``base``."""
        record = self.record(trace_id)
        try:
            label, base = parse_label_form(record, fields, labeller)
        except BadRequest as exc:
            raise InvalidLabelError(str(exc), path=self.labels.path) from None
        version = self.labels.write(label, base=base)
        self.index.sync(log=False)
        return label, version


def dialectic_view(record: TraceRecord) -> JSONObject:
    """One trace as the dialectic view draws it: its facts, and per round the three steps, the contradictions and
    the word diff from the round's thesis to its synthesis (the review app's diff)."""
    rounds: list[JSONObject] = []
    for r in record.rounds:
        rounds.append(
            {
                "index": r.index,
                "thesis": r.thesis,
                "antithesis": r.antithesis,
                "contradictions": [c.model_dump(mode="json") for c in r.contradictions],
                "synthesis": r.synthesis,
                "diff": _round_diff(r.thesis, r.synthesis),
            }
        )
    return {
        "trace_id": record.id,
        "task": record.task,
        "model": record.model,
        "mode": record.mode,
        "status": record.status,
        "error": record.error.model_dump(mode="json") if record.error else None,
        "demo": bool(getattr(record, "demo", False)),
        "flags": trace_flags(record),
        "tags": list(record.tags),
        "rounds": rounds,
    }


def _round_diff(thesis: str, synthesis: str) -> JSONObject:
    """The review app's word diff of a round, or (texts too long for it) ``skipped`` with their length."""
    chars = len(thesis) + len(synthesis)
    if chars > VIEW_DIFF_CHARS:
        return {"runs": [], "cut": True, "same": None, "skipped": chars}
    runs, cut = word_diff(thesis, synthesis)
    return {"runs": [list(run) for run in runs], "cut": cut, "same": round(diff_ratio(runs), 3), "skipped": None}
