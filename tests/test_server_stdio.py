"""hegelion-server as IDE clients run it: a real subprocess over stdio, driven by the SDK client and by the official
MCP Inspector in CLI mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from hegelion_dspy.store import read_records

SERVER = Path(sys.executable).with_name("hegelion-server")
REPO = Path(__file__).resolve().parents[1]
INSPECTOR_VERSION = "2.12.0"


def _params(data_dir: Path, **env: str) -> StdioServerParameters:
    assert SERVER.exists(), f"{SERVER} is missing: install the project (pip install -e .)"
    return StdioServerParameters(command=str(SERVER), env={"HEGELION_DATA_DIR": str(data_dir), **env})


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

    assert names == ["export_dataset", "log_trace", "run_dialectic"]
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


# -- the official MCP Inspector, CLI mode ---------------------------------------------------------------------------


def _inspector() -> list[str]:
    explicit = os.environ.get("MCP_INSPECTOR")
    if explicit:
        return [explicit]
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
    if local.exists():
        return [str(local)]
    npx = shutil.which("npx")
    if npx:
        return [npx, "--yes", f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"]
    pytest.skip(
        "the MCP Inspector is not installed: run `npm install --prefix .ci/node "
        f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}` (or set MCP_INSPECTOR), or install Node.js for npx"
    )


def _inspect(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    data_dir = tmp_path / "data"
    command = [*_inspector(), "--cli", "-e", f"HEGELION_DATA_DIR={data_dir}", str(SERVER), *args]
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json")}
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)


def test_the_inspector_lists_the_three_tools_with_portable_schemas(tmp_path: Path) -> None:
    done = _inspect(tmp_path, "--strict", "--method", "tools/list")
    assert done.returncode == 0, done.stderr
    tools = json.loads(done.stdout)["tools"]
    assert sorted(t["name"] for t in tools) == ["export_dataset", "log_trace", "run_dialectic"]
    assert all("outputSchema" in t and "annotations" in t for t in tools)


def _call_log_trace(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return _inspect(tmp_path, "--method", "tools/call", "--tool-name", "log_trace", "--tool-arg", *arguments)


def test_the_inspector_calls_log_trace(tmp_path: Path) -> None:
    done = _call_log_trace(
        tmp_path,
        "task=Is 1 prime?",
        "thesis=Yes.",
        "antithesis=It has one divisor.",
        "synthesis=No, 1 is not prime.",
        'tags=["inspector"]',
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["isError"] is False
    assert result["structuredContent"]["total"] == 1
    (record,) = read_records(tmp_path / "data" / "traces.jsonl")
    assert (record.id, record.synthesis, record.tags) == (
        result["structuredContent"]["id"],
        "No, 1 is not prime.",
        ["inspector"],
    )


def test_the_inspector_sees_a_refused_call_as_a_tool_error(tmp_path: Path) -> None:
    done = _call_log_trace(tmp_path, "task=t", "thesis=a", "antithesis=b")
    result = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    assert result.get("isError") is True, (done.stdout, done.stderr)
    assert "synthesis" in result["content"][0]["text"]
    assert not (tmp_path / "data" / "traces.jsonl").exists()


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
    assert names == ["export_dataset", "log_trace", "run_dialectic"]
    assert prompts == ["antithesis", "synthesis", "thesis"]
