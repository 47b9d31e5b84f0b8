"""Reading JSONL trace logs: a stream of lines in constant memory (``iter_lines``), each parsed into a TraceRecord
(``parse_line``, upgrading old schema versions) or refused as ``path:line: reason`` naming the field, a JSON array
or a torn last line explained (``read_lines``, which other logs' parsers share: the export's ``curate/reader.py``).
``store.TraceStore`` reads through these; writing is ``logwrite``'s.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from .errors import InvalidTraceError, from_validation, option
from .types import SCHEMA_VERSION, TraceRecord, upgrade_record

UTF8_BOM = b"\xef\xbb\xbf"

OnInvalid = Callable[[InvalidTraceError], None]
T = TypeVar("T")


def parse_line(raw: bytes, path: str | Path, lineno: int) -> TraceRecord:
    """Parse one log line into a TraceRecord, or raise InvalidTraceError naming path, line and field."""
    try:
        return TraceRecord.model_validate_json(raw)
    except ValidationError:
        pass  # diagnose below for a precise message; the fast path above serves valid lines
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTraceError(
            f"invalid UTF-8 at byte {exc.start} of the line; trace logs are UTF-8 JSON lines", path=path, lineno=lineno
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text.strip()[:60]
        raise InvalidTraceError(
            f"not JSON ({exc.msg} at column {exc.colno}): {snippet!r}; each line must be one JSON object",
            path=path,
            lineno=lineno,
        ) from None
    if not isinstance(data, dict):
        raise InvalidTraceError(
            f"expected a JSON object, got {type(data).__name__}; each line must be one trace object",
            path=path,
            lineno=lineno,
        )
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise InvalidTraceError(
            f"schema_version {version} is newer than this hegelion-dspy understands ({SCHEMA_VERSION}); "
            "upgrade hegelion-dspy",
            path=path,
            lineno=lineno,
            field="schema_version",
        )
    try:
        return TraceRecord.model_validate(upgrade_record(data))
    except ValidationError as exc:
        fix = "fix or remove this line"
        raise from_validation(exc, source="field", error=InvalidTraceError, fix=fix, path=path, lineno=lineno) from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, raw bytes without the newline, complete?) for every non-blank line, streaming."""
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        for lineno, raw in enumerate(fh, start=1):
            body, complete = line_body(raw, lineno)
            if body is not None:
                yield lineno, body, complete


# A 64 KiB buffer: with the default (4-8 KiB, smaller than many trace lines) readline copies each line in pieces, which
# made reading a 570 MB log 0.4-0.6 s slower (benchmarks/bench_export.py).
READ_BUFFER = 1 << 16


def line_body(raw: bytes, lineno: int) -> tuple[bytes | None, bool]:
    """(the line without its newline, or None for a blank line; whether it had its newline)."""
    if lineno == 1 and raw.startswith(UTF8_BOM):  # editors on Windows save UTF-8 with a byte-order mark
        raw = raw[len(UTF8_BOM) :]
    complete = raw.endswith(b"\n")
    body = raw.rstrip(b"\r\n")
    if body and not body.isspace():  # not body.strip(), without copying the line
        return body, complete
    return None, complete


def read_records(
    path: str | Path, *, skip_invalid: bool = False, on_invalid: OnInvalid | None = None
) -> Iterator[TraceRecord]:
    """Stream the records of one log file.

    An invalid line raises InvalidTraceError unless ``skip_invalid``; skipped lines are reported to ``on_invalid``.
    A last line without its newline that does not parse is reported as torn (an interrupted write).
    """
    return read_lines(path, parse_line, skip_invalid=skip_invalid, on_invalid=on_invalid)


def read_lines(
    path: str | Path,
    parse: Callable[[bytes, Path, int], T],
    *,
    skip_invalid: bool = False,
    on_invalid: OnInvalid | None = None,
    fast: Callable[[bytes], T | None] | None = None,
) -> Iterator[T]:
    """``read_records`` with another line parser ``parse(raw, path, lineno)`` that raises as ``parse_line`` does
    (the export's, curate/reader.py). ``fast(line)``, when given, reads a whole line as read from the file (newline,
    byte-order mark and all) that is surely valid, or returns None to leave it to the steps here: valid lines skip
    them (the export's C decoder, for which the newline is JSON whitespace and anything odd is invalid)."""
    path = Path(path)
    if not path.exists():
        raise InvalidTraceError("no such file; check the path (or run a dialectic first to create it)", path=path)
    if path.is_dir():
        raise InvalidTraceError("is a folder, not a trace log file", path=path)
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        for lineno, line in enumerate(fh, start=1):
            if fast is not None:
                record = fast(line)
                if record is not None:
                    yield record
                    continue
            raw, complete = line_body(line, lineno)
            if raw is None:
                continue
            try:
                yield parse(raw, path, lineno)
            except InvalidTraceError as error:
                problem = _line_problem(error, raw, path, lineno, complete)
                if not skip_invalid:
                    raise problem from None
                if on_invalid is not None:
                    on_invalid(problem)


def _line_problem(error: InvalidTraceError, raw: bytes, path: Path, lineno: int, complete: bool) -> InvalidTraceError:
    """The error to report for a bad line: a JSON array or a torn last line said as such, else ``error`` itself."""
    if lineno == 1 and raw.lstrip().startswith(b"["):
        return InvalidTraceError(
            "the file holds a JSON array, not JSON lines (one trace object a line); convert it with "
            f"jq -c '.[]' {shlex.quote(str(path))} > traces.jsonl",
            path=path,
            lineno=lineno,
        )
    if not complete:
        return InvalidTraceError(
            f"torn last line (no newline at the end: a write was interrupted); {error.reason} — the next "
            f"append to this log repairs it, or set {option('skip_invalid')}",
            path=path,
            lineno=lineno,
            field=error.field,
            options=("skip_invalid",),
        )
    return error
