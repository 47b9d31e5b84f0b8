"""hegelion-server over streamable HTTP on 127.0.0.1: concurrent clients lose no trace, it listens on loopback only,
and a request naming another host is refused."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need
from interop.serving import http_server
from mcp import Client

from hegelion_dspy.store import read_records


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with http_server(tmp_path / "data") as (address, _):
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


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the sockets listening on ``port``, from the kernel's socket tables (Linux)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not sys.platform.startswith("linux") or not tables[0].exists():
        need("the kernel's socket table (/proc/net/tcp)", "run this test on Linux")
    found = []
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel writes each 32-bit word of the address in host (little-endian) order
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(f"{ipaddress.ip_address(ordered)}:{port}")
    return found


def test_http_binds_to_loopback_only(tmp_path: Path) -> None:
    with http_server(tmp_path / "data") as (address, _):
        port = int(address.rsplit(":", 1)[1].split("/")[0])
        addresses = listening_addresses(port)
    assert addresses == [f"127.0.0.1:{port}"]


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
