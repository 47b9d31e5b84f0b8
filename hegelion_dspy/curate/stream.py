"""The export's loop over traces, as small steps: read a trace, judge it, keep one per prompt, write its rows.

``ExportStream(options, files, report)`` is built once per export; ``read(path)`` streams one log through it and
``finish()`` adds up what only the end knows. Each trace goes through ``take``: the trace-level verdict, its quality
flags, the one-per-prompt check (``_Kept``), the reviewers' labels, the row checks, then the rows are written. The drop
rules themselves live in ``verdict.py`` (``Verdict``), the keep rule in ``selection.py`` (``outranks``).

Memory stays flat however large the logs: per kept prompt a dict entry (the 64-bit hash of its normalised task -> a
slot) and a few numbers in compact arrays. Under ranking the rows of the last ``WINDOW`` bytes of kept traces are held
back (``_Window``): a trace outranked while its rows are still there (a rerun soon after) is dropped before it reaches
the disk; one outranked later leaves its rows in the temp file as a dead byte range, cut out at the end.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import ExportError, InvalidTraceError
from ..quality import flags_of
from ..store import normalize_task
from ..types import TraceRecord
from .files import _AtomicFile
from .formats import _REJECTED_STEPS, _SHAPERS, PREFERENCE_FORMATS, RowSource, examples_maker, row_metadata
from .labels import OUTCOMES, Label, LabelBook, LabelStore, labels_path
from .options import ExportOptions
from .reader import read_for_export
from .report import ExportReport
from .selection import Keep, keep_rank, outranks
from .verdict import Verdict, _reviewed

KEEP_INVALID_LOCATIONS = 5
# orjson writes compact UTF-8 JSON about 5x faster than json / jsonlines (benchmarks/bench_export.py)
_dumps, _NEWLINE = orjson.dumps, orjson.OPT_APPEND_NEWLINE
LabelOf = Callable[[str, str], Label | None]
# A kept trace under ranking, one fixed-size record per slot in one bytearray (as compact as arrays, and one C call to
# add: array.extend of a tuple was 3x slower): its Place (where its rows went: part, offset, length; how many rows;
# its origin, an index into _Origins; its unreviewed examples: label outcomes of a labelled input are kept aside, in
# _Labels), then its rank (score or -1, creation time: selection.keep_rank). Fields go to struct.pack one by one.
Place = tuple[int, int, int, int, int, int]
_SLOT = struct.Struct("=qqqqqqdd")
_PLACE, _RANK, _OFFSET = struct.Struct("=qqqqqq"), struct.Struct("=dd"), struct.Struct("=q")
_RANK_AT, _OFFSET_AT = _PLACE.size, _OFFSET.size  # byte offsets of the rank and of the offset (a Place's 2nd field)
_QWORDS, _UNREVIEWED_AT, _CREATED_AT = _SLOT.size // 8, 5, 7  # a slot in 8-byte words; its unreviewed count, creation


class _Kept:
    """The trace kept for each prompt under ``keep="best"``/``"latest"``: ``slots``, a plain dict, maps the prompt's
    key to a slot; per slot its ``Place`` and rank live in ``table`` (``_SLOT``: 64 bytes). The dict replaced an
    open-addressing table of slot numbers probed in Python: one C lookup per trace instead, for about 80 bytes more a
    prompt (an int key, an int slot and the dict's entry: 8 MB more for 100,000 prompts)."""

    def __init__(self, keep: Keep):
        self.keep = keep
        self.slots: dict[int, int] = {}
        self.table = bytearray()
        self.dead: list[list[tuple[int, int]]] = [[], []]  # per part: (offset, length) of replaced rows on disk

    def beats(self, slot: int, score: float, created: float) -> bool:
        """Whether a trace read now ranks above the one kept in ``slot`` (``selection.outranks``)."""
        return outranks(self.keep, (score, created), _RANK.unpack_from(self.table, _SLOT.size * slot + _RANK_AT))

    def place(self, slot: int) -> Place:
        return _PLACE.unpack_from(self.table, _SLOT.size * slot)

    def add(
        self, key: int, part: int, length: int, rows: int, origin: int, unreviewed: int, score: float, created: float
    ) -> int:
        """Keep the first trace of a new prompt (its rows not written yet: offset -1); returns its slot."""
        slot = self.slots[key] = len(self.slots)
        self.table += _SLOT.pack(part, -1, length, rows, origin, unreviewed, score, created)
        return slot

    def replace(
        self, slot: int, part: int, length: int, rows: int, origin: int, unreviewed: int, score: float, created: float
    ) -> None:
        """Keep a trace that outranks the one in ``slot`` (same prompt, so the same split part)."""
        _SLOT.pack_into(self.table, _SLOT.size * slot, part, -1, length, rows, origin, unreviewed, score, created)

    def created(self) -> memoryview[float]:
        """The creation times of the kept traces (a view of the table: no list of 100,000s of floats)."""
        return memoryview(self.table).cast("d")[_CREATED_AT::_QWORDS]

    def unreviewed(self) -> int:
        return sum(memoryview(self.table).cast("q")[_UNREVIEWED_AT::_QWORDS])


WINDOW = 1 << 20  # bytes of rows held back per part under ranking (4 MB: 20 MB more peak memory, no faster)


class _Window:
    """The rows of the latest kept traces of one output part, held back before the disk while they are fewer than
    ``WINDOW`` bytes, in the order they were kept. A trace outranked while here is dropped with no trace on disk; as
    the oldest rows are written their file offsets go into their slots' places, for a later replacement to cut out."""

    def __init__(self, write: Callable[[bytes], Any], kept: _Kept):
        self.write, self.kept = write, kept
        self.rows: dict[int, bytes] = {}  # slot -> its rows, in insertion order
        self.size = 0  # bytes in ``rows``
        self.position = 0  # bytes in the file

    def hold(self, slot: int, data: bytes) -> None:
        self.rows[slot] = data
        self.size += len(data)
        if self.size > WINDOW:
            self.flush(keep=WINDOW // 2)  # the latest half stays: a rerun of the trace just kept is still free

    def drop(self, slot: int) -> bool:
        """Forget the rows of ``slot`` if they are still here (True), else (on disk) False."""
        data = self.rows.pop(slot, None)
        if data is None:
            return False
        self.size -= len(data)
        return True

    def flush(self, keep: int = 0) -> None:
        """Write the oldest rows until at most ``keep`` bytes are held (0: all)."""
        write, position, size = self.write, self.position, self.size
        set_offset, table, stride = _OFFSET.pack_into, self.kept.table, _SLOT.size
        items = list(self.rows.items())
        done = 0
        for slot, data in items:  # through the file's buffer: no joined copy of the window
            if size <= keep:
                break
            set_offset(table, stride * slot + _OFFSET_AT, position)  # where its rows went, for a later cut
            write(data)
            position += len(data)
            size -= len(data)
            done += 1
        self.position, self.size = position, size
        self.rows = dict(items[done:])


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


class _Labels:
    """The reviewers' label outcomes, counted so that a trace replaced under ranking drops out: outcomes of traces
    not (or not yet) kept count at once; those of ranked kept traces are kept per slot (unreviewed ones in the slot's
    Place) and added up at the end."""

    def __init__(self, outcomes: dict[str, int]):
        self.outcomes = outcomes
        self.labelled: dict[int, dict[str, int]] = {}  # per kept slot of a labelled input

    def count(self, counted: dict[str, int] | None, unreviewed: int) -> None:
        if counted is None:
            self.outcomes["unreviewed"] += unreviewed
        else:
            for outcome, n in counted.items():
                self.outcomes[outcome] += n

    def keep(self, slot: int, counted: dict[str, int] | None) -> None:
        """Record the outcomes of the trace now kept in ``slot`` (replacing those of a trace it outranked)."""
        self.labelled.pop(slot, None)
        if counted is not None:
            self.labelled[slot] = counted

    def finish(self, kept: _Kept | None) -> None:
        if kept is not None:
            self.outcomes["unreviewed"] += kept.unreviewed()
        for counted in self.labelled.values():
            self.count(counted, 0)


def _no_label(trace_id: str, pair: str) -> Label | None:
    return None


def load_labels(path: str | Path, skip_invalid: bool, on_invalid: Callable[[Any], None]) -> LabelBook:
    sidecar = Path(path).expanduser()
    if not sidecar.is_file():
        raise ExportError(f"labels file {str(path)!r} does not exist; check the path (it is 'LOG.labels')")
    return LabelStore(sidecar).latest(skip_invalid=skip_invalid, on_invalid=on_invalid)


class ExportStream:
    """One export's loop: ``read`` each input, then ``finish``; the report fills as it goes."""

    def __init__(self, opts: ExportOptions, files: dict[str, _AtomicFile], report: ExportReport):
        self.opts, self.report = opts, report
        self.dropped, self.flagged = report.dropped, report.flagged
        judge = Verdict(opts)  # the drop rules, in their order (verdict.py)
        self.trace_reason, self.flag_reason, self.row_reason = judge.trace_reason, judge.flag_reason, judge.row_reason
        steps = _REJECTED_STEPS[opts.rejected] if opts.format in PREFERENCE_FORMATS else None
        self.examples_of = examples_maker(steps, opts.pairs == "rounds")
        self.shape, self.system, self.with_metadata = _SHAPERS[opts.format], opts.system, opts.with_metadata
        self.kept = _Kept(opts.keep) if opts.dedupe and opts.keep != "first" else None
        self.seen: set[int] | None = set() if opts.dedupe and opts.keep == "first" else None
        self.keyed = opts.dedupe or bool(opts.split)  # both need the normalised task
        self.threshold = int(opts.split * (1 << 64)) if opts.split else -1
        self.seed_prefix = f"{opts.seed}\x00".encode()
        self.origins, self.labels = _Origins(), _Labels(report.labels)
        self.parts = list(files)
        self.writers = [files[name].fh.write for name in self.parts]
        self.windows = [_Window(write, self.kept) for write in self.writers] if self.kept is not None else []
        self.first_created: datetime | None = None  # without ranking, tracked as traces are written
        self.last_created: datetime | None = None
        self.fixed_book: LabelBook | None = None
        if opts.labels_file is not None:
            self.fixed_book = load_labels(opts.labels_file, opts.skip_invalid, self.on_invalid)
            report.label_files.append(opts.labels_file)

    def on_invalid(self, exc: InvalidTraceError) -> None:
        self.report.invalid += 1
        if len(self.report.invalid_locations) < KEEP_INVALID_LOCATIONS:
            self.report.invalid_locations.append(str(exc))

    def read(self, path: Path) -> None:
        """Stream one log through ``take``, with its labels sidecar unless a labels file is fixed."""
        report, opts = self.report, self.opts
        read_before, invalid_before = report.traces_read, report.invalid
        book = self.fixed_book
        if opts.labels and book is None and labels_path(path).exists():
            book = load_labels(labels_path(path), opts.skip_invalid, self.on_invalid)
            report.label_files.append(str(labels_path(path)))
        label_of = (book.get if book else _no_label) if book or opts.reviewed_only else None
        take = self.take
        for record in read_for_export(path, skip_invalid=opts.skip_invalid, on_invalid=self.on_invalid):
            take(record, label_of)
        if report.traces_read == read_before and report.invalid == invalid_before:
            report.warnings.append(f"{path}: no traces (empty file)")

    def take(self, record: TraceRecord, label_of: LabelOf | None) -> None:
        """One trace: counted, judged, kept or dropped, its rows written."""
        report = self.report
        report.traces_read += 1
        cost = record.cost_usd
        if cost is not None:
            report.cost_usd += cost
            report.priced_traces += 1
        reason = self.trace_reason(record)
        if reason is not None:
            self.dropped[reason] += 1
            return
        flags = record.flags
        flag = self.flag_drop(record) if flags is None or flags else None
        key = normalize_task(record.task) if self.keyed else ""
        prompt = hash(key)  # 64 bits: two prompts collide about once in 1e9 at a million prompts
        kept, slot, score, created = self.kept, -1, 0.0, 0.0
        if kept is not None:
            score, created = keep_rank(record.score, record.created_at.timestamp())
            slot = kept.slots.get(prompt, -1)
            if slot >= 0 and not kept.beats(slot, score, created):
                self.dropped["duplicate_prompt"] += 1
                return
        elif self.seen is not None and prompt in self.seen:
            self.dropped["duplicate_prompt"] += 1
            return
        examples = self.examples_of(record)
        counted: dict[str, int] | None = None
        if label_of is None:  # no labels for this input: every example is unreviewed, skip the lookups
            unreviewed = len(examples)
        else:
            counted, unreviewed = dict.fromkeys(OUTCOMES, 0), 0
            examples = _reviewed(record, examples, label_of, counted, self.dropped, self.opts.reviewed_only)
        lines = self.dump(record, examples, flag)
        if kept is None or not lines:  # under ranking a trace not kept is never replaced: its labels count now
            self.labels.count(counted, unreviewed)
        if not lines:
            return
        part = self.part_of(key) if self.threshold >= 0 else 0
        data = lines[0] if len(lines) == 1 else b"".join(lines)
        report.rows[self.parts[part]] += len(lines)
        report.traces_kept += 1
        origin = self.origins.of(record)
        self.origins.count[origin] += 1
        if kept is None:
            self.writers[part](data)
            self.note_kept(record, prompt)
            return
        if slot < 0:  # the first trace of its prompt (most are): kept, its rows held back in its part's window
            slot = kept.add(prompt, part, len(data), len(lines), origin, unreviewed, score, created)
            self.windows[part].hold(slot, data)
        else:
            self.replace_kept(slot, part, data, len(lines), origin, unreviewed, score, created)
        if counted is not None or self.labels.labelled:
            self.labels.keep(slot, counted)

    def flag_drop(self, record: TraceRecord) -> str | None:
        """Count the trace's quality flags; the one its pairs are dropped for (None: none, or all allowed)."""
        flags = record.flags
        if flags is None:  # a line written without them (v2): computed now
            flags = flags_of(record)
        if not flags:
            return None
        for flag in flags:
            self.flagged[flag] += 1
        return self.flag_reason(flags)

    def dump(self, record: TraceRecord, examples: Sequence[RowSource], flag: str | None) -> list[bytes]:
        """The examples that pass the row checks (labels already applied) as JSON lines; the others counted."""
        lines: list[bytes] = []
        row_reason, shape, system = self.row_reason, self.shape, self.system
        for ex in examples:
            reason = row_reason(ex, flag)
            if reason is None:
                row = shape(ex, system)
                if self.with_metadata:
                    row["metadata"] = row_metadata(record, ex)
                # Texts are valid Unicode: the trace schema refuses lone surrogates ("\ud800"), and so does orjson.
                lines.append(_dumps(row, option=_NEWLINE))
            else:
                self.dropped[reason] += 1
        return lines

    def part_of(self, key: str) -> int:
        """The split part of a prompt (1: test), by a hash of its normalised task and the seed."""
        bucket = hashlib.blake2b(self.seed_prefix + key.encode(), digest_size=8).digest()
        return 1 if int.from_bytes(bucket, "big") < self.threshold else 0

    def note_kept(self, record: TraceRecord, prompt: int) -> None:
        """Without ranking a written trace stays: remember its prompt (keep first) and its creation time."""
        if self.seen is not None:
            self.seen.add(prompt)
        created_at = record.created_at
        if self.first_created is None or created_at < self.first_created:
            self.first_created = created_at
        if self.last_created is None or created_at > self.last_created:
            self.last_created = created_at

    def replace_kept(
        self, slot: int, part: int, data: bytes, rows: int, origin: int, unreviewed: int, score: float, created: float
    ) -> None:
        """Under ranking: this trace outranks the one kept in ``slot`` and takes its place; the other's rows leave its
        part's window, or (already on disk) are cut out at the end."""
        kept = self.kept
        assert kept is not None
        old_part, old_offset, old_length, old_rows, old_origin, _ = kept.place(slot)
        if not self.windows[old_part].drop(slot):  # its rows reached the file: cut them out at the end
            kept.dead[old_part].append((old_offset, old_length))
        self.report.rows[self.parts[old_part]] -= old_rows
        self.origins.count[old_origin] -= 1
        self.report.traces_kept -= 1
        self.dropped["duplicate_prompt"] += 1
        kept.replace(slot, part, len(data), rows, origin, unreviewed, score, created)
        self.windows[part].hold(slot, data)

    def finish(self) -> _Kept | None:
        """Add up the kept traces' origins, labels and time range; returns the ranked table (its dead ranges are the
        caller's to cut)."""
        report = self.report
        for window in self.windows:
            window.flush()
        self.origins.tally(report)
        self.labels.finish(self.kept)
        first, last = self.first_created, self.last_created
        if self.kept is not None and self.kept.slots:
            with self.kept.created() as created_times:
                first = datetime.fromtimestamp(min(created_times), UTC)
                last = datetime.fromtimestamp(max(created_times), UTC)
        report.first_created = None if first is None else first.astimezone(UTC).isoformat(timespec="seconds")
        report.last_created = None if last is None else last.astimezone(UTC).isoformat(timespec="seconds")
        return self.kept
