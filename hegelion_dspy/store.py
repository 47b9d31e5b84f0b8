"""TraceStore: an append-only JSONL trace log.

Appends take an exclusive ``flock`` on the log, repair a torn last line left by a crashed writer, and write each
batch of whole lines with one ``write`` on an ``O_APPEND`` descriptor, so several processes can append at once
without interleaving or losing a line. Reads stream line by line in constant memory and report a bad line as
``path:line: reason`` (``logread``).

A log that cannot be written loses nothing: ``check_writable`` refuses it before any work is done (read-only, no
permission, a nearly full disk), and a write that fails later (a full disk, a quota) puts the traces in a fallback
file next to the log or in the temp folder and raises ``LogWriteError`` naming it.
"""

from __future__ import annotations

import collections
import copy
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from pydantic import ValidationError

from .errors import ConfigError, InvalidTraceError, LogWriteError
from .logread import OnInvalid
from .logread import iter_lines as iter_lines  # re-exported: reading a log is logread's, and its readers came here
from .logread import parse_line as parse_line
from .logread import read_lines as read_lines
from .logread import read_records as read_records
from .logwrite import MIN_FREE_BYTES, errno_name, fallback_paths
from .logwrite import TORN_SUFFIX as TORN_SUFFIX  # re-exported: where every log here puts a torn line
from .logwrite import UNSAVED_SUFFIX as UNSAVED_SUFFIX
from .logwrite import IsWholeLine as IsWholeLine
from .logwrite import append_lines as append_lines  # re-exported: the log writing every append-only log shares
from .logwrite import check_writable as check_writable
from .logwrite import repair_torn_tail as repair_torn_tail
from .types import TraceRecord


class LogCounts(TypedDict):
    """``LogStats`` as JSON: what ``hegelion logs --stats``, the MCP resource and ``log_trace`` report."""

    total: int
    ok: int
    failed: int
    invalid: int
    demo: int
    scored: int
    mean_score: float | None
    by_mode: dict[str, int]
    by_model: dict[str, int]
    by_source: dict[str, int]


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

    def as_dict(self) -> LogCounts:
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


@dataclass(frozen=True)
class Provenance:
    """Who wrote a trace, as far as resuming a batch cares: the mode, the model string and the program (the sha256
    prefix of a compiled program file, None for the default prompts)."""

    mode: str
    model: str
    program: str | None = None

    def wrote(self, record: TraceRecord) -> bool:
        return record.mode == self.mode and record.model == self.model and record.program_digest == self.program


# The ASCII characters str.split() splits on besides the space: a stripped task with none of them and no double space
# has nothing to collapse.
_ASCII_SPACES = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


def normalize_task(task: str) -> str:
    """The key under which two tasks count as the same prompt: case-folded, whitespace collapsed."""
    if task.isascii():  # the common case, 2-3x faster: lower() is casefold() on ASCII, strip() the ends' whitespace
        key = task.lower().strip()
        if "  " not in key:
            raw = key.encode()  # a copy, no encoding work (ASCII); bytes.translate deletes in one C pass
            if len(raw.translate(None, _ASCII_SPACES)) == len(raw):
                return key
    return " ".join(task.split()).casefold()


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
