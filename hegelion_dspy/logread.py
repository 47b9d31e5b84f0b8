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
    # A 64 KiB buffer: with the default (4-8 KiB, smaller than many trace lines) readline copies each line in pieces,
    # which made reading a 570 MB log 0.4-0.6 s slower (benchmarks/bench_export.py).
    with open(path, "rb", buffering=1 << 16) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(UTF8_BOM):  # editors on Windows save UTF-8 with a byte-order mark
                raw = raw[len(UTF8_BOM) :]
            complete = raw.endswith(b"\n")
            body = raw.rstrip(b"\r\n")
            if body and not body.isspace():  # not body.strip(), without copying the line
                yield lineno, body, complete


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
) -> Iterator[T]:
    """``read_records`` with another line parser ``parse(raw, path, lineno)`` that raises as ``parse_line`` does
    (the export's, curate/reader.py)."""
    path = Path(path)
    if not path.exists():
        raise InvalidTraceError("no such file; check the path (or run a dialectic first to create it)", path=path)
    if path.is_dir():
        raise InvalidTraceError("is a folder, not a trace log file", path=path)
    for lineno, raw, complete in iter_lines(path):
        try:
            yield parse(raw, path, lineno)
        except InvalidTraceError as error:
            problem = error
            if lineno == 1 and raw.lstrip().startswith(b"["):
                problem = InvalidTraceError(
                    "the file holds a JSON array, not JSON lines (one trace object a line); convert it with "
                    f"jq -c '.[]' {shlex.quote(str(path))} > traces.jsonl",
                    path=path,
                    lineno=lineno,
                )
            elif not complete:
                problem = InvalidTraceError(
                    f"torn last line (no newline at the end: a write was interrupted); {error.reason} — the next "
                    f"append to this log repairs it, or set {option('skip_invalid')}",
                    path=path,
                    lineno=lineno,
                    field=error.field,
                    options=("skip_invalid",),
                )
            if not skip_invalid:
                raise problem from None
            if on_invalid is not None:
                on_invalid(problem)
