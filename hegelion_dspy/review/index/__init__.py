"""TraceIndex: a SQLite index of a trace log by byte offset, for listing, filtering and searching without loading it.

The log stays the one source of truth and is only ever read. The index keeps, per line, where it is (byte offset,
length, line number) and what lists and charts need (time, status, model, mode, source, tags, score, sizes, a task
preview), a full-text index (SQLite FTS5) over the task and every text, and the latest label of every pair from the
labels sidecar, with the pair's version. It lives in a hidden file beside the log (``.traces.jsonl.index.sqlite``;
safe to delete, it is rebuilt) and is brought up to date incrementally: only complete lines past the indexed offset
are read, so a torn last line waits until it is finished or repaired. A log that shrank, was replaced or changed
under the index (another inode, other first bytes) is indexed afresh. Several processes may share one index (SQLite
WAL + one writer at a time). A trace page reads exactly one line (``os.pread`` at its offset). Memory stays flat
however large the log is.

The modules, by audience: ``model`` (what it answers with: named rows), ``schema`` (the file), ``ingest`` (lines to
rows), ``sync`` (keeping up with a file), ``where`` (the SQL of a filter), ``stats`` (the charts), ``trace_index``
(the class), ``tail`` (what can be answered from the log before the index has it).
"""

from .model import IndexState, Page, PairView, TraceQuery, TraceRow, TraceSummary
from .schema import INDEX_VERSION, index_path
from .stats import DatasetShape
from .trace_index import TraceIndex
from .where import search_expression

__all__ = [
    "INDEX_VERSION",
    "DatasetShape",
    "IndexState",
    "Page",
    "PairView",
    "TraceIndex",
    "TraceQuery",
    "TraceRow",
    "TraceSummary",
    "index_path",
    "search_expression",
]
