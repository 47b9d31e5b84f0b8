"""Building an index in a child process, behind a serving app: ``python -m hegelion_dspy.review.index.build LOG
INDEX LABELS``.

A child rather than a thread, so the build neither competes with the pages for the parent's interpreter lock nor
adds its buffers to the parent's memory; it runs at a lower priority (``nice``) and in slices of a second, and
stops when its parent is gone. A failure is one line on stderr and exit status 1, which the parent shows.
"""

from __future__ import annotations

import os
import sys

from ...errors import HegelionError
from .trace_index import TraceIndex

NICENESS = 10
SLICE_SECONDS = 1.0


def build(log: str, index: str, labels: str, parent: int) -> None:
    """Index the log, then its quality flags, a slice at a time while ``parent`` lives."""
    trace_index = TraceIndex(log, path=index, labels=labels)
    while os.getppid() == parent:
        state = trace_index.sync(seconds=SLICE_SECONDS, flags=False)
        if state.indexed_bytes >= state.log_bytes:
            break
    while os.getppid() == parent and trace_index.fill_flags(seconds=SLICE_SECONDS):
        pass


def main(argv: list[str] | None = None, *, nice: bool = True) -> int:
    log, index, labels, parent = (argv if argv is not None else sys.argv[1:])[:4]
    if nice:  # the app's child has lowered its priority already, before its imports (``review.state.BUILDER``)
        os.nice(NICENESS)
    try:
        build(log, index, labels, int(parent))
    except (HegelionError, OSError) as exc:  # the edge of the child: one line for the parent to show
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
