"""The quality flags of traces written without them (v2 lines, records built by hand), computed after the lines
are indexed: ``quality.flags_of`` costs more than indexing a line, so the list is usable first and the flags
follow, a batch at a time, re-reading each line at its offset; each batch is computed first and then written in one
short write transaction."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ...errors import InvalidTraceError
from ...quality import flags_of
from ...store import parse_line

FLAG_BATCH = 100


class Computed(NamedTuple):
    log: tuple[str, str]  # the log's identity and head digest when the flags were computed
    flags: list[tuple[int, Sequence[str]]]  # (seq, flag names)


def _log_identity(conn: sqlite3.Connection) -> tuple[str, str]:
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('log.identity', 'log.head')").fetchall())
    return str(meta.get("log.identity", "")), str(meta.get("log.head", ""))


def compute_flags(conn: sqlite3.Connection, fd: int, log_path: Path) -> Computed:
    """The flags of up to FLAG_BATCH traces that have none yet, computed outside any transaction: the builder that
    calls this runs at a lower priority, and a write lock held while it computes (slowly, on a busy machine) would
    make a reviewer's label wait behind it. No flags: none is pending."""
    log = _log_identity(conn)
    pending = conn.execute(
        "SELECT seq, offset, length, lineno FROM traces WHERE flags IS NULL ORDER BY seq LIMIT ?", (FLAG_BATCH,)
    ).fetchall()
    found: list[tuple[int, Sequence[str]]] = []
    for seq, offset, length, lineno in pending:
        try:
            record = parse_line(os.pread(fd, length, offset).rstrip(b"\r"), log_path, lineno)
        except InvalidTraceError:  # the line changed under the index: the next sync indexes the log afresh
            found.append((seq, []))
            continue
        found.append((seq, flags_of(record)))
    return Computed(log, found)


def store_flags(conn: sqlite3.Connection, computed: Computed) -> None:
    """Write flags from ``compute_flags`` inside the caller's (short) write transaction, for the traces that still
    have none: another writer may have stored them since they were computed. When the log was indexed afresh in
    between (its numbers now name other lines), nothing is written and the next batch computes them again."""
    if not computed.flags or _log_identity(conn) != computed.log:
        return
    found = computed.flags
    open_seqs = {
        seq
        for (seq,) in conn.execute(
            f"SELECT seq FROM traces WHERE flags IS NULL AND seq IN ({', '.join('?' * len(found))})",
            [seq for seq, _ in found],
        )
    }
    kept = [(seq, names) for seq, names in found if seq in open_seqs]
    conn.executemany("UPDATE traces SET flags = ? WHERE seq = ?", [(" ".join(names), seq) for seq, names in kept])
    conn.executemany("INSERT INTO flags(seq, flag) VALUES (?, ?)", [(seq, f) for seq, names in kept for f in names])
    counts: dict[str, int] = {}
    for _, names in kept:
        for flag in names:
            counts[flag] = counts.get(flag, 0) + 1
    conn.executemany(
        "INSERT INTO facets(name, value, n) VALUES ('flag', ?, ?) "
        "ON CONFLICT(name, value) DO UPDATE SET n = n + excluded.n",
        list(counts.items()),
    )
