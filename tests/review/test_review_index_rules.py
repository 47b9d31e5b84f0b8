"""The index decides as the library does: which trace of a prompt an export keeps (``selection.outranks``), a pair's
label version (``labels.label_version``), and paging that never runs past the last page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_review_index import make_trace

from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.labels import Label, LabelStore, label_version
from hegelion_dspy.review.index import TraceIndex, TraceRow
from hegelion_dspy.store import TraceStore

TASK = "Task 1: explain topic 1"


@pytest.fixture
def rivals(tmp_path: Path) -> Path:
    """Four traces of one task: a low score, the best score, a later tie with it, an unscored one; and another task."""
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many(
        [
            make_trace(1, task=TASK, score=0.2, synthesis="Synthesis one."),
            make_trace(2, task=TASK, score=0.9, synthesis="Synthesis two."),
            make_trace(4, task=TASK, score=0.9, synthesis="Synthesis four."),
            make_trace(3, task="  task 1:   EXPLAIN topic 1 ", score=None, synthesis="Synthesis three."),  # same prompt
            make_trace(5, task="Another task", score=0.5),
        ]
    )
    return path


def exported_ids(log: Path, tmp_path: Path, keep: str) -> set[str]:
    out = tmp_path / f"out-{keep}.jsonl"
    export_dataset(log, out, format="sft", keep=keep, with_metadata=True)
    return {json.loads(line)["metadata"]["trace_id"] for line in out.read_text().splitlines()}


@pytest.mark.parametrize("keep", ["best", "latest", "first"])
def test_the_trace_kept_for_a_prompt_is_the_one_the_export_keeps(rivals: Path, tmp_path: Path, keep: str) -> None:
    index = TraceIndex(rivals)
    index.sync()
    kept = exported_ids(rivals, tmp_path, keep)
    for trace_id in ("t0001", "t0002", "t0003", "t0004"):
        instead = index.kept_instead(trace_id, keep=keep)  # type: ignore[arg-type]
        assert (instead is None) == (trace_id in kept)
        assert instead is None or instead in kept
    assert index.kept_instead("t0005", keep=keep) is None  # type: ignore[arg-type]
    expected = {"best": "t0004", "latest": "t0004", "first": "t0001"}[keep]  # best: 0.9 tie -> the later creation
    assert kept & {"t0001", "t0002", "t0003", "t0004"} == {expected}


def test_min_score_takes_unscored_and_low_traces_out_of_the_running(rivals: Path) -> None:
    index = TraceIndex(rivals)
    index.sync()
    assert index.kept_instead("t0001", keep="first", min_score=0.5) == "t0002"
    assert index.kept_instead("t0002", keep="first", min_score=0.5) is None


def test_rows_are_named_and_label_versions_agree_with_the_sidecar(rivals: Path) -> None:
    index = TraceIndex(rivals)
    index.sync()
    with index._reader() as conn:
        row = TraceRow(*conn.execute("SELECT * FROM traces ORDER BY seq LIMIT 1").fetchone())
    assert (row.id, row.status, row.score, row.rounds, row.lineno) == ("t0001", "ok", 0.2, 1, 1)
    store = LabelStore.beside(rivals)
    pair = "thesis:1>synthesis:1"
    assert index.versions_for("t0001") == {}
    store.write(Label(trace_id="t0001", pair=pair, decision="accept"), base=0)
    store.write(Label(trace_id="t0001", pair=pair, decision="reject"), base=1)
    store.write(Label(trace_id="t0002", pair=pair, decision="reject"), base=0)
    with store.path.open("ab") as fh:
        fh.write(b'{"trace_id": "t0001", "pair": "nonsense"}\n')  # not a label: counts nowhere
    index.sync(log=False)
    store.write(Label(trace_id="t0001", pair=pair, note="a note"), base=2)
    index.sync(log=False)
    assert index.versions_for("t0001") == {pair: label_version(store.path, "t0001", pair)[0]} == {pair: 3}
    assert index.versions_for("t0002") == {pair: 1}


@pytest.mark.parametrize("page", [3, 10**6, 2**62, 2**63, 2**64 + 1, 10**30])
def test_a_page_past_the_last_is_the_last_page(rivals: Path, page: int) -> None:
    index = TraceIndex(rivals)
    index.sync()
    found = index.query(page=page, per_page=2)
    assert (found.page, found.pages, [t.id for t in found.items]) == (3, 3, ["t0001"])
    assert index.query(page=-(2**70), per_page=2).page == 1
