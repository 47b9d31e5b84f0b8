"""The Host check, table-driven: exactly localhost, 127.0.0.1 and [::1] (or an allowed name), each with an optional
numeric port; anything else, however close, is a 421."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.review.security import parse_host

ALLOWED = [
    "localhost",
    "localhost:8766",
    "LOCALHOST:1",
    "127.0.0.1",
    "127.0.0.1:8766",
    "127.0.0.1:65535",
    "[::1]",
    "[::1]:8766",
    "review.example",  # --allow-host review.example
    "review.example:443",
]
REFUSED = [
    "",
    " ",
    "evil.example",
    "[::1]evil.example",
    "[::1].evil.example",
    "[::1]:8766evil.example",
    "127.0.0.1:8766@evil.example",
    "127.0.0.1@evil.example",
    "user@127.0.0.1",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.example#127.0.0.1",
    "127.0.0.1/evil.example",
    "127.0.0.1:",
    "127.0.0.1:http",
    "127.0.0.1:65536",
    "127.0.0.1:99999999999",
    "127.0.0.1:-1",
    "127.0.0.1:8766:8766",
    "127.0.0.1 evil.example",
    "localhost.",
    "::1",
    "[::1",
    "::1]",
    "[0:0:0:0:0:0:0:1]",  # the same address, but not the exact form
    "[::ffff:127.0.0.1]",
    "[fe80::1%25eth0]",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "localhost\x00.evil.example",
    "review.example.evil",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    log = tmp_path_factory.mktemp("hosts") / "traces.jsonl"
    log.touch()
    app = create_app(ReviewConfig(log_path=Path(log), allowed_hosts=("review.example",)), csrf_token="t")
    return TestClient(app, base_url="http://127.0.0.1:8766")


@pytest.mark.parametrize("host", ALLOWED)
def test_a_loopback_or_allowed_host_is_served(client: TestClient, host: str) -> None:
    assert client.get("/api/state", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", REFUSED)
def test_anything_else_is_a_421(client: TestClient, host: str) -> None:
    response = client.get("/api/state", headers={"Host": host})
    assert response.status_code == 421 and "is not allowed" in response.text


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("127.0.0.1:8766", ("127.0.0.1", 8766)),
        ("[::1]", ("[::1]", None)),
        ("LocalHost:80", ("localhost", 80)),
        ("[::1]evil.example", None),
        ("127.0.0.1:8766@evil.example", None),
        ("[zz::1]", None),
    ],
)
def test_parse_host_reads_the_grammar(header: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_host(header) == parsed
