"""The one `hegelion` command: run by default, the subcommands, the old script names, and `hegelion logs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hegelion_dspy.cli.main import main
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceFailure, TraceRecord

BIN = Path(sys.executable).parent


def hegelion(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def spawn(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEGELION_MODEL": "scripted"}
    return subprocess.run([str(BIN / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_task_runs_a_dialectic_by_default_and_run_is_the_same(tmp_path: Path, capsys) -> None:
    log = str(tmp_path / "t.jsonl")
    code, out, _ = hegelion("Why is the sky blue?", "-m", "scripted", "--log-file", log, capsys=capsys)
    assert code == 0 and out.startswith("Synthesis v1:")
    code, out, _ = hegelion("run", "Name a prime", "-m", "scripted", "--log-file", log, "-n", "2", capsys=capsys)
    assert code == 0 and out.startswith("Synthesis v2:")
    assert [r.task for r in TraceStore(log)] == ["Why is the sky blue?", "Name a prime"]


def test_no_arguments_print_the_subcommands(capsys) -> None:
    _, out, err = hegelion(capsys=capsys)
    text = out + err
    for command in ("run", "dataset", "logs", "optimize", "serve"):
        assert f"  {command} " in text


def test_the_old_script_names_run_the_seed_commands_and_equal_the_subcommands(tmp_path: Path) -> None:
    seed = ["Fix the memory leak", "--coding", "--iterations", "2", "--log-file", "data/t.jsonl"]
    old = spawn("hegelion-agent", *seed, cwd=tmp_path)
    new = spawn("hegelion", "run", *seed, cwd=tmp_path)
    assert old.returncode == new.returncode == 0, old.stderr + new.stderr
    assert old.stdout == new.stdout and old.stdout.startswith("Synthesis v2:")
    first, second = TraceStore(tmp_path / "data" / "t.jsonl")
    assert (first.task, first.mode, len(first.rounds)) == (second.task, second.mode, 2)

    old = spawn("hegelion-dataset", "data/t.jsonl", "old.jsonl", "--include-demo", "--keep-duplicates", cwd=tmp_path)
    new = spawn("hegelion", "dataset", "data/t.jsonl", "new.jsonl", "--include-demo", "--keep-duplicates", cwd=tmp_path)
    assert old.returncode == new.returncode == 0, old.stderr + new.stderr
    assert (tmp_path / "old.jsonl").read_bytes() == (tmp_path / "new.jsonl").read_bytes()
    assert len((tmp_path / "old.jsonl").read_text().splitlines()) == 2


def test_old_and_new_names_print_the_same_help(tmp_path: Path) -> None:
    for old, new in (
        ("hegelion-agent", "run"),
        ("hegelion-dataset", "dataset"),
        ("hegelion-optimize", "optimize"),
    ):
        old_help = spawn(old, "--help", cwd=tmp_path).stdout
        new_help = spawn("hegelion", new, "--help", cwd=tmp_path).stdout
        assert old_help.split("\n", 1)[1] == new_help.split("\n", 1)[1]  # all but the usage line's program name
    server = spawn("hegelion", "serve", "--help", cwd=tmp_path)
    assert server.returncode == 0 and "--transport" in server.stdout


def test_shared_options_are_declared_once_with_one_help_text() -> None:
    from hegelion_dspy.cli.agent import agent
    from hegelion_dspy.cli.optimize import optimize

    for flag in ("--model", "--api-base", "--prompts", "--program"):
        found = [p for command in (agent, optimize) for p in command.params if flag in getattr(p, "opts", ())]
        assert len(found) == 2, flag
        assert found[0].help == found[1].help and found[0].opts == found[1].opts, flag


# -- hegelion logs ----------------------------------------------------------------------------------------------


def record(id: str, task: str, **fields) -> TraceRecord:
    trace = build_trace(task=task, thesis=f"{id} thesis", antithesis=f"{id} critique", synthesis=f"{id} better")
    return trace.model_copy(update={"id": id, **fields})


@pytest.fixture
def log(tmp_path: Path) -> Path:
    store = TraceStore(tmp_path / "traces.jsonl")
    store.append_many(
        [
            record("aaaa1111", "First task\nwith a second line", model="openai/gpt-4o-mini", score=0.8),
            record("bbbb2222", "Second task", model="anthropic/claude-sonnet-4-5", tags=["code"]),
            record("cccc3333", "Demo task", model="embedded/smollm2-135m-instruct", demo=True),
            TraceRecord(
                id="dddd4444",
                task="Failed task",
                model="openai/gpt-4o-mini",
                status="failed",
                error=TraceFailure(step="antithesis", round=1, type="Timeout", message="timed out"),
            ),
        ]
    )
    return store.path


def test_logs_lists_the_latest_traces_newest_first_with_their_first_line(log: Path, capsys) -> None:
    code, out, _ = hegelion("logs", "--log-file", str(log), capsys=capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "created", "(UTC)", "model", "status", "score", "task"]
    assert [line.split()[0] for line in lines[1:]] == ["dddd4444", "cccc3333", "bbbb2222", "aaaa1111"]
    assert "(demo)" in lines[2] and "0.80" in lines[4] and lines[4].endswith("First task")


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (["-n", "2"], ["dddd4444", "cccc3333"]),
        (["--status", "failed"], ["dddd4444"]),
        (["--model", "openai/*"], ["dddd4444", "aaaa1111"]),
        (["--exclude-demo"], ["dddd4444", "bbbb2222", "aaaa1111"]),
        (["--tag", "code"], ["bbbb2222"]),
    ],
)
def test_logs_filters_as_exports_do(log: Path, capsys, args: list[str], ids: list[str]) -> None:
    code, out, _ = hegelion("logs", "--log-file", str(log), "--json", *args, capsys=capsys)
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids


def test_logs_show_prints_one_trace_in_full_by_id_or_prefix(log: Path, capsys) -> None:
    code, out, _ = hegelion("logs", "show", "bbbb", "--log-file", str(log), capsys=capsys)
    assert code == 0
    assert out.splitlines()[0] == "trace     bbbb2222"
    for text in ("Second task", "round 1 · thesis", "bbbb2222 thesis", "bbbb2222 critique", "bbbb2222 better"):
        assert text in out
    code, out, _ = hegelion("logs", "--log-file", str(log), "show", "dddd4444", "--json", capsys=capsys)
    shown = TraceRecord.model_validate_json(out)
    assert shown.id == "dddd4444" and shown.error is not None and shown.error.step == "antithesis"


@pytest.mark.parametrize(("trace_id", "message"), [("zzzz", "no trace with id 'zzzz'"), ("", "give a trace id")])
def test_logs_show_a_bad_id_is_one_line_and_exit_2(log: Path, capsys, trace_id: str, message: str) -> None:
    code, out, err = hegelion("logs", "show", trace_id, "--log-file", str(log), capsys=capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_logs_stats_count_the_filtered_traces(log: Path, capsys) -> None:
    code, out, _ = hegelion("logs", "--log-file", str(log), "--stats", "--json", "--exclude-demo", capsys=capsys)
    stats = json.loads(out)
    assert code == 0 and (stats["total"], stats["ok"], stats["failed"], stats["demo"]) == (3, 2, 1, 0)
    assert stats["by_model"] == {"openai/gpt-4o-mini": 2, "anthropic/claude-sonnet-4-5": 1}
    assert stats["scored"] == 1 and stats["mean_score"] == 0.8


def test_logs_without_a_log_says_how_to_get_one(tmp_path: Path, capsys) -> None:
    code, _, err = hegelion("logs", "--log-file", str(tmp_path / "none.jsonl"), capsys=capsys)
    assert code == 2 and "no trace log at" in err


def test_the_command_and_the_exporter_start_without_dspy_or_the_mcp_sdk() -> None:
    # --help, `hegelion logs` and `hegelion dataset` must not wait for dspy (and litellm) or the MCP SDK to import
    probe = (
        "import sys, hegelion_dspy.cli.main, hegelion_dspy.curate.driver, hegelion_dspy.collect.batch, "
        "hegelion_dspy.collect.traces; "
        "print(sorted(m for m in ('dspy', 'litellm', 'mcp', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
