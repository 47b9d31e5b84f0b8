"""Choosing traces for an export: each filter, demo traces, and each --keep policy, on hand-made logs, asserting which
trace ids survive; then the dataset card folder that ``datasets`` and the Hub read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.options import ExportOptions
from hegelion_dspy.curate.selection import TraceFilter
from hegelion_dspy.errors import ExportError
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceRecord


def trace(
    id: str,
    task: str,
    *,
    model: str = "openai/gpt-4o-mini",
    source: str = "cli",
    tags: tuple[str, ...] = (),
    day: int = 1,
    score: float | None = None,
    demo: bool = False,
    mode: str = "general",
) -> TraceRecord:
    record = build_trace(
        task=task,
        thesis=f"{id}: a first answer.",
        antithesis="It misses a case.",
        synthesis=f"{id}: a better answer.",
        model=model,
        source=source,  # type: ignore[arg-type]
        tags=list(tags),
        score=score,
        mode=mode,  # type: ignore[arg-type]
    )
    return record.model_copy(update={"id": id, "created_at": datetime(2026, 11, day, 12, tzinfo=UTC), "demo": demo})


def write(path: Path, *records: TraceRecord) -> Path:
    TraceStore(path).append_many(records)
    return path


def kept_ids(out: Path) -> list[str]:
    return [json.loads(line)["chosen"].split(":")[0] for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(
        tmp_path / "traces.jsonl",
        trace("a", "Q1", model="openai/gpt-4o-mini", source="cli", tags=("math",), day=1),
        trace("b", "Q2", model="anthropic/claude-sonnet-4-5", source="mcp", tags=("code",), day=2),
        trace("c", "Q3", model="openai/gpt-4o", source="python", tags=("math", "hard"), day=3),
        trace("d", "Q4", model="embedded/smollm2-135m-instruct", demo=True, day=4),
        trace("e", "Q5", model="hosted_vllm/qwen", source="cli", day=5),
    )


@pytest.mark.parametrize(
    ("options", "kept", "reason", "dropped"),
    [
        ({}, ["a", "b", "c", "e"], "demo", 1),
        ({"include_demo": True}, ["a", "b", "c", "d", "e"], "demo", 0),
        ({"models": ["openai/*"]}, ["a", "c"], "model", 2),
        ({"models": ["openai/*", "hosted_vllm/*"]}, ["a", "c", "e"], "model", 1),
        ({"exclude_models": ["openai/gpt-4o"]}, ["a", "b", "e"], "model", 1),
        ({"models": "openai/*", "exclude_models": "*mini"}, ["c"], "model", 3),
        ({"sources": ["mcp", "python"]}, ["b", "c"], "source", 2),
        ({"tags": ["math"]}, ["a", "c"], "tag", 2),
        ({"exclude_tags": ["hard"]}, ["a", "b", "e"], "tag", 1),
        ({"since": "2026-11-02"}, ["b", "c", "e"], "date", 1),
        ({"until": "2026-11-03"}, ["a", "b"], "date", 2),
        ({"since": "2026-11-02T00:00:00+00:00", "until": "2026-11-05T00:00"}, ["b", "c"], "date", 2),
    ],
)
def test_each_filter_keeps_exactly_the_traces_it_names(
    log: Path, tmp_path: Path, options: dict[str, Any], kept: list[str], reason: str, dropped: int
) -> None:
    out = tmp_path / "out.jsonl"
    report = export_dataset(log, out, **options)
    assert kept_ids(out) == kept
    assert report.dropped[reason] == dropped
    assert report.traces_kept == len(kept) and report.traces_read == 5


def test_the_filter_is_one_model_shared_by_exports(log: Path, tmp_path: Path) -> None:
    options = ExportOptions(models=["openai/*"], tags=["math"], format="sft")
    assert isinstance(options, TraceFilter)
    report = export_dataset(log, tmp_path / "out.jsonl", options)
    assert report.traces_kept == 2 and report.options["models"] == ["openai/*"]
    # keywords refine a given options object; a bad value names the field
    assert export_dataset(log, tmp_path / "o2.jsonl", options, tags=["code"], models=[]).traces_kept == 1
    with pytest.raises(ExportError, match=r"option 'sources\.0': Input should be 'cli', 'mcp' or 'python'"):
        export_dataset(log, tmp_path / "o3.jsonl", sources=["email"])


# -- which trace of a prompt wins ---------------------------------------------------------------------------------


@pytest.fixture
def repeated(tmp_path: Path) -> Path:
    # Q1 three times (scored 0.6, 0.9, unscored), Q2 twice (unscored), Q3 once; written out of time order.
    return write(
        tmp_path / "repeated.jsonl",
        trace("q1-mid", "Q1", score=0.6, day=2),
        trace("q2-old", "Q2", day=1),
        trace("q1-best", "Q1", score=0.9, day=1),
        trace("q3", "Q3", day=3),
        trace("q2-new", "Q2", day=4),
        trace("q1-newest", "q1 ", day=5),  # the same prompt once normalised
    )


@pytest.mark.parametrize(
    ("keep", "kept"),
    [
        ("first", ["q1-mid", "q2-old", "q3"]),
        ("latest", ["q3", "q2-new", "q1-newest"]),
        ("best", ["q1-best", "q3", "q2-new"]),
    ],
)
def test_each_keep_policy_picks_its_trace_per_prompt(
    repeated: Path, tmp_path: Path, keep: str, kept: list[str]
) -> None:
    out = tmp_path / "out.jsonl"
    report = export_dataset(repeated, out, keep=keep)
    assert kept_ids(out) == kept  # rows stay in the order their traces were read
    assert report.dropped["duplicate_prompt"] == 3
    assert report.traces_kept == 3 and report.rows_written == 3


def test_best_breaks_score_ties_to_the_latest_and_falls_back_to_latest_without_scores(tmp_path: Path) -> None:
    log = write(
        tmp_path / "t.jsonl",
        trace("tie-old", "Q", score=0.8, day=1),
        trace("tie-new", "Q", score=0.8, day=3),
        trace("unscored-newest", "Q", day=9),
    )
    out = tmp_path / "out.jsonl"
    export_dataset(log, out)
    assert kept_ids(out) == ["tie-new"]  # a scored trace outranks an unscored one
    export_dataset(log, out, min_score=0.5, keep="latest", force=True)
    assert kept_ids(out) == ["tie-new"]


def test_keeping_duplicates_keeps_every_trace_and_a_split_never_separates_a_prompt(
    repeated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    report = export_dataset(repeated, out, dedupe=False)
    assert report.traces_kept == 6 and report.dropped["duplicate_prompt"] == 0
    split = export_dataset(repeated, tmp_path / "s.jsonl", split=0.5, seed=3)
    train = {json.loads(x)["prompt"].strip().casefold() for x in (tmp_path / "s.train.jsonl").read_text().splitlines()}
    test_path = tmp_path / "s.test.jsonl"
    test = {json.loads(x)["prompt"].strip().casefold() for x in test_path.read_text().splitlines()}
    assert not train & test and split.rows_written == 3


def test_a_replaced_trace_leaves_no_row_behind_in_a_split(tmp_path: Path) -> None:
    log = write(tmp_path / "t.jsonl", *(trace(f"v{n}", f"Q{n % 7}", day=1 + n % 20) for n in range(60)))
    # seed 2: both splits get rows (seed 1 left the test split empty, which is now refused)
    report = export_dataset(log, tmp_path / "o.jsonl", split=0.3, seed=2, keep="latest")
    rows = [
        json.loads(line)
        for name in ("train", "test")
        for line in (tmp_path / f"o.{name}.jsonl").read_text().splitlines()
    ]
    assert len(rows) == report.rows_written == 7 == report.traces_kept
    assert sorted(r["prompt"] for r in rows) == [f"Q{n}" for n in range(7)]
    assert report.dropped["duplicate_prompt"] == 53


# -- the dataset card folder --------------------------------------------------------------------------------------


def test_the_card_folder_loads_with_datasets_and_its_card_carries_the_provenance(log: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    huggingface_hub = pytest.importorskip("huggingface_hub")
    folder = tmp_path / "dpo-set"
    command = "hegelion-dataset traces.jsonl dpo-set --card --split 0.5"
    report = export_dataset(log, folder, card=True, split=0.5, seed=2, command=command)

    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "data/test.jsonl",
        "data/train.jsonl",
    ]
    loaded = datasets.load_dataset(str(folder))
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].column_names == ["prompt", "chosen", "rejected"]
    assert loaded["train"].num_rows + loaded["test"].num_rows == 4 == report.rows_written

    card = huggingface_hub.DatasetCard.load(folder / "README.md")
    assert card.data.size_categories == ["n<1K"]
    assert card.data.task_categories == ["text-generation"]
    assert "license" in card.data.to_dict()
    text = card.text
    for model in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "openai/gpt-4o", "hosted_vllm/qwen"):
        assert f"| `{model}` | 1 |" in text
    assert "| `general` | 4 |" in text
    assert "| demo | 1 traces |" in text
    assert command in text
    assert "2026-11-01T12:00:00+00:00 to 2026-11-05T12:00:00+00:00" in text
    assert "hf upload USER/NAME" in text


def test_a_card_folder_is_replaced_only_with_force_and_only_if_it_is_ours(log: Path, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    export_dataset(log, folder, card=True)
    with pytest.raises(ExportError, match="already exists; set option 'force' to replace it"):
        export_dataset(log, folder, card=True)
    export_dataset(log, folder, card=True, format="sft", force=True)
    assert json.loads((folder / "data" / "train.jsonl").read_text().splitlines()[0]).keys() == {"prompt", "completion"}
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ExportError, match="never replaced"):
        export_dataset(log, other, card=True, force=True)
    assert (other / "cat.jpg").read_bytes() == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "set", "traces.jsonl"]  # no temp left


def test_thousands_of_prompts_keep_exactly_the_latest_of_each(tmp_path: Path) -> None:
    # enough prompts to grow the kept-trace table several times; every third prompt comes back later, newer
    records = [trace(f"old{n}", f"Q{n}", day=1) for n in range(3000)]
    records += [trace(f"new{n}", f"Q{n}", day=2) for n in range(0, 3000, 3)]
    log = write(tmp_path / "t.jsonl", *records)
    out = tmp_path / "out.jsonl"
    report = export_dataset(log, out, keep="latest", split=0.2, seed=5)
    kept = [json.loads(line)["chosen"].split(":")[0] for name in ("train", "test")
            for line in (tmp_path / f"out.{name}.jsonl").read_text().splitlines()]  # fmt: skip
    expected = {f"new{n}" if n % 3 == 0 else f"old{n}" for n in range(3000)}
    assert sorted(kept) == sorted(expected) and len(kept) == 3000 == report.rows_written
    assert report.dropped["duplicate_prompt"] == 1000
    assert not out.exists()
