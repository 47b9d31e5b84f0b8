"""Quality flags in the review app, decided by ``hegelion_dspy.quality`` (stored in the trace, or computed for a trace
written without them): a column and a filter in the list, a badge on the trace page."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_review_index import make_trace

from hegelion_dspy.quality import flags_of
from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.review.index import TraceIndex, TraceQuery
from hegelion_dspy.review.index.flags import compute_flags, store_flags
from hegelion_dspy.review.index.schema import open_index
from hegelion_dspy.store import TraceStore

LOOP = " ".join(["the cache must be cleared before every single request"] * 6)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many(
        [
            make_trace(1),
            make_trace(2, thesis="Same words here.", synthesis="Same words here."),  # copy
            make_trace(3, synthesis=LOOP),  # loop
            make_trace(4, synthesis="Answer [[ ## synthesis ## ]] leaked."),  # leak
            make_trace(5, flags=["truncated"]),  # stored by the collect side: taken as it is
            make_trace(6),
        ]
    )
    return path


def test_the_index_holds_the_flags_curate_decides_and_filters_by_them(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    listed = {t.id: t.flag_list for t in index.query(per_page=50).items}
    expected = {r.id: flags_of(r) for r in TraceStore(log)}
    assert listed == expected
    assert expected["t0002"] == ["copy"] and "loop" in expected["t0003"] and "leak" in expected["t0004"]
    assert expected["t0005"] == ["truncated"] and expected["t0001"] == []

    def ids(flag: str) -> set[str | None]:
        return {t.id for t in index.query(TraceQuery(flag=flag), per_page=50).items}

    assert ids("copy") == {i for i, f in expected.items() if "copy" in f}
    assert ids("none") == {i for i, f in expected.items() if not f}
    assert ids("any") == {i for i, f in expected.items() if f}
    counts = dict(index.facets()["flag"])
    assert counts["copy"] == sum("copy" in f for f in expected.values()) and counts["truncated"] == 1


def test_the_list_and_the_trace_page_show_the_flags(log: Path) -> None:
    client = TestClient(create_app(ReviewConfig(log_path=log), csrf_token="t"), base_url="http://127.0.0.1:8766")
    page = client.get("/", params={"flag": "copy"})
    assert page.status_code == 200 and re.findall(r'data-id="(t\d+)"', page.text) == ["t0002"]
    assert '<a class="flag" href="?flag=copy"' in page.text and 'aria-label="quality flag"' in page.text
    trace = client.get("/trace/t0003").text
    assert re.search(r'<dd id="flags">.*>loop</a>', trace)
    assert "no quality flag" in client.get("/trace/t0001").text
    bad = client.get("/", params={"flag": "ugly"})
    assert bad.status_code == 400 and "is not one of truncated, copy" in bad.text


def test_flags_of_traces_written_without_them_follow_in_a_deferred_pass(log: Path, tmp_path: Path) -> None:
    v2 = tmp_path / "v2.jsonl"
    lines = []
    for record in TraceStore(log):
        data = record.model_dump(mode="json")
        if record.id != "t0005":  # a v2 line has no flags; t0005 keeps its stored ones
            data.pop("flags")
        lines.append(json.dumps(data))
    v2.write_text("\n".join(lines) + "\n")
    index = TraceIndex(v2)
    state = index.sync(flags=False)
    assert state.complete and state.flags_pending == 5
    assert {t.id: t.flags for t in index.query(per_page=50).items}["t0002"] is None
    assert index.fill_flags() == 5 and index.state().flags_pending == 0
    listed = {t.id: t.flag_list for t in index.query(per_page=50).items}
    assert listed == {r.id: flags_of(r) for r in TraceStore(log)}
    assert dict(index.facets()["flag"])["copy"] == 1


def test_flags_are_computed_outside_the_write_lock_and_not_stored_over_a_log_indexed_afresh(
    log: Path, tmp_path: Path
) -> None:
    # The builder computes at a lower priority; a write lock held meanwhile made a reviewer's label wait behind it.
    v2 = tmp_path / "v2.jsonl"
    v2.write_text("".join(json.dumps(r.model_dump(mode="json", exclude={"flags"})) + "\n" for r in TraceStore(log)))
    index = TraceIndex(v2)
    assert index.sync(flags=False).flags_pending == 6
    conn = open_index(index.path)
    fd = os.open(v2, os.O_RDONLY)
    try:
        computed = compute_flags(conn, fd, v2)
        assert not conn.in_transaction and len(computed.flags) == 6
        other = sqlite3.connect(index.path, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a writer (a label) is not kept waiting by a computed batch
        other.execute("ROLLBACK")
        other.close()
        replaced = tmp_path / "v2b.jsonl"
        replaced.write_bytes(v2.read_bytes())
        os.replace(replaced, v2)  # the same bytes in another file: indexed afresh, its numbers name other lines
        index.sync(flags=False)
        conn.execute("BEGIN IMMEDIATE")
        store_flags(conn, computed)
        conn.execute("COMMIT")
        assert index.state().flags_pending == 6  # nothing stored from before the re-index
        conn.execute("BEGIN IMMEDIATE")
        store_flags(conn, compute_flags(conn, fd, v2))
        conn.execute("COMMIT")
        store_flags(conn, compute_flags(conn, fd, v2))  # none pending: an empty batch writes nothing (no "IN ()")
    finally:
        os.close(fd)
        conn.close()
    assert index.state().flags_pending == 0
    assert {t.id: t.flag_list for t in index.query(per_page=50).items} == {r.id: flags_of(r) for r in TraceStore(v2)}
