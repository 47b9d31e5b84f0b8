"""The export, the review app's row previews and the review index's stats agree on what is kept, for a log with
every drop reason the three know (quality flags included): all three decide through curate/verdict.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.labels import Label, LabelStore
from hegelion_dspy.review import ReviewConfig
from hegelion_dspy.review.index import TraceIndex
from hegelion_dspy.review.views import rows as _rows
from hegelion_dspy.store import TraceStore, read_records
from hegelion_dspy.types import TraceFailure, TraceRecord

THESIS = "Store every session in one big dictionary on the web server."
CRITIQUE = "One dictionary on one server loses every session on a restart and cannot be shared by a second server."
SYNTHESIS = "Keep sessions in a shared store with expiry (Redis, or the database), keyed by a random session id."
MIN_CHARS = 10


def ok(task: str, score: float | None = None, **texts: Any) -> TraceRecord:
    return build_trace(task=task, model="m/x", score=score, **{"thesis": THESIS, "antithesis": CRITIQUE, **texts})


def every_reason() -> list[TraceRecord]:
    truncated = ok("cut", synthesis=SYNTHESIS + " And then")
    truncated.rounds[0].truncated = ["synthesis"]
    return [
        ok("kept", 0.9, synthesis=SYNTHESIS),
        ok("  KEPT ", 0.5, synthesis="A later, worse answer about sessions and servers."),  # duplicate_prompt
        TraceRecord(
            task="failed",
            status="failed",
            error=TraceFailure(step="thesis", round=1, type="Timeout", message="timed out"),
        ),
        ok("demo", 0.9, synthesis=SYNTHESIS).model_copy(update={"demo": True}),
        ok("echo", 0.9, synthesis=THESIS),  # chosen_equals_rejected (before the copy flag)
        ok("tiny", 0.9, synthesis="Redis."),  # too_short
        ok("rejected", 0.9, synthesis=SYNTHESIS + " Rotate the ids."),  # rejected_by_reviewer (labelled below)
        ok("copied", 0.9, synthesis=CRITIQUE),
        truncated.model_copy(update={"flags": ["truncated"], "score": 0.9}),
        ok("praised", 0.9, antithesis="An excellent answer. I agree with all of it.", synthesis=SYNTHESIS + " Yes."),
        ok("leaked", 0.9, synthesis="[[ ## synthesis ## ]] " + SYNTHESIS),
        ok("looped", 0.9, synthesis=SYNTHESIS + " " + " ".join(["keyed by a random session id in redis"] * 5)),
        ok("unscored", None, synthesis=SYNTHESIS + " Unscored."),  # no_score with min_score
        ok("low", 0.3, synthesis=SYNTHESIS + " Low."),  # below_min_score
        ok("kept too", 0.8, synthesis=SYNTHESIS + " Also kept."),
    ]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    records = every_reason()
    TraceStore(path).append_many(records)
    rejected = next(r for r in records if r.task == "rejected")
    LabelStore.beside(path).append(Label(trace_id=rejected.id, pair="thesis:1>synthesis:1", decision="reject"))
    return path


@pytest.mark.parametrize("min_score", [None, 0.5])
def test_export_review_rows_and_stats_keep_the_same_traces(log: Path, tmp_path: Path, min_score: float | None) -> None:
    out = tmp_path / f"dpo-{min_score}.jsonl"
    report = export_dataset(log, out, min_chars=MIN_CHARS, min_score=min_score, keep="first", with_metadata=True)
    exported = {json.loads(line)["metadata"]["trace_id"] for line in out.read_text().splitlines()}

    index = TraceIndex(log)
    index.sync()
    config = ReviewConfig(log_path=log, min_chars=MIN_CHARS, min_score=min_score, keep="first")
    previewed = set()
    for record in read_records(log):
        rows = _rows(record, index.labels_for(record.id), config, index)
        dpo = [p for p in rows["previews"] if p.format == "dpo"]
        if rows["trace_reason"] is None and rows["earlier"] is None and all(p.reason is None for p in dpo):
            previewed.add(record.id)
    assert previewed == exported

    shape = index.stats(min_chars=MIN_CHARS, min_score=min_score)
    index.close()
    # the ok traces the stats see (demo ones are not in the default query) less those they say are dropped
    kept_by_stats = shape.status["ok"] - sum(n for reason, n in shape.drops.items() if reason != "failed")
    assert kept_by_stats == len(exported) == report.rows_written
    for reason, n in shape.drops.items():
        assert report.dropped[reason] == n, reason
    expected = {"kept", "kept too"} if min_score else {"kept", "kept too", "unscored", "low"}
    assert {r.task for r in read_records(log) if r.id in exported} == expected
