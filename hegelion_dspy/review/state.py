"""The app's shared state: its index (kept fresh; a big catch-up runs in a background thread while pages are served
from what is indexed, or from the log itself), its labels sidecar and its options."""

from __future__ import annotations

import threading
from typing import Any

from ..curate.labels import LabelStore
from ..types import TraceRecord
from .config import ReviewConfig
from .index import IndexState, Page, TraceIndex, TraceQuery

INLINE_SYNC_BYTES = 16 << 20  # a log that grew by less is indexed during the request; more goes to a background thread
PER_PAGE = 50


class ReviewState:
    """The index of the app's log, its labels and its options, shared by every request."""

    def __init__(self, config: ReviewConfig):
        self.config = config
        self.index = TraceIndex(config.log_path, path=config.index_path)
        self.labels = LabelStore.beside(config.log_path)
        self._catching_up: threading.Thread | None = None
        self._lock = threading.Lock()
        self._charts: tuple[Any, Any] | None = None
        self.catch_up_error: str | None = None

    def refresh(self) -> IndexState:
        """Bring the index up to date: at once when little was appended, else in the background. Returns the state.

        Labels are synced only when the sidecar changed: a sync takes the index's write lock, which a background
        batch of the log holds for a moment."""
        state = self.index.state()
        if state.complete:
            return state
        behind = (state.log_bytes - state.indexed_bytes) + (state.labels_bytes - state.indexed_label_bytes)
        if behind <= INLINE_SYNC_BYTES and not self.catching_up:
            return self.index.sync()
        with self._lock:
            if not self.catching_up:
                self._catching_up = threading.Thread(target=self._catch_up, name="hegelion-review-index", daemon=True)
                self._catching_up.start()
        if state.labels_bytes != state.indexed_label_bytes:
            return self.index.sync(log=False)  # labels are small: always current
        return state

    @property
    def catching_up(self) -> bool:
        return self._catching_up is not None and self._catching_up.is_alive()

    def _catch_up(self) -> None:
        try:
            self.index.sync()
        except Exception as exc:  # the edge of a background thread: shown on the next page
            self.catch_up_error = f"{type(exc).__name__}: {exc}"

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

    def shape(self, query: TraceQuery) -> Any:
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
