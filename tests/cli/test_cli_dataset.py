"""hegelion-dataset run as a user runs it: the seed's commands word for word (a real subprocess of the console
script), then the flags, the summary, the stats and the one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.cli.dataset import main
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

HEGELION_DATASET = Path(sys.executable).with_name("hegelion-dataset")
TASKS = ["Is 1 prime?", "Reverse a linked list", "Why is the sky blue?"]
# TASKS[0] runs twice: by default (--keep best, unscored: the latest wins) its second trace is kept, so it comes last.
KEPT = [*TASKS[1:], TASKS[0]]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trace log from the collection API: three 2-round dialectics, one repeat, one failed run."""
    folder = tmp_path_factory.mktemp("collected")
    store = TraceStore(folder / "traces.jsonl")
    stand_in = ScriptedLM()
    stand_in.demo = False  # stands in for a real model here: scripted traces are demo and left out by default
    ctx = RunContext.build(lm=stand_in, iterations=2)
    for task in [*TASKS, TASKS[0]]:
        assert run_dialectic(task, ctx=ctx, store=store).ok
    failing = ScriptedLM(fail_on={"antithesis"})
    assert not run_dialectic("A task whose antithesis fails", lm=failing, store=store).ok
    return store.path


@pytest.fixture
def workdir(tmp_path: Path, collected: Path) -> Path:
    shutil.copy(collected, tmp_path / "traces.jsonl")
    return tmp_path


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command line as typed in a shell, with our console script first on PATH."""
    assert HEGELION_DATASET.exists(), f"{HEGELION_DATASET} is missing: pip install -e ."
    env_path = f"{HEGELION_DATASET.parent}:/usr/bin:/bin"
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=120, env={"PATH": env_path}
    )


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


# -- the seed's commands, exactly as written -------------------------------------------------------------------------


def test_seed_command_dpo(workdir: Path) -> None:
    done = shell("hegelion-dataset traces.jsonl train_dpo.jsonl", workdir)
    assert done.returncode == 0, done.stderr
    rows = rows_of(workdir / "train_dpo.jsonl")
    assert [r["prompt"] for r in rows] == KEPT
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert row["chosen"].startswith("Synthesis v2:")  # the final synthesis of the 2-round run
        assert row["rejected"].startswith("Thesis:")  # the first thesis
    assert done.stderr == ("hegelion: 3 rows -> train_dpo.jsonl; 5 traces read, 2 dropped (--stats says why)\n")


def test_seed_command_rejected_antithesis(workdir: Path) -> None:
    done = shell("hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis", workdir)
    assert done.returncode == 0, done.stderr
    rows = rows_of(workdir / "train_dpo.jsonl")
    assert len(rows) == 3 and all(r["rejected"].startswith("Antithesis:") for r in rows)


def test_seed_command_rejected_both(workdir: Path) -> None:
    done = shell("hegelion-dataset traces.jsonl train_dpo.jsonl --rejected both", workdir)
    assert done.returncode == 0, done.stderr
    rows = rows_of(workdir / "train_dpo.jsonl")
    assert [r["prompt"] for r in rows] == [t for t in KEPT for _ in range(2)]
    assert [r["rejected"].split(":")[0] for r in rows] == ["Thesis", "Antithesis"] * 3


def test_seed_command_instruction(workdir: Path) -> None:
    done = shell("hegelion-dataset traces.jsonl train_instruction.jsonl --format instruction", workdir)
    assert done.returncode == 0, done.stderr
    rows = rows_of(workdir / "train_instruction.jsonl")
    assert [r["instruction"] for r in rows] == KEPT
    assert all(r["input"] == "" and r["output"].startswith("Synthesis v2:") for r in rows)


def test_running_a_seed_command_again_asks_for_force(workdir: Path) -> None:
    assert shell("hegelion-dataset traces.jsonl train_dpo.jsonl", workdir).returncode == 0
    before = (workdir / "train_dpo.jsonl").read_bytes()
    again = shell("hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis", workdir)
    assert again.returncode == 2
    assert again.stderr == ("hegelion: error: 'train_dpo.jsonl' already exists; pass --force to replace it\n")
    assert (workdir / "train_dpo.jsonl").read_bytes() == before
    forced = shell("hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis --force", workdir)
    assert forced.returncode == 0 and (workdir / "train_dpo.jsonl").read_bytes() != before


def test_bad_input_exits_non_zero_with_path_and_line_and_no_traceback(workdir: Path) -> None:
    with open(workdir / "traces.jsonl", "ab") as fh:
        fh.write(b'{"task": 42}\n')
    done = shell("hegelion-dataset traces.jsonl out.jsonl", workdir)
    assert done.returncode == 2
    assert done.stderr.startswith("hegelion: error: traces.jsonl:6: field ")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["traces.jsonl"]


def test_skip_invalid_reports_the_count_and_where(workdir: Path) -> None:
    with open(workdir / "traces.jsonl", "ab") as fh:
        fh.write(b"\xff\xfe\n")
        fh.write(b'{"task": "torn')
    done = shell("hegelion-dataset traces.jsonl out.jsonl --skip-invalid", workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "hegelion: skipped 2 invalid lines; the first:"
    assert lines[1].startswith("  traces.jsonl:6: invalid UTF-8")
    assert lines[2].startswith("  traces.jsonl:7: torn last line")
    assert len(rows_of(workdir / "out.jsonl")) == 3


def test_a_quoted_glob_reads_every_matching_log(workdir: Path) -> None:
    logs = workdir / "logs"
    logs.mkdir()
    shutil.move(workdir / "traces.jsonl", logs / "a.jsonl")
    TraceStore(logs / "b.jsonl").append(
        build_trace(task="A new task", thesis="t", antithesis="a", synthesis="A new synthesis.")
    )
    done = shell("hegelion-dataset 'logs/*.jsonl' data/sft.jsonl --format sft-chat --split 0.5 --seed 3", workdir)
    assert done.returncode == 0, done.stderr
    train, test = rows_of(workdir / "data/sft.train.jsonl"), rows_of(workdir / "data/sft.test.jsonl")
    assert len(train) + len(test) == 4 and all(set(r) == {"messages"} for r in train + test)
    assert "rows -> data/sft.train.jsonl" in done.stderr and "row -> data/sft.test.jsonl" in done.stderr


# -- flags, in process -----------------------------------------------------------------------------------------------


def test_stats_prints_what_was_kept_and_why_the_rest_was_dropped(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main([str(workdir / "traces.jsonl"), str(workdir / "o.jsonl"), "--stats"], capsys)
    assert code == 0
    stats = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert stats["failed"] == "1" and stats["duplicate_prompt"] == "1" and stats["too_short"] == "0"
    assert "traces read   5" in out and "traces kept   3" in out and "rows train    3" in out
    assert "--stats says why" not in err


def test_min_chars_and_min_score_filter(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = workdir / "scored.jsonl"
    store = TraceStore(log)
    for task, score, synthesis in [("a", 0.9, "Long enough answer."), ("b", 0.2, "Also long enough."), ("c", 0.9, "x")]:
        store.append(build_trace(task=task, thesis="t", antithesis="n", synthesis=synthesis, score=score))
    code, out, _ = run_main(
        [str(log), str(workdir / "o.jsonl"), "--min-score", "0.5", "--min-chars", "5", "--stats"], capsys
    )
    assert code == 0 and [r["prompt"] for r in rows_of(workdir / "o.jsonl")] == ["a"]
    assert " below_min_score                  1 traces" in out and " too_short                        1 rows" in out


def test_system_prompt_reaches_chat_rows(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(workdir / "traces.jsonl"), str(workdir / "o.jsonl"), "-f", "dpo-chat", "--system", "Be brief."]
    assert run_main(args, capsys)[0] == 0
    row = rows_of(workdir / "o.jsonl")[0]
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": KEPT[0]}]


def test_pairs_rounds_writes_one_pair_per_round(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(workdir / "traces.jsonl"), str(workdir / "o.jsonl"), "--pairs", "rounds", "--with-metadata"]
    assert run_main(args, capsys)[0] == 0
    rows = rows_of(workdir / "o.jsonl")
    assert len(rows) == 6 and [r["metadata"]["round"] for r in rows[:2]] == [1, 2]
    assert rows[1]["rejected"] == rows[0]["chosen"]  # round 2's thesis is round 1's synthesis


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "sft", "--rejected", "antithesis"],
            "--rejected chooses preference pairs and applies to the formats dpo and dpo-chat only, not 'sft'",
        ),
        (["--format", "instruction", "--pairs", "rounds"], "--pairs chooses preference pairs"),
        (["--system", "Be brief."], "--system applies to the formats dpo-chat and sft-chat only, not 'dpo'"),
        (["--split", "1.5"], "--split"),
        (["--format", "csv"], "'csv' is not one of"),
    ],
)
def test_usage_errors_are_one_line_and_write_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_main([str(workdir / "traces.jsonl"), str(workdir / "o.jsonl"), *args], capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1 and err.startswith("hegelion: error:")
    assert not (workdir / "o.jsonl").exists()


def test_the_output_may_not_be_the_input(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (workdir / "traces.jsonl").read_bytes()
    code, _, err = run_main([str(workdir / "traces.jsonl"), str(workdir / "traces.jsonl"), "--force"], capsys)
    assert code == 2 and "is also an input" in err
    assert (workdir / "traces.jsonl").read_bytes() == before


def test_an_input_and_an_output_are_both_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["only-one.jsonl"], capsys)
    assert code == 2 and "Missing argument" in err


def test_help_names_every_format_and_the_seed_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    assert "INPUT... OUTPUT" in out and "hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis" in out
    for fmt in ("dpo", "dpo-chat", "instruction", "sft", "sft-chat"):
        assert fmt in out
