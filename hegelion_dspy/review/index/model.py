"""What the review index answers with: the list filter and pair view it is asked with, and named rows (a trace's row
in the index, a list row, a page, how far indexing has got)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ...curate.selection import TraceFilter

MAX_PER_PAGE = 200
# A page number past any log (2**63 and beyond would overflow SQLite's integers): asked for, it is the last page.
MAX_PAGE = 1 << 40

Reviewed = Literal["yes", "no"]
PairsOption = Literal["first-last", "rounds"]
RejectedOption = Literal["thesis", "antithesis", "both"]
_STEPS = {"thesis": ("thesis",), "antithesis": ("antithesis",), "both": ("thesis", "antithesis")}


@dataclass(frozen=True)
class PairView:
    """Which pairs of each trace are reviewed (the export options the reviewer works under)."""

    rejected: RejectedOption = "thesis"
    pairs: PairsOption = "first-last"

    @property
    def steps(self) -> tuple[str, ...]:
        return _STEPS[self.rejected]


@dataclass(frozen=True)
class TraceQuery:
    """A list filter: the library's ``TraceFilter`` (models and exclusions as globs, sources, tags, dates, demo
    traces; the same one exports use) and what only a reviewer asks (status, mode, score range, reviewed, text).

    Empty fields filter nothing. ``text`` is a full-text search over the task and every text; ``reviewed`` keeps
    ``ok`` traces whose every pair (under the PairView) has a decision ("yes") or not ("no"). As in exports, traces
    of demo models are left out unless ``traces.include_demo``.
    """

    traces: TraceFilter = field(default_factory=TraceFilter)
    status: str | None = None  # ok | failed | invalid
    mode: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    reviewed: Reviewed | None = None
    text: str = ""
    flag: str | None = None  # a quality flag (quality.FLAGS) the trace carries, or "any" / "none"

    @property
    def everything(self) -> bool:
        """Whether the query is the default one (every non-demo trace): what the log's tail can answer alone."""
        return self == EVERY_TRACE


EVERY_TRACE = TraceQuery()  # the default query (every trace but demo ones), also the default argument
FIRST_LAST = PairView()  # the default view: the first thesis against the final synthesis


class TraceRow(NamedTuple):
    """One line of the log as the ``traces`` table holds it (the columns in table order)."""

    seq: int
    offset: int
    length: int
    lineno: int
    id: str | None
    created: float
    status: str
    model: str | None
    mode: str | None
    source: str | None
    score: float | None
    rounds: int
    contradictions: int
    thesis_chars: int
    synthesis_chars: int
    same_thesis: int  # the final synthesis equals the first thesis (a dpo pair with nothing to prefer)
    same_antithesis: int
    task_key: int | None  # a hash of the normalised task (what an export's dedupe compares)
    task: str  # a preview of the task
    error: str | None
    demo: int
    # The quality flags (``quality.flags_of``), space-separated, "" for none; None until computed (a trace
    # written without them: a deferred pass computes them, ``flags.compute_flags``).
    flags: str | None


TRACE_COLUMNS = TraceRow._fields


@dataclass
class TraceSummary:
    """One row of the list: what the index knows about a line, without reading the log."""

    seq: int
    lineno: int
    id: str | None
    created: float
    status: str
    model: str | None
    mode: str | None
    source: str | None
    score: float | None
    rounds: int
    contradictions: int
    task: str
    error: str | None
    flags: str | None = ""
    decided: int = 0
    needed: int = 0
    tags: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)

    @property
    def reviewed(self) -> bool:
        return self.needed > 0 and self.decided >= self.needed

    @property
    def flag_list(self) -> list[str]:
        return self.flags.split() if self.flags else []


# The columns a list row reads from ``traces t`` (then decided and needed, computed per view).
SUMMARY_COLUMNS = ("seq", "lineno", "id", "created", "status", "model", "mode", "source", "score", "rounds",
                   "contradictions", "task", "error", "flags")  # fmt: skip


@dataclass
class Page:
    items: list[TraceSummary]
    total: int
    page: int
    per_page: int
    from_log: bool = False  # read from the log's tail while the index is being built (no filter, page 1)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass
class IndexState:
    """How far the index has read: bytes of the log (and the labels) indexed, and lines."""

    log_bytes: int
    indexed_bytes: int
    lines: int
    labels_bytes: int
    indexed_label_bytes: int
    flags_pending: int = 0  # traces whose quality flags are still to be computed

    @property
    def complete(self) -> bool:
        return self.indexed_bytes >= self.log_bytes and self.indexed_label_bytes >= self.labels_bytes

    @property
    def fraction(self) -> float:
        return 1.0 if self.log_bytes == 0 else min(1.0, self.indexed_bytes / self.log_bytes)
