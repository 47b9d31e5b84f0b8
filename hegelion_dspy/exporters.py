"""Trace logs -> training data: pure row functions per format, and one streaming export driver.

Every format is JSONL, one row a line, in the exact shapes TRL 1.x, Hugging Face ``datasets``, axolotl and unsloth
load as they are (see ``types.py`` for the TypedDicts):

- ``dpo``          ``{"prompt", "chosen", "rejected"}`` strings (TRL "standard" preference rows)
- ``dpo-chat``     the same keys, each a list of ``{"role", "content"}`` messages (TRL "conversational" preference)
- ``instruction``  Alpaca ``{"instruction", "input", "output"}``
- ``sft``          ``{"prompt", "completion"}`` strings (TRL "standard" prompt-completion)
- ``sft-chat``     ``{"messages": [...]}`` (TRL "conversational" language modeling)

``export_dataset`` streams: memory stays flat however large the logs are (it keeps one 16-byte hash per kept prompt
for de-duplication). This module must not import dspy: the MCP server imports it at start.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, get_args

import orjson

from .errors import ExportError, InvalidTraceError
from .store import normalize_task, read_records
from .types import DPOChatRow, DPORow, InstructionRow, Message, SFTChatRow, SFTRow, TraceRecord

Format = Literal["dpo", "dpo-chat", "instruction", "sft", "sft-chat"]
Rejected = Literal["thesis", "antithesis", "both"]
Pairs = Literal["first-last", "rounds"]

FORMATS: tuple[str, ...] = get_args(Format)
REJECTED_CHOICES: tuple[str, ...] = get_args(Rejected)
PAIRS_CHOICES: tuple[str, ...] = get_args(Pairs)
PREFERENCE_FORMATS = frozenset({"dpo", "dpo-chat"})
CHAT_FORMATS = frozenset({"dpo-chat", "sft-chat"})

# Why a trace or a row was left out. Trace-level reasons count traces; row-level reasons count rows.
DROP_REASONS: tuple[str, ...] = (
    "failed",  # trace: status "failed"
    "no_score",  # trace: min_score was asked for and the trace has no score
    "below_min_score",  # trace: score < min_score
    "duplicate_prompt",  # trace: an earlier kept trace has the same normalised task
    "empty",  # row: chosen / rejected / output is empty or only whitespace
    "chosen_equals_rejected",  # row: nothing to prefer
    "too_short",  # row: chosen / output shorter than min_chars (after stripping)
)
TRACE_REASONS = frozenset({"failed", "no_score", "below_min_score", "duplicate_prompt"})

KEEP_INVALID_LOCATIONS = 5
_GLOB_CHARS = frozenset("*?[")


# -- pure row functions --------------------------------------------------------------------------------------------


class Example(NamedTuple):
    """One training example before it is shaped into a format's row.

    ``rejected`` is None for supervised formats; ``round`` is the round whose synthesis is ``chosen``.
    """

    prompt: str
    chosen: str
    rejected: str | None
    round: int


def preference_examples(
    record: TraceRecord, *, rejected: Rejected = "thesis", pairs: Pairs = "first-last"
) -> list[Example]:
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


def _preference_examples(record: TraceRecord, steps: tuple[str, ...], every_round: bool) -> list[Example]:
    if not record.ok or not record.rounds:
        return []
    if every_round:
        return [Example(record.task, r.synthesis, getattr(r, s), r.index) for r in record.rounds for s in steps]
    first, last = record.rounds[0], record.rounds[-1]
    return [Example(record.task, record.synthesis, getattr(first, s), last.index) for s in steps]


def supervised_examples(record: TraceRecord) -> list[Example]:
    """The one (prompt, final synthesis) example of a trace; none for a failed trace."""
    if not record.ok or not record.rounds:
        return []
    return [Example(record.task, record.synthesis, None, record.rounds[-1].index)]


def _prompt_messages(prompt: str, system: str | None) -> list[Message]:
    user: Message = {"role": "user", "content": prompt}
    return [{"role": "system", "content": system}, user] if system else [user]


def _dpo_row(ex: Example, system: str | None = None) -> DPORow:
    return {"prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected or ""}


def _dpo_chat_row(ex: Example, system: str | None = None) -> DPOChatRow:
    return {
        "prompt": _prompt_messages(ex.prompt, system),
        "chosen": [{"role": "assistant", "content": ex.chosen}],
        "rejected": [{"role": "assistant", "content": ex.rejected or ""}],
    }


def _instruction_row(ex: Example, system: str | None = None) -> InstructionRow:
    return {"instruction": ex.prompt, "input": "", "output": ex.chosen}


def _sft_row(ex: Example, system: str | None = None) -> SFTRow:
    return {"prompt": ex.prompt, "completion": ex.chosen}


def _sft_chat_row(ex: Example, system: str | None = None) -> SFTChatRow:
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


def row_metadata(record: TraceRecord, example: Example) -> dict[str, Any]:
    """The ``metadata`` column written with ``with_metadata``: where a row came from. Trainers ignore it."""
    return {
        "trace_id": record.id,
        "model": record.model,
        "mode": record.mode,
        "round": example.round,
        "score": record.score,
    }


def drop_reason(example: Example, *, min_chars: int = 0) -> str | None:
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


# -- the streaming driver ------------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export did. ``dropped`` counts traces for trace-level reasons and rows for row-level ones."""

    format: str
    inputs: list[str]
    outputs: dict[str, str]
    rows: dict[str, int]
    traces_read: int = 0
    traces_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    invalid_locations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "inputs": list(self.inputs),
            "outputs": dict(self.outputs),
            "rows": dict(self.rows),
            "rows_written": self.rows_written,
            "traces_read": self.traces_read,
            "traces_kept": self.traces_kept,
            "dropped": dict(self.dropped),
            "invalid": self.invalid,
            "invalid_locations": list(self.invalid_locations),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


def split_paths(output: str | Path) -> dict[str, Path]:
    """Where a split export writes: ``data/dpo.jsonl`` -> ``data/dpo.train.jsonl`` and ``data/dpo.test.jsonl``."""
    output = Path(output)
    suffix = output.suffix or ".jsonl"
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return {name: output.with_name(f"{stem}.{name}{suffix}") for name in ("train", "test")}


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


def _check_options(
    fmt: str, rejected: str, pairs: str, system: str | None, min_chars: int, min_score: float | None, split: Any
) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    _check_pair_options(rejected, pairs)
    if fmt not in PREFERENCE_FORMATS and (rejected != "thesis" or pairs != "first-last"):
        raise ExportError(
            f"rejected/pairs choose preference pairs and apply to dpo and dpo-chat only, not {fmt!r} "
            "(which trains on the final synthesis); drop them or use --format dpo"
        )
    if system is not None and fmt not in CHAT_FORMATS:
        raise ExportError(f"a system prompt applies to dpo-chat and sft-chat only, not {fmt!r}; drop it")
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 0:
        raise ExportError(f"min_chars must be a whole number >= 0, got {min_chars!r}")
    if min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1
    ):
        raise ExportError(f"min_score must be a number from 0 to 1, got {min_score!r}")
    if split is not None and (isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 < split < 1):
        raise ExportError(f"split must be a fraction between 0 and 1 (e.g. 0.1 for 10% test rows), got {split!r}")


def _check_outputs(outputs: dict[str, Path], inputs: list[Path], force: bool) -> None:
    input_keys = {p.resolve() for p in inputs}
    for path in outputs.values():
        if path.resolve() in input_keys:
            raise ExportError(f"the output {str(path)!r} is also an input; write the dataset to another file")
        if path.is_dir():
            raise ExportError(f"the output {str(path)!r} is a folder; give a file name such as '{path}/train.jsonl'")
        if path.exists() and not force:
            raise ExportError(f"{str(path)!r} already exists; pass --force (force=True) to replace it")


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

    def commit(self) -> None:
        self.fh.close()
        if self.force:
            os.replace(self.tmp, self.target)
            return
        try:
            os.link(self.tmp, self.target)  # never clobbers a file that appeared while we were writing
        except FileExistsError:
            raise ExportError(
                f"{str(self.target)!r} appeared while exporting; pass --force (force=True) to replace it"
            ) from None
        except OSError:  # a filesystem without hard links
            if self.target.exists():
                raise ExportError(
                    f"{str(self.target)!r} already exists; pass --force (force=True) to replace it"
                ) from None
            os.replace(self.tmp, self.target)
            return
        os.unlink(self.tmp)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _test_threshold(split: float | None) -> int:
    return int(split * (1 << 64)) if split else -1


def export_dataset(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    format: Format = "dpo",
    rejected: Rejected = "thesis",
    pairs: Pairs = "first-last",
    system: str | None = None,
    min_chars: int = 0,
    min_score: float | None = None,
    dedupe: bool = True,
    split: float | None = None,
    seed: int = 7,
    force: bool = False,
    skip_invalid: bool = False,
    with_metadata: bool = False,
) -> ExportReport:
    """Stream trace logs into a JSONL training set and return what was kept and dropped.

    Only ``ok`` traces are used. Rows with an empty side, with chosen equal to rejected, or shorter than
    ``min_chars`` are dropped; with ``min_score`` so are traces scored below it or not scored. ``dedupe`` keeps the
    first kept trace of each normalised task. ``split`` (e.g. 0.1) sends that fraction of prompts to a test file,
    chosen per prompt by a hash of the normalised task and ``seed`` (deterministic, streaming, no leak of a prompt
    across files); the outputs are then ``split_paths(output)``. ``with_metadata`` adds a ``metadata`` column
    (trace_id, model, mode, round, score) that TRL's trainers drop before training.

    Output is written to a temp file beside it and renamed at the end: on any error nothing partial remains and an
    existing file is untouched. Raises ExportError for options or paths that cannot work, InvalidTraceError
    (``path:line: reason``) at the first bad log line unless ``skip_invalid``.
    """
    started = time.perf_counter()
    _check_options(format, rejected, pairs, system, min_chars, min_score, split)
    input_paths = resolve_inputs(inputs)
    targets = split_paths(output) if split else {"train": Path(output)}
    _check_outputs(targets, input_paths, force)

    report = ExportReport(
        format=format,
        inputs=[str(p) for p in input_paths],
        outputs={name: str(p) for name, p in targets.items()},
        rows=dict.fromkeys(targets, 0),
        dropped=dict.fromkeys(DROP_REASONS, 0),
    )

    def on_invalid(exc: InvalidTraceError) -> None:
        report.invalid += 1
        if len(report.invalid_locations) < KEEP_INVALID_LOCATIONS:
            report.invalid_locations.append(str(exc))

    preference = format in PREFERENCE_FORMATS
    steps, every_round = _REJECTED_STEPS[rejected], pairs == "rounds"
    keyed = dedupe or bool(split)  # both need the normalised task
    key, digest = b"", b""
    shape = _SHAPERS[format]
    # orjson writes compact UTF-8 JSON about 5x faster than json / jsonlines (benchmarks/bench_export.py).
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    threshold = _test_threshold(split)
    seed_prefix = f"{seed}\x00".encode()
    seen: set[bytes] = set()
    dropped = report.dropped
    rows = report.rows
    files: dict[str, _AtomicFile] = {}
    try:
        for name, path in targets.items():
            files[name] = _AtomicFile(path, force=force)
        writers = {name: f.fh.write for name, f in files.items()}
        for path in input_paths:
            read_before, invalid_before = report.traces_read, report.invalid
            for record in read_records(path, skip_invalid=skip_invalid, on_invalid=on_invalid):
                report.traces_read += 1
                if not record.ok:
                    dropped["failed"] += 1
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
                    if dedupe and digest in seen:
                        dropped["duplicate_prompt"] += 1
                        continue
                examples = (
                    _preference_examples(record, steps, every_round) if preference else supervised_examples(record)
                )
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
                if dedupe:
                    seen.add(digest)
                report.traces_kept += 1
                part = "train"
                if threshold >= 0:
                    bucket = hashlib.blake2b(seed_prefix + key, digest_size=8).digest()
                    if int.from_bytes(bucket, "big") < threshold:
                        part = "test"
                write = writers[part]
                for line in lines:
                    write(line)
                rows[part] += len(lines)
            if report.traces_read == read_before and report.invalid == invalid_before:
                report.warnings.append(f"{path}: no traces (empty file)")
        if report.rows_written == 0:
            raise ExportError(f"no rows to write; nothing was written. {_nothing_kept(report)}")
        for name, f in files.items():
            if rows[name] == 0:
                report.warnings.append(
                    f"the {name} split is empty ({f.target}); use more traces or another --split fraction"
                )
            f.commit()
    except BaseException:
        for f in files.values():
            f.discard()
        raise
    report.seconds = time.perf_counter() - started
    return report


def _nothing_kept(report: ExportReport) -> str:
    if report.traces_read == 0:
        return "The inputs hold no valid traces" + (
            f" ({report.invalid} invalid lines skipped)." if report.invalid else " (empty files)."
        )
    reasons = ", ".join(f"{k}={v}" for k, v in report.dropped.items() if v)
    return f"Read {report.traces_read} traces; dropped: {reasons or 'none'}."
