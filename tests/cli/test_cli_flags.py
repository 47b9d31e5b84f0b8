"""Quality flags at the command line: `hegelion logs` shows them, `hegelion dataset --stats` counts them per flag,
--allow-flag keeps one kind; and the seed's coding command on the embedded model (slow), whose truncated and copied
pairs must be flagged and not exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.store import TraceStore, read_records

BIN = Path(sys.executable).parent
THESIS = "Free the buffer in the destructor."
CRITIQUE = "The destructor never runs when the object sits in a reference cycle, so the buffer still leaks."
SYNTHESIS = "Break the cycle with a weak reference and free the buffer in close(), called by a context manager."


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [str(BIN / "hegelion"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many(
        [
            build_trace(task="clean", thesis=THESIS, antithesis=CRITIQUE, synthesis=SYNTHESIS),
            build_trace(task="copied", thesis=THESIS, antithesis=CRITIQUE, synthesis=CRITIQUE),
        ]
    )
    return path


def test_logs_show_the_flags_and_dataset_stats_count_them(log: Path, tmp_path: Path) -> None:
    listed = run("logs", "--log-file", str(log), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    copied_line = next(line for line in listed.stdout.splitlines() if "copied" in line)
    assert copied_line.endswith("copied  [copy]")
    assert next(line for line in listed.stdout.splitlines() if "clean" in line).endswith("clean")
    copied_id = next(r.id for r in read_records(log) if r.task == "copied")
    shown = run("logs", "--log-file", str(log), "show", copied_id[:10], cwd=tmp_path)
    assert "flags     copy  (its pairs are left out of exports unless --allow-flag)" in shown.stdout

    out = tmp_path / "dpo.jsonl"
    stats = run("dataset", str(log), str(out), "--stats", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == ["clean"]
    assert "  copy                             1 traces  1 rows left out" in stats.stdout

    allowed = run("dataset", str(log), str(out), "--force", "--allow-flag", "copy", "--stats", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert len(out.read_text().splitlines()) == 2
    assert "  copy                             1 traces  kept (--allow-flag)" in allowed.stdout

    unknown = run("dataset", str(log), str(out), "--force", "--allow-flag", "copies", cwd=tmp_path)
    assert unknown.returncode == 2 and "'copies' is not one of 'truncated', 'copy'" in unknown.stderr


@pytest.mark.slow
def test_the_seed_coding_command_on_the_embedded_model_flags_its_junk_and_exports_none_of_it(tmp_path: Path) -> None:
    # issue 21's must-show: every step of this command stopped at the embedded model's 256-token cap, and round 2's
    # synthesis copied its antithesis; both exported as DPO rows.
    log = tmp_path / "data" / "traces.jsonl"
    ran = run(
        "Fix the memory leak", "--coding", "--iterations", "2", "-q", "--log-file", str(log), cwd=tmp_path, timeout=1800
    )
    assert ran.returncode == 0, ran.stderr
    (record,) = read_records(log)
    assert record.demo and record.flags is not None
    truncated = any("synthesis" in r.truncated for r in record.rounds)
    assert ("truncated" in record.flags) == truncated
    assert record.flags, "the embedded model's coding dialectic should carry at least one flag"

    # a clean trace beside it, so the export writes something and --stats prints
    TraceStore(log).append(build_trace(task="clean", thesis=THESIS, antithesis=CRITIQUE, synthesis=SYNTHESIS))
    out = tmp_path / "dpo.jsonl"
    stats = run("dataset", str(log), str(out), "--include-demo", "--stats", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == ["clean"]
    first = record.flags[0]
    assert f"  {first:<24} {1:>9,} traces  1 rows left out" in stats.stdout
    for flag in record.flags[1:]:
        assert f"  {flag:<24} {1:>9,} traces  0 rows left out" in stats.stdout
