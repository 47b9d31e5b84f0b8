"""What the training tests share: an agent-written trace log, the real hegelion dataset command, the example scripts
and the tiny offline model (examples/tiny_model.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import Round, TraceFailure, TraceRecord

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HEGELION = Path(sys.executable).with_name("hegelion")
THINGS = ["caching", "code review", "backups", "typing", "logging", "tests", "indexes", "retries"]
TASKS = [f"Explain topic {n}: why does {thing} matter?" for n, thing in enumerate(THINGS)]


def write_traces(log: Path) -> Path:
    """One two-round trace per task, as an IDE agent logs them (``build_trace``: not a demo model's), plus one failed
    trace that no export may use. Round 1's thesis is what DPO rejects; round 2's synthesis is what it prefers."""
    store = TraceStore(log)
    for task, thing in zip(TASKS, THINGS, strict=True):
        record = build_trace(
            task=task,
            thesis=f"Thesis: {thing} matters because people rely on it every day.",
            antithesis=f"Antithesis: {thing} is replaceable; reliance is habit, not need.",
            contradictions=[{"description": "need vs habit", "evidence": f"teams drop {thing} and recover"}],
            synthesis=f"Synthesis v1: {thing} matters where no substitute is ready.",
            rounds=[
                {
                    "antithesis": f"Antithesis v2: substitutes for {thing} exist but cost more to adopt.",
                    "synthesis": f"Synthesis v2: {thing} matters until a substitute is cheap; plan the switch.",
                }
            ],
            model="openai/gpt-4o-mini",
            source="mcp",
        )
        store.append(record)
    store.append(
        TraceRecord(
            task="A task whose synthesis failed",
            model="openai/gpt-4o-mini",
            source="mcp",
            rounds=[
                Round(index=1, thesis="Thesis: a first answer.", antithesis="Antithesis: an objection.", synthesis="")
            ],
            status="failed",
            error=TraceFailure(step="synthesis", round=1, type="LMError", message="the model timed out"),
        )
    )
    return log


def example(name: str) -> ModuleType:
    """examples/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_hegelion_dataset(args: list[str], *, cwd: Path | None = None) -> str:
    """Run `hegelion dataset ARGS` as a user does; return its summary line (stderr)."""
    assert HEGELION.exists(), f"{HEGELION} is missing: pip install -e ."
    done = subprocess.run(
        [str(HEGELION), "dataset", *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def export(trace_log: Path, output: Path, fmt: str, *extra: str) -> str:
    return run_hegelion_dataset([str(trace_log), str(output), "--format", fmt, *extra])


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def save_tiny_model(folder: Path, data: list[Path]) -> Path:
    """examples/tiny_model.py: a tiny random Llama with a ChatML tokenizer trained on ``data``."""
    tiny = example("tiny_model")
    return tiny.save_tiny_model(folder, tiny.texts_from_jsonl(data))
