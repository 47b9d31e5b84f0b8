"""Card folders of every format, with and without a split, load as written (the autouse check in conftest.py loads
each folder these tests leave); a split too small for its log is refused and leaves no folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.formats import FORMATS
from hegelion_dspy.errors import ExportError
from hegelion_dspy.store import TraceStore


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many(
        build_trace(
            task=f"Task {n}: how should a team of {n} share one build server?",
            thesis=f"Give each of the {n} people a fixed hour.",
            antithesis="Fixed hours waste the server when someone is away, and urgent fixes wait a day.",
            synthesis=f"Queue builds for all {n} people, with a fast lane for urgent fixes.",
        )
        for n in range(12)
    )
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("split", [None, 0.5])
def test_a_card_folder_of_every_format_loads(log: Path, tmp_path: Path, fmt: str, split: float | None) -> None:
    folder = tmp_path / f"set-{fmt}"
    report = export_dataset(log, folder, card=True, format=fmt, split=split, seed=3)
    assert sorted(report.rows) == (["test", "train"] if split else ["train"])
    assert all(report.rows.values())


def test_a_card_with_a_split_too_small_for_the_log_is_refused(log: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"the test split would be empty \(rows per split: train 12, test 0\)"):
        export_dataset(log, tmp_path / "small", card=True, split=0.01, seed=7)
    assert not (tmp_path / "small").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".small")]  # no staging folder left
