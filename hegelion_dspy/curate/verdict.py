"""What is kept: the reasons a trace or a row is left out of an export, in the order they are decided.

``Verdict(options)`` is the one decision, shared by the export driver, the review app (a trace's row previews) and
the review index's charts (from its columns): ``trace_reason`` (failed, the filter, the score), then per example the
reviewers' labels (``judged_examples``), the row checks (``drop_reason``) and the quality flags (``flag_reason``:
a pair of a flagged trace is left out unless the flag is allowed). ``verdict(trace, example, options)`` is the whole
decision for one example. De-duplication (one trace per prompt) is stateful and lives in the driver, its keep rule in
``selection``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from ..quality import FLAGS, flags_of
from ..types import TraceRecord
from .formats import RowSource
from .labels import Label, labelled_texts, pair_key
from .options import ExportOptions
from .selection import FILTER_REASONS

# Why a trace or a row was left out. Trace-level reasons count traces; row-level reasons count rows.
DROP_REASONS: tuple[str, ...] = (
    "failed",  # trace: status "failed"
    *FILTER_REASONS,  # trace: left out by the TraceFilter (demo, model, source, tag, date); see selection.py
    "no_score",  # trace: min_score was asked for and the trace has no score
    "below_min_score",  # trace: score < min_score
    "duplicate_prompt",  # trace: another trace of the same normalised task was kept (see ``keep``)
    "empty",  # row: chosen / rejected / output is empty or only whitespace
    "chosen_equals_rejected",  # row: nothing to prefer
    "too_short",  # row: chosen / output shorter than min_chars (after stripping)
    "rejected_by_reviewer",  # row: its pair's latest label is "reject" (the labels sidecar, see labels.py)
    "not_reviewed",  # row: reviewed_only was asked for and no one decided on its pair
    # row: its trace carries this quality flag (quality.py) and the flag is not allowed (allow_flags); checked
    # after the row checks, so a pair both empty and flagged counts as empty
    *FLAGS,
)
TRACE_REASONS = frozenset({"failed", *FILTER_REASONS, "no_score", "below_min_score", "duplicate_prompt"})


class TraceFacts(Protocol):
    """What the trace-level verdict reads: a TraceRecord, or a row of the review index with the same names."""

    @property
    def status(self) -> str: ...
    @property
    def demo(self) -> bool: ...
    @property
    def score(self) -> float | None: ...


class Verdict:
    """The drop rules of one set of export options (see the module docstring), built once, called per trace."""

    def __init__(self, options: ExportOptions | Mapping[str, object] | None = None, **changes: object):
        opts = ExportOptions.of(options, **changes)
        self.options = opts
        self.include_demo, self.min_score, self.min_chars = opts.include_demo, opts.min_score, opts.min_chars
        self.allowed = frozenset(opts.allow_flags)
        # the filter as a plain function, only when one is set; demo traces are checked inline (the common case)
        self.left_out = opts.compiled() if opts.narrows else None

    def trace_reason(self, trace: TraceFacts) -> str | None:
        """Why the whole trace is left out (failed, a filter reason, no_score, below_min_score), or None."""
        if trace.status != "ok":
            return "failed"
        if trace.demo and not self.include_demo:
            return "demo"
        if self.left_out is not None:
            reason = self.left_out(trace)  # type: ignore[arg-type]  # the index's rows have no filter fields
            if reason is not None:
                return reason
        min_score = self.min_score
        if min_score is not None:
            if trace.score is None:
                return "no_score"
            if trace.score < min_score:
                return "below_min_score"
        return None

    def flag_reason(self, flags: Iterable[str] | None) -> str | None:
        """The first of ``flags`` (a trace's quality flags) that is not allowed: why its pairs are left out."""
        for flag in flags or ():
            if flag not in self.allowed:
                return flag
        return None

    def row_reason(self, example: RowSource, flag: str | None) -> str | None:
        """Why one example (labels already applied) is left out: the row checks, then its trace's flag."""
        return drop_reason(example, self.min_chars) or flag


def verdict(
    trace: TraceRecord,
    example: RowSource,
    options: ExportOptions | Verdict | None = None,
    label: Label | None = None,
) -> str | None:
    """The whole decision for one example of ``trace``: None to keep it, else the reason (a key of DROP_REASONS).

    ``label`` is the latest reviewer's label of the example's pair. The export driver makes the same decision in the
    same order, hoisting the trace-level part out of its loop over examples."""
    judge = options if isinstance(options, Verdict) else Verdict(options)
    reason = judge.trace_reason(trace)
    if reason is not None:
        return reason
    ((ex, _, reason),) = judged_examples(
        trace, [example], lambda _id, _pair: label, reviewed_only=judge.options.reviewed_only, checks=False
    )
    return reason or judge.row_reason(ex, judge.flag_reason(flags_of(trace)))


def example_pair(example: RowSource) -> str:
    """The pair a reviewer's label of this example names (``labels.pair_key``); a supervised example (the final
    synthesis alone) follows the trace's main pair, first thesis > final synthesis."""
    if example.rejected_step is None or example.rejected_round is None:
        return pair_key("thesis", 1, example.round)
    return pair_key(example.rejected_step, example.rejected_round, example.round)


def drop_reason(example: RowSource, min_chars: int = 0) -> str | None:
    """Why an example is not worth training on (a key of DROP_REASONS), or None to keep it."""
    chosen = example.chosen.strip()
    rejected = None if example.rejected is None else example.rejected.strip()
    if not chosen or rejected == "":
        return "empty"
    if chosen == rejected:
        return "chosen_equals_rejected"
    if len(chosen) < min_chars:
        return "too_short"
    return None


LabelOf = Callable[[str, str], "Label | None"]


def _reviewed(
    record: TraceRecord,
    examples: Iterable[RowSource],
    label_of: LabelOf,
    outcomes: dict[str, int],
    dropped: dict[str, int],
    reviewed_only: bool,
) -> list[RowSource]:
    """The examples the reviewers' labels keep, with swaps and edits applied; outcomes and label drops counted. The row
    checks (``drop_reason``) are left to the caller, as for unlabelled examples."""
    kept = []
    for ex, outcome, reason in judged_examples(record, examples, label_of, reviewed_only=reviewed_only, checks=False):
        outcomes[outcome] += 1
        if reason is None:
            kept.append(ex)
        else:
            dropped[reason] += 1
    return kept


def judged_examples(
    record: TraceRecord,
    examples: Iterable[RowSource],
    label_of: LabelOf,
    *,
    min_chars: int = 0,
    reviewed_only: bool = False,
    checks: bool = True,
) -> Iterator[tuple[RowSource, str, str | None]]:
    """Each example with its pair's label applied: ``(example, outcome, drop reason or None)`` (``checks=False``
    leaves out the row checks of ``drop_reason``, for a caller that runs them itself).

    ``label_of(trace_id, pair)`` gives the latest label (``LabelBook.get``). A rejected pair drops as
    ``rejected_by_reviewer``; with ``reviewed_only`` an undecided pair drops as ``not_reviewed``; a swap or an edit
    changes the texts before the usual row checks (``drop_reason``). The export driver and the review app use this.
    """
    for ex in examples:
        label = label_of(record.id, example_pair(ex))
        chosen, rejected, outcome = labelled_texts(ex.chosen, ex.rejected, label, other=record.first_thesis)
        if outcome == "rejected":
            yield ex, outcome, "rejected_by_reviewer"
            continue
        if outcome != "unreviewed":
            ex = ex._replace(chosen=chosen, rejected=rejected)
        elif reviewed_only:
            yield ex, outcome, "not_reviewed"
            continue
        yield ex, outcome, drop_reason(ex, min_chars=min_chars) if checks else None
