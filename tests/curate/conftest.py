"""Every dataset card folder a curate test writes must load with ``datasets.load_dataset(folder)`` (issue 21: an
empty split listed by the card made it raise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def card_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a dataset card (README.md) beside a data/ folder of JSONL splits."""
    return sorted(readme.parent for readme in root.rglob("README.md") if (readme.parent / "data").is_dir())


@pytest.fixture(autouse=True)
def _every_card_folder_loads(tmp_path: Path) -> Iterator[None]:
    yield
    folders = card_folders(tmp_path)
    if not folders:
        return
    datasets = pytest.importorskip("datasets")
    for folder in folders:
        splits = sorted(p.stem for p in (folder / "data").glob("*.jsonl"))
        loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / ".hf-card-check"))
        assert sorted(loaded) == splits, folder
        assert all(loaded[name].num_rows > 0 for name in splits), folder
