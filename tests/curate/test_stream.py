"""The export loop's window of held-back rows (curate/stream.py): a trace outranked while its rows are still held back
and one outranked after they reached the disk (cut out at the end) leave the same dataset and the same report."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate import stream
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.files import split_paths
from hegelion_dspy.curate.labels import Label, LabelStore, pair_key
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceRecord


def _log(path: Path) -> Path:
    """Prompts asked again soon after and long after, scored and not, some labelled."""
    rng = random.Random(3)
    records: list[TraceRecord] = []
    for i in range(120):
        task = f"Task {rng.randrange(40)}" + (" " if i % 7 == 0 else "")  # same prompt, another spelling
        record = build_trace(
            task=task,
            thesis=f"Thesis {i}.",
            antithesis="It misses a case.",
            synthesis=f"Synthesis {i}." + ("" if i % 11 else " Synthesis again."),
            model="openai/gpt-4o-mini",
            score=None if i % 5 == 0 else rng.choice((0.2, 0.5, 0.8)),
        )
        created = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(1000))
        records.append(record.model_copy(update={"id": f"t{i:03d}", "created_at": created}))
    TraceStore(path).append_many(records)
    labels = LabelStore.beside(path)
    for i, decision in zip(range(0, 120, 9), ["accept", "reject", "swap"] * 5, strict=False):
        labels.append(Label(trace_id=f"t{i:03d}", pair=pair_key("thesis", 1, 1), decision=decision))  # type: ignore[arg-type]
    return path


def _export(log: Path, out: Path, **options: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    report = export_dataset(log, out, force=True, **options)
    files = split_paths(out) if options.get("split") else {"train": out}
    summary = {k: v for k, v in report.as_dict().items() if k not in ("seconds", "outputs", "inputs")}
    return {name: path.read_bytes() for name, path in files.items()}, summary


@pytest.mark.parametrize(
    "options",
    [{"keep": "best"}, {"keep": "latest"}, {"keep": "best", "split": 0.3}, {"keep": "latest", "reviewed_only": True}],
    ids=["best", "latest", "best-split", "latest-reviewed"],
)
def test_rows_outranked_before_or_after_they_reach_the_disk_make_the_same_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    log = _log(tmp_path / "traces.jsonl")
    held = _export(log, tmp_path / "held.jsonl", **options)  # every replacement inside the window
    monkeypatch.setattr(stream, "WINDOW", 0)  # every trace's rows go to disk at once: replacements are cut out
    cut = _export(log, tmp_path / "cut.jsonl", **options)
    assert held == cut
    assert held[1]["dropped"]["duplicate_prompt"] > 10 and held[1]["rows_written"] > 3
    monkeypatch.setattr(stream, "WINDOW", 64)  # some in the window, some cut
    assert _export(log, tmp_path / "mixed.jsonl", **options) == held
