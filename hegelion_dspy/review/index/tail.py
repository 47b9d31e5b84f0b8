"""What the log answers before the index has it: its newest lines (the first page of the list while a big log is
first indexed) and a trace by id in the part not indexed yet. Both read backwards from the end in blocks, so
memory stays at a block or two however large the log is."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

BLOCK_BYTES = 1 << 20


def complete_end(fd: int, size: int) -> int:
    """The end of the last complete line (just past its newline) of a file of ``size`` bytes; 0 when there is none."""
    pos = size
    while pos > 0:
        step = min(BLOCK_BYTES, pos)
        newline = os.pread(fd, step, pos - step).rfind(b"\n")
        if newline >= 0:
            return pos - step + newline + 1
        pos -= step
    return 0


def lines_backwards(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of bytes ``[start, end)`` newest first, as ``(offset, line without its newline)``.
    ``start`` must begin a line and ``end`` end one (``complete_end``)."""
    pos, carry = end, b""
    while pos > start:
        step = min(BLOCK_BYTES, pos - start)
        pos -= step
        parts = (os.pread(fd, step, pos) + carry).split(b"\n")
        carry = parts[0]  # the start of a line that began in an earlier block (or, at ``start``, a whole line)
        offsets, offset = [], pos + len(carry) + 1
        for part in parts[1:]:
            offsets.append(offset)
            offset += len(part) + 1
        for offset, part in zip(reversed(offsets), reversed(parts[1:]), strict=True):
            if part.strip():
                yield offset, part
    if carry.strip():
        yield start, carry


def lines_with_id(fd: int, start: int, end: int, trace_id: str) -> Iterator[tuple[int, bytes]]:
    """The lines of ``[start, end)`` that may hold trace ``trace_id`` (its JSON string occurs in them), newest first,
    as ``(offset, line)``. Blocks without the string are passed over without splitting them into lines."""
    needle = json.dumps(trace_id, ensure_ascii=False).encode()
    pos, carry = end, b""
    while pos > start:
        step = min(BLOCK_BYTES, pos - start)
        pos -= step
        buf = os.pread(fd, step, pos) + carry  # ends where a line ends
        first_newline = buf.find(b"\n")
        if pos > start and first_newline < 0:
            carry = buf  # all of it is one line that began in an earlier block
            continue
        # Bytes before the first newline may continue a line that began earlier: they go with the next block.
        cut = 0 if pos == start else first_newline + 1
        hit = buf.rfind(needle, cut)
        while hit >= 0:
            line_start = buf.rfind(b"\n", cut, hit) + 1 or cut
            line_end = buf.find(b"\n", hit)
            yield pos + line_start, buf[line_start : len(buf) if line_end < 0 else line_end]
            hit = buf.rfind(needle, cut, line_start) if line_start > cut else -1
        carry = buf[:first_newline] if pos > start else b""
