"""hegelion-server: start-up over stdio against a bare MCPServer, and 50 concurrent log_trace calls over HTTP.

Start-up: spawn the server, send `initialize`, then `tools/list`, as an IDE does, and time spawn -> tools/list
answered. Every start is cold for the server: a fresh data folder each time (nothing is cached there; the check below
says whether listing tools wrote anything). The baseline, measured in the same run and interleaved with it, is a bare
`MCPServer` with three no-op tools on the same SDK and Python: what the SDK allows. The goal is a ratio <= 1.2.

HTTP: `hegelion-server --transport streamable-http` on 127.0.0.1, 50 log_trace calls at once (5 sessions x 10), then
the log must hold exactly those 50 traces.

    python benchmarks/bench_server.py [--starts 10] [--calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client

from hegelion_dspy.store import read_records

SERVER = str(Path(sys.executable).with_name("hegelion-server"))
BARE = """
from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
def first(text: str) -> str:
    return text


@server.tool()
def second(text: str) -> str:
    return text


@server.tool()
def third(text: str) -> str:
    return text


server.run("stdio")
"""
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
TOOLS = [{"jsonrpc": "2.0", "method": "notifications/initialized"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]


def _send(proc: subprocess.Popen[bytes], *messages: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    proc.stdin.flush()


def one_start(command: list[str]) -> tuple[float, bool]:
    """Seconds from spawn to the tools/list answer, in a fresh data folder; and whether that folder stayed empty."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "HEGELION_DATA_DIR": str(data_dir)}
        env.pop("HEGELION_MODEL", None)
        started = time.perf_counter()
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            _send(proc, INIT)
            proc.stdout.readline()
            _send(proc, *TOOLS)
            tools = json.loads(proc.stdout.readline())["result"]["tools"]
            listed = time.perf_counter() - started
            assert len(tools) == 3
            proc.stdin.close()
            proc.wait(timeout=30)
        return listed, not data_dir.exists()


def startup(starts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare_script = Path(tmp) / "bare_server.py"
        bare_script.write_text(BARE)
        commands = {"hegelion-server": [SERVER], "bare MCPServer": [sys.executable, str(bare_script)]}
        for command in commands.values():  # one untimed start each: the OS file cache, .pyc files
            one_start(command)
        times: dict[str, list[float]] = {name: [] for name in commands}
        untouched = True
        for _ in range(starts):  # interleaved, so a change in machine load hits both alike
            for name, command in commands.items():
                seconds, empty = one_start(command)
                times[name].append(seconds)
                untouched = untouched and (empty or name != "hegelion-server")
    ours, bare = (statistics.median(times[name]) for name in commands)
    print(f"stdio start-up, spawn -> tools/list answered, fresh data folder each time, {starts} starts each:")
    for name, values in times.items():
        print(
            f"  {name:<16} median {statistics.median(values):.3f} s  min {min(values):.3f} s  max {max(values):.3f} s"
        )
    print(f"  ratio hegelion-server / bare MCPServer: {ours / bare:.2f} (goal <= 1.2)")
    print(f"  data folder written by listing tools: {'no' if untouched else 'YES'}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _concurrent_log_traces(url: str, calls: int, sessions: int) -> list[str]:
    async def session(worker: int, count: int) -> list[str]:
        async with Client(url) as client:
            results = await asyncio.gather(
                *(
                    client.call_tool(
                        "log_trace",
                        {"task": f"bench {worker}-{i}", "thesis": "a", "antithesis": "b", "synthesis": "c"},
                    )
                    for i in range(count)
                )
            )
        assert not any(r.is_error for r in results), [r for r in results if r.is_error][:1]
        return [r.structured_content["id"] for r in results]  # type: ignore[index]

    per = calls // sessions
    batches = await asyncio.gather(*(session(w, per + (w < calls % sessions)) for w in range(sessions)))
    return [i for batch in batches for i in batch]


def http(calls: int, sessions: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        port = _free_port()
        command = [SERVER, "--transport", "streamable-http", "--port", str(port), "--data-dir", tmp]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            started = time.perf_counter()
            ids = asyncio.run(_concurrent_log_traces(f"http://127.0.0.1:{port}/mcp", calls, sessions))
            elapsed = time.perf_counter() - started
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        logged = {r.id for r in read_records(data_dir / "traces.jsonl")}
    lost = len(set(ids) - logged)
    print(f"streamable HTTP: {calls} concurrent log_trace calls in {sessions} sessions: {elapsed:.2f} s wall")
    print(f"  traces in the log: {len(logged)} of {calls}; lost: {lost}; extra: {len(logged) - len(set(ids))}")
    if lost or len(logged) != calls:
        raise SystemExit("traces were lost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=10, help="cold starts of each server to time (default 10)")
    parser.add_argument("--calls", type=int, default=50, help="concurrent log_trace calls over HTTP (default 50)")
    parser.add_argument("--sessions", type=int, default=5, help="HTTP client sessions sharing the calls (default 5)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    startup(args.starts)
    http(args.calls, args.sessions)


if __name__ == "__main__":
    main()
