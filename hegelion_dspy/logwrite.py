"""Writing append-only JSONL logs (the trace log, the labels sidecar) without losing a line: one exclusive ``flock``,
a torn last line repaired first, whole lines in one ``write`` on an ``O_APPEND`` descriptor; a check before any work
that the log can take it (``check_writable``); and where lines go when the disk refuses them (``fallback_paths``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from .errors import ConfigError, option

TORN_SUFFIX = ".torn"
UNSAVED_SUFFIX = ".unsaved"  # <log>.unsaved-<pid>.jsonl: lines a failed write could not put in the log
MIN_FREE_BYTES = 16 << 20  # a run does not start on a disk with less free than this
_TAIL_CHUNK = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


IsWholeLine = Callable[[bytes], bool]


def append_lines(
    path: Path, lines: list[bytes], is_whole_line: IsWholeLine, *, check: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Append whole lines (each ending in a newline) to an append-only JSONL log, under one exclusive lock and with
    one write, repairing a torn last line first. ``is_whole_line`` tells a complete record whose newline is missing
    from a fragment of an interrupted write. Every append-only log here (traces, labels) goes through this. Returns
    the log's size just before and just after the lines (what a running count needs to know nobody else wrote).

    ``check(fd)`` runs under the lock, after the repair and before the write, with a descriptor of the log open for
    reading: it may raise to write nothing (a label written from a version another writer has replaced)."""
    if not lines:
        size = path.stat().st_size if path.exists() else 0
        return size, size
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            _repair_torn_tail(fd, path, is_whole_line)
            if check is not None:
                check(fd)
            before = os.fstat(fd).st_size
            _write_all(fd, b"".join(lines))
            return before, os.fstat(fd).st_size
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def repair_torn_tail(path: Path, is_whole_line: IsWholeLine) -> bool:
    """Repair a torn last line of the log at ``path`` now, under the lock. True when something was repaired."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return _repair_torn_tail(fd, path, is_whole_line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _repair_torn_tail(fd: int, path: Path, is_whole_line: IsWholeLine) -> bool:
    # Called with the lock held. A last line without "\n" is either a complete record whose newline is missing
    # (hand edits) -> finish it, or a fragment of an interrupted write -> move it to <log>.torn and cut it off.
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return False
    start = size
    while start > 0:
        chunk_start = max(0, start - _TAIL_CHUNK)
        chunk = os.pread(fd, start - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = chunk_start + newline + 1
            break
        start = chunk_start
    fragment = os.pread(fd, size - start, start)
    if is_whole_line(fragment):
        _write_all(fd, b"\n")
    else:
        with open(str(path) + TORN_SUFFIX, "ab") as torn:
            torn.write(fragment + b"\n")
        os.ftruncate(fd, start)
    return True


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "OSError")


class Refusal(TypedDict):
    """How ``check_writable`` words its refusal for a kind of file: ``nothing`` was done, put it ``elsewhere``."""

    nothing: str
    elsewhere: str
    options: tuple[str, ...]


class WriteTarget(Refusal):
    what: str  # what the file is


def check_writable(
    path: str | Path,
    *,
    what: str = "trace log",
    nothing: str = "nothing was run",
    elsewhere: str = f"set {option('log_file')}",
    options: tuple[str, ...] = ("log_file",),
    folder: bool = False,
    min_free: int = MIN_FREE_BYTES,
) -> None:
    """ConfigError unless ``path`` can be appended to (created, when it does not exist) on a disk with ``min_free``
    bytes free: checked before a run makes its first LM call (or an export writes its first row, or a review app
    takes its first label), so no work is done for a file that cannot take it. A device or a pipe (``/dev/stdout``)
    is only opened, not measured. With ``folder``, ``path`` is a folder made (or replaced) beside itself: its parent
    must take a new entry. The error says ``what`` the file is, ``nothing`` was done, and how to put it
    ``elsewhere`` (naming ``options``)."""
    path = Path(path)
    try:
        if path.is_dir() and not folder:
            raise ConfigError(f"the {what} {path} is a folder; give a file path ({elsewhere})", options=options)
        if path.exists() and not folder:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.probe-")
            os.close(fd)
            os.unlink(probe)
        if path.exists() and not path.is_file() and not folder:
            return
        disk = os.statvfs(path.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the {what} {path}: {exc.strerror or exc} ({errno_name(exc)}); {nothing}. Put it on a "
            f"writable disk ({elsewhere})",
            options=options,
        ) from None
    free = disk.f_bavail * disk.f_frsize
    if free < min_free:
        raise ConfigError(
            f"the disk of the {what} {path} has {free >> 10:,} KiB free, less than the {min_free >> 20:,} MiB needed "
            f"to start; {nothing}. Free some space or put it elsewhere ({elsewhere})",
            options=options,
        )


def fallback_paths(path: Path) -> list[Path]:
    """Where traces the log could not take go: next to the log (a regular file's folder), else the temp folder."""
    name = f"{path.name}{UNSAVED_SUFFIX}-{os.getpid()}.jsonl"
    here = [] if path.exists() and not path.is_file() else [path.with_name(name)]
    return [*here, Path(tempfile.gettempdir()) / f"hegelion-{name}"]
