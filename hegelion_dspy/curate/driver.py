"""The streaming export: trace logs in, training rows out, in constant memory.

``export_dataset`` streams: memory stays flat however large the logs are (per kept prompt it keeps a 16-byte hash
and a few numbers in compact arrays, to keep one trace per prompt). Its choices are one validated ``ExportOptions``
shared by the Python API, ``hegelion-dataset`` and the MCP tool. This module must not import dspy: the MCP server
imports it at start.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import ExportError, InvalidTraceError, option
from ..quality import FLAGS, flags_of
from ..store import normalize_task, read_records
from ..types import TraceRecord
from .card import card_text, write_card
from .files import _AtomicFile, _check_card_folder, _check_outputs, _swap_in, card_paths, resolve_inputs, split_paths
from .formats import (
    _REJECTED_STEPS,
    _SHAPERS,
    PREFERENCE_FORMATS,
    _preference_examples,
    row_metadata,
    supervised_examples,
)
from .labels import OUTCOMES, Label, LabelBook, LabelStore, labels_path
from .options import ExportOptions
from .report import ExportReport
from .selection import Keep, keep_rank, outranks
from .verdict import DROP_REASONS, TRACE_REASONS, Verdict, _reviewed

KEEP_INVALID_LOCATIONS = 5
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

    def __init__(self, keep: Keep):
        self.keep = keep
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
        return outranks(self.keep, (score, created), (self.ranks[2 * slot], self.ranks[2 * slot + 1]))

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
        flagged=dict.fromkeys(FLAGS, 0),
        folder=str(output) if opts.card else None,
    )
    files: dict[str, _AtomicFile] = {}
    try:
        for name, path in targets.items():
            files[name] = _AtomicFile(path, force=opts.force or opts.card)
        ranked = _stream(opts, input_paths, files, report)
        if report.rows_written == 0:
            message = f"no rows to write; nothing was written. {_nothing_kept(report, opts)}"
            raise ExportError(message, options=tuple(n for n in ExportOptions.model_fields if option(n) in message))
        if opts.split and 0 in report.rows.values():
            raise ExportError(_empty_split(report, opts.split))
        if ranked is not None:
            for index, name in enumerate(files):
                if ranked.dead[index]:
                    files[name].cut(ranked.dead[index])
        for f in files.values():
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
    reviewed_only, outcomes, flagged = opts.reviewed_only, report.labels, report.flagged
    preference = opts.format in PREFERENCE_FORMATS
    steps, every_round = _REJECTED_STEPS[opts.rejected], opts.pairs == "rounds"
    shape, system = _SHAPERS[opts.format], opts.system
    with_metadata = opts.with_metadata
    judge = Verdict(opts)  # the drop rules, in their order (verdict.py)
    trace_reason, flag_reason, row_reason = judge.trace_reason, judge.flag_reason, judge.row_reason
    ranked = _Ranked(opts.keep) if opts.dedupe and opts.keep != "first" else None
    seen: set[bytes] | None = set() if opts.dedupe and opts.keep == "first" else None
    origins = _Origins()
    # under ranking, the label outcomes per kept slot (see _keep_labels), added up at the end: replaced ones drop out
    kept_unreviewed, kept_labelled = array("q"), dict[int, dict[str, int]]()
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
            reason = trace_reason(record)
            if reason is not None:
                dropped[reason] += 1
                continue
            flag_drop = _flag_drop(record, flagged, flag_reason)
            if keyed:
                key = normalize_task(record.task).encode()
                digest = hashlib.blake2b(key, digest_size=16).digest()
            slot = -1
            if ranked is not None:
                rank = keep_rank(record.score, record.created_at.timestamp())
                short = int.from_bytes(digest[:8], "big")
                slot = ranked.find(short)
                if slot >= 0 and not ranked.beats(slot, *rank):
                    dropped["duplicate_prompt"] += 1
                    continue
            elif seen is not None and digest in seen:
                dropped["duplicate_prompt"] += 1
                continue
            examples = _preference_examples(record, steps, every_round) if preference else supervised_examples(record)
            counted: dict[str, int] | None = None
            if label_of is None:  # no labels for this input: every example is unreviewed, skip the lookups
                unreviewed = len(examples)
            else:
                counted, unreviewed = dict.fromkeys(OUTCOMES, 0), 0
                examples = _reviewed(record, examples, label_of, counted, dropped, reviewed_only)
            if ranked is None:
                _count_labels(outcomes, counted, unreviewed)
            lines: list[bytes] = []
            for ex in examples:
                reason = row_reason(ex, flag_drop)
                if reason is None:
                    row = shape(ex, system)
                    if with_metadata:
                        row["metadata"] = row_metadata(record, ex)
                    # Texts are valid Unicode: the trace schema refuses lone surrogates ("\ud800").
                    lines.append(dumps(row, option=newline))
                else:
                    dropped[reason] += 1
            if not lines:
                if ranked is not None:  # not kept, so never replaced: its labels count now
                    _count_labels(outcomes, counted, unreviewed)
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
                kept_unreviewed.append(0)
                _keep_labels(kept_unreviewed, kept_labelled, len(kept_unreviewed) - 1, unreviewed, counted)
            else:  # this trace outranks the one kept for its prompt: that one is dropped after all
                old_part, _, _, old_rows, old_origin = ranked.place(slot)
                rows[parts[old_part]] -= old_rows
                origins.count[old_origin] -= 1
                report.traces_kept -= 1
                dropped["duplicate_prompt"] += 1
                ranked.replace(slot, (part, offset, len(data), len(lines), origin), rank)
                _keep_labels(kept_unreviewed, kept_labelled, slot, unreviewed, counted)
        if report.traces_read == read_before and report.invalid == invalid_before:
            report.warnings.append(f"{path}: no traces (empty file)")
    origins.tally(report)
    outcomes["unreviewed"] += sum(kept_unreviewed)  # the labels of the traces ranking kept (not replaced ones)
    for counted_labels in kept_labelled.values():
        _count_labels(outcomes, counted_labels, 0)
    if ranked is not None and len(ranked.keys):
        created_times = ranked.created()
        first_created = datetime.fromtimestamp(min(created_times), UTC)
        last_created = datetime.fromtimestamp(max(created_times), UTC)
    report.first_created = _iso(first_created)
    report.last_created = _iso(last_created)
    return ranked


def _empty_split(report: ExportReport, split: float) -> str:
    """Why a split export is refused: an empty split would be written (and listed by the card) that
    ``datasets.load_dataset`` cannot load."""
    counts = ", ".join(f"{name} {n:,}" for name, n in report.rows.items())
    empty = next(name for name, n in report.rows.items() if n == 0)
    return (
        f"option 'split' {split}: the {empty} split would be empty (rows per split: {counts}); nothing was written. "
        "Use more traces, another split fraction or seed, or no split"
    )


def _flag_drop(record: TraceRecord, flagged: dict[str, int], flag_reason: Callable[[Any], str | None]) -> str | None:
    """Count the trace's quality flags; the one its pairs are dropped for (None: none, or all allowed)."""
    flags = record.flags if record.flags is not None else flags_of(record)
    for flag in flags:
        flagged[flag] += 1
    return flag_reason(flags) if flags else None


def _keep_labels(
    unreviewed_of: array[int], labelled: dict[int, dict[str, int]], slot: int, unreviewed: int, counted: Any
) -> None:
    """Record the label outcomes of the trace now kept in ``slot`` (replacing those of a trace it outranked)."""
    unreviewed_of[slot] = unreviewed
    labelled.pop(slot, None)
    if counted is not None:
        labelled[slot] = counted


def _count_labels(outcomes: dict[str, int], counted: dict[str, int] | None, unreviewed: int) -> None:
    if counted is None:
        outcomes["unreviewed"] += unreviewed
    else:
        for outcome, n in counted.items():
            outcomes[outcome] += n


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
        f"{n:,} {traces} of a demo model (the shipped SmolLM2 by any route, a model trained from it, or the scripted "
        "fake) left out: they prove the pipeline, they are not training data; use a real model, or set option "
        "'include_demo' for a dry run"
    )
