"""``TraceIndex``: the index of one trace log (and its labels sidecar), kept up to date and queried."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ...curate.labels import Label, labels_path
from ...curate.selection import Keep, TraceFilter, keep_rank, outranks
from ...errors import InvalidTraceError
from ...store import parse_line
from ...types import TraceRecord
from .flags import compute_flags, store_flags
from .ingest import index_labels, index_traces, trace_row
from .model import (
    EVERY_TRACE,
    FIRST_LAST,
    MAX_PAGE,
    MAX_PER_PAGE,
    SUMMARY_COLUMNS,
    IndexState,
    Page,
    PairView,
    TraceQuery,
    TraceRow,
    TraceSummary,
)
from .schema import index_path, open_index
from .stats import DatasetShape, dataset_shape
from .sync import Indexer, sync_file
from .tail import complete_end, lines_backwards, lines_with_id
from .where import filter_where, query_where, review_counts

FACET_NAMES = ("status", "model", "mode", "source", "tag", "demo", "flag")
MAX_FACET_VALUES = 200
TAIL_LINES = 2000  # how far back the newest traces are looked for in the log while it is first indexed


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

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            if self._conn is None:
                self._conn = open_index(self.path)
            yield self._conn

    # -- keeping up with the log ---------------------------------------------------------------------------------

    def state(self) -> IndexState:
        """How much of the log and the labels the index has read (cheap: two stats and one query)."""
        with self._reader() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            pending = conn.execute("SELECT count(*) FROM traces WHERE flags IS NULL").fetchone()[0]
        return IndexState(
            log_bytes=_size(self.log_path),
            indexed_bytes=int(meta.get("log.offset", 0)),
            lines=int(meta.get("log.lines", 0)),
            labels_bytes=_size(self.labels_path),
            indexed_label_bytes=int(meta.get("labels.offset", 0)),
            flags_pending=pending,
        )

    def sync(
        self, *, seconds: float | None = None, log: bool = True, labels: bool = True, flags: bool = True
    ) -> IndexState:
        """Index what was appended to the log and the labels since the last sync; returns the new state. With
        ``flags``, then compute the quality flags the log's lines do not carry (``fill_flags``).

        ``seconds`` bounds the time spent on the log (the rest is indexed by the next call). Another thread or process
        may be syncing the same index: SQLite serialises the writers, one batch at a time, and each continues from
        where the other stopped (so labels are picked up at once even while a large log is being indexed).
        """
        if log:
            log_path = self.log_path

            def traces(conn: sqlite3.Connection, chunk: bytes, offset: int, lines: int) -> tuple[int, int]:
                return index_traces(conn, log_path, chunk, offset, lines)

            self._sync("log", self.log_path, traces, seconds)
        if labels:
            self._sync("labels", self.labels_path, index_labels, None)
        if log and flags:
            self.fill_flags()
        return self.state()

    def fill_flags(self, *, seconds: float | None = None) -> int:
        """Compute the quality flags of the indexed traces that have none yet (``flags.compute_flags``), a batch at
        a time, each written in one short write transaction, for at most about ``seconds`` (None: all). Returns how
        many were computed."""
        deadline = None if seconds is None else time.monotonic() + seconds
        done = 0
        with self._sync_locks["log"]:
            conn = open_index(self.path)
            try:
                fd = os.open(self.log_path, os.O_RDONLY)
            except FileNotFoundError:
                conn.close()
                return done
            try:
                while (found := compute_flags(conn, fd, self.log_path)).flags:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        store_flags(conn, found)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    done += len(found.flags)
                    if deadline is not None and time.monotonic() > deadline:
                        break
                return done
            finally:
                os.close(fd)
                conn.close()

    def _sync(self, name: str, path: Path, index: Indexer, seconds: float | None) -> None:
        with self._sync_locks[name]:
            conn = open_index(self.path)
            try:
                sync_file(conn, name, str(path), index, seconds)
            finally:
                conn.close()

    # -- the list ------------------------------------------------------------------------------------------------

    def query(
        self, query: TraceQuery = EVERY_TRACE, *, page: int = 1, per_page: int = 50, view: PairView = FIRST_LAST
    ) -> Page:
        """One page of the traces that match, newest first. A page past the last one is the last page."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        where, params = query_where(query, view)
        decided, needed = review_counts(view)
        columns = ", ".join(f"t.{name}" for name in SUMMARY_COLUMNS)
        sql = (
            f"SELECT {columns}, {decided}, {needed} FROM traces t WHERE {where} "
            "ORDER BY t.created DESC, t.seq DESC LIMIT ? OFFSET ?"
        )
        with self._reader() as conn:
            total = conn.execute(f"SELECT count(*) FROM traces t WHERE {where}", params).fetchone()[0]
            last = max(1, -(-total // per_page))
            page = min(max(1, page), last, MAX_PAGE)
            items = [TraceSummary(*row) for row in conn.execute(sql, [*params, per_page, (page - 1) * per_page])]
            _fill(conn, items)
        return Page(items=items, total=total, page=page, per_page=per_page)

    def neighbours(
        self, trace_id: str, query: TraceQuery = EVERY_TRACE, *, view: PairView = FIRST_LAST
    ) -> tuple[str | None, str | None]:
        """The ids of the traces listed just before (newer) and after (older) ``trace_id`` under ``query``."""
        where, params = query_where(query, view)
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

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        """The values each filter can take, with counts (models, modes, sources, statuses, tags)."""
        # Counted while indexing (the facets table), so this costs nothing however long the log is.
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in FACET_NAMES}
        with self._reader() as conn:
            for name, value, n in conn.execute("SELECT name, value, n FROM facets ORDER BY name, n DESC, value"):
                if len(out[name]) < MAX_FACET_VALUES:
                    out[name].append((value, n))
        return out

    def stats(self, query: TraceQuery = EVERY_TRACE, *, view: PairView = FIRST_LAST, min_chars: int = 0,
              min_score: float | None = None) -> DatasetShape:  # fmt: skip
        """Aggregates for the charts over the traces matching ``query`` (``stats.dataset_shape``)."""
        with self._reader() as conn:
            return dataset_shape(conn, query, view, min_chars, min_score)

    # -- one trace -----------------------------------------------------------------------------------------------

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

    def read_unindexed(self, trace_id: str) -> TraceRecord | None:
        """The trace with this id from the part of the log the index has not read yet (its last line there), read
        from the log backwards; None when it is not there. What a trace page shows while a big log is indexed."""
        indexed = self.state().indexed_bytes
        fd = os.open(self.log_path, os.O_RDONLY)
        try:
            end = complete_end(fd, os.fstat(fd).st_size)
            for _, raw in lines_with_id(fd, min(indexed, end), end, trace_id):
                with contextlib.suppress(InvalidTraceError):  # listed with its reason once indexed
                    record = parse_line(raw.rstrip(b"\r"), self.log_path, 0)
                    if record.id == trace_id:
                        return record
        finally:
            os.close(fd)
        return None

    def newest_from_log(self, n: int = 50, *, view: PairView = FIRST_LAST) -> list[TraceSummary]:
        """The newest ``n`` traces as they stand at the end of the log (demo traces and invalid lines left out, as
        the default list does), without the index: the first page while a big log is indexed. Reads back at most
        ``TAIL_LINES`` lines."""
        items: list[TraceSummary] = []
        try:
            fd = os.open(self.log_path, os.O_RDONLY)
        except FileNotFoundError:
            return items
        try:
            lines = lines_backwards(fd, 0, complete_end(fd, os.fstat(fd).st_size))
            for (offset, raw), _ in zip(lines, range(TAIL_LINES), strict=False):
                try:
                    record = parse_line(raw.rstrip(b"\r"), self.log_path, 0)
                except InvalidTraceError:
                    continue
                if not record.demo:
                    items.append(_tail_summary(trace_row(record, 0, offset, len(raw), 0), record, view))
                if len(items) == n:
                    break
        finally:
            os.close(fd)
        with self._reader() as conn:
            _fill_decisions(conn, items)
        return items

    def kept_instead(
        self,
        trace_id: str,
        *,
        keep: Keep = "best",
        traces: TraceFilter = EVERY_TRACE.traces,
        min_score: float | None = None,
    ) -> str | None:
        """The id of the trace an export's dedupe keeps for this trace's task instead of this one, or None (this one
        is kept, or it is not ``ok``). The rival traces are the ``ok`` ones of the same normalised task that pass
        ``traces`` and ``min_score``, read in log order and ranked by ``selection.outranks`` as the export ranks them
        (an export also passes over a trace none of whose rows survive; the index cannot see that)."""
        clauses, params = filter_where(traces)
        if min_score is not None:
            clauses.append("t.score >= ?")
            params.append(min_score)
        extra = "".join(f" AND {clause}" for clause in clauses)
        with self._reader() as conn:
            here = conn.execute(
                "SELECT seq, task_key FROM traces WHERE id = ? AND status = 'ok' ORDER BY seq DESC LIMIT 1", (trace_id,)
            ).fetchone()
            if here is None:
                return None
            rivals = conn.execute(
                f"SELECT t.seq, t.id, t.score, t.created FROM traces t WHERE t.task_key = ? AND t.status = 'ok'{extra} "
                "ORDER BY t.seq",
                [here[1], *params],
            ).fetchall()
        kept = None
        for rival in rivals:
            if kept is None or outranks(keep, keep_rank(rival[2], rival[3]), keep_rank(kept[2], kept[3])):
                kept = rival
        return None if kept is None or kept[0] == here[0] else kept[1]

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

    def versions_for(self, trace_id: str) -> dict[str, int]:
        """The version of each labelled pair of one trace (``curate.labels.label_version``; absent pairs are at 0)."""
        with self._reader() as conn:
            return dict(conn.execute("SELECT pair, version FROM labels WHERE trace_id = ?", (trace_id,)).fetchall())


def _tail_summary(row: TraceRow, record: TraceRecord, view: PairView) -> TraceSummary:
    fields = row._asdict()
    summary = TraceSummary(**{name: fields[name] for name in SUMMARY_COLUMNS}, tags=list(record.tags))
    if record.ok:  # the pairs it has under the view, as ``where.review_counts`` counts them
        summary.needed = len(view.steps) * (len(record.rounds) if view.pairs == "rounds" else 1)
    return summary


def _fill(conn: sqlite3.Connection, items: list[TraceSummary]) -> None:
    """Add each list row's tags and its pairs' decisions."""
    if not items:
        return
    by_seq = {item.seq: item for item in items}
    marks = ", ".join("?" * len(by_seq))
    for seq, tag in conn.execute(f"SELECT seq, tag FROM tags WHERE seq IN ({marks})", list(by_seq)):
        by_seq[seq].tags.append(tag)
    _fill_decisions(conn, items)


def _fill_decisions(conn: sqlite3.Connection, items: list[TraceSummary]) -> None:
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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
