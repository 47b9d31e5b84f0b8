"""The server's wire format, pinned: every tool's name, title, description, input and output schema, hints and
``_meta``, and every prompt's arguments, exactly as ``tests/server/wire.json`` records them.

The file was written from the server before its tool registration was rewritten (plain typed functions instead of
signatures made at run time), so a refactoring that changes what a client sees fails here. A deliberate change to
the wire format rewrites the file: ``HEGELION_WRITE_WIRE=1 python -m pytest tests/server/test_server_wire.py``,
then review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hegelion_server.app import build_server
from mcp import Client

WIRE = Path(__file__).with_name("wire.json")


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
        assert listed["tools"][name] == tool, name
    assert listed["prompts"] == recorded["prompts"]
