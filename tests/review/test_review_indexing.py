"""While a big log is first indexed: the first page is read from the log's end and a trace not indexed yet is read
from the log (no 404); and the backwards readers that do it, checked against a plain split of the file."""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_review_index import make_trace

from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.review.index import TraceIndex, index_path, tail
from hegelion_dspy.store import TraceStore

BASE = "http://127.0.0.1:8766"


@pytest.fixture
def held_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A log of 30 traces of which the index holds the first 10, and another writer holding the index's write lock
    (as another process indexing the log would): the app's background indexing waits behind it."""
    log = tmp_path / "traces.jsonl"
    store = TraceStore(log)
    store.append_many([make_trace(i) for i in range(1, 11)])
    TraceIndex(log).sync()
    store.append_many([make_trace(i, demo=(i == 29)) for i in range(11, 31)])
    monkeypatch.setattr("hegelion_dspy.review.state.INLINE_SYNC_BYTES", 0)  # any catch-up goes to the background
    writer = sqlite3.connect(index_path(log), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield log, writer
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()


def test_during_the_first_indexing_pages_come_from_the_log(held_index: tuple[Path, sqlite3.Connection]) -> None:
    log, writer = held_index
    app = create_app(ReviewConfig(log_path=log), csrf_token="t")
    client = TestClient(app, base_url=BASE)
    page = client.get("/")
    assert page.status_code == 200 and 'id="indexing"' in page.text and "read from it directly" in page.text
    shown = re.findall(r'data-id="(t\d+)"', page.text)
    assert shown[:3] == ["t0030", "t0028", "t0027"]  # the newest, the demo trace t0029 left out as in the list
    assert len(shown) == 29
    trace = client.get("/trace/t0025")  # not indexed yet: read from the log
    assert trace.status_code == 200 and "Task 25: explain topic 25" in trace.text
    assert client.get("/trace/t0004").status_code == 200  # indexed
    assert client.get("/trace/t9999").status_code == 404
    assert client.get("/", params={"page": "2"}).status_code == 200  # later pages: what is indexed
    writer.execute("ROLLBACK")  # the other writer is done: the app's indexing goes on
    app.app.state.review.wait(timeout=120)
    assert TraceIndex(log).state().complete and TraceIndex(log).locate("t0025") is not None


def lines_of(data: bytes) -> list[tuple[int, bytes]]:
    found, offset = [], 0
    for line in data.split(b"\n")[:-1]:
        found.append((offset, line))
        offset += len(line) + 1
    return found


def test_the_backwards_readers_agree_with_a_plain_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "BLOCK_BYTES", 64)  # blocks smaller than lines: every boundary case comes up
    rng = random.Random(7)
    for trial in range(200):
        lines = [
            json.dumps({"id": rng.choice(["a", "b", "ab"]), "pad": "x" * rng.randrange(200)})
            if rng.random() > 0.1
            else ""
            for _ in range(rng.randrange(30))
        ]
        data = "".join(f"{line}\n" for line in lines).encode()
        path = tmp_path / f"log{trial}"
        path.write_bytes(data + (b'{"id": "a", "torn' if rng.random() < 0.3 else b""))
        fd = os.open(path, os.O_RDONLY)
        try:
            end = tail.complete_end(fd, os.fstat(fd).st_size)
            assert end == len(data)
            every = lines_of(data)
            start = rng.choice([offset for offset, _ in every] + [end])
            expected = [(o, line) for o, line in reversed(every) if o >= start and line.strip()]
            assert list(tail.lines_backwards(fd, start, end)) == expected
            for trace_id in ("a", "b", "ab", "zz"):
                needle = json.dumps(trace_id).encode()
                assert list(tail.lines_with_id(fd, start, end, trace_id)) == [
                    (o, line) for o, line in expected if needle in line
                ]
        finally:
            os.close(fd)


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("hegelion_dspy.review.index.build", ("dspy", "starlette", "jinja2")),  # the child beside the app
        ("hegelion_dspy.review.app", ("dspy",)),  # the app: the eval reports page imports its package when asked
    ],
)
def test_the_review_processes_import_no_lm_machinery(module: str, absent: tuple[str, ...]) -> None:
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_first_request_finds_the_index_open_and_the_thread_pool_started(tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"
    TraceStore(log).append(make_trace(0))
    with TestClient(create_app(ReviewConfig(log_path=log)), base_url=BASE):  # runs the app's lifespan
        assert index_path(log).exists()
