"""The interop matrix: clients nobody here wrote, against hegelion-server as a real process.

- the official TypeScript SDK client (@modelcontextprotocol/client, npm) on 2024-11-05, 2025-06-18, 2025-11-25 and
  2026-07-28;
- the Python `mcp` 1.x client (its own venv) on the three handshake versions it speaks (it has no 2026-07-28);
- the MCP Inspector CLI 2.12 (Node >= 22.19) in its two eras, legacy (2025-11-25) and modern (2026-07-28); it picks no
  older version, and its CLI has no model to answer sampling.

Each over stdio and streamable HTTP runs initialize (or server/discover), tools/list, every tool, the resource, a
prompt and, for the SDK clients, the sampling route with a model that answers in plain prose. ``.ci/install-server.sh``
installs the clients (pinned) into ``.ci/``; without them these tests skip locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import need
from interop.serving import SERVER, http_server

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parents[1] / "interop"
NODE_MODULES = Path(os.environ.get("MCP_NODE_MODULES", REPO / ".ci" / "node" / "node_modules"))
PY_MCP1 = Path(os.environ.get("MCP_PY1_PYTHON", REPO / ".ci" / "py-mcp1" / "bin" / "python"))
INSTALL = "run .ci/install-server.sh (pinned Node 22, the Inspector CLI, the TypeScript client, a venv with mcp 1.x)"

VERSIONS = {
    "typescript": ("2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28"),
    "python-mcp1": ("2024-11-05", "2025-06-18", "2025-11-25"),
    "inspector": ("2025-11-25", "2026-07-28"),
}
CELLS = [(c, t, v) for c, versions in VERSIONS.items() for t in ("stdio", "http") for v in versions]
TOOLS = ["export_dataset", "label_pair", "log_trace", "review_pairs", "run_dialectic", "show_trace"]


def _node_env() -> dict[str, str]:
    node = NODE_MODULES / ".bin" / "node"
    if not node.exists():
        need("Node >= 22.19 and the MCP clients from npm", INSTALL)
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major, minor = (int(p) for p in version.lstrip("v").split(".")[:2])
    if (major, minor) < (22, 19):
        need(f"Node >= 22.19 (found {version})", INSTALL)
    path = f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the Inspector's `#!/usr/bin/env node`
    return {**os.environ, "PATH": path, "NODE_PATH": str(NODE_MODULES)}


def _lines(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["asked"]: r for r in results}


def run_sdk_client(client: str, transport: str, target: str, data_dir: Path) -> dict[str, dict[str, Any]]:
    """One client script over one transport: a session per protocol version. Returns each version's report."""
    if client == "typescript":
        command, env = [str(NODE_MODULES / ".bin" / "node"), str(SCRIPTS / "ts_client.cjs")], _node_env()
        if not (NODE_MODULES / "@modelcontextprotocol" / "client").exists():
            need("@modelcontextprotocol/client from npm", INSTALL)
    else:
        if not PY_MCP1.exists():
            need("a venv with the Python mcp 1.x client", INSTALL)
        command, env = [str(PY_MCP1), str(SCRIPTS / "py1_client.py")], dict(os.environ)
    argv = [*command, transport, target, str(data_dir), *VERSIONS[client]]
    return _lines(subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL))


def inspect(version: str, transport: str, target: str, data_dir: Path, *args: str) -> dict[str, Any]:
    """One Inspector CLI call (the CLI runs one method per call); its JSON result."""
    inspector = NODE_MODULES / ".bin" / "mcp-inspector"
    env = _node_env()
    if not inspector.exists():
        need("the MCP Inspector CLI 2.12", INSTALL)
    era = "modern" if version == "2026-07-28" else "legacy"
    command = [str(inspector), "--cli", "--protocol-era", era, "--format", "json", "-q"]
    if transport == "stdio":
        command += ["-e", f"HEGELION_DATA_DIR={data_dir}", target]
    else:
        command += [target]
    env["MCP_CATALOG_PATH"] = str(data_dir.parent / f"catalog-{version}-{transport}.json")
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL
    )
    assert done.stdout.strip().startswith("{"), (done.stdout, done.stderr[-3000:])
    return json.loads(done.stdout)


def _tool_call(name: str, *arguments: str) -> list[str]:
    return ["--method", "tools/call", "--tool-name", name, "--tool-arg", *arguments]


def run_inspector(transport: str, target: str, data_dir: Path) -> dict[str, dict[str, Any]]:
    """The interop sequence through the Inspector CLI (one method per call), both eras, four calls at a time: the
    calls that read the log wait for those that write it."""
    tag = f"inspector-{transport}"
    writes = {
        "tools": ["--strict", "--method", "tools/list"],
        "log_trace": _tool_call("log_trace", f"task=interop {tag}", "thesis=Yes.", "antithesis=No.", "synthesis=c"),
        "prompt_workflow": _tool_call("run_dialectic", f"task=workflow {tag}", "thesis=Yes."),
        "unknown_argument": _tool_call("log_trace", "task=t", "model_name=x"),
        "prompt": ["--method", "prompts/get", "--prompt-name", "dialectic", "--prompt-args", f"task=prompt {tag}"],
    }
    reads = {
        "export_dataset": _tool_call("export_dataset", "format=sft", "force=true", f"output_name={tag}.jsonl"),
        "resource": ["--method", "resources/read", "--uri", "hegelion://traces"],
    }
    folders = {v: data_dir / v if transport == "stdio" else data_dir for v in VERSIONS["inspector"]}
    results: dict[str, dict[str, Any]] = {v: {} for v in VERSIONS["inspector"]}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for wave in (writes, reads):
            futures = {
                (version, name): pool.submit(inspect, version, transport, target, folders[version], *args)
                for version in VERSIONS["inspector"]
                for name, args in wave.items()
            }
            for (version, name), future in futures.items():
                results[version][name] = future.result()
    return {version: _inspector_report(found, version) for version, found in results.items()}


def _inspector_report(results: dict[str, dict[str, Any]], version: str) -> dict[str, Any]:
    def tool(name: str) -> dict[str, Any]:
        result = results[name]["result"]
        return {"isError": result.get("isError", False), **(result.get("structuredContent") or {})}

    unknown = results["unknown_argument"]["result"]
    return {
        "asked": version,
        "version": version,  # the CLI prints no negotiated version; the era flag decides it
        "tools": sorted(t["name"] for t in results["tools"]["result"]["tools"]),
        "log_trace": tool("log_trace"),
        "prompt_workflow": tool("prompt_workflow"),
        "export_dataset": tool("export_dataset"),
        "unknown_argument": {"isError": unknown.get("isError"), "text": unknown["content"][0]["text"]},
        "resource": json.loads(results["resource"]["result"]["contents"][0]["text"])["stats"],
        "prompt": "\n".join(m["content"]["text"] for m in results["prompt"]["result"]["messages"]),
    }


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with http_server(tmp_path_factory.mktemp("interop-http") / "data") as (url, _):
        yield url


_reports: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


@pytest.fixture
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    client, transport, version = request.param
    if (client, transport) not in _reports:  # one run of a client script covers all its versions
        data_dir = tmp_path_factory.mktemp(f"{client}-{transport}") / "data"
        target = str(SERVER) if transport == "stdio" else request.getfixturevalue("http_url")
        run = run_inspector if client == "inspector" else (lambda *a: run_sdk_client(client, *a))
        _reports[(client, transport)] = run(transport, target, data_dir)
    cell = _reports[(client, transport)][version]
    assert "error" not in cell, cell["error"]
    return cell


@pytest.mark.parametrize("report", CELLS, ids=["-".join(cell) for cell in CELLS], indirect=True)
def test_every_client_runs_every_tool_the_resource_and_a_prompt(report: dict[str, Any]) -> None:
    assert report["version"] == report["asked"]
    assert report["tools"] == TOOLS
    logged = report["log_trace"]
    assert logged["isError"] is False and logged["ok"] >= 1 and len(logged["id"]) == 32
    workflow = report["prompt_workflow"]
    assert (workflow["lm_source"], workflow["status"], workflow["step"]) == ("prompt", "answer_needed", "antithesis")
    assert workflow["prompt"].count("plain text") == 1 and "[[ ##" not in workflow["prompt"]
    exported = report["export_dataset"]
    assert exported["isError"] is False and exported["rows"]["train"] >= 1
    unknown = report["unknown_argument"]
    assert unknown["isError"] is True and unknown["text"].startswith("unknown argument 'model_name' for the tool")
    assert report["resource"]["total"] >= 1 and report["resource"]["invalid"] == 0
    assert "`log_trace`" in report["prompt"] and "## Step 3: synthesis" in report["prompt"]


SAMPLING_CELLS = [cell for cell in CELLS if cell[0] != "inspector"]


@pytest.mark.parametrize("report", SAMPLING_CELLS, ids=["-".join(cell) for cell in SAMPLING_CELLS], indirect=True)
def test_the_sdk_clients_run_the_sampling_route_with_a_plain_text_model(report: dict[str, Any]) -> None:
    sampled = report["sampling"]
    assert (sampled["lm_source"], sampled["status"]) == ("sampling", "ok"), sampled
    assert sampled["model"].startswith("mcp-sampling/") and sampled["model"].endswith("-client-model")
    assert sampled["requests"] == 5  # iterations 2: five steps, one request each, none repeated
    assert [r["index"] for r in sampled["rounds"]] == [1, 2]
    assert sampled["rounds"][0]["contradictions"] == [{"description": "the thesis skips a case", "evidence": ""}]
