"""Fast start: initialize and tools/list answered from replies recorded from the SDK itself, byte for byte the same,
and everything else handed to the SDK in order."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hegelion_server.faststart import REPLIES_NAME, Front, code_fingerprint, data_dir_from_env
from mcp import Client, StdioServerParameters

from hegelion_dspy.store import default_data_dir

SERVER = Path(sys.executable).with_name("hegelion-server")
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
CALL = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "log_trace", "arguments": {"task": "t", "thesis": "a", "antithesis": "b", "synthesis": "c"}},
}


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def session(data_dir: Path) -> tuple[list[dict[str, Any]], float]:
    """One raw JSON-RPC session like an IDE's: initialize, tools/list, one tool call. Returns replies and the time
    from spawn to the tools/list answer."""
    started = time.perf_counter()
    command = [str(SERVER), "--data-dir", str(data_dir)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        replies = []
        proc.stdin.write(_line(INIT))
        proc.stdin.flush()
        replies.append(json.loads(proc.stdout.readline()))
        proc.stdin.write(_line(INITIALIZED) + _line(TOOLS))
        proc.stdin.flush()
        replies.append(json.loads(proc.stdout.readline()))
        listed = time.perf_counter() - started
        proc.stdin.write(_line(CALL))
        proc.stdin.flush()
        replies.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == b""  # nothing more: the SDK's duplicate initialize answer was dropped
    return replies, listed


def test_a_second_start_replays_exactly_what_the_sdk_answered(tmp_path: Path) -> None:
    cold, _ = session(tmp_path)
    assert (tmp_path / REPLIES_NAME).exists()
    warm, _ = session(tmp_path)

    assert [r["id"] for r in warm] == [1, 2, 3]
    assert warm[0] == cold[0] and warm[1] == cold[1]  # identical initialize and tools/list replies
    assert warm[0]["result"]["protocolVersion"] == "2025-06-18"
    assert sorted(t["name"] for t in warm[1]["result"]["tools"]) == ["export_dataset", "log_trace", "run_dialectic"]
    assert warm[2]["result"]["structuredContent"]["total"] == 2  # the SDK took over: the call went through
    assert len((tmp_path / "traces.jsonl").read_text().splitlines()) == 2


def test_replies_recorded_by_other_code_are_ignored(tmp_path: Path) -> None:
    stale = {"fingerprint": "other code", "replies": {"tools/list:2025-06-18": {"tools": [{"name": "stale"}]}}}
    (tmp_path / REPLIES_NAME).write_text(json.dumps(stale))
    replies, _ = session(tmp_path)
    assert "stale" not in json.dumps(replies[1])
    assert json.loads((tmp_path / REPLIES_NAME).read_text())["fingerprint"] == code_fingerprint()


async def test_the_sdk_client_works_after_a_fast_start(tmp_path: Path) -> None:
    session(tmp_path)  # record
    params = StdioServerParameters(command=str(SERVER), env={"HEGELION_DATA_DIR": str(tmp_path)})
    async with Client(params, mode="legacy") as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("run_dialectic", {"task": "Is 1 prime?"})
    assert len(tools) == 3
    assert result.structured_content is not None and result.structured_content["step"] == "thesis"


# -- the front alone ------------------------------------------------------------------------------------------------


def _front(tmp_path: Path, replies: dict[str, Any]) -> tuple[Front, io.BytesIO]:
    (tmp_path / REPLIES_NAME).write_text(json.dumps({"fingerprint": code_fingerprint(), "replies": replies}))
    wire = io.BytesIO()
    return Front(tmp_path, wire), wire


def _queued(front: Front) -> list[dict[str, Any]]:
    """The JSON messages queued for the SDK (lines that are not JSON are queued too: the SDK reports them)."""
    out = []
    while (raw := front.inbox.get_nowait()) is not None:
        if raw.startswith(b"{"):
            out.append(json.loads(raw))
    return out


def test_recorded_replies_are_answered_and_only_initialize_still_reaches_the_sdk(tmp_path: Path) -> None:
    init_reply = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "hegelion"}}
    tools_reply = {"tools": [{"name": "log_trace"}]}
    front, wire = _front(tmp_path, {"initialize:2025-06-18": init_reply, "tools/list:2025-06-18": tools_reply})

    front.pump(io.BytesIO(_line(INIT) + _line(INITIALIZED) + _line(TOOLS) + _line(CALL) + b"not json\n"))

    answered = [json.loads(line) for line in wire.getvalue().splitlines()]
    assert answered == [
        {"jsonrpc": "2.0", "id": 1, "result": init_reply},
        {"jsonrpc": "2.0", "id": 2, "result": tools_reply},
    ]
    assert [m.get("method") for m in _queued(front)] == ["initialize", "notifications/initialized", "tools/call"]


def test_the_sdks_duplicate_initialize_answer_is_dropped_and_others_pass(tmp_path: Path) -> None:
    front, _ = _front(tmp_path, {"initialize:2025-06-18": {"protocolVersion": "2025-06-18"}})
    front.pump(io.BytesIO(_line(INIT)))
    assert (
        front.sdk_reply(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18"}})) is False
    )
    assert front.sdk_reply(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}})) is True  # only once
    assert front.sdk_reply(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress"})) is True


def test_unrecorded_replies_are_recorded_from_the_sdk(tmp_path: Path) -> None:
    front, wire = _front(tmp_path, {})
    front.pump(io.BytesIO(_line(INIT)))
    assert wire.getvalue() == b""  # nothing recorded: the SDK answers
    sdk_answer = {"protocolVersion": "2025-06-18", "serverInfo": {"name": "hegelion"}}
    assert front.sdk_reply(json.dumps({"jsonrpc": "2.0", "id": 1, "result": sdk_answer})) is True

    front._inspecting = True
    front.pump(io.BytesIO(_line(TOOLS)))
    front.sdk_reply(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": []}}))

    saved = json.loads((tmp_path / REPLIES_NAME).read_text())
    assert saved["replies"] == {"initialize:2025-06-18": sdk_answer, "tools/list:2025-06-18": {"tools": []}}


def test_a_paged_or_modern_tools_list_is_left_to_the_sdk(tmp_path: Path) -> None:
    front, wire = _front(
        tmp_path, {"initialize:2025-06-18": {"protocolVersion": "2025-06-18"}, "tools/list:2025-06-18": {"tools": []}}
    )
    paged = {**TOOLS, "params": {"cursor": "abc"}}
    front.pump(io.BytesIO(_line(INIT) + _line(paged)))
    assert len(wire.getvalue().splitlines()) == 1  # only the initialize
    assert [m["method"] for m in _queued(front)] == ["initialize", "tools/list"]


@pytest.mark.parametrize(
    "env",
    [
        {"HEGELION_DATA_DIR": "/srv/hegelion"},
        {"HEGELION_DATA_DIR": "", "XDG_DATA_HOME": "/xdg"},
        {"HEGELION_DATA_DIR": "", "XDG_DATA_HOME": ""},
    ],
)
def test_the_front_finds_the_same_data_folder_as_the_library(monkeypatch: pytest.MonkeyPatch, env: dict) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert data_dir_from_env() == default_data_dir()
    assert data_dir_from_env("~/x") == Path("~/x").expanduser()


def test_start_up_imports_neither_dspy_nor_the_sdk_before_the_front_answers(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "import hegelion_server.__main__, hegelion_server.faststart\n"
        "front_modules = set(sys.modules)\n"
        "from hegelion_server.app import build_server\n"
        f"build_server(data_dir={str(tmp_path)!r})\n"
        "heavy = [m for m in ('dspy', 'litellm', 'torch', 'transformers') if m in sys.modules]\n"
        "early = [m for m in ('mcp', 'pydantic', 'hegelion_dspy') if m in front_modules]\n"
        "print(heavy, early)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[] []"
