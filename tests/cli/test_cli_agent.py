"""hegelion-agent as a user runs it: the seed command, batches with resume, failures, one-line errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hegelion_dspy.cli.agent import main
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceRecord

AGENT = shutil.which("hegelion-agent") or str(Path(sys.executable).parent / "hegelion-agent")


def agent(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def spawn(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run([AGENT, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_seed_command_works_as_written(tmp_path: Path) -> None:
    done = spawn(
        ["Fix the memory leak", "--coding", "--iterations", "2", "--log-file", "data/traces.jsonl"],
        cwd=tmp_path,
        HEGELION_MODEL="scripted",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Synthesis v2:")
    [record] = list(TraceStore(tmp_path / "data" / "traces.jsonl"))
    assert (record.mode, record.source, len(record.rounds), record.status) == ("coding", "cli", 2, "ok")


def test_json_format_prints_the_whole_trace(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = agent("Why?", "-m", "scripted", "--log-file", str(log_path), "--format", "json", capsys=capsys)
    assert code == 0
    printed = TraceRecord.model_validate_json(out)
    assert [printed] == list(TraceStore(log_path))


def test_a_failing_step_logs_failed_and_exits_non_zero(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = agent("Why?", "-m", "scripted/fail=synthesis", "--log-file", str(log_path), capsys=capsys)
    assert code == 1
    assert out == ""  # nothing printed as if it were an answer
    assert "failed in the synthesis step" in err
    [record] = list(TraceStore(log_path))
    assert record.status == "failed" and record.error and record.error.step == "synthesis"


def test_prompts_batch_resumes_and_reports_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\nthree\n", encoding="utf-8")
    log = tmp_path / "log.jsonl"

    code, _, err = agent("--prompts", str(prompts), "-m", "scripted", "--log-file", str(log), "-j", "2", capsys=capsys)
    assert code == 0 and "3 ok, 0 failed, 0 skipped" in err

    prompts.write_text("one\ntwo\nthree\nfour\nfive\n", encoding="utf-8")
    # another model: nothing counts as done (resume is by task, mode, model and program)
    code, _, err = agent("--prompts", str(prompts), "-m", "scripted/fail=thesis", "--log-file", str(log), capsys=capsys)
    assert code == 1
    assert "0 ok, 5 failed, 0 skipped" in err
    assert "5 of 5 prompts failed" in err
    # the first model again: its three ok traces are skipped, the two new prompts run
    code, _, err = agent("--prompts", str(prompts), "-m", "scripted", "--log-file", str(log), capsys=capsys)
    assert code == 0 and "2 ok, 0 failed, 3 skipped" in err
    stats = TraceStore(log).stats()
    assert (stats.ok, stats.failed) == (5, 5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task", "--model", "no-such-model-anywhere"], "unknown model 'no-such-model-anywhere'"),
        (["--prompts", "/no/such/prompts.txt", "-m", "scripted"], "cannot read prompts file"),
        (["task", "--iterations", "0"], "--iterations"),
        (["task", "--bogus"], "No such option"),
        ([], "give either a TASK or --prompts FILE"),
        (["task", "-m", "scripted", "--program", "/no/such/program.json"], "does not exist"),
    ],
)
def test_user_mistakes_get_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = agent(*args, capsys=capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hegelion: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_every_finished_trace_and_a_rerun_resumes(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(40)), encoding="utf-8")
    log = tmp_path / "log.jsonl"
    args = ["--prompts", str(prompts), "--log-file", str(log), "-j", "2"]
    proc = subprocess.Popen(
        [AGENT, *args],
        env={**os.environ, "HEGELION_MODEL": "scripted/latency=0.1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs (`nohup pytest &`) with SIGINT ignored, and children inherit that; the user's
        # Ctrl-C reaches a foreground command, so give the child the default disposition Python turns into
        # KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or log.read_bytes().count(b"\n") < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, err
    assert "interrupted" in err
    finished = list(TraceStore(log))  # every line valid
    assert 3 <= len(finished) < 40
    assert all(r.ok for r in finished)

    done = spawn(args, cwd=tmp_path, HEGELION_MODEL="scripted/latency=0.1")  # the same model resumes
    assert done.returncode == 0, done.stderr
    assert f"{40 - len(finished)} ok, 0 failed, {len(finished)} skipped" in done.stderr
    assert sorted(r.task for r in TraceStore(log)) == sorted(f"prompt {i}" for i in range(40))


def test_json_lines_for_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a"}\n{"prompt": "b"}\n', encoding="utf-8")
    code, out, _ = agent("--prompts", str(prompts), "-m", "scripted", "--no-log", "--format", "json", capsys=capsys)
    assert code == 0
    assert sorted(json.loads(line)["task"] for line in out.splitlines()) == ["a", "b"]


def test_a_saved_program_keeps_its_iterations_unless_overridden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hegelion_dspy.program import Dialectic

    program = tmp_path / "program.json"
    Dialectic(iterations=3).save(str(program))
    log = tmp_path / "log.jsonl"
    code, _, _ = agent("a", "-m", "scripted", "--program", str(program), "--log-file", str(log), capsys=capsys)
    assert code == 0
    code, _, _ = agent(
        "b", "-m", "scripted", "--program", str(program), "-n", "2", "--log-file", str(log), capsys=capsys
    )
    assert code == 0
    assert [len(r.rounds) for r in TraceStore(log)] == [3, 2]
    assert all(r.program == str(program) for r in TraceStore(log))
