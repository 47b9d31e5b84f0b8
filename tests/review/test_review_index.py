"""TraceIndex: incremental indexing by byte offset, torn and replaced logs, filters, full-text search, labels, charts'
aggregates, and that indexing a log does not load it."""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.labels import Label, LabelStore
from hegelion_dspy.curate.selection import TraceFilter
from hegelion_dspy.review.index import PairView, TraceIndex, TraceQuery, index_path, search_expression
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceFailure, TraceRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_trace(i: int, **fields: Any) -> TraceRecord:
    """Trace ``i``, one minute after trace ``i - 1``; ``fields`` override anything."""
    record = build_trace(
        task=fields.pop("task", f"Task {i}: explain topic {i}"),
        thesis=fields.pop("thesis", f"First answer {i}."),
        antithesis=fields.pop("antithesis", f"Critique {i}."),
        synthesis=fields.pop("synthesis", f"Better answer {i}."),
        rounds=fields.pop("rounds", None),
        contradictions=fields.pop("contradictions", None),
        model=fields.pop("model", "openai/gpt-4o-mini" if i % 2 else "anthropic/claude"),
        mode=fields.pop("mode", "coding" if i % 3 == 0 else "general"),
        tags=fields.pop("tags", ["even"] if i % 2 == 0 else []),
        score=fields.pop("score", round((i % 10) / 10, 1)),
    )
    return record.model_copy(update={"id": f"t{i:04d}", "created_at": T0 + timedelta(minutes=i), **fields})


def failed_trace(i: int) -> TraceRecord:
    failure = TraceFailure(step="antithesis", round=1, type="Timeout", message="the LM timed out")
    return make_trace(i).model_copy(update={"status": "failed", "rounds": [], "synthesis": "", "error": failure})


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many([make_trace(i) for i in range(1, 21)] + [failed_trace(21)])
    return path


def ids(index: TraceIndex, query: TraceQuery | None = None, **kw: Any) -> list[str | None]:
    return [t.id for t in index.query(query or TraceQuery(), per_page=200, **kw).items]


def test_the_list_is_newest_first_paginated_and_counted(log: Path) -> None:
    index = TraceIndex(log)
    state = index.sync()
    assert state.complete and state.lines == 21
    assert index.path == index_path(log) == log.with_name(".traces.jsonl.index.sqlite")
    page = index.query(per_page=5, page=2)
    assert (page.total, page.pages) == (21, 5)
    assert [t.id for t in page.items] == ["t0016", "t0015", "t0014", "t0013", "t0012"]
    first = index.query(per_page=1).items[0]
    assert (first.id, first.status) == ("t0021", "failed")
    assert first.error == "antithesis step of round 1: Timeout: the LM timed out"


def test_each_filter_narrows_the_list(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    assert ids(index, TraceQuery(status="failed")) == ["t0021"]
    assert len(ids(index, TraceQuery(TraceFilter(models=["openai/*"])))) == 11  # odd ids, the failed one included
    assert len(ids(index, TraceQuery(TraceFilter(models=["anthropic/claude", "openai/gpt-4o-mini"])))) == 21
    assert len(ids(index, TraceQuery(TraceFilter(exclude_models=["openai/*"])))) == 10
    assert len(ids(index, TraceQuery(TraceFilter(models=["*"], exclude_models=["[!o]*"])))) == 11
    assert ids(index, TraceQuery(mode="coding", status="ok"))[:2] == ["t0018", "t0015"]
    assert len(ids(index, TraceQuery(TraceFilter(tags=["even"])))) == 10
    assert len(ids(index, TraceQuery(TraceFilter(exclude_tags=["even"])))) == 11
    assert ids(index, TraceQuery(TraceFilter(sources=["mcp"]))) == []
    window = TraceFilter(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=5))
    assert ids(index, TraceQuery(window)) == ["t0004", "t0003"]
    scored = ids(index, TraceQuery(min_score=0.85, max_score=0.95))
    assert scored == ["t0019", "t0009"]


def test_full_text_search_covers_task_and_texts_and_cannot_inject_syntax(log: Path) -> None:
    TraceStore(log).append(
        make_trace(
            30,
            task="Why is the sky blue?",
            antithesis="The thesis ignores Rayleigh scattering.",
        )
    )
    index = TraceIndex(log)
    index.sync()
    assert ids(index, TraceQuery(text="rayleigh")) == ["t0030"]
    assert ids(index, TraceQuery(text="SKY blue")) == ["t0030"]
    assert ids(index, TraceQuery(text="Rayl*")) == ["t0030"]
    assert ids(index, TraceQuery(text="answer 7")) == ["t0007"]  # both words, anywhere in the texts
    assert ids(index, TraceQuery(text="timed out")) == ["t0021"]  # the failure message
    for hostile in ('" OR 1 --', "NEAR(a b)", "col:thing", "*", "''); DROP TABLE traces; --", "^a AND"):
        index.query(TraceQuery(text=hostile))  # never an SQL or FTS5 syntax error
    assert search_expression('say "hi" NEAR(x) *') == '"say" AND "hi" AND "NEAR" AND "x"'
    assert search_expression(" -- ") is None


def test_new_lines_are_indexed_incrementally_and_a_torn_line_waits(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    size = log.stat().st_size
    TraceStore(log).append(make_trace(22))
    with open(log, "ab") as fh:
        fh.write(make_trace(23).to_json_line()[:50])  # a writer is half-way through a line
    state = index.sync()
    assert state.indexed_bytes == size + len(make_trace(22).to_json_line()) and not state.complete
    assert ids(index)[0] == "t0022"
    TraceStore(log).append(make_trace(24))  # the append repairs the torn line (moved to .torn) first
    assert index.sync().complete
    assert ids(index)[:2] == ["t0024", "t0022"] and index.query().total == 23


def test_a_replaced_or_shrunk_log_is_indexed_afresh(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    replacement = log.with_name("new.jsonl")
    TraceStore(replacement).append_many([make_trace(i) for i in range(100, 103)])
    os.replace(replacement, log)
    assert index.sync().complete
    assert ids(index) == ["t0102", "t0101", "t0100"]
    with open(log, "r+b") as fh:  # rewritten in place with other first bytes (not append-only any more)
        fh.write(make_trace(200).to_json_line())
        fh.truncate()
    index.sync()
    assert ids(index) == ["t0200"]


def test_an_invalid_line_is_listed_with_its_reason_and_not_readable(log: Path) -> None:
    with open(log, "ab") as fh:
        fh.write(b'{"task": "no rounds", "status": "ok"}\n')
    TraceStore(log).append(make_trace(22))
    index = TraceIndex(log)
    index.sync()
    invalid = index.query(TraceQuery(status="invalid")).items
    assert len(invalid) == 1 and invalid[0].lineno == 22 and invalid[0].id is None
    assert "needs at least one round" in (invalid[0].error or "")
    assert index.query().total == 23


def test_a_trace_is_read_back_from_its_line(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    assert index.read("t0007") == make_trace(7)
    assert index.read("nope") is None
    assert index.neighbours("t0007") == ("t0008", "t0006")
    even = TraceQuery(TraceFilter(tags=["even"]))
    assert index.neighbours("t0007", even) == ("t0008", "t0006")
    assert index.neighbours("t0008", even) == ("t0010", "t0006")
    assert index.neighbours("t0021") == (None, "t0020")


def test_labels_are_indexed_latest_wins_and_drive_the_reviewed_filter(log: Path) -> None:
    index = TraceIndex(log)
    index.sync()
    store = LabelStore.beside(log)
    pair = "thesis:1>synthesis:1"
    store.append_many(
        [
            Label(trace_id="t0001", pair=pair, decision="accept"),
            Label(trace_id="t0002", pair=pair, decision="reject"),
            Label(trace_id="t0001", pair=pair, decision="swap", chosen="edited", labeller="ann"),
            Label(trace_id="t0003", pair=pair, note="only a note"),
            Label(trace_id="t0004", pair="antithesis:1>synthesis:1", decision="accept"),
        ]
    )
    index.sync()
    latest = index.labels_for("t0001")[pair]
    assert (latest.decision, latest.chosen, latest.labeller) == ("swap", "edited", "ann")
    assert sorted(ids(index, TraceQuery(reviewed="yes"))) == ["t0001", "t0002"]  # t0003: a note is no decision
    assert len(ids(index, TraceQuery(reviewed="no"))) == 18  # ok traces only: the failed one has no pair
    both = PairView(rejected="both")
    assert ids(index, TraceQuery(reviewed="yes"), view=both) == []  # each needs its antithesis pair too
    assert ids(index, TraceQuery(reviewed="yes"), view=PairView(rejected="antithesis")) == ["t0004"]
    row = {t.id: t for t in index.query(per_page=200).items}["t0001"]
    assert (row.decided, row.needed, row.decisions) == (1, 1, ["swap"])


def test_per_round_pairs_are_reviewed_one_by_one(tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"
    TraceStore(log).append(make_trace(1, rounds=[{"antithesis": "a2", "synthesis": "s2"}]))
    LabelStore.beside(log).append(Label(trace_id="t0001", pair="thesis:1>synthesis:1", decision="accept"))
    index = TraceIndex(log)
    index.sync()
    rounds = PairView(pairs="rounds")
    row = index.query(view=rounds).items[0]
    assert (row.decided, row.needed) == (1, 2)
    assert ids(index, TraceQuery(reviewed="no"), view=rounds) == ["t0001"]
    assert ids(index, TraceQuery(reviewed="no")) == ["t0001"]  # first-last: thesis:1>synthesis:2 is undecided


def test_dataset_shape_counts_what_the_charts_draw(log: Path) -> None:
    TraceStore(log).append(make_trace(22, task="Task 1: explain topic 1"))  # a duplicate prompt
    LabelStore.beside(log).append(Label(trace_id="t0002", pair="thesis:1>synthesis:1", decision="reject"))
    index = TraceIndex(log)
    index.sync()
    shape = index.stats(min_chars=17, min_score=0.5)
    assert shape.status == {"ok": 21, "failed": 1}
    assert sum(shape.scores.values()) == 22 and shape.scores[9] == 2
    assert shape.contradictions == {0: 21}
    assert shape.drops["failed"] == 1 and shape.drops["duplicate_prompt"] == 0  # the duplicate's score is 0.2
    assert shape.drops["below_min_score"] == 11  # scores 0.0 to 0.4
    assert shape.drops["too_short"] == 5  # of those kept, "Better answer 5." to "... 9." have 16 characters
    assert shape.drops["rejected_by_reviewer"] == 1
    assert (shape.pairs_total, shape.pairs_decided, shape.decisions) == (21, 1, {"rejected": 1})
    assert sum(sum(s.values()) for s in shape.over_time.values()) == 22
    assert set(shape.over_time) == {"openai/gpt-4o-mini", "anthropic/claude"}
    assert sum(shape.thesis_lengths.values()) == sum(shape.ratios.values()) == 21


def test_indexing_streams_the_log_instead_of_loading_it(tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"
    filler = " ".join(f"word{k % 997}" for k in range(2000))  # 10 KB per text
    # One trace built and serialised once (its quality flags cost ~20 ms on texts this long), written as 3,000
    # distinct traces: what is under test is the indexing's memory, not the flags or the writer.
    line = make_trace(0, thesis=filler, synthesis=f"better {filler}", task="Task 0").model_dump_json()
    assert line.count('"id":"t0000"') == 1 and line.count('"task":"Task 0"') == 1
    with log.open("w", encoding="utf-8") as out:
        for i in range(3000):
            out.write(line.replace('"id":"t0000"', f'"id":"t{i:04d}"').replace('"task":"Task 0"', f'"task":"Task {i}"'))
            out.write("\n")
    size = log.stat().st_size
    assert size > 60_000_000
    tracemalloc.start()
    try:
        TraceIndex(log).sync()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"indexing a {size / 1e6:.0f} MB log peaked at {peak / 1e6:.0f} MB"


def test_the_filter_is_the_exports_filter_demo_traces_included(log: Path) -> None:
    """Every TraceFilter keeps in the index exactly the traces TraceFilter.reason keeps (and exports keep)."""
    TraceStore(log).append_many([make_trace(30, demo=True, model="embedded"), make_trace(31, tags=["x", "even"])])
    index = TraceIndex(log)
    index.sync()
    records = [make_trace(i) for i in range(1, 21)] + [make_trace(30, demo=True, model="embedded")]
    records += [make_trace(31, tags=["x", "even"])]
    filters = [
        TraceFilter(),
        TraceFilter(include_demo=True),
        TraceFilter(models=["openai/*", "embed*"], include_demo=True),
        TraceFilter(exclude_models=["anthropic/*"]),
        TraceFilter(tags=["x"], exclude_tags=["nope"]),
        TraceFilter(exclude_tags=["even"], include_demo=True),
        TraceFilter(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=31)),
    ]
    for traces in filters:
        expected = sorted(r.id for r in records if traces.reason(r) is None)
        assert sorted(i for i in ids(index, TraceQuery(traces, status="ok")) if i) == expected, traces
    assert "t0030" not in ids(index) and ids(index, TraceQuery(TraceFilter(include_demo=True)))[0] == "t0031"
    assert index.facets()["demo"] == [("demo", 1)]
