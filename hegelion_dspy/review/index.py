"""TraceIndex: a SQLite index of a trace log by byte offset, for listing, filtering and searching without loading it.

The log stays the one source of truth and is only ever read. The index keeps, per line, where it is (byte offset,
length, line number) and what lists and charts need (time, status, model, mode, source, tags, score, sizes, a task
preview), a full-text index (SQLite FTS5) over the task and every text, and the latest label of every pair from the
labels sidecar. It lives in a hidden file beside the log (``.traces.jsonl.index.sqlite``; safe to delete, it is
rebuilt) and is brought up to date incrementally: only complete lines past the indexed offset are read, so a torn
last line waits until it is finished or repaired. A log that shrank, was replaced or changed under the index (another
inode, other first bytes) is indexed afresh. Several processes may share one index (SQLite WAL + one writer at a time).

A trace page reads exactly one line (``os.pread`` at its offset). Memory stays flat however large the log is.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..curate.labels import Label, labels_path, parse_pair
from ..curate.selection import TraceFilter
from ..curate.verdict import Verdict
from ..errors import InvalidTraceError
from ..quality import FLAGS, flags_of
from ..store import normalize_task, parse_line
from ..types import TraceRecord

INDEX_VERSION = 5  # 5: the quality flags column
_HEAD_BYTES = 4096
_BATCH_LINES = 2000
_PREVIEW_CHARS = 240
_ERROR_CHARS = 300
MAX_PER_PAGE = 200
MAX_SEARCH_TERMS = 16

Reviewed = Literal["yes", "no"]
PairsOption = Literal["first-last", "rounds"]
RejectedOption = Literal["thesis", "antithesis", "both"]
_STEPS = {"thesis": ("thesis",), "antithesis": ("antithesis",), "both": ("thesis", "antithesis")}


def index_path(log_path: str | Path) -> Path:
    """Where the index of ``log_path`` lives: a hidden file beside it (``.NAME.index.sqlite``)."""
    log_path = Path(log_path)
    return log_path.with_name(f".{log_path.name}.index.sqlite")


@dataclass(frozen=True)
class PairView:
    """Which pairs of each trace are reviewed (the export options the reviewer works under)."""

    rejected: RejectedOption = "thesis"
    pairs: PairsOption = "first-last"

    @property
    def steps(self) -> tuple[str, ...]:
        return _STEPS[self.rejected]


@dataclass(frozen=True)
class TraceQuery:
    """A list filter: the library's ``TraceFilter`` (models and exclusions as globs, sources, tags, dates, demo
    traces; the same one exports use) and what only a reviewer asks (status, mode, score range, reviewed, text).

    Empty fields filter nothing. ``text`` is a full-text search over the task and every text; ``reviewed`` keeps
    ``ok`` traces whose every pair (under the PairView) has a decision ("yes") or not ("no"). As in exports, traces
    of demo models are left out unless ``traces.include_demo``.
    """

    traces: TraceFilter = field(default_factory=TraceFilter)
    status: str | None = None  # ok | failed | invalid
    mode: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    reviewed: Reviewed | None = None
    text: str = ""


@dataclass
class TraceSummary:
    """One row of the list: what the index knows about a line, without reading the log."""

    seq: int
    lineno: int
    id: str | None
    created: float
    status: str
    model: str | None
    mode: str | None
    source: str | None
    score: float | None
    rounds: int
    contradictions: int
    task: str
    error: str | None
    tags: list[str]
    decided: int = 0
    needed: int = 0
    decisions: list[str] = field(default_factory=list)

    @property
    def reviewed(self) -> bool:
        return self.needed > 0 and self.decided >= self.needed


@dataclass
class Page:
    items: list[TraceSummary]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass
class IndexState:
    """How far the index has read: bytes of the log (and the labels) indexed, and lines."""

    log_bytes: int
    indexed_bytes: int
    lines: int
    labels_bytes: int
    indexed_label_bytes: int

    @property
    def complete(self) -> bool:
        return self.indexed_bytes >= self.log_bytes and self.indexed_label_bytes >= self.labels_bytes

    @property
    def fraction(self) -> float:
        return 1.0 if self.log_bytes == 0 else min(1.0, self.indexed_bytes / self.log_bytes)


_SCHEMA = """
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
    demo INTEGER NOT NULL,
    flags TEXT NOT NULL
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
    PRIMARY KEY(trace_id, pair)
);
CREATE TABLE IF NOT EXISTS label_events(created REAL NOT NULL, decision TEXT);
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-8000")  # 8 MB of page cache per connection
    conn.execute("PRAGMA temp_store=FILE")
    return conn


def search_expression(text: str) -> str | None:
    """A user's search words as a safe FTS5 query: every word must occur (a trailing ``*`` matches a prefix).

    Nothing the user types reaches FTS5's query syntax: words are split on anything but letters and digits and each
    is quoted. None when there is no word to search for.
    """
    terms = []
    for match in re.finditer(r"([^\W_]+)(\*?)", text):
        word, star = match.groups()
        terms.append(f'"{word}"' + ("*" if star else ""))
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return " AND ".join(terms) if terms else None


def _task_key(task: str) -> int:
    digest = hashlib.blake2b(normalize_task(task).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _record_row(record: TraceRecord) -> tuple[Any, ...]:
    rounds = record.rounds
    first = rounds[0] if rounds else None
    synthesis = record.synthesis.strip()
    error = None
    if record.error is not None:
        e = record.error
        error = f"{e.step} step of round {e.round}: {e.type}: {e.message}"[:_ERROR_CHARS]
    return (
        record.id,
        record.created_at.timestamp(),
        record.status,
        record.model,
        record.mode,
        record.source,
        record.score,
        len(rounds),
        sum(len(r.contradictions) for r in rounds),
        len(first.thesis.strip()) if first else 0,
        len(synthesis),
        int(first is not None and synthesis == first.thesis.strip()),
        int(first is not None and synthesis == first.antithesis.strip()),
        _task_key(record.task),
        record.task[:_PREVIEW_CHARS],
        error,
        int(record.demo),
        ",".join(flags_of(record)) if record.ok else "",
    )


def _record_body(record: TraceRecord) -> str:
    parts = [record.task]
    for r in record.rounds:
        parts += [r.thesis, r.antithesis, r.synthesis]
        for c in r.contradictions:
            parts += [c.description, c.evidence]
    if record.error is not None:
        parts.append(record.error.message)
    judge = record.metadata.get("judge")
    if isinstance(judge, dict) and isinstance(judge.get("feedback"), str):
        parts.append(judge["feedback"])
    return "\n".join(parts)


def _head_digest(fd: int, length: int) -> str:
    return hashlib.blake2b(os.pread(fd, min(length, _HEAD_BYTES), 0), digest_size=16).hexdigest()


class TraceIndex:
    """The index of one trace log (and its labels sidecar). Thread-safe; share one per log within a process."""

    def __init__(self, log_path: str | Path, *, path: str | Path | None = None, labels: str | Path | None = None):
        self.log_path = Path(log_path)
        self.path = Path(path) if path is not None else index_path(self.log_path)
        self.labels_path = Path(labels) if labels is not None else labels_path(self.log_path)
        self._read_lock = threading.Lock()
        self._sync_locks = {"log": threading.Lock(), "labels": threading.Lock()}
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"TraceIndex({str(self.log_path)!r})"

    def close(self) -> None:
        with self._read_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- connections ---------------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, INDEX_VERSION):  # an index written by another version: rebuild it
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(self.path) + suffix)
            conn = _connect(self.path)
            version = 0
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")  # two processes opening a new index at once: one creates it
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={INDEX_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return conn

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            if self._conn is None:
                self._conn = self._open()
            yield self._conn

    # -- keeping up with the log ---------------------------------------------------------------------------------

    def state(self) -> IndexState:
        """How much of the log and the labels the index has read (cheap: two stats and one query)."""
        with self._reader() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return IndexState(
            log_bytes=_size(self.log_path),
            indexed_bytes=int(meta.get("log.offset", 0)),
            lines=int(meta.get("log.lines", 0)),
            labels_bytes=_size(self.labels_path),
            indexed_label_bytes=int(meta.get("labels.offset", 0)),
        )

    def sync(self, *, seconds: float | None = None, log: bool = True, labels: bool = True) -> IndexState:
        """Index what was appended to the log and the labels since the last sync; returns the new state.

        ``seconds`` bounds the time spent on the log (the rest is indexed by the next call). Another thread or process
        may be syncing the same index: SQLite serialises the writers, one batch at a time, and each continues from
        where the other stopped (so labels are picked up at once even while a large log is being indexed).
        """
        if log:
            self._sync("log", self.log_path, self._index_traces, seconds)
        if labels:
            self._sync("labels", self.labels_path, self._index_labels, None)
        return self.state()

    def _sync(self, name: str, path: Path, index: Any, seconds: float | None) -> None:
        with self._sync_locks[name]:
            conn = self._open()
            try:
                self._sync_file(conn, name, path, index, seconds)
            finally:
                conn.close()

    def _sync_file(self, conn: sqlite3.Connection, name: str, path: Path, index: Any, seconds: float | None) -> None:
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = -1
        try:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    more = self._sync_batch(conn, name, fd, index)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                if not more or (deadline is not None and time.monotonic() > deadline):
                    return
        finally:
            if fd >= 0:
                os.close(fd)

    def _sync_batch(self, conn: sqlite3.Connection, name: str, fd: int, index: Any) -> bool:
        # Inside a write transaction. Returns True when there is more to read.
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (f"{name}.%",)).fetchall())
        offset, lines = int(meta.get(f"{name}.offset", 0)), int(meta.get(f"{name}.lines", 0))
        if fd < 0:
            if offset:
                self._reset(conn, name)
            return False
        st = os.fstat(fd)
        identity = f"{st.st_dev}:{st.st_ino}"
        if offset and (
            meta.get(f"{name}.identity") != identity
            or st.st_size < offset
            or meta.get(f"{name}.head") != _head_digest(fd, offset)
        ):
            self._reset(conn, name)
            offset = lines = 0
        if st.st_size <= offset:
            return False
        chunk = os.pread(fd, min(st.st_size - offset, 8 << 20), offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) < (8 << 20):
                return False  # only a torn or unfinished last line: wait for it
            chunk = _read_to_newline(fd, offset, st.st_size)  # one line longer than the chunk
            end = chunk.rfind(b"\n")
            if end < 0:
                return False
        chunk = chunk[: end + 1]
        consumed, counted = index(conn, chunk, offset, lines)
        offset += consumed
        lines += counted
        conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [
                (f"{name}.offset", offset),
                (f"{name}.lines", lines),
                (f"{name}.identity", identity),
                (f"{name}.head", _head_digest(fd, offset)),
            ],
        )
        return offset < st.st_size and consumed > 0

    def _reset(self, conn: sqlite3.Connection, name: str) -> None:
        if name == "log":
            conn.execute("DELETE FROM traces")
            conn.execute("DELETE FROM tags")
            conn.execute("DELETE FROM facets")
            conn.execute("INSERT INTO texts(texts) VALUES ('delete-all')")
        else:
            conn.execute("DELETE FROM labels")
            conn.execute("DELETE FROM label_events")
        conn.execute("DELETE FROM meta WHERE key LIKE ?", (f"{name}.%",))

    def _index_traces(self, conn: sqlite3.Connection, chunk: bytes, offset: int, lines: int) -> tuple[int, int]:
        # Up to _BATCH_LINES complete lines of ``chunk`` (which starts at ``offset`` after ``lines`` lines).
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]
        rows: list[tuple[Any, ...]] = []
        tags: list[tuple[int, str]] = []
        bodies: list[tuple[int, str]] = []
        pos = 0
        counted = 0
        while pos < len(chunk) and len(rows) < _BATCH_LINES:
            end = chunk.index(b"\n", pos)
            raw = chunk[pos:end]
            counted += 1
            lineno = lines + counted
            line_offset, length = offset + pos, end - pos
            pos = end + 1
            if not raw.strip():
                continue
            seq += 1
            try:
                record = parse_line(raw.rstrip(b"\r"), self.log_path, lineno)
            except InvalidTraceError as exc:
                created = rows[-1][5] if rows else _last_created(conn)
                rows.append((seq, line_offset, length, lineno, None, created, "invalid", None, None, None, None,
                             0, 0, 0, 0, 0, 0, None, "", exc.reason[:_ERROR_CHARS], 0, ""))  # fmt: skip
                continue
            rows.append((seq, line_offset, length, lineno, *_record_row(record)))
            tags += [(seq, tag) for tag in record.tags]
            bodies.append((seq, _record_body(record)))
        conn.executemany(f"INSERT INTO traces VALUES ({', '.join('?' * 22)})", rows)
        conn.executemany("INSERT INTO tags(seq, tag) VALUES (?, ?)", tags)
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            for name, value in (("status", row[6]), ("model", row[7]), ("mode", row[8]), ("source", row[9])):
                if value is not None:
                    counts[(name, value)] = counts.get((name, value), 0) + 1
            if row[20]:
                counts[("demo", "demo")] = counts.get(("demo", "demo"), 0) + 1
        for _, tag in tags:
            counts[("tag", tag)] = counts.get(("tag", tag), 0) + 1
        conn.executemany(
            "INSERT INTO facets(name, value, n) VALUES (?, ?, ?) "
            "ON CONFLICT(name, value) DO UPDATE SET n = n + excluded.n",
            [(name, value, n) for (name, value), n in counts.items()],
        )
        conn.executemany("INSERT INTO texts(rowid, body) VALUES (?, ?)", bodies)
        return pos, counted

    def _index_labels(self, conn: sqlite3.Connection, chunk: bytes, offset: int, lines: int) -> tuple[int, int]:
        rows, events = [], []
        counted = 0
        for raw in chunk.split(b"\n")[:-1]:
            counted += 1
            if not raw.strip():
                continue
            try:
                label = Label.model_validate_json(raw)
            except ValueError:
                continue  # a bad label line is reported by exports (read_labels); the review skips it
            step, rejected_round, chosen_round = parse_pair(label.pair)
            created = label.created_at.timestamp()
            rows.append(
                (label.trace_id, label.pair, step, rejected_round, chosen_round, label.decision,
                 int(label.chosen is not None), created, raw)
            )  # fmt: skip
            events.append((created, label.decision))
        conn.executemany(f"INSERT OR REPLACE INTO labels VALUES ({', '.join('?' * 9)})", rows)
        conn.executemany("INSERT INTO label_events VALUES (?, ?)", events)
        return len(chunk), counted

    # -- reading -------------------------------------------------------------------------------------------------

    def query(
        self, query: TraceQuery = TraceQuery(), *, page: int = 1, per_page: int = 50, view: PairView = PairView()
    ) -> Page:
        """One page of the traces that match, newest first."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        where, params = _where(query, view)
        decided, needed = _review_counts(view)
        sql = (
            f"SELECT t.seq, t.lineno, t.id, t.created, t.status, t.model, t.mode, t.source, t.score, t.rounds, "
            f"t.contradictions, t.task, t.error, {decided}, {needed} FROM traces t WHERE {where} "
            "ORDER BY t.created DESC, t.seq DESC LIMIT ? OFFSET ?"
        )
        with self._reader() as conn:
            total = conn.execute(f"SELECT count(*) FROM traces t WHERE {where}", params).fetchone()[0]
            found = conn.execute(sql, [*params, per_page, (page - 1) * per_page]).fetchall()
            items = [_summary(row) for row in found]
            self._fill(conn, items)
        return Page(items=items, total=total, page=page, per_page=per_page)

    def _fill(self, conn: sqlite3.Connection, items: list[TraceSummary]) -> None:
        if not items:
            return
        marks = ", ".join("?" * len(items))
        by_seq = {item.seq: item for item in items}
        for seq, tag in conn.execute(f"SELECT seq, tag FROM tags WHERE seq IN ({marks})", list(by_seq)):
            by_seq[seq].tags.append(tag)
        by_id: dict[str, list[TraceSummary]] = {}
        for item in items:
            if item.id is not None:
                by_id.setdefault(item.id, []).append(item)
        if by_id:
            marks = ", ".join("?" * len(by_id))
            sql = f"SELECT trace_id, decision FROM labels WHERE decision IS NOT NULL AND trace_id IN ({marks})"
            for trace_id, decision in conn.execute(sql, list(by_id)):
                for item in by_id[trace_id]:
                    item.decisions.append(decision)

    def neighbours(
        self, trace_id: str, query: TraceQuery = TraceQuery(), *, view: PairView = PairView()
    ) -> tuple[str | None, str | None]:
        """The ids of the traces listed just before (newer) and after (older) ``trace_id`` under ``query``."""
        where, params = _where(query, view)
        with self._reader() as conn:
            here = conn.execute(
                "SELECT created, seq FROM traces WHERE id = ? ORDER BY seq DESC", (trace_id,)
            ).fetchone()
            if here is None:
                return None, None
            newer = conn.execute(
                f"SELECT t.id FROM traces t WHERE {where} AND t.id IS NOT NULL AND (t.created, t.seq) > (?, ?) "
                "ORDER BY t.created, t.seq LIMIT 1",
                [*params, *here],
            ).fetchone()
            older = conn.execute(
                f"SELECT t.id FROM traces t WHERE {where} AND t.id IS NOT NULL AND (t.created, t.seq) < (?, ?) "
                "ORDER BY t.created DESC, t.seq DESC LIMIT 1",
                [*params, *here],
            ).fetchone()
        return (newer[0] if newer else None), (older[0] if older else None)

    def locate(self, trace_id: str) -> tuple[int, int, int] | None:
        """``(offset, length, line number)`` of the last line with this trace id, or None."""
        with self._reader() as conn:
            row = conn.execute(
                "SELECT offset, length, lineno FROM traces WHERE id = ? ORDER BY seq DESC LIMIT 1", (trace_id,)
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def read(self, trace_id: str) -> TraceRecord | None:
        """The trace with this id, read from its line of the log (one ``pread``); None when the index has no such id."""
        where = self.locate(trace_id)
        if where is None:
            return None
        offset, length, lineno = where
        fd = os.open(self.log_path, os.O_RDONLY)
        try:
            raw = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        return parse_line(raw.rstrip(b"\r"), self.log_path, lineno)

    def has_earlier_task(self, trace_id: str) -> str | None:
        """The id of an earlier ``ok`` trace with the same normalised task (what an export's dedupe keeps), or None."""
        with self._reader() as conn:
            row = conn.execute(
                "SELECT e.id FROM traces t JOIN traces e ON e.task_key = t.task_key AND e.seq < t.seq "
                "WHERE t.id = ? AND e.status = 'ok' ORDER BY e.seq LIMIT 1",
                (trace_id,),
            ).fetchone()
        return row[0] if row else None

    def labels_for(self, trace_id: str) -> dict[str, Label]:
        """The latest label of each pair of one trace."""
        with self._reader() as conn:
            found = conn.execute("SELECT line FROM labels WHERE trace_id = ?", (trace_id,)).fetchall()
        labels = [Label.model_validate_json(line) for (line,) in found]
        return {label.pair: label for label in labels}

    def label_of(self, trace_id: str, pair: str) -> Label | None:
        with self._reader() as conn:
            row = conn.execute("SELECT line FROM labels WHERE trace_id = ? AND pair = ?", (trace_id, pair)).fetchone()
        return Label.model_validate_json(row[0]) if row else None

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        """The values each filter can take, with counts (models, modes, sources, statuses, tags)."""
        # Counted while indexing (the facets table), so this costs nothing however long the log is.
        names = ("status", "model", "mode", "source", "tag", "demo")
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
        with self._reader() as conn:
            for name, value, n in conn.execute("SELECT name, value, n FROM facets ORDER BY name, n DESC, value"):
                if len(out[name]) < 200:
                    out[name].append((value, n))
        return out

    def stats(self, query: TraceQuery = TraceQuery(), *, view: PairView = PairView(), min_chars: int = 0,
              min_score: float | None = None) -> DatasetShape:  # fmt: skip
        """Aggregates for the charts over the traces matching ``query``: one streaming pass, nothing loaded.

        ``drops`` estimates what an export with these options leaves out, from the index alone: the row checks are
        made on each trace's first-last pairs, and a duplicate is a later ``ok`` trace of an already counted task.
        """
        where, params = _where(query, view)
        decided, needed = _review_counts(view)
        label_where, label_params = _label_where(view)
        shape = DatasetShape()
        drops = dict.fromkeys(("failed", "duplicate_prompt", "chosen_equals_rejected", "too_short", *FLAGS), 0)
        if min_score is not None:
            drops.update(no_score=0, below_min_score=0)
        # the export's rules (curate/verdict.py) on the index's columns; the query's own filter chose demo traces
        judge = Verdict(min_chars=min_chars, min_score=min_score, include_demo=True)
        same_rejected = (int("thesis" in view.steps), int("antithesis" in view.steps))
        rows: list[tuple[str, float]] = []
        with self._reader() as conn:
            q = conn.execute
            found = q(
                "SELECT status, created, coalesce(model, 'unknown'), score, contradictions, thesis_chars, "
                f"synthesis_chars, same_thesis, same_antithesis, flags FROM traces t WHERE {where}",
                params,
            )
            for status, created, model, score, contradictions, thesis, synthesis, same_t, same_a, flags in found:
                shape.status[status] = shape.status.get(status, 0) + 1
                if status == "invalid":
                    continue
                rows.append((model, created))
                if score is not None:
                    shape.scores[min(int(score * 10), 9)] = shape.scores.get(min(int(score * 10), 9), 0) + 1
                reason = judge.trace_reason(_Facts(status, False, score))
                if reason == "failed":
                    drops["failed"] += 1
                    continue
                if score is None:
                    shape.unscored += 1
                bins = (min(contradictions, 10), _log2_bin(thesis), _log2_bin(synthesis), _ratio_bin(synthesis, thesis))
                for histogram, key in zip(
                    (shape.contradictions, shape.thesis_lengths, shape.synthesis_lengths, shape.ratios),
                    bins,
                    strict=True,
                ):
                    histogram[key] = histogram.get(key, 0) + 1
                if reason is not None:
                    drops[reason] += 1
                    continue
                same = same_t * same_rejected[0] + same_a * same_rejected[1]
                drops["chosen_equals_rejected"] += same
                short = synthesis < min_chars
                drops["too_short"] += short
                flag = judge.flag_reason(flags.split(",")) if flags else None
                if flag is not None and not short:  # the row checks come first, as in the export
                    drops[flag] += len(view.steps) - same
            if rows:
                first, last = min(r[1] for r in rows), max(r[1] for r in rows)
                width = shape.bucket_seconds = _bucket_width(last - first)
                for model, created in rows:
                    series = shape.over_time.setdefault(model, {})
                    bucket = int(created // width) * width
                    series[bucket] = series.get(bucket, 0) + 1
            rows.clear()
            score_cut = "" if min_score is None else f" AND score >= {float(min_score)!r}"
            total, distinct = q(
                f"SELECT count(*), count(DISTINCT task_key) FROM traces t WHERE {where} AND status = 'ok'{score_cut}",
                params,
            ).fetchone()
            drops["duplicate_prompt"] = total - distinct
            done, need = q(
                f"SELECT sum(min({decided}, {needed})), sum({needed}) FROM traces t WHERE {where} AND status = 'ok'",
                params,
            ).fetchone()
            shape.pairs_total, shape.pairs_decided = need or 0, done or 0
            shape.decisions = dict(
                q(
                    "SELECT CASE WHEN l.decision = 'reject' THEN 'rejected' WHEN l.edited THEN 'edited' "
                    "WHEN l.decision = 'swap' THEN 'swapped' ELSE 'accepted' END, count(*) "
                    f"FROM traces t JOIN labels l ON l.trace_id = t.id AND {label_where} "
                    f"WHERE {where} AND t.status = 'ok' AND l.decision IS NOT NULL GROUP BY 1",
                    [*label_params, *params],
                )
            )
            drops["rejected_by_reviewer"] = shape.decisions.get("rejected", 0)
            for day, decision, n in q(
                "SELECT CAST(created / 86400 AS INTEGER), coalesce(decision, 'note'), count(*) FROM label_events "
                "GROUP BY 1, 2 ORDER BY 1"
            ):
                shape.labels_per_day.setdefault(day * 86400, {})[decision] = n
        shape.drops = drops
        return shape


@dataclass(frozen=True)
class _Facts:
    """What the verdict reads of a trace, from the index's columns."""

    status: str
    demo: bool
    score: float | None


@dataclass
class DatasetShape:
    """What the charts page draws. Bins: ``scores`` 0..9 (tenths), lengths by power of two, ratios by half-octave."""

    status: dict[str, int] = field(default_factory=dict)
    bucket_seconds: int = 86400
    over_time: dict[str, dict[int, int]] = field(default_factory=dict)
    scores: dict[int, int] = field(default_factory=dict)
    unscored: int = 0
    contradictions: dict[int, int] = field(default_factory=dict)
    thesis_lengths: dict[int, int] = field(default_factory=dict)
    synthesis_lengths: dict[int, int] = field(default_factory=dict)
    ratios: dict[int, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    pairs_total: int = 0
    pairs_decided: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    labels_per_day: dict[int, dict[str, int]] = field(default_factory=dict)


def _log2_bin(chars: int) -> int:
    return max(0, int(chars).bit_length() - 1)  # bin k holds 2**k .. 2**(k+1)-1 characters (0 and 1 in bin 0)


def _ratio_bin(synthesis: int, thesis: int) -> int:
    """Half-octave bins of synthesis/thesis length: bin 0 is 1/1.41..1.41, -2 is a quarter as long, +2 four times."""
    if thesis <= 0 or synthesis <= 0:
        return 0
    return max(-6, min(6, round(2 * math.log2(synthesis / thesis))))


def _bucket_width(span: float) -> int:
    for width in (3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400):
        if span / width <= 36:
            return width
    return 365 * 86400


def _label_where(view: PairView) -> tuple[str, list[Any]]:
    steps = ", ".join("?" * len(view.steps))
    if view.pairs == "rounds":
        cond = f"l.step IN ({steps}) AND l.rejected_round = l.chosen_round AND l.chosen_round <= t.rounds"
    else:
        cond = f"l.step IN ({steps}) AND l.rejected_round = 1 AND l.chosen_round = t.rounds"
    return cond, list(view.steps)


def _review_counts(view: PairView) -> tuple[str, str]:
    # SQL expressions (over ``t``) for the decided pairs of a trace and the pairs it has under the view.
    steps = ", ".join(repr(s) for s in view.steps)  # fixed literals, never user input
    if view.pairs == "rounds":
        cond = f"l.step IN ({steps}) AND l.rejected_round = l.chosen_round AND l.chosen_round <= t.rounds"
        needed = f"(CASE WHEN t.status = 'ok' THEN t.rounds * {len(view.steps)} ELSE 0 END)"
    else:
        cond = f"l.step IN ({steps}) AND l.rejected_round = 1 AND l.chosen_round = t.rounds"
        needed = f"(CASE WHEN t.status = 'ok' THEN {len(view.steps)} ELSE 0 END)"
    decided = f"(SELECT count(*) FROM labels l WHERE l.trace_id = t.id AND l.decision IS NOT NULL AND {cond})"
    return decided, needed


def _glob(pattern: str) -> str:
    # fnmatch's negated class [!x] is [^x] in SQLite's GLOB; the rest (* ? [x]) is the same, case-sensitive in both.
    return pattern.replace("[!", "[^")


def _filter_where(traces: TraceFilter) -> tuple[list[str], list[Any]]:
    """SQL for a TraceFilter over ``t``: the same traces ``TraceFilter.reason`` keeps (and invalid lines only when no
    condition would need their fields)."""
    clauses: list[str] = []
    params: list[Any] = []
    if not traces.include_demo:
        clauses.append("t.demo = 0")
    if traces.models:
        clauses.append("(" + " OR ".join("coalesce(t.model, '') GLOB ?" for _ in traces.models) + ")")
        params += [_glob(g) for g in traces.models]
    if traces.exclude_models:
        clauses.append("NOT (" + " OR ".join("coalesce(t.model, '') GLOB ?" for _ in traces.exclude_models) + ")")
        params += [_glob(g) for g in traces.exclude_models]
    if traces.sources:
        clauses.append(f"t.source IN ({', '.join('?' * len(traces.sources))})")
        params += list(traces.sources)
    if traces.tags:
        clauses.append(f"t.seq IN (SELECT seq FROM tags WHERE tag IN ({', '.join('?' * len(traces.tags))}))")
        params += list(traces.tags)
    if traces.exclude_tags:
        marks = ", ".join("?" * len(traces.exclude_tags))
        clauses.append(f"t.seq NOT IN (SELECT seq FROM tags WHERE tag IN ({marks}))")
        params += list(traces.exclude_tags)
    if traces.since is not None:
        clauses.append("t.created >= ?")
        params.append(traces.since.timestamp())
    if traces.until is not None:
        clauses.append("t.created < ?")
        params.append(traces.until.timestamp())
    return clauses, params


def _where(query: TraceQuery, view: PairView) -> tuple[str, list[Any]]:
    clauses, params = _filter_where(query.traces)
    clauses.insert(0, "1")
    if query.status:
        clauses.append("t.status = ?")
        params.append(query.status)
    if query.mode:
        clauses.append("t.mode = ?")
        params.append(query.mode)
    if query.min_score is not None:
        clauses.append("t.score >= ?")
        params.append(query.min_score)
    if query.max_score is not None:
        clauses.append("t.score <= ?")
        params.append(query.max_score)
    expression = search_expression(query.text) if query.text else None
    if expression is not None:
        clauses.append("t.seq IN (SELECT rowid FROM texts WHERE texts MATCH ?)")
        params.append(expression)
    if query.reviewed is not None:
        decided, needed = _review_counts(view)
        compare = ">=" if query.reviewed == "yes" else "<"
        clauses.append(f"t.status = 'ok' AND {decided} {compare} {needed}")
    return " AND ".join(clauses), params


def _summary(row: tuple[Any, ...]) -> TraceSummary:
    return TraceSummary(
        seq=row[0], lineno=row[1], id=row[2], created=row[3], status=row[4], model=row[5], mode=row[6], source=row[7],
        score=row[8], rounds=row[9], contradictions=row[10], task=row[11], error=row[12], tags=[], decided=row[13],
        needed=row[14],
    )  # fmt: skip


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _last_created(conn: sqlite3.Connection) -> float:
    row = conn.execute("SELECT created FROM traces ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row else 0.0


def _read_to_newline(fd: int, offset: int, size: int) -> bytes:
    parts, pos = [], offset
    while pos < size:
        block = os.pread(fd, 8 << 20, pos)
        if not block:
            break
        newline = block.find(b"\n")
        if newline >= 0:
            parts.append(block[: newline + 1])
            break
        parts.append(block)
        pos += len(block)
    return b"".join(parts)


__all__ = [
    "DatasetShape",
    "IndexState",
    "Page",
    "PairView",
    "TraceIndex",
    "TraceQuery",
    "TraceSummary",
    "index_path",
    "search_expression",
]
