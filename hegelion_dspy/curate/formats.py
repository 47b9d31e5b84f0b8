"""The row formats: what one example of a trace becomes in each export format, in the exact shapes TRL 1.x, Hugging
Face ``datasets``, axolotl and unsloth load as they are (see ``types.py`` for the TypedDicts).

- ``dpo``          ``{"prompt", "chosen", "rejected"}`` strings (TRL "standard" preference rows)
- ``dpo-chat``     the same keys, each a list of ``{"role", "content"}`` messages (TRL "conversational" preference)
- ``instruction``  Alpaca ``{"instruction", "input", "output"}``
- ``sft``          ``{"prompt", "completion"}`` strings (TRL "standard" prompt-completion)
- ``sft-chat``     ``{"messages": [...]}`` (TRL "conversational" language modeling)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, TypedDict, get_args

from ..errors import ExportError
from ..types import ChatTurn, DPOChatRow, DPORow, InstructionRow, Mode, SFTChatRow, SFTRow, TraceRecord

Format = Literal["dpo", "dpo-chat", "instruction", "sft", "sft-chat"]
Rejected = Literal["thesis", "antithesis", "both"]
Pairs = Literal["first-last", "rounds"]
FORMATS: tuple[str, ...] = get_args(Format)
REJECTED_CHOICES: tuple[str, ...] = get_args(Rejected)
PAIRS_CHOICES: tuple[str, ...] = get_args(Pairs)
PREFERENCE_FORMATS = frozenset({"dpo", "dpo-chat"})
CHAT_FORMATS = frozenset({"dpo-chat", "sft-chat"})
# -- pure row functions --------------------------------------------------------------------------------------------


class RowSource(NamedTuple):
    """What one row is made of, before a format shapes it.

    ``rejected`` is None for supervised formats; ``round`` is the round whose synthesis is ``chosen``;
    ``rejected_step``/``rejected_round`` say where the rejected text comes from (the pair's identity for labels).
    """

    prompt: str
    chosen: str
    rejected: str | None
    round: int
    rejected_step: str | None = None
    rejected_round: int | None = None


def preference_examples(
    record: TraceRecord, *, rejected: Rejected = "thesis", pairs: Pairs = "first-last"
) -> list[RowSource]:
    """The (prompt, chosen, rejected) examples of one trace; none for a failed trace.

    ``pairs="first-last"``: the final synthesis against the first round's thesis (or antithesis).
    ``pairs="rounds"``: every round's synthesis against that round's thesis (or antithesis); in round n>1 the thesis
    is round n-1's synthesis, so an iterated trace teaches each improvement step.
    ``rejected="both"`` makes two examples per pair: one against the thesis, one against the antithesis.
    """
    _check_pair_options(rejected, pairs)
    return examples_maker(_REJECTED_STEPS[rejected], pairs == "rounds")(record)


_REJECTED_STEPS: dict[str, tuple[str, ...]] = {
    "thesis": ("thesis",),
    "antithesis": ("antithesis",),
    "both": ("thesis", "antithesis"),
}


def _check_pair_options(rejected: str, pairs: str) -> None:
    if rejected not in REJECTED_CHOICES:
        raise ExportError(f"rejected={rejected!r} is not one of {', '.join(REJECTED_CHOICES)}")
    if pairs not in PAIRS_CHOICES:
        raise ExportError(f"pairs={pairs!r} is not one of {', '.join(PAIRS_CHOICES)}")


# A RowSource of all its fields: ``_new(RowSource, (prompt, chosen, ...))``, without the keyword-handling ``__new__``
# NamedTuple writes in Python (2.5x the cost; the export makes one per row).
_new = tuple.__new__


def examples_maker(
    steps: tuple[str, ...] | None, every_round: bool = False
) -> Callable[[TraceRecord], list[RowSource]]:
    """The function that makes a trace's examples: preference pairs against ``steps`` (``_REJECTED_STEPS``), of every
    round or first-last; ``steps`` None: the supervised example. Made once per export, so the choices are not looked
    at again for each trace (the export calls it 100,000s of times)."""
    if steps is None:
        return supervised_examples

    def every_round_pairs(record: TraceRecord) -> list[RowSource]:
        rounds = record.rounds
        if record.status != "ok" or not rounds:  # not record.ok: a property call per trace
            return []
        task = record.task
        return [_new(RowSource, (task, r.synthesis, getattr(r, s), r.index, s, r.index)) for r in rounds for s in steps]

    def first_last_pairs(record: TraceRecord) -> list[RowSource]:
        rounds = record.rounds
        if record.status != "ok" or not rounds:
            return []
        first, last = rounds[0], rounds[-1]
        task, chosen, index, first_index = record.task, record.synthesis, last.index, first.index
        return [_new(RowSource, (task, chosen, getattr(first, s), index, s, first_index)) for s in steps]

    if every_round:
        return every_round_pairs
    if len(steps) != 1:
        return first_last_pairs
    (step,) = steps  # the default (one rejected step): no comprehension to set up

    def first_last_pair(record: TraceRecord) -> list[RowSource]:
        rounds = record.rounds
        if record.status != "ok" or not rounds:
            return []
        first = rounds[0]
        return [
            _new(RowSource, (record.task, record.synthesis, getattr(first, step), rounds[-1].index, step, first.index))
        ]

    return first_last_pair


def supervised_examples(record: TraceRecord) -> list[RowSource]:
    """The one (prompt, final synthesis) example of a trace; none for a failed trace."""
    rounds = record.rounds
    if record.status != "ok" or not rounds:
        return []
    return [_new(RowSource, (record.task, record.synthesis, None, rounds[-1].index, None, None))]


def _prompt_messages(prompt: str, system: str | None) -> list[ChatTurn]:
    user: ChatTurn = {"role": "user", "content": prompt}
    return [{"role": "system", "content": system}, user] if system else [user]


def _dpo_row(ex: RowSource, system: str | None = None) -> DPORow:
    return {"prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected or ""}


def _dpo_chat_row(ex: RowSource, system: str | None = None) -> DPOChatRow:
    return {
        "prompt": _prompt_messages(ex.prompt, system),
        "chosen": [{"role": "assistant", "content": ex.chosen}],
        "rejected": [{"role": "assistant", "content": ex.rejected or ""}],
    }


def _instruction_row(ex: RowSource, system: str | None = None) -> InstructionRow:
    return {"instruction": ex.prompt, "input": "", "output": ex.chosen}


def _sft_row(ex: RowSource, system: str | None = None) -> SFTRow:
    return {"prompt": ex.prompt, "completion": ex.chosen}


def _sft_chat_row(ex: RowSource, system: str | None = None) -> SFTChatRow:
    return {"messages": [*_prompt_messages(ex.prompt, system), {"role": "assistant", "content": ex.chosen}]}


ExportRow = DPORow | DPOChatRow | InstructionRow | SFTRow | SFTChatRow

# Typed loosely because the export driver (curate/stream.py) adds a ``metadata`` column to the row a shaper returns,
# which none of the row TypedDicts has; a union of the five shaper types would refuse that assignment.
_SHAPERS: dict[str, Any] = {
    "dpo": _dpo_row,
    "dpo-chat": _dpo_chat_row,
    "instruction": _instruction_row,
    "sft": _sft_row,
    "sft-chat": _sft_chat_row,
}


def to_dpo_rows(record: TraceRecord, *, rejected: Rejected = "thesis", pairs: Pairs = "first-last") -> list[DPORow]:
    """TRL standard preference rows ``{"prompt", "chosen", "rejected"}``: chosen is a synthesis."""
    return [_dpo_row(ex) for ex in preference_examples(record, rejected=rejected, pairs=pairs)]


def to_dpo_chat_rows(
    record: TraceRecord, *, rejected: Rejected = "thesis", pairs: Pairs = "first-last", system: str | None = None
) -> list[DPOChatRow]:
    """TRL conversational preference rows: prompt = [system?, user], chosen/rejected = [assistant]."""
    return [_dpo_chat_row(ex, system) for ex in preference_examples(record, rejected=rejected, pairs=pairs)]


def to_instruction_rows(record: TraceRecord) -> list[InstructionRow]:
    """Alpaca rows ``{"instruction": task, "input": "", "output": final synthesis}``."""
    return [_instruction_row(ex) for ex in supervised_examples(record)]


def to_sft_rows(record: TraceRecord) -> list[SFTRow]:
    """TRL standard prompt-completion rows ``{"prompt": task, "completion": final synthesis}``."""
    return [_sft_row(ex) for ex in supervised_examples(record)]


def to_sft_chat_rows(record: TraceRecord, *, system: str | None = None) -> list[SFTChatRow]:
    """TRL conversational rows ``{"messages": [system?, user, assistant]}`` with the final synthesis."""
    return [_sft_chat_row(ex, system) for ex in supervised_examples(record)]


class RowMetadata(TypedDict):
    """The ``metadata`` column of a row: where it came from."""

    trace_id: str
    model: str | None
    mode: Mode
    round: int
    score: float | None


def row_metadata(record: TraceRecord, example: RowSource) -> RowMetadata:
    """The ``metadata`` column written with ``with_metadata``: where a row came from. Trainers ignore it."""
    return {
        "trace_id": record.id,
        "model": record.model,
        "mode": record.mode,
        "round": example.round,
        "score": record.score,
    }


def shape_row(format: Format, example: RowSource, system: str | None = None) -> ExportRow:
    """One example as a row of ``format`` (the shape the export writes)."""
    if format not in _SHAPERS:
        raise ExportError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    row: ExportRow = _SHAPERS[format](example, system)
    return row
