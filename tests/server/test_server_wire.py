"""The server's wire format, pinned: every tool's name, title, description, input and output schema, hints and
``_meta``, and every prompt's arguments, exactly as ``tests/server/wire.json`` records them.

The file was written from the server before its tool registration was rewritten (plain typed functions instead of
signatures made at run time), so a refactoring that changes what a client sees fails here. One difference is known and
kept: the SDK titles a tool's input schema after the Python function (``<function>Arguments``), which used to be the
wrapper ``call`` and is now the tool's own function.

The tools' library options are checked against the library's models: every ``RunSpec`` field is a run_dialectic
parameter or refused with a reason, and an offered option keeps the library's type, limits and default.

A deliberate change to the wire format rewrites the file:
``HEGELION_WRITE_WIRE=1 python -m pytest tests/server/test_server_wire.py``, then review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hegelion_server.app import build_server
from hegelion_server.schemas import (
    EXPORT_OPTIONS_NOT_OFFERED,
    RUN_OPTIONS_NOT_OFFERED,
    RUN_OPTIONS_RESHAPED,
    ExportDatasetArguments,
)
from mcp import Client
from pydantic import TypeAdapter

from hegelion_dspy.collect.spec import RunSpec

WIRE = Path(__file__).with_name("wire.json")
# the input schema's title, recorded from the old wrapper function ``call``: the SDK names it after the function
RETITLED = {name: ("callArguments", f"{name}Arguments") for name in ("run_dialectic", "log_trace", "export_dataset")}


async def _listed(data_dir: Path) -> dict[str, Any]:
    async with Client(build_server(data_dir=data_dir)) as client:
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
    dumped = {"mode": "json", "by_alias": True, "exclude_none": True}
    return {
        "tools": {t.name: t.model_dump(**dumped) for t in tools},  # type: ignore[arg-type]
        "prompts": {p.name: p.model_dump(**dumped) for p in prompts},  # type: ignore[arg-type]
    }


async def test_tools_and_prompts_are_listed_exactly_as_recorded(tmp_path: Path) -> None:
    listed = await _listed(tmp_path / "data")
    if os.environ.get("HEGELION_WRITE_WIRE") == "1":
        WIRE.write_text(json.dumps(listed, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    recorded = json.loads(WIRE.read_text(encoding="utf-8"))
    assert sorted(listed["tools"]) == sorted(recorded["tools"])
    for name, tool in recorded["tools"].items():
        if name in RETITLED:
            was, now = RETITLED[name]
            assert (tool["inputSchema"]["title"], listed["tools"][name]["inputSchema"]["title"]) == (was, now)
            tool["inputSchema"]["title"] = now
        assert listed["tools"][name] == tool, name
    assert listed["prompts"] == recorded["prompts"]


async def test_every_run_option_is_a_run_dialectic_parameter_or_refused_with_a_reason(tmp_path: Path) -> None:
    parameters = (await _listed(tmp_path / "data"))["tools"]["run_dialectic"]["inputSchema"]["properties"]
    options = set(RunSpec.model_fields)
    forgotten = options - set(RUN_OPTIONS_NOT_OFFERED) - set(parameters)
    assert forgotten == set(), "a RunSpec field run_dialectic neither takes nor refuses: add it to one (schemas.py)"
    assert set(RUN_OPTIONS_NOT_OFFERED) <= options and set(RUN_OPTIONS_RESHAPED) <= options  # no stale entry
    assert set(RUN_OPTIONS_NOT_OFFERED).isdisjoint(parameters)
    assert all(len(reason) > 20 for reason in [*RUN_OPTIONS_NOT_OFFERED.values(), *RUN_OPTIONS_RESHAPED.values()])
    offered = options - set(RUN_OPTIONS_NOT_OFFERED) - set(RUN_OPTIONS_RESHAPED)
    assert offered == {"mode", "iterations"}
    for name in offered:  # the library's type, limits and default; only the wording is the client's
        info = RunSpec.model_fields[name]
        shape = {k: v for k, v in parameters[name].items() if k not in {"description", "title", "default"}}
        assert shape == TypeAdapter(info.rebuild_annotation()).json_schema(), name
        assert parameters[name]["default"] == info.default, name


async def test_each_export_option_is_offered_as_the_library_declares_it(tmp_path: Path) -> None:
    parameters = (await _listed(tmp_path / "data"))["tools"]["export_dataset"]["inputSchema"]["properties"]
    declared = ExportDatasetArguments.model_json_schema()["properties"]
    assert set(parameters) == set(declared) - EXPORT_OPTIONS_NOT_OFFERED
    for name, schema in parameters.items():
        default = ExportDatasetArguments.model_fields[name].get_default(call_default_factory=True)
        assert schema == {**declared[name], "default": default}, name  # a factory's default is listed as its value
