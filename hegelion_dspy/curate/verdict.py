"""What is kept: the reasons a trace or a row is left out of an export, the row checks, and reviewers' labels applied
per pair. The export driver and the review app decide through these."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ..types import TraceRecord
from .formats import RowSource
from .labels import Label, labelled_texts, pair_key
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
)
TRACE_REASONS = frozenset({"failed", *FILTER_REASONS, "no_score", "below_min_score", "duplicate_prompt"})


def example_pair(example: RowSource) -> str:
    """The pair a reviewer's label of this example names (``labels.pair_key``); a supervised example (the final
    synthesis alone) follows the trace's main pair, first thesis > final synthesis."""
    if example.rejected_step is None or example.rejected_round is None:
        return pair_key("thesis", 1, example.round)
    return pair_key(example.rejected_step, example.rejected_round, example.round)


def drop_reason(example: RowSource, *, min_chars: int = 0) -> str | None:
    """Why an example is not worth training on (a key of DROP_REASONS), or None to keep it."""
    chosen = example.chosen.strip()
    rejected = example.rejected
    if not chosen or (rejected is not None and not rejected.strip()):
        return "empty"
    if rejected is not None and chosen == rejected.strip():
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
