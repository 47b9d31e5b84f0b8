"""hegelion-server: start-up over stdio, and 50 concurrent log_trace calls over streamable HTTP.

Start-up: spawn `hegelion-server`, send `initialize`, then `tools/list`, as an IDE does, and time spawn -> answer.
The first start in a fresh data folder ("cold") waits for the MCP SDK to import; later starts ("warm") are answered
by the fast-start front from replies recorded from the SDK. "first call" is spawn -> a tools/call answered (the SDK
fully up). The reference Hegelion 0.5.0 server (mcp<2) answers tools/list in about 0.37 s; the goal is < 0.5 s.

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
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
TOOLS = [{"jsonrpc": "2.0", "method": "notifications/initialized"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
CALL = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "run_dialectic", "arguments": {"task": "warm-up"}},
}


def _send(proc: subprocess.Popen[bytes], *messages: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    proc.stdin.flush()


def one_start(data_dir: Path) -> tuple[float, float, float]:
    """Seconds from spawn to: initialize answered, tools/list answered, a tools/call answered."""
    env = {**os.environ, "HEGELION_DATA_DIR": str(data_dir)}
    env.pop("HEGELION_MODEL", None)
    started = time.perf_counter()
    with subprocess.Popen([SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        _send(proc, INIT)
        proc.stdout.readline()
        initialized = time.perf_counter() - started
        _send(proc, *TOOLS)
        tools = json.loads(proc.stdout.readline())["result"]["tools"]
        listed = time.perf_counter() - started
        assert len(tools) == 3
        _send(proc, CALL)
        proc.stdout.readline()
        called = time.perf_counter() - started
        proc.stdin.close()
        proc.wait(timeout=30)
    return initialized, listed, called


def startup(starts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        cold = one_start(data_dir)
        warm = [one_start(data_dir) for _ in range(starts)]
    print(f"stdio start-up, spawn -> answered (cold = fresh data folder, then {starts} warm starts):")
    print(f"  cold: initialize {cold[0]:.3f} s, tools/list {cold[1]:.3f} s, first tools/call {cold[2]:.3f} s")
    for index, name in enumerate(("initialize", "tools/list", "first tools/call")):
        values = [w[index] for w in warm]
        print(
            f"  warm {name:<16} median {statistics.median(values):.3f} s  "
            f"min {min(values):.3f} s  max {max(values):.3f} s"
        )


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
    parser.add_argument("--starts", type=int, default=10, help="warm starts to time (default 10)")
    parser.add_argument("--calls", type=int, default=50, help="concurrent log_trace calls over HTTP (default 50)")
    parser.add_argument("--sessions", type=int, default=5, help="HTTP client sessions sharing the calls (default 5)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    startup(args.starts)
    http(args.calls, args.sessions)


if __name__ == "__main__":
    main()
