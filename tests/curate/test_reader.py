"""The export's fast reader (curate/reader.py) against the schema's home, TraceRecord: on thousands of mutated lines
it accepts nothing pydantic refuses and reads what it accepts to the same values; anything else goes to pydantic."""

from __future__ import annotations

import copy
import random
from typing import Any

import msgspec
import orjson
import pytest
from pydantic import ValidationError

from hegelion_dspy.curate.reader import checked, parse_for_export
from hegelion_dspy.errors import InvalidTraceError
from hegelion_dspy.quality import flags_of, quality_flags
from hegelion_dspy.types import Contradiction, ModelIdentity, Round, TraceFailure, TraceRecord, Usage, upgrade_record


def full_trace() -> dict[str, Any]:
    """A valid v3 line with every field set, as the collect side writes it."""
    rounds = [
        Round(
            index=i,
            thesis=f"Thesis {i} with enough words to be a thesis.",
            antithesis=f"Antithesis {i}: but it misses the edge case.",
            contradictions=[Contradiction(description="misses a case", evidence="empty input")],
            synthesis=f"Synthesis {i}, which handles the empty input.",
            seconds={"thesis": 1.5, "antithesis": 2.0, "synthesis": 1.0},
            usage={"thesis": Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30, cost_usd=0.001)},
            adapters={"synthesis": "ChatAdapter"},
            truncated=["antithesis"],
        )
        for i in (1, 2)
    ]
    record = TraceRecord(
        task="Write a parser.",
        model="openai/gpt-4o-mini",
        lm="dspy.LM",
        adapter="ChatAdapter",
        program="prog.json",
        program_digest="abcd1234abcd1234",
        rounds=rounds,
        synthesis=rounds[-1].synthesis,
        score=0.75,
        cost_usd=0.002,
        flags=["copy"],
        model_identity=ModelIdentity(source="file", path="/m.gguf", sha256="ab" * 32, name="m", demo=True),
        tags=["a", "b"],
        metadata={"k": [1, {"x": None}]},
    )
    return orjson.loads(record.to_json_line())


def failed_trace() -> dict[str, Any]:
    data = full_trace()
    data.update(status="failed", synthesis="", error=TraceFailure(step="synthesis", round=1, type="T", message="m"))
    data["error"] = data["error"].model_dump()
    return data


VALUES: list[Any] = [
    None, "", " ", "\t\n", "x", "ok", "failed", "thesis", "cli", "coding", "file", "x" * 65, "x" * 201, 0, 1, -1, 3, 4,
    1.0, 0.5, -0.5, 2**62, True, False, "1", "0.5", "true", [], [1], ["x"], ["thesis"], ["x"] * 21, {}, {"a": 1},
    {"thesis": 1}, {"thesis": "x"}, {"bogus": 1.0},
    "2026-11-24T10:00:00Z", "2026-11-24T10:00:00", "2026-11-24T10:00:00.1234567Z", "2026-02-30T10:00:00Z",
    "2026-11-24 10:00:00+00:00", "2026-11-24T10:00:00+05:30", "2026-11-24T10:00Z", "2026-11-24", 1764000000,
]  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a decoded line: keys of objects, indexes of lists."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _mutate(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for _ in range(rng.choice((1, 1, 2))):
        path = rng.choice(_paths(data))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = rng.random()
        if action < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.22 and isinstance(parent, dict):
            parent["unknown_field"] = 1
        else:
            parent[path[-1]] = rng.choice(VALUES)
    return data


def _plain(value: Any) -> Any:
    """A decoded line (Structs) or a pydantic dump as plain Python, to compare."""
    if isinstance(value, msgspec.Struct):
        return {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _pydantic(raw: bytes) -> TraceRecord | None:
    try:
        return TraceRecord.model_validate_json(raw)
    except ValidationError:
        return None


@pytest.mark.parametrize("base", [full_trace, failed_trace], ids=["ok", "failed"])
def test_the_fast_reader_accepts_only_what_pydantic_accepts_and_reads_it_alike(base: Any) -> None:
    rng = random.Random(23)
    fast = slow = 0
    for _ in range(1500):
        raw = orjson.dumps(_mutate(base(), rng))
        line, record = checked(raw), _pydantic(raw)
        if line is None:
            slow += 1
            continue
        fast += 1
        assert record is not None, raw
        assert _plain(line) == record.model_dump(), raw
        assert type(line.score) is type(record.score) and type(line.cost_usd) is type(record.cost_usd)
    assert fast > 300 and slow > 300  # both ways were taken


def test_valid_lines_take_the_fast_way_and_read_as_records_do() -> None:
    raw = orjson.dumps(full_trace())
    line, record = checked(raw), TraceRecord.model_validate_json(raw)
    assert line is not None and type(line) is not TraceRecord
    assert (line.ok, line.first_thesis, line.created_at) == (record.ok, record.first_thesis, record.created_at)
    assert _plain(line) == record.model_dump()


def test_a_v2_line_reads_fast_and_its_flags_are_computed_as_for_a_record() -> None:
    data = {**full_trace(), "schema_version": 2}
    del data["flags"], data["model_identity"]
    line = checked(orjson.dumps(data))
    record = TraceRecord.model_validate(upgrade_record(data))
    assert line is not None and line.flags is None and line.schema_version == 3
    assert flags_of(line) == quality_flags(record) == flags_of(record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "ok", "error": {"step": "thesis", "round": 1, "type": "T", "message": "m"}}, "must not carry"),
        ({"synthesis": "another text"}, "must equal the last round's synthesis"),
        ({"created_at": "2026-11-24T10:00:00"}, "timezone"),
        ({"task": 5}, "field 'task'"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_a_bad_line_gets_pydantics_message_with_path_line_and_field(change: dict[str, Any], message: str) -> None:
    raw = orjson.dumps({**full_trace(), **change})
    assert checked(raw) is None
    with pytest.raises(InvalidTraceError, match=message) as err:
        parse_for_export(raw, "log.jsonl", 7)
    assert str(err.value).startswith("log.jsonl:7: ")


def test_a_model_rule_the_struct_cannot_mirror_is_refused_at_import_not_skipped() -> None:
    from pydantic import BaseModel, ConfigDict, field_validator

    from hegelion_dspy.curate.reader import _struct_of

    class Checked(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str

        @field_validator("text")
        @classmethod
        def _no_x(cls, value: str) -> str:
            return value

    class Stripped(BaseModel):
        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
        text: str

    for model in (Checked, Stripped):
        with pytest.raises(TypeError, match="cannot mirror"):
            _struct_of(model)
