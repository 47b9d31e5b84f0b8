"""Trace logs -> training data: pure row functions per format, and one streaming export driver.

Every format is JSONL, one row a line, in the exact shapes TRL 1.x, Hugging Face ``datasets``, axolotl and unsloth
load as they are (see ``types.py`` for the TypedDicts):

- ``dpo``          ``{"prompt", "chosen", "rejected"}`` strings (TRL "standard" preference rows)
- ``dpo-chat``     the same keys, each a list of ``{"role", "content"}`` messages (TRL "conversational" preference)
- ``instruction``  Alpaca ``{"instruction", "input", "output"}``
- ``sft``          ``{"prompt", "completion"}`` strings (TRL "standard" prompt-completion)
- ``sft-chat``     ``{"messages": [...]}`` (TRL "conversational" language modeling)

``export_dataset`` streams: memory stays flat however large the logs are (per kept prompt it keeps a 16-byte hash
and a few numbers in compact arrays, to keep one trace per prompt). Its choices are one validated ``ExportOptions``
shared by the Python API, ``hegelion-dataset`` and the MCP tool. This module must not import dspy: the MCP server
imports it at start.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import shutil
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, get_args

import orjson
from pydantic import ConfigDict, Field, ValidationError, model_validator

from .card import card_text, write_card
from .errors import ExportError, InvalidTraceError
from .labels import OUTCOMES, Label, LabelBook, LabelStore, labelled_texts, labels_path, pair_key
from .selection import FILTER_REASONS, TraceFilter
from .store import normalize_task, read_records
from .types import ChatTurn, DPOChatRow, DPORow, InstructionRow, SFTChatRow, SFTRow, TraceRecord

Format = Literal["dpo", "dpo-chat", "instruction", "sft", "sft-chat"]
Rejected = Literal["thesis", "antithesis", "both"]
Pairs = Literal["first-last", "rounds"]
Keep = Literal["best", "latest", "first"]

FORMATS: tuple[str, ...] = get_args(Format)
REJECTED_CHOICES: tuple[str, ...] = get_args(Rejected)
PAIRS_CHOICES: tuple[str, ...] = get_args(Pairs)
KEEP_CHOICES: tuple[str, ...] = get_args(Keep)
PREFERENCE_FORMATS = frozenset({"dpo", "dpo-chat"})
CHAT_FORMATS = frozenset({"dpo-chat", "sft-chat"})

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

KEEP_INVALID_LOCATIONS = 5
_GLOB_CHARS = frozenset("*?[")


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
    return _preference_examples(record, _REJECTED_STEPS[rejected], pairs == "rounds")


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


def _preference_examples(record: TraceRecord, steps: tuple[str, ...], every_round: bool) -> list[RowSource]:
    if not record.ok or not record.rounds:
        return []
    if every_round:
        return [
            RowSource(record.task, r.synthesis, getattr(r, s), r.index, s, r.index)
            for r in record.rounds
            for s in steps
        ]
    first, last = record.rounds[0], record.rounds[-1]
    return [RowSource(record.task, record.synthesis, getattr(first, s), last.index, s, first.index) for s in steps]


def supervised_examples(record: TraceRecord) -> list[RowSource]:
    """The one (prompt, final synthesis) example of a trace; none for a failed trace."""
    if not record.ok or not record.rounds:
        return []
    return [RowSource(record.task, record.synthesis, None, record.rounds[-1].index)]


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


def row_metadata(record: TraceRecord, example: RowSource) -> dict[str, Any]:
    """The ``metadata`` column written with ``with_metadata``: where a row came from. Trainers ignore it."""
    return {
        "trace_id": record.id,
        "model": record.model,
        "mode": record.mode,
        "round": example.round,
        "score": record.score,
    }


def example_pair(example: RowSource) -> str:
    """The pair a reviewer's label of this example names (``labels.pair_key``); a supervised example (the final
    synthesis alone) follows the trace's main pair, first thesis > final synthesis."""
    if example.rejected_step is None or example.rejected_round is None:
        return pair_key("thesis", 1, example.round)
    return pair_key(example.rejected_step, example.rejected_round, example.round)


def shape_row(format: Format, example: RowSource, system: str | None = None) -> dict[str, Any]:
    """One example as a row of ``format`` (the shape the export writes)."""
    if format not in _SHAPERS:
        raise ExportError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    return dict(_SHAPERS[format](example, system))


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


# -- the options ---------------------------------------------------------------------------------------------------


class ExportOptions(TraceFilter):
    """Every choice an export makes, validated once. The Python API (``export_dataset(..., **options)``),
    ``hegelion-dataset`` (its flags are made from these fields) and the MCP ``export_dataset`` tool all take it, so an
    option is added here and nowhere else. The ``TraceFilter`` fields choose traces by model, source, tag and date, and
    leave demo traces out unless ``include_demo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = Field(
        default="dpo",
        description="dpo: {prompt, chosen, rejected} text; dpo-chat: the same as message lists; instruction: Alpaca "
        "{instruction, input, output}; sft: {prompt, completion}; sft-chat: {messages}.",
    )
    rejected: Rejected = Field(
        default="thesis",
        description="Preference formats: what the synthesis is preferred to; 'both' writes two rows.",
    )
    pairs: Pairs = Field(
        default="first-last",
        description="Preference formats, iterated traces: the first thesis vs the final synthesis, or one pair per "
        "round.",
    )
    system: str | None = Field(
        default=None, max_length=20_000, description="A system prompt put first in every dpo-chat / sft-chat row."
    )
    min_chars: int = Field(
        default=0, ge=0, le=1_000_000, strict=True, description="Drop rows whose chosen text is shorter than this."
    )
    min_score: float | None = Field(
        default=None, ge=0, le=1, strict=True, description="Drop traces whose judge score is below this, or unscored."
    )
    dedupe: bool = Field(default=True, description="Keep one trace per prompt (see keep); false keeps every trace.")
    keep: Keep = Field(
        default="best",
        description="Which trace of a prompt is kept: best = highest judge score, ties (and unscored logs) to the "
        "latest; latest = the newest; first = the first read.",
    )
    split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        strict=True,
        description="Send this fraction of prompts to a test split (OUTPUT's stem + .train.jsonl / .test.jsonl).",
    )
    seed: int = Field(default=7, strict=True, description="Seed of the deterministic split.")
    with_metadata: bool = Field(
        default=False,
        description="Add a 'metadata' column (trace_id, model, mode, round, score); TRL's trainers drop it.",
    )
    card: bool = Field(
        default=False,
        description="Write a dataset folder instead of a file: data/train.jsonl (+ test) and a README.md dataset card "
        "that datasets.load_dataset(FOLDER) and the Hub read.",
    )
    labels: bool = Field(
        default=True,
        description="Honour reviewers' labels (hegelion-review writes them to INPUT.labels beside each log): rejected "
        "pairs are dropped, swapped pairs swapped, edited chosen texts used.",
    )
    labels_file: str | None = Field(
        default=None,
        max_length=4096,
        description="Read the labels of every input from this file instead of each input's INPUT.labels.",
    )
    reviewed_only: bool = Field(
        default=False, description="Keep only pairs a reviewer accepted, swapped or edited (see labels)."
    )
    skip_invalid: bool = Field(default=False, description="Skip (and count) invalid log lines instead of stopping.")
    force: bool = Field(default=False, description="Replace an existing output.")

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> ExportOptions:
        if self.format not in PREFERENCE_FORMATS:
            for name, default in (("rejected", "thesis"), ("pairs", "first-last")):
                if getattr(self, name) != default:
                    raise ValueError(
                        f"option {name!r} chooses preference pairs and applies to the formats dpo and dpo-chat only, "
                        f"not {self.format!r} (which trains on the final synthesis); drop it or use format dpo"
                    )
        if self.system is not None and self.format not in CHAT_FORMATS:
            raise ValueError(
                f"option 'system' applies to the formats dpo-chat and sft-chat only, not {self.format!r}; drop it"
            )
        if not self.labels and (self.reviewed_only or self.labels_file is not None):
            raise ValueError(
                "option 'reviewed_only' and option 'labels_file' work on labels, and option 'labels' leaves them out; "
                "drop one of them"
            )
        return self

    @classmethod
    def of(cls, options: ExportOptions | Mapping[str, Any] | None = None, **changes: Any) -> ExportOptions:
        """``options`` (or the defaults) with ``changes`` applied, validated; ExportError names a bad field."""
        base = options.model_dump() if isinstance(options, ExportOptions) else dict(options or {})
        try:
            return cls.model_validate({**base, **changes})
        except ValidationError as exc:
            raise ExportError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    value = first.get("input")
    quoted = f" (got {value!r})" if where and not isinstance(value, dict) else ""
    return f"option {where!r}: {message}{quoted}" if where else message


# -- the report ----------------------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export did. ``dropped`` counts traces for trace-level reasons and rows for row-level ones.

    ``kept_by_model`` / ``kept_by_mode`` / ``kept_by_program`` count the kept traces; ``first_created`` and
    ``last_created`` bound their creation times (ISO, UTC). ``cost_usd`` is what the LM calls of every trace read cost
    (failed and dropped ones too: what collecting the logs cost), over the ``priced_traces`` that carry a cost.
    """

    format: str
    inputs: list[str]
    outputs: dict[str, str]
    rows: dict[str, int]
    options: dict[str, Any] = field(default_factory=dict)
    traces_read: int = 0
    traces_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # examples by label outcome (accepted, swapped, ...)
    label_files: list[str] = field(default_factory=list)
    invalid: int = 0
    invalid_locations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept_by_model: dict[str, int] = field(default_factory=dict)
    kept_by_mode: dict[str, int] = field(default_factory=dict)
    kept_by_program: dict[str, int] = field(default_factory=dict)
    first_created: str | None = None
    last_created: str | None = None
    folder: str | None = None  # with card: the dataset folder
    cost_usd: float = 0.0
    priced_traces: int = 0
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "inputs": list(self.inputs),
            "outputs": dict(self.outputs),
            "folder": self.folder,
            "rows": dict(self.rows),
            "rows_written": self.rows_written,
            "traces_read": self.traces_read,
            "traces_kept": self.traces_kept,
            "dropped": dict(self.dropped),
            "labels": dict(self.labels),
            "label_files": list(self.label_files),
            "invalid": self.invalid,
            "invalid_locations": list(self.invalid_locations),
            "warnings": list(self.warnings),
            "kept_by_model": dict(self.kept_by_model),
            "kept_by_mode": dict(self.kept_by_mode),
            "kept_by_program": dict(self.kept_by_program),
            "first_created": self.first_created,
            "last_created": self.last_created,
            "cost_usd": round(self.cost_usd, 6),
            "priced_traces": self.priced_traces,
            "options": dict(self.options),
            "seconds": round(self.seconds, 3),
        }


# -- paths ---------------------------------------------------------------------------------------------------------


def split_paths(output: str | Path) -> dict[str, Path]:
    """Where a split export writes: ``data/dpo.jsonl`` -> ``data/dpo.train.jsonl`` and ``data/dpo.test.jsonl``."""
    output = Path(output)
    suffix = output.suffix or ".jsonl"
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return {name: output.with_name(f"{stem}.{name}{suffix}") for name in ("train", "test")}


def card_paths(folder: str | Path, *, split: bool) -> dict[str, Path]:
    """Where a dataset-folder export (``card``) writes its splits: ``FOLDER/data/train.jsonl`` (+ ``test.jsonl``)."""
    names = ("train", "test") if split else ("train",)
    return {name: Path(folder) / "data" / f"{name}.jsonl" for name in names}


def resolve_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Input log files in order, each once; a pattern with ``* ? [`` that names no file is expanded as a glob."""
    items: list[str | Path] = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise ExportError("no input given; pass one or more trace log files (or a glob such as 'logs/*.jsonl')")
    found: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item).expanduser()
        if path.exists():
            matches = [path]
        elif _GLOB_CHARS & set(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            if not matches:
                raise ExportError(f"the glob {str(item)!r} matches no file; check the pattern and quote it")
        else:
            raise ExportError(f"input {str(item)!r} does not exist; check the path")
        for match in matches:
            if match.is_dir():
                raise ExportError(f"input {str(match)!r} is a folder; pass its log files (e.g. '{match}/*.jsonl')")
            key = match.resolve()
            if key not in seen:
                seen.add(key)
                found.append(match)
    return found


_REPLACE_HINT = "set option 'force' to replace it"
CARD_MARK = "<!-- written by hegelion-dspy -->"


def _check_outputs(outputs: Mapping[str, Path], inputs: list[Path], force: bool) -> None:
    input_keys = {p.resolve() for p in inputs}
    sidecars = {labels_path(p).resolve() for p in inputs}
    for path in outputs.values():
        if path.resolve() in input_keys:
            raise ExportError(f"the output {str(path)!r} is also an input; write the dataset to another file")
        if path.resolve() in sidecars:
            raise ExportError(f"the output {str(path)!r} is an input's labels file; write the dataset to another file")
        if path.is_dir():
            raise ExportError(f"the output {str(path)!r} is a folder; give a file name such as '{path}/train.jsonl'")
        if path.exists() and not force:
            raise ExportError(f"{str(path)!r} already exists; {_REPLACE_HINT}")


def _check_card_folder(folder: Path, inputs: list[Path], force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is a file; a dataset card export writes a folder, give a folder name")
    if any(folder.resolve() in p.resolve().parents for p in inputs):
        raise ExportError(f"the input logs live inside {str(folder)!r}; write the dataset folder elsewhere")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise ExportError(f"the folder {str(folder)!r} already exists; {_REPLACE_HINT}")
        readme = folder / "README.md"
        if not (readme.is_file() and CARD_MARK in readme.read_text(encoding="utf-8", errors="replace")):
            raise ExportError(
                f"{str(folder)!r} is not a dataset folder this tool wrote (no README.md of ours); it is never "
                "replaced, even with --force: choose another folder"
            )


def _copy_range(source: int, target: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``source`` from ``offset`` to ``target`` (copy_file_range where the OS has it)."""
    while count > 0:
        try:
            done = os.copy_file_range(source, target, count, offset)
        except (AttributeError, OSError):  # no such call on this OS or filesystem: copy through a buffer
            done = os.write(target, os.pread(source, min(count, 1 << 22), offset))
        if done == 0:
            raise ExportError("the temp file ended early while compacting it; nothing was written")
        offset += done
        count -= done


class _AtomicFile:
    """A temp file beside ``target`` that becomes ``target`` on commit() and vanishes on discard()."""

    def __init__(self, target: Path, *, force: bool):
        self.target = target
        self.force = force
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        # os.open honours the umask (tempfile would make the dataset private, mode 0600).
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.fh: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)

    def cut(self, dead: list[tuple[int, int]]) -> None:
        """Rewrite the temp file without these (offset, length) byte ranges, copying the rest in the kernel."""
        self.fh.close()
        compacted = self.tmp.with_name(self.tmp.name + ".c")
        size = self.tmp.stat().st_size
        with open(self.tmp, "rb") as source, open(compacted, "wb") as out:
            position = 0
            for offset, length in [*sorted(dead), (size, 0)]:
                _copy_range(source.fileno(), out.fileno(), position, offset - position)
                position = offset + length
        os.replace(compacted, self.tmp)

    def commit(self) -> None:
        self.fh.close()
        if self.force:
            os.replace(self.tmp, self.target)
            return
        try:
            os.link(self.tmp, self.target)  # never clobbers a file that appeared while we were writing
        except FileExistsError:
            raise ExportError(f"{str(self.target)!r} appeared while exporting; {_REPLACE_HINT}") from None
        except OSError:  # a filesystem without hard links
            if self.target.exists():
                raise ExportError(f"{str(self.target)!r} already exists; {_REPLACE_HINT}") from None
            os.replace(self.tmp, self.target)
            return
        os.unlink(self.tmp)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        for path in (self.tmp, self.tmp.with_name(self.tmp.name + ".c")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# -- keeping one trace per prompt ----------------------------------------------------------------------------------


class _Ranked:
    """The trace kept for each prompt under ``keep="best"``/``"latest"``.

    A later trace of a prompt replaces the kept one when it ranks higher, so each kept trace's key, rank and place in
    the output live in compact arrays, found through an open-addressing table of slot numbers: no Python object per
    prompt (about 70 bytes a prompt in all, no more than a set of 16-byte keys). A replaced trace's rows stay in the
    temp file as a dead byte range, cut out at the end (only when something was replaced). ``keep="first"`` needs
    none of this: a set of keys.
    """

    PLACE = 5  # per slot in ``places``: part, offset, length, rows, origin (index into _Origins)

    def __init__(self, keep: str):
        self.best = keep == "best"
        self.keys = array("Q")  # the first 8 bytes of the prompt's blake2b digest (a collision: ~1e-9 at 1M prompts)
        self.places = array("q")
        self.ranks = array("d")  # per slot: score (-1 when unscored), creation time
        self.table = array("q", [0]) * 1024  # slot + 1 per bucket, 0 = empty; kept under half full
        self.dead: list[list[tuple[int, int]]] = [[], []]  # per part: (offset, length) of replaced rows

    def find(self, key: int) -> int:
        """The slot of ``key``, or -(bucket + 1) where it would go."""
        table, keys = self.table, self.keys
        mask = len(table) - 1
        bucket = key & mask
        while True:
            slot = table[bucket] - 1
            if slot < 0:
                return -(bucket + 1)
            if keys[slot] == key:
                return slot
            bucket = (bucket + 1) & mask

    def beats(self, slot: int, score: float, created: float) -> bool:
        """Whether a new trace ranks above the one kept in ``slot``: a higher score (best), else a later creation;
        on a tie the trace read later wins."""
        kept_score = self.ranks[2 * slot]
        if self.best and score != kept_score:
            return score > kept_score
        return created >= self.ranks[2 * slot + 1]

    def place(self, slot: int) -> tuple[int, ...]:
        """(part, offset, length, rows, origin) of the trace kept in ``slot``."""
        start = self.PLACE * slot
        return tuple(self.places[start : start + self.PLACE])

    def add(self, where: int, key: int, place: tuple[int, int, int, int, int], rank: tuple[float, float]) -> None:
        """Keep the first trace of a new prompt (``where`` from ``find``)."""
        self.table[-where - 1] = len(self.keys) + 1
        self.keys.append(key)
        self.places.extend(place)
        self.ranks.extend(rank)
        if 2 * len(self.keys) > len(self.table):
            self.table = array("q", [0]) * (4 * len(self.table))
            for slot, kept in enumerate(self.keys):
                self.table[-self.find(kept) - 1] = slot + 1

    def replace(self, slot: int, place: tuple[int, int, int, int, int], rank: tuple[float, float]) -> None:
        """Keep a trace that ranks above the one in ``slot`` (same prompt, so the same split part)."""
        part, offset, length, _, _ = self.place(slot)
        self.dead[part].append((offset, length))
        self.places[self.PLACE * slot : self.PLACE * (slot + 1)] = array("q", place)
        self.ranks[2 * slot : 2 * slot + 2] = array("d", rank)

    def created(self) -> array[float]:
        return self.ranks[1::2]


class _Origins:
    """Interned (model, mode, program) of kept traces, and how many kept traces each has."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str | None], int] = {}
        self.keys: list[tuple[str, str, str | None]] = []
        self.count = array("q")

    def of(self, record: TraceRecord) -> int:
        key = (record.model or "unknown", record.mode, record.program_digest or record.program)
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.keys)
            self.keys.append(key)
            self.count.append(0)
        return found

    def tally(self, report: ExportReport) -> None:
        for (model, mode, program), n in zip(self.keys, self.count, strict=True):
            if n:
                report.kept_by_model[model] = report.kept_by_model.get(model, 0) + n
                report.kept_by_mode[mode] = report.kept_by_mode.get(mode, 0) + n
                if program:
                    report.kept_by_program[program] = report.kept_by_program.get(program, 0) + n


# -- the streaming driver ------------------------------------------------------------------------------------------


def _test_threshold(split: float | None) -> int:
    return int(split * (1 << 64)) if split else -1


def export_dataset(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    options: ExportOptions | Mapping[str, Any] | None = None,
    *,
    command: str | None = None,
    **changes: Any,
) -> ExportReport:
    """Stream trace logs into a JSONL training set and return what was kept and dropped.

    ``options`` (an ``ExportOptions``) and/or its fields as keywords say how (``export_dataset(log, out,
    format="sft", models=["openai/*"])``). Only ``ok`` traces are used; the filter leaves out demo traces (unless
    ``include_demo``) and traces outside the chosen models, sources, tags and dates. Rows with an empty side, with
    chosen equal to rejected, or shorter than ``min_chars`` are dropped; with ``min_score`` so are traces scored below
    it or not scored. ``dedupe`` keeps one trace per normalised task, chosen by ``keep``. ``split`` sends that fraction
    of prompts to a test file, chosen per prompt by a hash of the normalised task and ``seed`` (deterministic,
    streaming, no prompt in both files). ``card`` writes ``output`` as a dataset folder with a README.md dataset card
    (``command``, the command line that ran the export, is written into it).

    Output is written beside its target and renamed at the end: on any error nothing partial remains and an existing
    output is untouched. Raises ExportError for options or paths that cannot work, InvalidTraceError
    (``path:line: reason``) at the first bad log line unless ``skip_invalid``.
    """
    started = time.perf_counter()
    opts = ExportOptions.of(options, **changes)
    input_paths = resolve_inputs(inputs)
    output = Path(output)
    if opts.card:
        _check_card_folder(output, input_paths, opts.force)
        staging: Path | None = output.with_name(f".{output.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        targets = card_paths(staging, split=bool(opts.split))  # type: ignore[arg-type]
        final = card_paths(output, split=bool(opts.split))
    else:
        staging = None
        targets = final = split_paths(output) if opts.split else {"train": output}
        _check_outputs(targets, input_paths, opts.force)

    report = ExportReport(
        format=opts.format,
        inputs=[str(p) for p in input_paths],
        outputs={name: str(p) for name, p in final.items()},
        rows=dict.fromkeys(targets, 0),
        options=opts.model_dump(mode="json"),
        dropped=dict.fromkeys(DROP_REASONS, 0),
        labels=dict.fromkeys(OUTCOMES, 0),
        folder=str(output) if opts.card else None,
    )
    files: dict[str, _AtomicFile] = {}
    try:
        for name, path in targets.items():
            files[name] = _AtomicFile(path, force=opts.force or opts.card)
        ranked = _stream(opts, input_paths, files, report)
        if report.rows_written == 0:
            raise ExportError(f"no rows to write; nothing was written. {_nothing_kept(report, opts)}")
        if ranked is not None:
            for index, name in enumerate(files):
                if ranked.dead[index]:
                    files[name].cut(ranked.dead[index])
        for name, f in files.items():
            if report.rows[name] == 0:
                report.warnings.append(
                    f"the {name} split is empty ({final[name]}); use more traces or another split fraction"
                )
            f.commit()
        if staging is not None:
            text = card_text(
                report.as_dict(),
                opts.model_dump(),
                filters=opts.describe(),
                trace_reasons=TRACE_REASONS,
                command=command,
            )
            write_card(staging, text)
            _swap_in(staging, output)
    except BaseException:
        for f in files.values():
            f.discard()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the finished dataset folder in place; a previous one of ours is replaced only once the new one is whole."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stream(
    opts: ExportOptions, inputs: list[Path], files: dict[str, _AtomicFile], report: ExportReport
) -> _Ranked | None:
    """Read every input and write the rows of the traces kept; returns the ranked table of kept traces (None unless
    ``keep`` is best or latest), whose replaced rows the caller cuts out."""

    def on_invalid(exc: InvalidTraceError) -> None:
        report.invalid += 1
        if len(report.invalid_locations) < KEEP_INVALID_LOCATIONS:
            report.invalid_locations.append(str(exc))

    fixed_book: LabelBook | None = None
    if opts.labels_file is not None:
        fixed_book = _load_labels(opts.labels_file, opts.skip_invalid, on_invalid)
        report.label_files.append(opts.labels_file)
    reviewed_only, outcomes = opts.reviewed_only, report.labels
    preference = opts.format in PREFERENCE_FORMATS
    steps, every_round = _REJECTED_STEPS[opts.rejected], opts.pairs == "rounds"
    shape, system, min_chars, min_score = _SHAPERS[opts.format], opts.system, opts.min_chars, opts.min_score
    with_metadata = opts.with_metadata
    # the filter as a plain function, only when one is set; demo traces are checked inline (the common case)
    left_out = opts.compiled() if opts.narrows else None
    include_demo = opts.include_demo
    ranked = _Ranked(opts.keep) if opts.dedupe and opts.keep != "first" else None
    seen: set[bytes] | None = set() if opts.dedupe and opts.keep == "first" else None
    origins = _Origins()
    keyed = opts.dedupe or bool(opts.split)  # both need the normalised task
    key, digest = b"", b""
    # orjson writes compact UTF-8 JSON about 5x faster than json / jsonlines (benchmarks/bench_export.py).
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    threshold = _test_threshold(opts.split)
    seed_prefix = f"{opts.seed}\x00".encode()
    dropped, rows = report.dropped, report.rows
    parts = list(files)
    writers = [files[name].fh.write for name in parts]
    position = [0] * len(parts)
    first_created: datetime | None = None  # without ranking, tracked as traces are written
    last_created: datetime | None = None
    for path in inputs:
        read_before, invalid_before = report.traces_read, report.invalid
        book = fixed_book
        if opts.labels and fixed_book is None and labels_path(path).exists():
            book = _load_labels(labels_path(path), opts.skip_invalid, on_invalid)
            report.label_files.append(str(labels_path(path)))
        label_of = (book.get if book else _no_label) if book or reviewed_only else None
        for record in read_records(path, skip_invalid=opts.skip_invalid, on_invalid=on_invalid):
            report.traces_read += 1
            if record.cost_usd is not None:
                report.cost_usd += record.cost_usd
                report.priced_traces += 1
            if record.status != "ok":
                dropped["failed"] += 1
                continue
            if record.demo and not include_demo:
                dropped["demo"] += 1
                continue
            if left_out is not None:
                reason = left_out(record)
                if reason is not None:
                    dropped[reason] += 1
                    continue
            if min_score is not None:
                if record.score is None:
                    dropped["no_score"] += 1
                    continue
                if record.score < min_score:
                    dropped["below_min_score"] += 1
                    continue
            if keyed:
                key = normalize_task(record.task).encode()
                digest = hashlib.blake2b(key, digest_size=16).digest()
            slot = -1
            if ranked is not None:
                rank = (-1.0 if record.score is None else record.score, record.created_at.timestamp())
                short = int.from_bytes(digest[:8], "big")
                slot = ranked.find(short)
                if slot >= 0 and not ranked.beats(slot, *rank):
                    dropped["duplicate_prompt"] += 1
                    continue
            elif seen is not None and digest in seen:
                dropped["duplicate_prompt"] += 1
                continue
            examples = _preference_examples(record, steps, every_round) if preference else supervised_examples(record)
            if label_of is None:  # no labels for this input: every example is unreviewed, skip the lookups
                outcomes["unreviewed"] += len(examples)
            else:
                examples = _reviewed(record, examples, label_of, outcomes, dropped, reviewed_only)
            lines: list[bytes] = []
            for ex in examples:
                reason = drop_reason(ex, min_chars=min_chars)
                if reason is None:
                    row = shape(ex, system)
                    if with_metadata:
                        row["metadata"] = row_metadata(record, ex)
                    # Texts are valid Unicode: the trace schema refuses lone surrogates ("\ud800").
                    lines.append(dumps(row, option=newline))
                else:
                    dropped[reason] += 1
            if not lines:
                continue
            part = 0
            if threshold >= 0:
                bucket = hashlib.blake2b(seed_prefix + key, digest_size=8).digest()
                if int.from_bytes(bucket, "big") < threshold:
                    part = 1
            data = b"".join(lines)
            writers[part](data)
            offset = position[part]
            position[part] += len(data)
            rows[parts[part]] += len(lines)
            report.traces_kept += 1
            origin = origins.of(record)
            origins.count[origin] += 1
            if ranked is None:
                if seen is not None:
                    seen.add(digest)
                created_at = record.created_at
                if first_created is None or created_at < first_created:
                    first_created = created_at
                if last_created is None or created_at > last_created:
                    last_created = created_at
            elif slot < 0:
                ranked.add(slot, short, (part, offset, len(data), len(lines), origin), rank)
            else:  # this trace outranks the one kept for its prompt: that one is dropped after all
                old_part, _, _, old_rows, old_origin = ranked.place(slot)
                rows[parts[old_part]] -= old_rows
                origins.count[old_origin] -= 1
                report.traces_kept -= 1
                dropped["duplicate_prompt"] += 1
                ranked.replace(slot, (part, offset, len(data), len(lines), origin), rank)
        if report.traces_read == read_before and report.invalid == invalid_before:
            report.warnings.append(f"{path}: no traces (empty file)")
    origins.tally(report)
    if ranked is not None and len(ranked.keys):
        created_times = ranked.created()
        first_created = datetime.fromtimestamp(min(created_times), UTC)
        last_created = datetime.fromtimestamp(max(created_times), UTC)
    report.first_created = _iso(first_created)
    report.last_created = _iso(last_created)
    return ranked


def _no_label(trace_id: str, pair: str) -> Label | None:
    return None


def _load_labels(path: str | Path, skip_invalid: bool, on_invalid: Callable[[Any], None]) -> LabelBook:
    sidecar = Path(path).expanduser()
    if not sidecar.is_file():
        raise ExportError(f"labels file {str(path)!r} does not exist; check the path (it is 'LOG.labels')")
    return LabelStore(sidecar).latest(skip_invalid=skip_invalid, on_invalid=on_invalid)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _nothing_kept(report: ExportReport, opts: ExportOptions) -> str:
    if report.traces_read == 0:
        return "The inputs hold no valid traces" + (
            f" ({report.invalid} invalid lines skipped)." if report.invalid else " (empty files)."
        )
    reasons = ", ".join(f"{k}={v}" for k, v in report.dropped.items() if v)
    hint = f" {demo_hint(report.dropped['demo'])}" if report.dropped.get("demo") else ""
    return f"Read {report.traces_read} traces; dropped: {reasons or 'none'}.{hint}"


def demo_hint(n: int) -> str:
    """What to say about demo traces left out of an export."""
    traces = "trace" if n == 1 else "traces"
    return (
        f"{n:,} {traces} of a demo model (the embedded model or the scripted fake) left out: they prove the pipeline, "
        "they are not training data; use a real model, or set option 'include_demo' for a dry run"
    )
