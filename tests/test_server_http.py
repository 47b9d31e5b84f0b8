"""hegelion-server over streamable HTTP on 127.0.0.1: concurrent clients lose no trace."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from hegelion_dspy.store import read_records

SERVER = Path(sys.executable).with_name("hegelion-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], stderr: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited early:\n{stderr.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def http_server(data_dir: Path) -> Iterator[str]:
    port = _free_port()
    stderr = data_dir / "server-stderr.txt"
    data_dir.mkdir(parents=True, exist_ok=True)
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [str(SERVER), "--transport", "streamable-http", "--port", str(port), "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait_for_port(port, proc, stderr)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with http_server(tmp_path / "data") as address:
        yield address


async def test_fifty_concurrent_log_traces_over_http_lose_none(url: str, tmp_path: Path) -> None:
    async def session(worker: int) -> list[str]:
        async with Client(url) as client:
            results = await asyncio.gather(
                *(
                    client.call_tool(
                        "log_trace",
                        {"task": f"task {worker}-{i}", "thesis": "a", "antithesis": "b", "synthesis": "c"},
                    )
                    for i in range(10)
                )
            )
        assert not any(r.is_error for r in results)
        return [r.structured_content["id"] for r in results]  # type: ignore[index]

    ids = [i for batch in await asyncio.gather(*(session(w) for w in range(5))) for i in batch]

    records = list(read_records(tmp_path / "data" / "traces.jsonl"))
    assert len(records) == 50 and len(set(ids)) == 50
    assert {r.id for r in records} == set(ids)
    assert sorted(r.task for r in records) == sorted(f"task {w}-{i}" for w in range(5) for i in range(10))


async def test_http_serves_the_prompt_workflow_and_the_resource(url: str) -> None:
    async with Client(url) as client:
        out = (await client.call_tool("run_dialectic", {"task": "Is 1 prime?"})).structured_content
        resource = await client.read_resource("hegelion://traces")
    assert out is not None and (out["lm_source"], out["step"]) == ("prompt", "thesis")
    assert '"total": 0' in resource.contents[0].text  # type: ignore[union-attr]


def test_http_binds_to_loopback_only(tmp_path: Path) -> None:
    with http_server(tmp_path / "data") as address:
        port = int(address.rsplit(":", 1)[1].split("/")[0])
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False)
    if listening.returncode != 0:
        pytest.skip("`ss` is not available to list listening sockets")
    local_addresses = [line.split()[3] for line in listening.stdout.splitlines()]
    assert local_addresses == [f"127.0.0.1:{port}"]


def test_a_request_for_another_host_is_refused(url: str) -> None:
    # DNS rebinding: a web page that resolves its own name to 127.0.0.1 must not reach the server.
    import http.client

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    headers = {"Host": "evil.example.com", "Content-Type": "application/json", "Accept": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/mcp", body=body, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    assert status == 421
