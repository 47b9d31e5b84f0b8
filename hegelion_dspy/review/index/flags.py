"""The quality flags of traces written without them (v2 lines, records built by hand), computed after the lines
are indexed: ``quality.flags_of`` costs more than indexing a line, so the list is usable first and the flags
follow, a batch per write transaction, re-reading each line at its offset."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ...errors import InvalidTraceError
from ...quality import flags_of
from ...store import parse_line

FLAG_BATCH = 100


def fill_flags(conn: sqlite3.Connection, fd: int, log_path: Path) -> int:
    """Compute the flags of up to FLAG_BATCH traces that have none yet, inside the caller's write transaction.
    Returns how many were done (0: none is pending)."""
    pending = conn.execute(
        "SELECT seq, offset, length, lineno FROM traces WHERE flags IS NULL ORDER BY seq LIMIT ?", (FLAG_BATCH,)
    ).fetchall()
    updates: list[tuple[str, int]] = []
    flags: list[tuple[int, str]] = []
    for seq, offset, length, lineno in pending:
        try:
            record = parse_line(os.pread(fd, length, offset).rstrip(b"\r"), log_path, lineno)
        except InvalidTraceError:  # the line changed under the index: the next sync indexes the log afresh
            updates.append(("", seq))
            continue
        found = flags_of(record)
        updates.append((" ".join(found), seq))
        flags += [(seq, flag) for flag in found]
    conn.executemany("UPDATE traces SET flags = ? WHERE seq = ?", updates)
    conn.executemany("INSERT INTO flags(seq, flag) VALUES (?, ?)", flags)
    counts: dict[str, int] = {}
    for _, flag in flags:
        counts[flag] = counts.get(flag, 0) + 1
    conn.executemany(
        "INSERT INTO facets(name, value, n) VALUES ('flag', ?, ?) "
        "ON CONFLICT(name, value) DO UPDATE SET n = n + excluded.n",
        list(counts.items()),
    )
    return len(pending)
