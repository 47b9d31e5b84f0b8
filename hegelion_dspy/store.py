"""TraceStore: an append-only JSONL trace log.

Appends take an exclusive ``flock`` on the log, repair a torn last line left by a crashed writer, and write each
batch of whole lines with one ``write`` on an ``O_APPEND`` descriptor, so several processes can append at once
without interleaving or losing a line. Reads stream line by line in constant memory and report a bad line as
``path:line: reason``.

A log that cannot be written loses nothing: ``check_writable`` refuses it before any work is done (read-only, no
permission, a nearly full disk), and a write that fails later (a full disk, a quota) puts the traces in a fallback
file next to the log or in the temp folder and raises ``LogWriteError`` naming it.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from .errors import ConfigError, InvalidTraceError, LogWriteError, from_validation, option
from .logwrite import MIN_FREE_BYTES, errno_name, fallback_paths
from .logwrite import TORN_SUFFIX as TORN_SUFFIX  # re-exported: where every log here puts a torn line
from .logwrite import UNSAVED_SUFFIX as UNSAVED_SUFFIX
from .logwrite import IsWholeLine as IsWholeLine
from .logwrite import append_lines as append_lines  # re-exported: the log writing every append-only log shares
from .logwrite import check_writable as check_writable
from .logwrite import repair_torn_tail as repair_torn_tail
from .types import SCHEMA_VERSION, TraceRecord, upgrade_record

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class LogStats:
    """Counts over a trace log."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    invalid: int = 0
    demo: int = 0
    scored: int = 0
    score_sum: float = 0.0
    by_mode: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)

    def add(self, record: TraceRecord) -> None:
        """Count one more record."""
        self.total += 1
        if record.ok:
            self.ok += 1
        else:
            self.failed += 1
        self.demo += record.demo
        if record.score is not None:
            self.scored += 1
            self.score_sum += record.score
        self.by_mode[record.mode] = self.by_mode.get(record.mode, 0) + 1
        model = record.model or "unknown"
        self.by_model[model] = self.by_model.get(model, 0) + 1
        self.by_source[record.source] = self.by_source.get(record.source, 0) + 1

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "invalid": self.invalid,
            "demo": self.demo,
            "scored": self.scored,
            "mean_score": None if self.mean_score is None else round(self.mean_score, 4),
            "by_mode": dict(self.by_mode),
            "by_model": dict(self.by_model),
            "by_source": dict(self.by_source),
        }


OnInvalid = Callable[[InvalidTraceError], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Provenance:
    """Who wrote a trace, as far as resuming a batch cares: the mode, the model string and the program (the sha256
    prefix of a compiled program file, None for the default prompts)."""

    mode: str
    model: str
    program: str | None = None

    def wrote(self, record: TraceRecord) -> bool:
        return record.mode == self.mode and record.model == self.model and record.program_digest == self.program


def normalize_task(task: str) -> str:
    """The key under which two tasks count as the same prompt: case-folded, whitespace collapsed."""
    if task.isascii() and task.isprintable() and "  " not in task and task[:1] != " " and task[-1:] != " ":
        return task.lower()  # no whitespace to collapse (printable ASCII has none but single spaces), 4x faster
    return " ".join(task.split()).casefold()


def parse_line(raw: bytes, path: str | Path, lineno: int) -> TraceRecord:
    """Parse one log line into a TraceRecord, or raise InvalidTraceError naming path, line and field."""
    try:
        return TraceRecord.model_validate_json(raw)
    except ValidationError:
        pass  # diagnose below for a precise message; the fast path above serves valid lines
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTraceError(
            f"invalid UTF-8 at byte {exc.start} of the line; trace logs are UTF-8 JSON lines", path=path, lineno=lineno
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text.strip()[:60]
        raise InvalidTraceError(
            f"not JSON ({exc.msg} at column {exc.colno}): {snippet!r}; each line must be one JSON object",
            path=path,
            lineno=lineno,
        ) from None
    if not isinstance(data, dict):
        raise InvalidTraceError(
            f"expected a JSON object, got {type(data).__name__}; each line must be one trace object",
            path=path,
            lineno=lineno,
        )
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise InvalidTraceError(
            f"schema_version {version} is newer than this hegelion-dspy understands ({SCHEMA_VERSION}); "
            "upgrade hegelion-dspy",
            path=path,
            lineno=lineno,
            field="schema_version",
        )
    try:
        return TraceRecord.model_validate(upgrade_record(data))
    except ValidationError as exc:
        fix = "fix or remove this line"
        raise from_validation(exc, source="field", error=InvalidTraceError, fix=fix, path=path, lineno=lineno) from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, raw bytes without the newline, complete?) for every non-blank line, streaming."""
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        for lineno, raw in enumerate(fh, start=1):
            body, complete = line_body(raw, lineno)
            if body is not None:
                yield lineno, body, complete


# A 64 KiB buffer: with the default (4-8 KiB, smaller than many trace lines) readline copies each line in pieces, which
# made reading a 570 MB log 0.4-0.6 s slower (benchmarks/bench_export.py).
READ_BUFFER = 1 << 16


def line_body(raw: bytes, lineno: int) -> tuple[bytes | None, bool]:
    """(the line without its newline, or None for a blank line; whether it had its newline)."""
    if lineno == 1 and raw.startswith(UTF8_BOM):  # editors on Windows save UTF-8 with a byte-order mark
        raw = raw[len(UTF8_BOM) :]
    complete = raw.endswith(b"\n")
    body = raw.rstrip(b"\r\n")
    if body and not body.isspace():  # not body.strip(), without copying the line
        return body, complete
    return None, complete


def read_records(
    path: str | Path, *, skip_invalid: bool = False, on_invalid: OnInvalid | None = None
) -> Iterator[TraceRecord]:
    """Stream the records of one log file.

    An invalid line raises InvalidTraceError unless ``skip_invalid``; skipped lines are reported to ``on_invalid``.
    A last line without its newline that does not parse is reported as torn (an interrupted write).
    """
    return read_lines(path, parse_line, skip_invalid=skip_invalid, on_invalid=on_invalid)


def read_lines(
    path: str | Path,
    parse: Callable[[bytes, Path, int], T],
    *,
    skip_invalid: bool = False,
    on_invalid: OnInvalid | None = None,
    fast: Callable[[bytes], T | None] | None = None,
) -> Iterator[T]:
    """``read_records`` with another line parser ``parse(raw, path, lineno)`` that raises as ``parse_line`` does
    (the export's, curate/reader.py). ``fast(line)``, when given, reads a whole line as read from the file (newline,
    byte-order mark and all) that is surely valid, or returns None to leave it to the steps here: valid lines skip
    them (the export's C decoder, for which the newline is JSON whitespace and anything odd is invalid)."""
    path = Path(path)
    if not path.exists():
        raise InvalidTraceError("no such file; check the path (or run a dialectic first to create it)", path=path)
    if path.is_dir():
        raise InvalidTraceError("is a folder, not a trace log file", path=path)
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        for lineno, line in enumerate(fh, start=1):
            if fast is not None:
                record = fast(line)
                if record is not None:
                    yield record
                    continue
            raw, complete = line_body(line, lineno)
            if raw is None:
                continue
            try:
                yield parse(raw, path, lineno)
            except InvalidTraceError as error:
                problem = _line_problem(error, raw, path, lineno, complete)
                if not skip_invalid:
                    raise problem from None
                if on_invalid is not None:
                    on_invalid(problem)


def _line_problem(error: InvalidTraceError, raw: bytes, path: Path, lineno: int, complete: bool) -> InvalidTraceError:
    """The error to report for a bad line: a JSON array or a torn last line said as such, else ``error`` itself."""
    if lineno == 1 and raw.lstrip().startswith(b"["):
        return InvalidTraceError(
            "the file holds a JSON array, not JSON lines (one trace object a line); convert it with "
            f"jq -c '.[]' {shlex.quote(str(path))} > traces.jsonl",
            path=path,
            lineno=lineno,
        )
    if not complete:
        return InvalidTraceError(
            f"torn last line (no newline at the end: a write was interrupted); {error.reason} — the next "
            f"append to this log repairs it, or set {option('skip_invalid')}",
            path=path,
            lineno=lineno,
            field=error.field,
            options=("skip_invalid",),
        )
    return error


def _is_whole_trace(fragment: bytes) -> bool:
    try:
        TraceRecord.model_validate_json(fragment)
    except ValidationError:
        return False
    return True


class TraceStore:
    """An append-only JSONL trace log at ``path``.

    ``append_counted`` and ``counts`` keep the log's counts current without rereading it on every append (a
    long-running writer such as the MCP server reports them after each trace); they recount when another writer has
    appended meanwhile.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._counts: LogStats | None = None
        self._counted_size = -1  # the log's size in bytes when ``_counts`` was right
        self._counts_lock = threading.Lock()
        self.unsaved: list[TraceRecord] = []  # traces a failed write kept out of the log (see ``_write``)
        self.fallback: Path | None = None  # the file holding them

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    # -- writing -------------------------------------------------------------------------------------------------

    def append(self, record: TraceRecord) -> None:
        """Append one record as one whole line."""
        self.append_many([record])

    def append_many(self, records: Iterable[TraceRecord]) -> int:
        """Append records under one lock with one write. Returns how many were written."""
        records = list(records)
        self._write(records)
        return len(records)

    def check_writable(self, min_free: int = MIN_FREE_BYTES) -> None:
        """ConfigError unless the log can be appended to, with space to spare (``check_writable``)."""
        check_writable(self.path, min_free=min_free)

    def _write(self, records: list[TraceRecord]) -> tuple[int, int]:
        """``append_lines`` of the records; when the disk refuses (full, read-only, no permission, over quota) they
        go to the fallback file and LogWriteError names it and every trace kept out of the log so far."""
        try:
            return append_lines(self.path, [r.to_json_line() for r in records], _is_whole_trace)
        except OSError as exc:
            self.unsaved.extend(records)
            saved, why = self._save_unwritten(records)
            raise LogWriteError(self.path, exc, self.unsaved, saved_to=saved, save_error=why) from None

    def _save_unwritten(self, records: list[TraceRecord]) -> tuple[Path | None, str | None]:
        data = b"".join(r.to_json_line() for r in records)
        why = None
        for candidate in [self.fallback] if self.fallback is not None else fallback_paths(self.path):
            try:
                with open(candidate, "ab") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                why = f"{candidate}: {exc.strerror or exc} ({errno_name(exc)})"
                continue
            self.fallback = candidate
            return candidate, None
        return None, why

    def append_counted(self, record: TraceRecord) -> LogStats:
        """Append one record and return the log's counts after it (a copy), counted without rereading the log
        unless another writer appended since the last count."""
        with self._counts_lock:
            counts = self._current_counts()
            before, after = self._write([record])
            if before == self._counted_size:
                counts.add(record)
                self._counted_size = after
            else:  # another process wrote (or repaired a torn line) meanwhile: count afresh
                self._recount()
            assert self._counts is not None
            return copy.deepcopy(self._counts)

    def counts(self) -> LogStats:
        """The log's counts (a copy), recounted only when the log changed since the last count."""
        with self._counts_lock:
            return copy.deepcopy(self._current_counts())

    def _current_counts(self) -> LogStats:
        if self._counts is None or self._size() != self._counted_size:
            self._recount()
        assert self._counts is not None
        return self._counts

    def _recount(self) -> None:
        size = self._size()  # before reading: a line appended during the count makes the next call recount
        self._counts, self._counted_size = self.stats(), size

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def repair(self) -> bool:
        """Repair a torn last line now (appends do this by themselves). Returns True when something was repaired."""
        return repair_torn_tail(self.path, _is_whole_trace)

    # -- reading -------------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def __iter__(self) -> Iterator[TraceRecord]:
        return self.records()

    def records(self, *, skip_invalid: bool = False, on_invalid: OnInvalid | None = None) -> Iterator[TraceRecord]:
        """Stream every record; an absent log has none."""
        if not self.path.exists():
            return iter(())
        return read_records(self.path, skip_invalid=skip_invalid, on_invalid=on_invalid)

    def stats(self, where: Callable[[TraceRecord], bool] | None = None) -> LogStats:
        """Count records (those ``where`` accepts) by status, mode, model, source and demo, streaming; invalid lines
        are counted, not raised."""
        stats = LogStats()

        def count_invalid(_: InvalidTraceError) -> None:
            stats.invalid += 1

        for rec in self.records(skip_invalid=True, on_invalid=count_invalid):
            if where is None or where(rec):
                stats.add(rec)
        return stats

    def recent(self, n: int = 10, where: Callable[[TraceRecord], bool] | None = None) -> list[TraceRecord]:
        """The last ``n`` valid records (that ``where`` accepts), oldest first (streams the log, keeps only ``n``)."""
        records = self.records(skip_invalid=True)
        return list(collections.deque(records if where is None else filter(where, records), maxlen=n))

    def find(self, id_prefix: str) -> TraceRecord:
        """The record whose id is ``id_prefix`` or starts with it (as git takes a short hash); ConfigError when none
        or several match."""
        prefix = id_prefix.strip().lower()
        if not prefix:
            raise ConfigError("give a trace id (or its first characters); `hegelion logs` lists them")
        found: list[TraceRecord] = []
        for rec in self.records(skip_invalid=True):
            if rec.id == prefix:
                return rec
            if rec.id.startswith(prefix):
                found.append(rec)
                if len(found) > 5:
                    break
        if not found:
            raise ConfigError(f"no trace with id {id_prefix!r} in {self.path}; `hegelion logs` lists the ids")
        if len(found) > 1:
            ids = ", ".join(r.id[:12] for r in found[:5])
            raise ConfigError(f"the id {id_prefix!r} is ambiguous in {self.path} ({ids}, ...); give more characters")
        return found[0]

    def completed(self, provenance: Provenance) -> set[str]:
        """Normalised tasks that already have an ``ok`` trace with this provenance: what a rerun skips."""
        return {normalize_task(r.task) for r in self.records(skip_invalid=True) if r.ok and provenance.wrote(r)}


ENV_DATA_DIR = "HEGELION_DATA_DIR"
ENV_LOG_FILE = "HEGELION_LOG_FILE"
LOG_NAME = "traces.jsonl"


def default_data_dir() -> Path:
    """``$HEGELION_DATA_DIR``, else ``$XDG_DATA_HOME/hegelion-dspy``, else ``~/.local/share/hegelion-dspy``."""
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hegelion-dspy"


def default_log_path() -> Path:
    """``$HEGELION_LOG_FILE``, else ``traces.jsonl`` in the data folder (the log the MCP server writes too)."""
    if os.environ.get(ENV_LOG_FILE):
        return Path(os.environ[ENV_LOG_FILE]).expanduser()
    return default_data_dir() / LOG_NAME
