"""The one verdict: flagged pairs left out by default and counted per flag, --allow-flag keeping one kind, a clean
trace of a prompt winning over a flagged one, and label counts only for the traces the export considered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.formats import preference_examples
from hegelion_dspy.curate.labels import Label, LabelStore
from hegelion_dspy.curate.verdict import DROP_REASONS, Verdict, verdict
from hegelion_dspy.errors import ExportError
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceRecord

THESIS = "Use a global lock around the cache and hope for the best."
CRITIQUE = "A global lock serialises every reader; the cache then runs slower than no cache at all."
SYNTHESIS = "Use a read-write lock per shard, so readers never wait for each other and writers wait only per shard."


def trace(task: str, *, score: float | None = None, created: int = 0, **texts: Any) -> TraceRecord:
    fields = {"thesis": THESIS, "antithesis": CRITIQUE, "synthesis": SYNTHESIS, **texts}
    built = build_trace(task=task, model="m/x", score=score, **fields)
    return built.model_copy(update={"created_at": datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=created)})


def truncated(task: str, **kwargs: Any) -> TraceRecord:
    record = trace(task, **kwargs)
    record.rounds[0].truncated = ["synthesis"]
    return record.model_copy(update={"flags": ["truncated"]})


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, records: list[TraceRecord]) -> Path:
    TraceStore(path).append_many(records)
    return path


@pytest.fixture
def flagged_log(tmp_path: Path) -> Path:
    return write(
        tmp_path / "traces.jsonl",
        [
            trace("clean"),
            trace("copied", synthesis=CRITIQUE),
            truncated("cut"),
            trace("praised", antithesis="An excellent answer; I agree with all of it."),
            trace("leaked", synthesis="[[ ## synthesis ## ]]\n" + SYNTHESIS),
            trace("looped", synthesis=SYNTHESIS + " " + " ".join(["readers never wait for each other at all"] * 5)),
        ],
    )


def test_flagged_pairs_are_left_out_by_default_and_counted_by_flag(flagged_log: Path, tmp_path: Path) -> None:
    report = export_dataset(flagged_log, tmp_path / "dpo.jsonl")
    assert [r["prompt"] for r in rows_of(tmp_path / "dpo.jsonl")] == ["clean"]
    assert {k: v for k, v in report.dropped.items() if v} == {
        "truncated": 1,
        "copy": 1,
        "no_critique": 1,
        "leak": 1,
        "loop": 1,
    }
    assert report.flagged == {"truncated": 1, "copy": 1, "no_critique": 1, "leak": 1, "loop": 1}
    assert report.traces_kept == 1
    assert set(report.dropped) == set(DROP_REASONS)


def test_allow_flag_keeps_one_kind(flagged_log: Path, tmp_path: Path) -> None:
    report = export_dataset(flagged_log, tmp_path / "dpo.jsonl", allow_flags=["copy", "truncated"])
    assert [r["prompt"] for r in rows_of(tmp_path / "dpo.jsonl")] == ["clean", "copied", "cut"]
    assert report.dropped["copy"] == report.dropped["truncated"] == 0
    assert report.flagged["copy"] == 1  # still counted as caught
    export_dataset(flagged_log, tmp_path / "one.jsonl", allow_flags="leak")  # one name as a string
    assert "leaked" in [r["prompt"] for r in rows_of(tmp_path / "one.jsonl")]


def test_an_unknown_flag_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"option 'allow_flags.0'.*'truncated', 'copy'"):
        export_dataset(tmp_path / "x.jsonl", tmp_path / "o.jsonl", allow_flags=["copied"])


def test_a_trace_with_several_flags_drops_under_the_first_not_allowed(tmp_path: Path) -> None:
    both = trace("both", synthesis=CRITIQUE)
    both.rounds[0].truncated = ["synthesis"]
    log = write(tmp_path / "t.jsonl", [trace("clean"), both.model_copy(update={"flags": ["truncated", "copy"]})])
    report = export_dataset(log, tmp_path / "a.jsonl")
    assert (report.dropped["truncated"], report.dropped["copy"]) == (1, 0)
    report = export_dataset(log, tmp_path / "b.jsonl", allow_flags=["truncated"])
    assert (report.dropped["truncated"], report.dropped["copy"]) == (0, 1)


def test_a_clean_trace_of_a_prompt_wins_over_a_better_scored_flagged_one(tmp_path: Path) -> None:
    log = write(
        tmp_path / "t.jsonl",
        [
            trace("Q", score=0.5, synthesis="A clean answer that fixes the lock."),
            trace("Q", score=0.9, synthesis=CRITIQUE),
        ],
    )
    report = export_dataset(log, tmp_path / "o.jsonl")
    assert [r["chosen"] for r in rows_of(tmp_path / "o.jsonl")] == ["A clean answer that fixes the lock."]
    assert report.dropped["copy"] == 1 and report.dropped["duplicate_prompt"] == 0


def test_a_v2_log_gets_its_flags_on_read(tmp_path: Path) -> None:
    log = tmp_path / "v2.jsonl"
    lines = []
    for record in (trace("clean"), trace("copied", synthesis=CRITIQUE)):
        data = record.model_dump(mode="json")
        data.pop("flags")
        lines.append(json.dumps({**data, "schema_version": 2}))
    log.write_text("\n".join(lines) + "\n")
    report = export_dataset(log, tmp_path / "o.jsonl")
    assert report.dropped["copy"] == 1 and report.rows_written == 1


def test_verdict_decides_one_example_as_the_export_does(flagged_log: Path) -> None:
    from hegelion_dspy.store import read_records

    judge = Verdict()
    decided = {}
    for record in read_records(flagged_log):
        (example,) = preference_examples(record)
        decided[record.task] = verdict(record, example, judge)
    assert decided == {
        "clean": None,
        "copied": "copy",
        "cut": "truncated",
        "praised": "no_critique",
        "leaked": "leak",
        "looped": "loop",
    }
    (example,) = preference_examples(trace("clean"))
    reject = Label(trace_id="x", pair="thesis:1>synthesis:1", decision="reject")
    assert verdict(trace("clean"), example, label=reject) == "rejected_by_reviewer"
    assert verdict(trace("clean"), example, Verdict(min_score=0.5)) == "no_score"


# -- label counts of the traces the export considered --------------------------------------------------------------


def test_stats_count_labels_only_of_traces_keep_best_kept(tmp_path: Path) -> None:
    first, better = trace("Q", score=0.2, created=0), trace("Q", score=0.9, created=1)
    other = trace("R", score=0.5, created=2)
    log = write(tmp_path / "traces.jsonl", [first, better, other])
    labels = LabelStore.beside(log)
    pair = "thesis:1>synthesis:1"
    labels.append(Label(trace_id=first.id, pair=pair, decision="accept"))  # on the trace keep-best replaces
    labels.append(Label(trace_id=other.id, pair=pair, decision="swap"))
    report = export_dataset(log, tmp_path / "o.jsonl")
    assert report.traces_kept == 2 and report.dropped["duplicate_prompt"] == 1
    assert {k: v for k, v in report.labels.items() if v} == {"unreviewed": 1, "swapped": 1}
    report = export_dataset(log, tmp_path / "f.jsonl", keep="first", force=True)
    assert {k: v for k, v in report.labels.items() if v} == {"accepted": 1, "swapped": 1}
