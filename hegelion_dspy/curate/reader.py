"""Reading trace logs for an export, fast: every line checked against the whole schema, in C.

Full-schema validation with pydantic (``TraceRecord.model_validate_json``) was about half of an export's time. Here a
line is decoded by msgspec into ``TraceLine``, a Struct made from ``TraceRecord`` itself (``_struct_of`` reads its
fields, nested models, bounds and defaults: the schema keeps one home, ``types.py``), which checks every field and
every nested field at about the cost of a bare ``orjson.loads``. The status rules then run as TraceRecord's own model
validator (``_status_is_consistent``) on the decoded line. Any line that fails either, and any line msgspec reads
differently from pydantic (a ``"1"`` pydantic coerces to an int, a timestamp in another form than the writer's), goes
to ``store.parse_line``: a bad line fails with exactly the message it always had (path, line, field, fix), and a line
pydantic accepts reads as pydantic reads it. ``tests/curate/test_reader.py`` checks on mutated traces that this
accepts nothing ``TraceRecord`` refuses and reads what it accepts to the same values.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import msgspec
from annotated_types import Ge, MaxLen, MinLen
from pydantic import BaseModel

from ..store import parse_line, read_lines
from ..types import TraceRecord

# The writer's timestamp (pydantic's isoformat): the one form read here, parsed by datetime.fromisoformat (which
# reads it as pydantic does); any other form goes to pydantic. msgspec's own datetime would round a seventh digit.
CANONICAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"


def _meta(metadata: list[Any]) -> msgspec.Meta | None:
    """A pydantic field's bounds as msgspec's."""
    bounds: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, MaxLen):
            bounds["max_length"] = m.max_length
        elif isinstance(m, MinLen):
            bounds["min_length"] = m.min_length
        elif isinstance(m, Ge):
            bounds["ge"] = m.ge
        else:
            raise TypeError(f"reader.py does not translate the bound {m!r}; add it to _meta")
    return msgspec.Meta(**bounds) if bounds else None


def _type_of(annotation: Any) -> Any:
    """A pydantic annotation as msgspec's: nested models become Structs, the rest maps one to one."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _struct_of(annotation)
    if origin is list:
        return list[_type_of(get_args(annotation)[0])]  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(annotation)
        return dict[_type_of(key), _type_of(value)]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        return Union[tuple(_type_of(a) for a in get_args(annotation))]  # noqa: UP007
    if origin is Literal or annotation in (str, int, float, bool, datetime, type(None), Any):
        return annotation
    raise TypeError(f"reader.py does not translate the type {annotation!r}; add it to _type_of")


def _bounded(kind: Any, meta: msgspec.Meta | None) -> Any:
    """``kind`` with the bounds, on its non-None members when it is optional (as pydantic applies them)."""
    if meta is None:
        return kind
    if get_origin(kind) in (Union, types.UnionType):
        return Union[tuple(a if a is type(None) else Annotated[a, meta] for a in get_args(kind))]  # noqa: UP007
    return Annotated[kind, meta]


# What _struct_of carries over from a model: its fields; its configuration only as below; no validator but the
# status rule, run by ``checked``. Anything else (a field validator, strict or stripping strings) would let the fast
# way accept what pydantic refuses: refused loudly at import instead.
_CONFIG = {"extra": "forbid", "str_strip_whitespace": False}
_MODEL_VALIDATORS: dict[type[BaseModel], set[str]] = {TraceRecord: {"_status_is_consistent"}}


def _check_translatable(model: type[BaseModel]) -> None:
    found = model.__pydantic_decorators__
    extra_config = {k: v for k, v in model.model_config.items() if _CONFIG.get(k, object()) != v}
    validators = set(found.model_validators) - _MODEL_VALIDATORS.get(model, set())
    others = [found.validators, found.field_validators, found.root_validators, found.computed_fields]
    if extra_config or validators or any(others):
        raise TypeError(
            f"reader.py cannot mirror {model.__name__} ({extra_config or validators or others}); teach _struct_of "
            "the new rule, or read this model with pydantic only"
        )


@cache
def _struct_of(model: type[BaseModel]) -> type[msgspec.Struct]:
    """A msgspec Struct with ``model``'s fields, types, bounds and defaults, unknown fields refused (extra="forbid").

    A field whose default is made per record (an id, a creation time) is required here: a line without it goes to
    pydantic, which makes it. ``created_at`` is read as the writer's string and parsed after."""
    _check_translatable(model)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        kind = _type_of(info.annotation)
        meta = _meta(info.metadata)
        if name == "created_at":
            kind, meta = str, msgspec.Meta(pattern=CANONICAL_TIME)
        kind = _bounded(kind, meta)
        if info.default_factory in (list, dict):
            fields.append((name, kind, msgspec.field(default_factory=info.default_factory)))
        elif info.default_factory is not None or info.is_required():
            fields.append((name, kind))
        else:
            fields.append((name, kind, info.default))
    properties = {k: v for k, v in vars(model).items() if isinstance(v, property)}  # TraceRecord.ok, first_thesis
    return msgspec.defstruct(
        f"{model.__name__}Line", fields, kw_only=True, forbid_unknown_fields=True, gc=False, namespace=properties
    )


TraceLine = _struct_of(TraceRecord)
_decode = msgspec.json.Decoder(TraceLine).decode
# the model validator, run on the decoded line (pydantic keeps the decorated function as the class attribute)
_status_is_consistent: Callable[[TraceRecord], TraceRecord] = TraceRecord._status_is_consistent  # type: ignore[assignment]


def checked(raw: bytes) -> TraceRecord | None:
    """The line as a ``TraceLine`` when it is surely a valid trace; None sends it to pydantic.

    Typed as a TraceRecord: a TraceLine has the same fields by the same names and types, and its ``ok`` and
    ``first_thesis``; it has none of its methods (no ``model_dump``)."""
    try:
        line = cast(TraceRecord, _decode(raw))
        line.created_at = datetime.fromisoformat(line.created_at)  # type: ignore[arg-type]  # str as read
        return _status_is_consistent(line)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None


def parse_for_export(raw: bytes, path: str | Path, lineno: int) -> TraceRecord:
    """One log line as the export reads it: ``checked``, else ``parse_line``'s TraceRecord or its
    InvalidTraceError (path, line, field)."""
    line = checked(raw)
    return line if line is not None else parse_line(raw, path, lineno)


def read_for_export(
    path: str | Path, *, skip_invalid: bool = False, on_invalid: Callable[[Any], None] | None = None
) -> Iterator[TraceRecord]:
    """``store.read_records`` with ``parse_for_export``: the same lines, errors and torn-line handling
    (``store.read_lines``). A valid line goes straight from the file to ``checked``, newline and all (JSON
    whitespace to msgspec); a blank, torn, odd (a byte-order mark) or bad line takes ``read_lines``'s steps."""
    return read_lines(path, parse_for_export, skip_invalid=skip_invalid, on_invalid=on_invalid, fast=checked)
