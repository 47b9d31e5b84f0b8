"""Shared fixtures: a scripted deterministic LM and a trace log in a temp folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# DSPy reads its request-cache folder when it is imported (below): a fresh one per run, never a developer's cache.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="hegelion-test-dspy-cache-")
# LiteLLM's bundled price map, never one fetched on import, whichever test imports it first (make_lm sets it too).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore


@pytest.fixture
def scripted_lm() -> ScriptedLM:
    return ScriptedLM()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "traces.jsonl"


@pytest.fixture
def store(log_path: Path) -> TraceStore:
    return TraceStore(log_path)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never pick up a developer's model, data folder or log: every test states what it uses.
    for name in (
        "HEGELION_MODEL",
        "HEGELION_LOG_FILE",
        "HEGELION_PROGRAM",
        "HEGELION_API_BASE",
        "HEGELION_API_KEY",
        "HEGELION_THREADS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEGELION_DATA_DIR", str(tmp_path / "data"))


def need(what: str, how: str) -> None:
    """Skip a test whose external tool (a browser, a Node client, a training venv) is missing, with the way to get
    it; under CI (``HEGELION_CI=1``, set by ``.ci/run``, which installs every such tool) fail instead, so a missing
    tool can never turn a CI run green by skipping."""
    message = f"{what} is not available: {how}"
    if os.environ.get("HEGELION_CI") == "1":
        pytest.fail(message + " (HEGELION_CI=1: .ci/run should have installed it)", pytrace=False)
    pytest.skip(message)


# Debian's Chromium for the browser tests (Playwright launches it; `playwright install` is never run). Headless, as root
# (no sandbox), and quiet: without the background-networking flags Chromium keeps trying to reach Google's hosts, which
# this machine's closed network refuses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def card_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a dataset card (README.md) beside a data/ folder of JSONL splits."""
    return sorted(readme.parent for readme in root.rglob("README.md") if (readme.parent / "data").is_dir())


@pytest.fixture(autouse=True)
def _every_card_folder_loads(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Every dataset card folder a curate test writes must load with ``datasets.load_dataset(folder)`` (issue 21: an
    empty split listed by the card made it raise), for the tests that export: tests/curate/ and tests/cli/. It lives
    here, not in a conftest.py of their own: pytest imports each folder's conftest.py as the one module ``conftest``,
    so a second one shadows ``need`` for every ``from conftest import need``."""
    yield
    if not {"curate", "cli"} & set(request.node.path.parts):
        return
    folders = card_folders(tmp_path)
    if not folders:
        return
    datasets = pytest.importorskip("datasets")
    for folder in folders:
        splits = sorted(p.stem for p in (folder / "data").glob("*.jsonl"))
        loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / ".hf-card-check"))
        assert sorted(loaded) == splits, folder
        assert all(loaded[name].num_rows > 0 for name in splits), folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files that hold a slow test run first (each file's own order kept): with `--dist loadfile` a worker that picks
    up a three-minute file last keeps the run waiting while the other worker idles. Every worker collects the same
    order, as xdist requires."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: False (slow files) first
