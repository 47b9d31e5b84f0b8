"""The index file: where it lives, its tables, and opening it (a file of another version is rebuilt)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

INDEX_VERSION = 5  # 5: labels carry their pair's version

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS traces(
    seq INTEGER PRIMARY KEY,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    lineno INTEGER NOT NULL,
    id TEXT,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    mode TEXT,
    source TEXT,
    score REAL,
    rounds INTEGER NOT NULL,
    contradictions INTEGER NOT NULL,
    thesis_chars INTEGER NOT NULL,
    synthesis_chars INTEGER NOT NULL,
    same_thesis INTEGER NOT NULL,
    same_antithesis INTEGER NOT NULL,
    task_key INTEGER,
    task TEXT NOT NULL,
    error TEXT,
    demo INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_order ON traces(created, seq);
CREATE INDEX IF NOT EXISTS traces_id ON traces(id);
CREATE INDEX IF NOT EXISTS traces_task ON traces(task_key, seq);
CREATE INDEX IF NOT EXISTS traces_status ON traces(status, created, seq);
CREATE INDEX IF NOT EXISTS traces_demo ON traces(demo, created, seq);
CREATE TABLE IF NOT EXISTS facets(name TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,
                                  PRIMARY KEY(name, value));
CREATE TABLE IF NOT EXISTS tags(seq INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tags_tag ON tags(tag, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(body, content='', detail=none);
CREATE TABLE IF NOT EXISTS labels(
    trace_id TEXT NOT NULL,
    pair TEXT NOT NULL,
    step TEXT NOT NULL,
    rejected_round INTEGER NOT NULL,
    chosen_round INTEGER NOT NULL,
    decision TEXT,
    edited INTEGER NOT NULL,
    created REAL NOT NULL,
    line BLOB NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY(trace_id, pair)
);
CREATE TABLE IF NOT EXISTS label_events(created REAL NOT NULL, decision TEXT);
"""


def index_path(log_path: str | Path) -> Path:
    """Where the index of ``log_path`` lives: a hidden file beside it (``.NAME.index.sqlite``)."""
    log_path = Path(log_path)
    return log_path.with_name(f".{log_path.name}.index.sqlite")


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-8000")  # 8 MB of page cache per connection
    conn.execute("PRAGMA temp_store=FILE")
    return conn


def open_index(path: Path) -> sqlite3.Connection:
    """A connection to the index at ``path``, created when new; an index written by another version is rebuilt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, INDEX_VERSION):
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path) + suffix)
        conn = connect(path)
        version = 0
    if version == 0:
        conn.execute("BEGIN IMMEDIATE")  # two processes opening a new index at once: one creates it
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={INDEX_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn
