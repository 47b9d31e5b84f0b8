"""No litter: the temp files of a killed `hegelion dataset` carry its pid, and the next export of the same target
removes them and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hegelion_dspy.cli.main import main as hegelion_main
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.litter import sweep_stale, temp_path, writer_alive
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

KILLED_EXPORT = """
import os, sys
from pathlib import Path
from hegelion_dspy.curate.files import _AtomicFile
f = _AtomicFile(Path(sys.argv[1]), force=False)   # what `hegelion dataset` writes into, renamed at the end
f.fh.write(b"x" * 100_000)
f.fh.flush()
print(f.tmp, flush=True)
os.kill(os.getpid(), 9)                            # killed mid-export: nothing removes the temp file
"""


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_killed_dataset_export_is_cleaned_up_by_the_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = TraceStore(tmp_path / "traces.jsonl")
    for task in ("one", "two"):
        run_dialectic(task, lm=ScriptedLM(), store=log)
    out = tmp_path / "dpo.jsonl"
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(out)], capture_output=True, text=True)
    assert killed.returncode == -9
    left = Path(killed.stdout.strip())
    assert left.exists() and left.name.startswith(".dpo.jsonl.") and not out.exists()

    with pytest.raises(SystemExit) as done:
        hegelion_main(["dataset", str(log.path), str(out), "--include-demo"])
    assert done.value.code == 0
    assert not left.exists() and out.exists()
    assert f"removed {left} (97.7 KiB), left by a writer that is gone (pid" in capsys.readouterr().err


def test_only_the_temp_files_of_dead_writers_of_the_same_target_go(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    mine = temp_path(target)
    dead = target.with_name(f".out.jsonl.{dead_pid()}.0badc0de.tmp")
    dead_compacted = target.with_name(dead.name + ".c")
    dead_folder = target.with_name(f".out.jsonl.{dead_pid()}.0badc0de.old")
    other_target = tmp_path / f".other.jsonl.{dead_pid()}.0badc0de.tmp"
    not_ours = tmp_path / ".out.jsonl.notes.tmp"
    for path in (mine, dead, dead_compacted, other_target, not_ours):
        path.write_bytes(b"x")
    dead_folder.mkdir()
    (dead_folder / "train.jsonl").write_bytes(b"y" * 10)

    assert sorted(sweep_stale(target)) == sorted([dead, dead_compacted, dead_folder])
    assert mine.exists() and other_target.exists() and not_ours.exists()
    assert writer_alive(os.getpid()) and not writer_alive(dead_pid())
