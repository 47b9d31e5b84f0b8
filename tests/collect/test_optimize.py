"""Optimization offline: trainsets from logs and prompt files, BootstrapFewShot / GEPA / MIPROv2 runs on a scripted LM,
and saved programs that, loaded back, change the prompts the LM receives."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import dspy
import pytest

from hegelion_dspy.cli.optimize import main
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.optimize import (
    OptimizerSettings,
    optimize_program,
    split_examples,
    tasks_from_log,
    tasks_from_prompts,
)
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.errors import ConfigError, InvalidTraceError, LMError
from hegelion_dspy.lms.base import ChatMessages, Completion, MessagesLM
from hegelion_dspy.lms.scripted import ScriptedLM, default_answer
from hegelion_dspy.program import Dialectic, load_program, save_program
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import STEPS, TraceFailure, TraceRecord

TASKS = [f"Explain sorting algorithm number {i}" for i in range(6)]
MARK = "CONCRETE"


def judge_answer(score: str = "0.8") -> Any:
    """ScriptedLM's ``answer=`` for the dialectic plus a judge that always gives ``score``."""

    def answer(step: str, inputs: dict[str, str]) -> dict[str, Any]:
        if step == "feedback":
            return {"feedback": "Handles the edge cases the critique raised.", "score": score}
        return default_answer(step, inputs)

    return answer


class TunableLM(ScriptedLM):
    """A stand-in for an LM that follows better prompts: a step whose instructions contain MARK answers with MARK,
    and the judge scores a run that shows MARK higher. MIPROv2's proposer steps propose MARK instructions."""

    def __init__(self) -> None:
        self._seen = threading.local()
        super().__init__(answer=self._answer)

    def _reply(self, messages: ChatMessages) -> Completion:
        self._seen.system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        return super()._reply(messages)

    def _answer(self, step: str, inputs: dict[str, str]) -> dict[str, Any]:
        if step == "feedback":
            concrete = MARK in inputs.get("thesis", "") or MARK in inputs.get("synthesis", "")
            return {
                "feedback": "Concrete." if concrete else "Too vague; name concrete cases.",
                "score": "0.9" if concrete else "0.5",
            }
        if step in STEPS:
            out = default_answer(step, inputs)
            if MARK in self._seen.system:
                out[step] = f"{out[step]} ({MARK})"
            return out
        if step == "proposed_instruction":
            return {step: f"Be {MARK} and name the cases you handle."}
        if step == "observations":
            return {step: "COMPLETE"}
        return {step: f"A short {step}."}


class Reflector(MessagesLM):
    """GEPA's reflection LM: proposes a MARK instruction, in the JSON its proposer asks for."""

    def __init__(self) -> None:
        super().__init__("scripted/reflector")
        self.prompts: list[str] = []

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        self.prompts.append("\n".join(m["content"] for m in messages))
        return Completion(json.dumps({"new_instruction": f"Be {MARK}: name every case you handle."}))


def first_call(program: Dialectic, task: str = "A task nobody trained on") -> tuple[ChatMessages, ScriptedLM]:
    lm = ScriptedLM()
    with dspy.context(lm=lm):
        program(task=task)
    return lm.calls[0][1], lm


def ok_trace(task: str, mode: str = "general") -> TraceRecord:
    return build_trace(task=task, thesis="T.", antithesis="A.", synthesis="S.", mode=mode)  # type: ignore[arg-type]


# -- trainsets -----------------------------------------------------------------------------------------------------


def test_tasks_from_log_keeps_unique_ok_tasks_of_the_mode(store: TraceStore) -> None:
    failed = TraceRecord(
        task="A failed task", status="failed", error=TraceFailure(step="thesis", round=1, type="X", message="x")
    )
    store.append_many(
        [
            ok_trace("Sort a list"),
            ok_trace("  sort A   list "),  # the same task, differently spaced and cased
            failed,
            ok_trace("Fix the leak", mode="coding"),
            ok_trace("Name a prime"),
        ]
    )
    assert tasks_from_log(store.path) == ["Sort a list", "Fix the leak", "Name a prime"]
    assert tasks_from_log(store.path, mode="general") == ["Sort a list", "Name a prime"]
    assert tasks_from_log(store.path, mode="coding") == ["Fix the leak"]


def test_tasks_from_log_reports_a_bad_line_unless_told_to_skip(store: TraceStore) -> None:
    store.append(ok_trace("Sort a list"))
    with store.path.open("a") as fh:
        fh.write("{not json\n")
    store.append(ok_trace("Name a prime"))
    with pytest.raises(InvalidTraceError) as bad:
        tasks_from_log(store.path)
    assert bad.value.lineno == 2
    skipped: list[InvalidTraceError] = []
    assert tasks_from_log(store.path, skip_invalid=True, on_invalid=skipped.append) == ["Sort a list", "Name a prime"]
    assert [e.lineno for e in skipped] == [2]


def test_tasks_from_prompts_drops_repeats(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Sort a list"}\n{"prompt": "sort a list"}\n{"task": "Name a prime"}\n')
    assert tasks_from_prompts(prompts) == ["Sort a list", "Name a prime"]


def test_split_is_seeded_disjoint_and_never_leaves_a_side_empty() -> None:
    train, dev = split_examples(TASKS, dev_fraction=0.34, seed=3)
    assert (len(train), len(dev)) == (4, 2)
    assert sorted(e.task for e in train + dev) == sorted(TASKS)
    assert all(set(e.inputs().keys()) == {"task"} for e in train + dev)
    again = split_examples(TASKS, dev_fraction=0.34, seed=3)
    assert [e.task for e in again[1]] == [e.task for e in dev]
    assert [e.task for e in split_examples(TASKS, 0.34, seed=4)[1]] != [e.task for e in dev]
    assert [len(side) for side in split_examples(TASKS[:2], dev_fraction=0.01)] == [1, 1]
    assert [len(side) for side in split_examples(TASKS[:2], dev_fraction=0.9)] == [1, 1]
    assert [len(side) for side in split_examples(TASKS, dev_fraction=0)] == [6, 0]
    assert [len(side) for side in split_examples(TASKS[:1], dev_fraction=0.5)] == [1, 0]


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_split_rejects_a_fraction_outside_0_to_1(fraction: float) -> None:
    with pytest.raises(ConfigError, match="dev_fraction"):
        split_examples(TASKS, dev_fraction=fraction)


def test_split_of_nothing_says_where_tasks_come_from() -> None:
    with pytest.raises(ConfigError, match="no tasks"):
        split_examples([])


# -- BootstrapFewShot: demos ---------------------------------------------------------------------------------------


def test_bootstrap_run_saves_a_program_whose_demos_reach_the_lm(tmp_path: Path) -> None:
    train, dev = split_examples(TASKS, dev_fraction=0.34, seed=1)
    lm = ScriptedLM(answer=judge_answer("0.8"))
    result = optimize_program(train, devset=dev, lm=lm, optimizer="bootstrap", settings=OptimizerSettings(max_demos=2))
    assert result.demos == {"thesis": 2, "antithesis": 2, "synthesis": 2}
    assert result.baseline is not None and result.score is not None
    assert 0.0 < result.baseline <= 1.0 and 0.0 < result.score <= 1.0
    assert "feedback" in lm.steps_called()  # the LM judge scored the runs

    path = save_program(result.program, tmp_path / "program.json", info=result.info())
    loaded = load_program(path)
    optimized, _ = first_call(loaded)
    plain, _ = first_call(Dialectic())
    assert [m["role"] for m in plain] == ["system", "user"]
    assert [m["role"] for m in optimized] == ["system", "user", "assistant", "user", "assistant", "user"]
    demo_tasks = {e.task for e in train}
    shown = [m["content"] for m in optimized[1:5:2]]
    assert all(any(task in text for task in demo_tasks) for text in shown)
    assert optimized[-1] == plain[-1]  # the real question is unchanged; the demos come before it

    # Collection loads it the way hegelion-agent --program does, and says so in the trace.
    collector = ScriptedLM()
    record = run_dialectic("A task nobody trained on", ctx=RunContext.build(lm=collector, program=path))
    assert record.ok and record.program == str(path)
    assert all(len(messages) == 6 for _, messages in collector.calls)


def test_bootstrap_keeps_only_runs_that_reach_min_score() -> None:
    train, _ = split_examples(TASKS, dev_fraction=0)
    result = optimize_program(
        train, lm=ScriptedLM(answer=judge_answer("0.3")), settings=OptimizerSettings(min_score=0.5), evaluate=False
    )
    assert result.demos == {"thesis": 0, "antithesis": 0, "synthesis": 0}
    assert result.baseline is None and result.score is None


def test_a_judge_that_never_answers_stops_the_run_instead_of_saving_nothing() -> None:
    train, dev = split_examples(TASKS, dev_fraction=0.34)
    with pytest.raises(LMError, match="every judge call failed"):
        optimize_program(train, devset=dev, lm=ScriptedLM(fail_on={"feedback"}))


def test_cheap_checks_alone_need_no_judge_lm() -> None:
    train, dev = split_examples(TASKS, dev_fraction=0.34)
    lm = ScriptedLM(fail_on={"feedback"})  # would fail if the judge were asked
    result = optimize_program(train, devset=dev, lm=lm, use_judge=False)
    assert "feedback" not in lm.steps_called()
    assert result.baseline == 1.0  # the scripted synthesis addresses its one contradiction and is no copy
    assert result.demos["synthesis"] == 2


# -- GEPA and MIPROv2: instructions --------------------------------------------------------------------------------


def test_gepa_rewrites_instructions_from_judge_feedback_and_they_reach_the_lm(tmp_path: Path) -> None:
    train, dev = split_examples(TASKS, dev_fraction=0.34, seed=1)
    reflector = Reflector()
    result = optimize_program(
        train,
        devset=dev,
        lm=TunableLM(),
        reflection_lm=reflector,
        optimizer="gepa",
        settings=OptimizerSettings(max_metric_calls=12, options={"reflection_minibatch_size": 2}),
    )
    assert reflector.prompts, "GEPA never asked the reflection LM"
    assert "Too vague; name concrete cases." in reflector.prompts[0]  # the judge's feedback reached the reflection
    assert "You are tuning the thesis step" in reflector.prompts[0]
    assert result.instructions_changed  # at least one step got a new instruction
    assert result.baseline == pytest.approx(0.6) and result.score == pytest.approx(0.92)

    path = save_program(result.program, tmp_path / "gepa.json", info=result.info())
    optimized, _ = first_call(load_program(path))
    plain, _ = first_call(Dialectic())
    assert MARK in optimized[0]["content"] and MARK not in plain[0]["content"]
    assert json.loads(path.read_text())["hegelion"]["optimization"]["optimizer"] == "gepa"


def test_mipro_completes_offline_and_picks_the_better_instruction(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    train, dev = split_examples(TASKS, dev_fraction=0.34, seed=1)
    lm = TunableLM()
    result = optimize_program(
        train, devset=dev, lm=lm, optimizer="mipro", settings=OptimizerSettings(num_candidates=2, max_demos=1)
    )
    assert "proposed_instruction" in lm.steps_called()
    assert result.score is not None and result.baseline is not None and result.score > result.baseline
    path = save_program(result.program, tmp_path / "mipro.json")
    optimized, _ = first_call(load_program(path))
    assert MARK in optimized[0]["content"]


# -- saving --------------------------------------------------------------------------------------------------------


def test_save_program_refuses_to_overwrite_and_wants_json(tmp_path: Path) -> None:
    path = save_program(Dialectic(mode="coding", iterations=2), tmp_path / "p.json")
    with pytest.raises(ConfigError, match="already exists"):
        save_program(Dialectic(), path)
    with pytest.raises(ConfigError, match=r"\.json"):
        save_program(Dialectic(), tmp_path / "p.pkl")
    save_program(Dialectic(), path, overwrite=True, info={"optimizer": "bootstrap"})
    assert load_program(path).mode == "general"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temp files left behind


def test_saved_mode_and_iterations_survive_optimization(tmp_path: Path) -> None:
    train, _ = split_examples(TASKS[:3], dev_fraction=0)
    result = optimize_program(
        train,
        lm=ScriptedLM(answer=judge_answer()),
        mode="coding",
        iterations=2,
        evaluate=False,
        settings=OptimizerSettings(max_demos=1),
    )
    loaded = load_program(save_program(result.program, tmp_path / "coding.json"))
    assert (loaded.mode, loaded.iterations) == ("coding", 2)
    _, lm = first_call(loaded)
    assert lm.steps_called() == ["thesis", "antithesis", "synthesis", "antithesis", "synthesis"]


def test_unknown_optimizer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown optimizer 'sgd'"):
        optimize_program(TASKS, lm=ScriptedLM(), optimizer="sgd")  # type: ignore[arg-type]


# -- hegelion-optimize as a user runs it ---------------------------------------------------------------------------


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_cli_optimizes_from_a_log_and_the_agent_loads_the_result(
    tmp_path: Path, store: TraceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for task in TASKS:
        run_dialectic(task, store=store, lm=ScriptedLM())
    out_file = tmp_path / "program.json"
    code, out, err = run_cli(
        "--log",
        str(store.path),
        "-o",
        str(out_file),
        "--model",
        "scripted",
        "--no-judge",
        "--format",
        "json",
        capsys=capsys,
    )
    assert code == 0, err
    summary = json.loads(out)  # stdout carries only the summary; DSPy's progress went to stderr
    assert summary["program"] == str(out_file)
    assert (summary["optimizer"], summary["train_size"], summary["dev_size"]) == ("bootstrap", 5, 1)
    assert summary["judge_model"] is None and summary["demos"]["thesis"] == 2

    from hegelion_dspy.cli.agent import main as agent_main

    with pytest.raises(SystemExit) as done:
        agent_main(["--program", str(out_file), "-m", "scripted", "--no-log", "--format", "json", "A new task"])
    assert done.value.code == 0
    record = TraceRecord.model_validate_json(capsys.readouterr().out)
    assert record.ok and record.program == str(out_file)


def test_cli_text_summary_names_the_file_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(TASKS) + "\n")
    code, out, err = run_cli(
        "--prompts", str(prompts), "-o", str(tmp_path / "p.json"), "-m", "scripted", "--no-judge", capsys=capsys
    )
    assert code == 0, err
    assert out.startswith(f"saved {tmp_path / 'p.json'}: bootstrap on 5 tasks")
    assert "dev score 1.00 -> 1.00" in out and "demos thesis=2 antithesis=2 synthesis=2" in out
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log", "a.jsonl", "--prompts", "b.txt"], "give --log FILE or --prompts FILE, not both"),
        (["--prompts", "missing.txt"], "no such file"),
        ([], "no trace log at"),
        (["--prompts", "p.txt", "--optimizer", "adam"], "'adam' is not one of"),
        (["--prompts", "p.txt", "--judge-model", "scripted", "--no-judge"], "contradict"),
        (["--log", "empty.jsonl"], "no ok general traces"),
    ],
)
def test_cli_mistakes_get_one_clear_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.txt").write_text("Sort a list\n")
    Path("empty.jsonl").write_text("")
    code, out, err = run_cli(*args, "-o", "out.json", "-m", "scripted", capsys=capsys)
    assert code == 2
    assert out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not Path("out.json").exists()


def test_cli_will_not_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("Sort a list\nName a prime\n")
    target = tmp_path / "p.json"
    target.write_text("{}")
    code, _, err = run_cli("--prompts", str(prompts), "-o", str(target), "-m", "scripted", "--no-judge", capsys=capsys)
    assert code == 2 and "already exists" in err and target.read_text() == "{}"
    code, _, err = run_cli(
        "--prompts", str(prompts), "-o", str(target), "-m", "scripted", "--no-judge", "--force", capsys=capsys
    )
    assert code == 0, err
    assert load_program(target).thesis.demos


def test_the_python_example_runs_end_to_end_offline(tmp_path: Path) -> None:
    import subprocess
    import sys

    example = Path(__file__).parents[2] / "examples" / "optimize.py"
    done = subprocess.run(
        [sys.executable, str(example), "--model", "scripted", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "4 training tasks, 2 dev tasks" in done.stdout
    assert "demos per step {'thesis': 2, 'antithesis': 2, 'synthesis': 2}" in done.stdout
    records = list(TraceStore(tmp_path / "out" / "traces.jsonl"))
    assert len(records) == 7 and all(r.score == pytest.approx(0.8) for r in records)
    assert records[-1].program == str(tmp_path / "out" / "program.json")
