"""hegelion-server as IDE clients run it: a real subprocess over stdio, where the SDK answers every message - also
the odd ones (a malformed initialize, an initialize after a 2026-07-28 probe, requests sent before the handshake's
reply), on every start, and listing tools writes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from hegelion_dspy.store import read_records

SERVER = Path(sys.executable).with_name("hegelion-server")
REPO = Path(__file__).resolve().parents[2]

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOL_NAMES = ["export_dataset", "label_pair", "log_trace", "review_pairs", "run_dialectic", "show_trace"]
TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}}


def _params(data_dir: Path, **env: str) -> StdioServerParameters:
    assert SERVER.exists(), f"{SERVER} is missing: install the project (pip install -e .)"
    return StdioServerParameters(command=str(SERVER), env={"HEGELION_DATA_DIR": str(data_dir), **env})


def raw_session(data_dir: Path, *messages: dict[str, Any], together: bool = False) -> list[dict[str, Any]]:
    """Send JSON-RPC lines to a fresh server process as a client would; the replies to the requests, in order.
    ``together`` writes every line at once (a client pipelining requests before the handshake's reply)."""
    env = {**os.environ, "HEGELION_DATA_DIR": str(data_dir)}
    with subprocess.Popen([str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        replies = []
        lines = [json.dumps(m).encode() + b"\n" for m in messages]
        if together:
            proc.stdin.write(b"".join(lines))
            proc.stdin.flush()
        for message, line in zip(messages, lines, strict=True):
            if not together:
                proc.stdin.write(line)
                proc.stdin.flush()
            if "id" in message:
                replies.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    return replies


def test_listing_tools_writes_nothing_to_the_data_folder(tmp_path: Path) -> None:
    # Issue 11, failure 1: the replay front recorded the SDK's replies into the data folder on every first start.
    data_dir = tmp_path / "data"
    for _ in range(2):
        init, tools = raw_session(data_dir, INIT, INITIALIZED, TOOLS)
        assert init["result"]["protocolVersion"] == "2025-06-18"
        assert sorted(t["name"] for t in tools["result"]["tools"]) == TOOL_NAMES
    assert not data_dir.exists()


def test_a_malformed_initialize_is_refused_on_every_start(tmp_path: Path) -> None:
    # Issue 11, failure 1: answered with success once replies were recorded, -32602 before.
    bad = {**INIT, "params": {**INIT["params"], "capabilities": "nope"}}  # type: ignore[dict-item]
    raw_session(tmp_path, INIT, INITIALIZED, TOOLS)  # a first, good start
    for _ in range(2):
        (reply,) = raw_session(tmp_path, bad)
        assert reply["error"]["code"] == -32602 and "result" not in reply


def test_an_initialize_after_a_modern_probe_gets_the_sdks_own_answer(tmp_path: Path) -> None:
    # Issue 11, failure 1: a client whose server/discover probe timed out falls back to initialize; the front replayed
    # a success while the SDK had locked the connection to 2026-07-28, and every later request failed.
    raw_session(tmp_path, INIT, INITIALIZED, TOOLS)
    discovered, init, tools = raw_session(tmp_path, DISCOVER, {**INIT, "id": 2}, {**TOOLS, "id": 3})
    assert "2026-07-28" in discovered["result"]["supportedVersions"]
    assert init["error"]["code"] == -32022 and init["error"]["data"]["supported"] == ["2026-07-28"]
    assert tools["error"]["code"] == -32602 and "_meta" in tools["error"]["message"]  # the SDK's errors, not replays
    modern = {**TOOLS, "id": 4, "params": {"_meta": MODERN_META}}
    (listed,) = raw_session(tmp_path, DISCOVER, modern)[1:]
    assert len(listed["result"]["tools"]) == 6


def test_requests_sent_before_the_handshake_reply_are_answered_in_order(tmp_path: Path) -> None:
    init, tools = raw_session(tmp_path, INIT, INITIALIZED, TOOLS, together=True)
    assert (init["id"], tools["id"]) == (1, 2) and len(tools["result"]["tools"]) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_the_console_script_serves_every_tool_over_stdio(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with Client(_params(data_dir)) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        logged = await client.call_tool(
            "log_trace",
            {
                "task": "Is 1 prime?",
                "thesis": "Yes.",
                "antithesis": "One divisor.",
                "synthesis": "No.",
                "tags": ["stdio"],
            },
        )
        workflow = await client.call_tool("run_dialectic", {"task": "Is 1 prime?"})
        exported = await client.call_tool("export_dataset", {"format": "sft"})
        bad = await client.call_tool("export_dataset", {"output_name": "../escape.jsonl"})

    assert names == TOOL_NAMES
    assert logged.structured_content is not None and logged.structured_content["total"] == 1
    (record,) = read_records(data_dir / "traces.jsonl")
    assert (record.id, record.tags) == (logged.structured_content["id"], ["stdio"])
    # no HEGELION_MODEL and a client without sampling: the prompt workflow, never the embedded model
    assert workflow.structured_content is not None
    assert (workflow.structured_content["lm_source"], workflow.structured_content["step"]) == ("prompt", "thesis")
    assert exported.structured_content is not None and exported.structured_content["rows"] == {"train": 1}
    assert bad.is_error and "path separator" in bad.content[0].text  # type: ignore[union-attr]
    assert not (tmp_path / "escape.jsonl").exists()


async def test_a_server_model_runs_the_program_in_the_subprocess(tmp_path: Path) -> None:
    async with Client(_params(tmp_path, HEGELION_MODEL="scripted")) as client:
        result = await client.call_tool("run_dialectic", {"task": "Is 1 prime?", "iterations": 2})
    out = result.structured_content
    assert out is not None and (out["lm_source"], out["status"], out["model"]) == ("server", "ok", "scripted")
    assert out["synthesis"].startswith("Synthesis v2")
    assert len((tmp_path / "traces.jsonl").read_text().splitlines()) == 1


def test_a_bad_setting_is_one_line_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SERVER), "--data-dir", str(tmp_path), "--program", "missing.json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hegelion-server: error: there is no file named 'missing.json'")
    assert "Traceback" not in done.stderr and done.stdout == ""


async def test_the_checked_in_mcp_json_starts_the_server(tmp_path: Path) -> None:
    entry = json.loads((REPO / ".mcp.json").read_text())["mcpServers"]["hegelion"]
    assert entry["type"] == "stdio"
    command = shutil.which(entry["command"], path=f"{SERVER.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert command is not None, f"{entry['command']!r} is not on PATH: install the project"
    params = StdioServerParameters(
        command=command, args=entry["args"], env={**entry["env"], "HEGELION_DATA_DIR": str(tmp_path)}
    )
    async with Client(params, mode="legacy") as client:  # the handshake IDE clients use today
        names = sorted(t.name for t in (await client.list_tools()).tools)
        prompts = sorted(p.name for p in (await client.list_prompts()).prompts)
    assert names == TOOL_NAMES
    assert prompts == ["antithesis", "dialectic", "export", "synthesis", "thesis"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_eras_reach_the_tools_over_stdio(tmp_path: Path, mode: str) -> None:
    async with Client(_params(tmp_path), mode=mode) as client:
        version = client.protocol_version
        tools = (await client.list_tools()).tools
    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28") and len(tools) == 6
