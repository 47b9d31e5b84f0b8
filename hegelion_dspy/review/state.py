"""The app's shared state: its index (kept fresh; a big catch-up runs in a child process, ``index.build``, while
pages are served from what is indexed, or from the log itself), its labels sidecar and its options."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from ..curate.labels import LabelStore
from ..logwrite import WriteTarget, check_writable
from ..types import TraceRecord
from .config import ReviewConfig
from .index import DatasetShape, IndexState, Page, TraceIndex, TraceQuery
from .index.build import NICENESS

INLINE_SYNC_BYTES = 16 << 20  # a log that grew by less is indexed during the request; more goes to a background thread
PER_PAGE = 50
# The child building the index lowers its priority before it imports anything (``-m`` would import the packages
# first, at the app's priority, beside the page it is serving).
BUILDER = (
    f"import os, sys; os.nice({NICENESS}); from hegelion_dspy.review.index.build import main; "
    "sys.exit(main(sys.argv[1:], nice=False))"
)
LABELS_TARGET: WriteTarget = {
    "what": "labels sidecar",
    "nothing": "the review app was not started",
    "elsewhere": "copy the log to a writable folder and review the copy",
    "options": (),
}


class ReviewState:
    """The index of the app's log, its labels and its options, shared by every request."""

    def __init__(self, config: ReviewConfig):
        self.config = config
        self.index = TraceIndex(config.log_path, path=config.index_path)
        self.labels = LabelStore.beside(config.log_path)
        check_writable(self.labels.path, **LABELS_TARGET)  # before a reviewer makes a label it could not keep
        self._worker: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._charts: tuple[tuple[int, int, TraceQuery], DatasetShape] | None = None
        self.catch_up_error: str | None = None

    def warm(self) -> None:
        """Open the index (made when new) before the first request, so the first page does not wait for it."""
        self.index.state()

    def refresh(self) -> IndexState:
        """Bring the index up to date: at once when little was appended, else in the background. Returns the state.

        Labels are synced only when the sidecar changed: a sync takes the index's write lock, which a background
        batch of the log holds for a moment."""
        state = self.index.state()
        if state.complete and not state.flags_pending:
            return state
        behind = (state.log_bytes - state.indexed_bytes) + (state.labels_bytes - state.indexed_label_bytes)
        if behind <= INLINE_SYNC_BYTES and not self.catching_up:
            state = self.index.sync(flags=False)  # quality flags cost more than indexing: in the background
            if not state.flags_pending:
                return state
        self._start_catch_up()
        if state.labels_bytes != state.indexed_label_bytes:
            return self.index.sync(log=False)  # labels are small: always current
        return state

    def _start_catch_up(self) -> None:
        with self._lock:
            if self.catching_up:
                return
            index = self.index
            self._worker = subprocess.Popen(
                [sys.executable, "-c", BUILDER, str(index.log_path), str(index.path), str(index.labels_path),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip

    @property
    def catching_up(self) -> bool:
        """Whether the child building the index runs."""
        return self._worker_runs()

    def _worker_runs(self) -> bool:
        # When the child has ended with an error, its line is kept to show on the next page.
        worker = self._worker
        if worker is None or worker.poll() is None:
            return worker is not None
        if worker.returncode != 0 and worker.stderr is not None:
            self.catch_up_error = worker.stderr.read().decode(errors="replace").strip()[-500:] or str(worker.returncode)
        if worker.stderr is not None:
            worker.stderr.close()
        self._worker = None
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the child building the index (tests, benchmarks)."""
        worker = self._worker
        if worker is not None:
            worker.wait(timeout)
            self._worker_runs()

    def page(self, query: TraceQuery, page: int, state: IndexState) -> Page:
        """A page of the list. While the log is first indexed, the first page of the unfiltered list is read from
        the log's end (the newest traces, which the index reaches last)."""
        view = self.config.view
        if page == 1 and query.everything and not state.complete and self.catching_up:
            items = self.index.newest_from_log(PER_PAGE, view=view)
            return Page(items=items, total=max(state.lines, len(items)), page=1, per_page=PER_PAGE, from_log=True)
        return self.index.query(query, page=page, per_page=PER_PAGE, view=view)

    def read(self, trace_id: str) -> TraceRecord | None:
        """The trace with this id: through the index, or from the part of the log it has not read yet."""
        record = self.index.read(trace_id)
        if record is None and not self.index.state().complete:
            record = self.index.read_unindexed(trace_id)
        return record

    def shape(self, query: TraceQuery) -> DatasetShape:
        """The charts' aggregates, cached until the log, the labels or the filter change."""
        state = self.index.state()
        key = (state.indexed_bytes, state.indexed_label_bytes, query)
        cached = self._charts
        if cached is not None and cached[0] == key:
            return cached[1]
        shape = self.index.stats(
            query, view=self.config.view, min_chars=self.config.min_chars, min_score=self.config.min_score
        )
        self._charts = (key, shape)
        return shape
