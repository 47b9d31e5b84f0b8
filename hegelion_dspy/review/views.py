"""What a trace page shows, from the library's own rules: its pairs with their labels and versions, the rows an
export writes from it (labels applied, or why none), the thesis-to-synthesis diff and its totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from ..curate.formats import ExportRow, Format, RowSource, preference_examples, shape_row, supervised_examples
from ..curate.labels import Label, parse_pair
from ..curate.verdict import Verdict, example_pair, judged_examples
from ..quality import flags_of
from ..types import JSONObject, TraceRecord
from .config import ReviewConfig
from .diff import diff_ratio, word_diff
from .index import TraceIndex


@dataclass
class PairCard:
    key: str
    rejected_step: str
    rejected_round: int
    chosen_round: int
    chosen: str
    rejected: str
    label: Label | None
    version: int = 0  # how many labels the pair has had: a label is sent with it (``base``)

    @property
    def decision(self) -> str:
        return (self.label.decision if self.label else None) or ""


def pairs(
    record: TraceRecord, labels: dict[str, Label], versions: dict[str, int], config: ReviewConfig
) -> list[PairCard]:
    cards = []
    for ex in preference_examples(record, rejected=config.view.rejected, pairs=config.view.pairs):
        pair = example_pair(ex)
        step, rejected_round, chosen_round = parse_pair(pair)
        cards.append(
            PairCard(pair, step, rejected_round, chosen_round, ex.chosen, ex.rejected or "", labels.get(pair),
                     versions.get(pair, 0))
        )  # fmt: skip
    return cards


@dataclass
class RowPreview:
    format: str
    pair: str
    outcome: str
    reason: str | None
    row: ExportRow


class TraceRows(TypedDict):
    """What the trace page shows of the export: why the trace gives no rows (or None), the trace kept in its place
    under the keep rule, and each row it would give."""

    trace_reason: str | None
    earlier: str | None
    previews: list[RowPreview]


def rows(record: TraceRecord, labels: dict[str, Label], config: ReviewConfig, index: TraceIndex) -> TraceRows:
    """The dpo and sft rows this trace gives under the app's options (labels applied), or why it gives none: the
    export's own rules (``curate.verdict.Verdict``), its keep rule for duplicates (``TraceIndex.kept_instead``)."""
    judge = Verdict(min_chars=config.min_chars, min_score=config.min_score, reviewed_only=config.reviewed_only)
    trace_reason = judge.trace_reason(record)
    flag = judge.flag_reason(flags_of(record)) if record.ok else None
    earlier = index.kept_instead(record.id, keep=config.keep, min_score=config.min_score) if record.ok else None

    def label_of(trace_id: str, pair: str) -> Label | None:
        return labels.get(pair)

    previews: list[RowPreview] = []
    shown: tuple[tuple[Format, list[RowSource]], ...] = (
        ("dpo", preference_examples(record, rejected=config.view.rejected, pairs=config.view.pairs)),
        ("sft", supervised_examples(record)),
    )
    for fmt, examples in shown:
        for ex, outcome, label_reason in judged_examples(
            record, examples, label_of, reviewed_only=config.reviewed_only, checks=False
        ):
            reason = label_reason or judge.row_reason(ex, flag)
            previews.append(RowPreview(fmt, example_pair(ex), outcome, reason, shape_row(fmt, ex)))
    return {"trace_reason": trace_reason, "earlier": earlier, "previews": previews}


def diff(record: TraceRecord) -> JSONObject | None:
    if not record.rounds or not record.synthesis:
        return None
    runs, cut = word_diff(record.first_thesis, record.synthesis)
    return {"runs": runs, "cut": cut, "same": diff_ratio(runs)}


def totals(record: TraceRecord) -> JSONObject:
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


def flags(record: TraceRecord) -> list[str]:
    """The trace's quality flags: stored, or computed for a trace written without them (``hegelion_dspy.quality``)."""
    return list(flags_of(record))


def extra_fields(record: TraceRecord) -> JSONObject:
    """Fields of newer trace schemas (demo flag, cost, program digest) when the record has them."""
    names = ("demo", "program_digest")
    return {n: getattr(record, n) for n in names if getattr(record, n, None) not in (None, False)}
