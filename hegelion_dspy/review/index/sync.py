"""Keeping the index up with an append-only file: only complete lines past the indexed offset are read, in batches
of one write transaction each; a file that shrank, was replaced or changed under the index (another inode, other
first bytes) is indexed afresh."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable

from .ingest import reset

HEAD_BYTES = 4096
CHUNK_BYTES = 2 << 20  # read per batch (a longer line is read whole)

# Indexes the complete lines of a chunk starting at (offset, lines); returns the bytes and lines it consumed.
Indexer = Callable[[sqlite3.Connection, bytes, int, int], tuple[int, int]]


def head_digest(fd: int, length: int) -> str:
    return hashlib.blake2b(os.pread(fd, min(length, HEAD_BYTES), 0), digest_size=16).hexdigest()


def sync_file(conn: sqlite3.Connection, name: str, path: str, index: Indexer, seconds: float | None) -> None:
    """Index what was appended to ``path`` (the log or the labels, ``name``) since the last call, batch by batch,
    for at most about ``seconds`` (None: to the end)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                more = _sync_batch(conn, name, fd, index)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if not more or (deadline is not None and time.monotonic() > deadline):
                return
    finally:
        if fd >= 0:
            os.close(fd)


def _sync_batch(conn: sqlite3.Connection, name: str, fd: int, index: Indexer) -> bool:
    # Inside a write transaction. Returns True when there is more to read.
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (f"{name}.%",)).fetchall())
    offset, lines = int(meta.get(f"{name}.offset", 0)), int(meta.get(f"{name}.lines", 0))
    if fd < 0:
        if offset:
            reset(conn, name)
        return False
    st = os.fstat(fd)
    identity = f"{st.st_dev}:{st.st_ino}"
    changed = meta.get(f"{name}.identity") != identity or st.st_size < offset
    if offset and (changed or meta.get(f"{name}.head") != head_digest(fd, offset)):
        reset(conn, name)
        offset = lines = 0
    if st.st_size <= offset:
        return False
    chunk = complete_lines(fd, offset, st.st_size)
    if not chunk:
        return False  # only a torn or unfinished last line: wait for it
    consumed, counted = index(conn, chunk, offset, lines)
    offset += consumed
    lines += counted
    conn.executemany(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
        [
            (f"{name}.offset", offset),
            (f"{name}.lines", lines),
            (f"{name}.identity", identity),
            (f"{name}.head", head_digest(fd, offset)),
        ],
    )
    return offset < st.st_size and consumed > 0


def complete_lines(fd: int, offset: int, size: int) -> bytes:
    """The complete lines from ``offset``: up to CHUNK_BYTES of them, or one longer line; empty when none is."""
    chunk = os.pread(fd, min(size - offset, CHUNK_BYTES), offset)
    end = chunk.rfind(b"\n")
    if end < 0:
        if len(chunk) < CHUNK_BYTES:
            return b""
        chunk = _read_to_newline(fd, offset, size)  # one line longer than the chunk
        end = chunk.rfind(b"\n")
    return chunk[: end + 1]


def _read_to_newline(fd: int, offset: int, size: int) -> bytes:
    parts, pos = [], offset
    while pos < size:
        block = os.pread(fd, CHUNK_BYTES, pos)
        if not block:
            break
        newline = block.find(b"\n")
        if newline >= 0:
            parts.append(block[: newline + 1])
            break
        parts.append(block)
        pos += len(block)
    return b"".join(parts)
