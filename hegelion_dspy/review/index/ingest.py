"""Turning lines into index rows: a trace line into its ``TraceRow``, tags, facets and full-text body; a label line
into the latest label of its pair (with the pair's version). Each function indexes one batch inside the caller's
write transaction."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from ...curate.labels import Label, parse_pair
from ...errors import InvalidTraceError
from ...store import normalize_task, parse_line
from ...types import TraceRecord
from .model import TraceRow

BATCH_LINES = 500  # per write transaction: a label waits for at most one batch of the log
PREVIEW_CHARS = 240
ERROR_CHARS = 300


def task_key(task: str) -> int:
    """A hash of the normalised task: what an export's dedupe compares (the export hashes ``normalize_task`` too)."""
    digest = hashlib.blake2b(normalize_task(task).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def trace_row(record: TraceRecord, seq: int, offset: int, length: int, lineno: int) -> TraceRow:
    rounds = record.rounds
    first = rounds[0] if rounds else None
    synthesis = record.synthesis.strip()
    error = None
    if record.error is not None:
        e = record.error
        error = f"{e.step} step of round {e.round}: {e.type}: {e.message}"[:ERROR_CHARS]
    return TraceRow(
        seq=seq, offset=offset, length=length, lineno=lineno, id=record.id, created=record.created_at.timestamp(),
        status=record.status, model=record.model, mode=record.mode, source=record.source, score=record.score,
        rounds=len(rounds), contradictions=sum(len(r.contradictions) for r in rounds),
        thesis_chars=len(first.thesis.strip()) if first else 0, synthesis_chars=len(synthesis),
        same_thesis=int(first is not None and synthesis == first.thesis.strip()),
        same_antithesis=int(first is not None and synthesis == first.antithesis.strip()),
        task_key=task_key(record.task), task=record.task[:PREVIEW_CHARS], error=error, demo=int(record.demo),
    )  # fmt: skip


def invalid_row(reason: str, seq: int, offset: int, length: int, lineno: int, created: float) -> TraceRow:
    """The row of a line that is not a valid trace: listed (with why), never read as one."""
    return TraceRow(
        seq=seq, offset=offset, length=length, lineno=lineno, id=None, created=created, status="invalid", model=None,
        mode=None, source=None, score=None, rounds=0, contradictions=0, thesis_chars=0, synthesis_chars=0,
        same_thesis=0, same_antithesis=0, task_key=None, task="", error=reason[:ERROR_CHARS], demo=0,
    )  # fmt: skip


def record_body(record: TraceRecord) -> str:
    """What the full-text search looks in: the task, every text, the error and the judge's feedback."""
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


def index_traces(conn: sqlite3.Connection, log_path: Path, chunk: bytes, offset: int, lines: int) -> tuple[int, int]:
    """Index up to BATCH_LINES complete lines of ``chunk`` (which starts at byte ``offset``, after ``lines`` lines).
    Returns the bytes and the lines consumed."""
    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]
    rows: list[TraceRow] = []
    tags: list[tuple[int, str]] = []
    bodies: list[tuple[int, str]] = []
    pos = counted = 0
    while pos < len(chunk) and len(rows) < BATCH_LINES:
        end = chunk.index(b"\n", pos)
        raw, line_offset, length = chunk[pos:end], offset + pos, end - pos
        counted += 1
        pos = end + 1
        if not raw.strip():
            continue
        seq += 1
        lineno = lines + counted
        try:
            record = parse_line(raw.rstrip(b"\r"), log_path, lineno)
        except InvalidTraceError as exc:
            created = rows[-1].created if rows else _last_created(conn)
            rows.append(invalid_row(exc.reason, seq, line_offset, length, lineno, created))
            continue
        rows.append(trace_row(record, seq, line_offset, length, lineno))
        tags += [(seq, tag) for tag in record.tags]
        bodies.append((seq, record_body(record)))
    conn.executemany(f"INSERT INTO traces VALUES ({', '.join('?' * len(TraceRow._fields))})", rows)
    conn.executemany("INSERT INTO tags(seq, tag) VALUES (?, ?)", tags)
    conn.executemany(
        "INSERT INTO facets(name, value, n) VALUES (?, ?, ?) ON CONFLICT(name, value) DO UPDATE SET n = n + excluded.n",
        [(name, value, n) for (name, value), n in _facet_counts(rows, tags).items()],
    )
    conn.executemany("INSERT INTO texts(rowid, body) VALUES (?, ?)", bodies)
    return pos, counted


def _facet_counts(rows: list[TraceRow], tags: list[tuple[int, str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        for name, value in (("status", row.status), ("model", row.model), ("mode", row.mode), ("source", row.source)):
            if value is not None:
                counts[(name, value)] = counts.get((name, value), 0) + 1
        if row.demo:
            counts[("demo", "demo")] = counts.get(("demo", "demo"), 0) + 1
    for _, tag in tags:
        counts[("tag", tag)] = counts.get(("tag", tag), 0) + 1
    return counts


def index_labels(conn: sqlite3.Connection, chunk: bytes, offset: int, lines: int) -> tuple[int, int]:
    """Index the complete label lines of ``chunk``: the latest label of each pair, its version (how many valid
    labels the pair has had, as ``curate.labels.label_version`` counts them), and one event per label."""
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
    conn.executemany(
        "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT(trace_id, pair) DO UPDATE SET "
        "step = excluded.step, rejected_round = excluded.rejected_round, chosen_round = excluded.chosen_round, "
        "decision = excluded.decision, edited = excluded.edited, created = excluded.created, line = excluded.line, "
        "version = labels.version + 1",
        rows,
    )
    conn.executemany("INSERT INTO label_events VALUES (?, ?)", events)
    return len(chunk), counted


def reset(conn: sqlite3.Connection, name: str) -> None:
    """Forget what was indexed of the log (``name == "log"``) or of the labels."""
    if name == "log":
        conn.execute("DELETE FROM traces")
        conn.execute("DELETE FROM tags")
        conn.execute("DELETE FROM facets")
        conn.execute("INSERT INTO texts(texts) VALUES ('delete-all')")
    else:
        conn.execute("DELETE FROM labels")
        conn.execute("DELETE FROM label_events")
    conn.execute("DELETE FROM meta WHERE key LIKE ?", (f"{name}.%",))


def _last_created(conn: sqlite3.Connection) -> float:
    row = conn.execute("SELECT created FROM traces ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row else 0.0
