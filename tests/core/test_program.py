"""Dialectic: every round, failures as failures, async, coding mode, save/load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dspy
import pytest

from hegelion_dspy.errors import ConfigError, StepFailedError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import Dialectic, load_program
from hegelion_dspy.signatures import CODING_INSTRUCTIONS


def run(program: Dialectic, lm: ScriptedLM, task: str = "Why is the sky blue?", **kwargs) -> dspy.Prediction:
    with dspy.context(lm=lm):
        return program(task=task, **kwargs)


def test_three_iterations_return_every_round_chained(scripted_lm: ScriptedLM) -> None:
    pred = run(Dialectic(iterations=3), scripted_lm)

    assert [r.index for r in pred.rounds] == [1, 2, 3]
    assert pred.rounds[0].thesis.startswith("Thesis: a first answer")
    for previous, current in zip(pred.rounds, pred.rounds[1:], strict=False):
        assert current.thesis == previous.synthesis  # each synthesis is the next thesis
    assert [r.synthesis.split(":")[0] for r in pred.rounds] == ["Synthesis v1", "Synthesis v2", "Synthesis v3"]
    assert pred.synthesis == pred.rounds[-1].synthesis
    assert pred.thesis == pred.rounds[0].thesis
    # one thesis call, then antithesis + synthesis per round
    assert scripted_lm.steps_called() == ["thesis"] + ["antithesis", "synthesis"] * 3


def test_rounds_carry_contradictions_timings_and_usage(scripted_lm: ScriptedLM) -> None:
    first = run(Dialectic(), scripted_lm).rounds[0]

    assert first.contradictions[0].description == "It ignores edge cases."
    assert set(first.seconds) == {"thesis", "antithesis", "synthesis"}
    assert all(v >= 0 for v in first.seconds.values())
    assert first.usage["antithesis"].completion_tokens and first.usage["antithesis"].completion_tokens > 0


@pytest.mark.parametrize("step", ["thesis", "antithesis", "synthesis"])
def test_a_failing_step_raises_with_the_rounds_finished_before(step: str) -> None:
    lm = ScriptedLM(fail_on={step})
    with pytest.raises(StepFailedError) as info:
        run(Dialectic(iterations=2), lm)

    assert info.value.step == step
    assert info.value.round_index == 1
    assert info.value.completed_rounds == []
    assert "scripted failure" in info.value.message


def test_an_empty_answer_is_a_failure_not_data() -> None:
    with pytest.raises(StepFailedError) as info:
        run(Dialectic(), ScriptedLM(empty_on={"synthesis"}))
    assert info.value.step == "synthesis"
    assert info.value.error_type == "EmptyOutput"


def test_failure_in_round_two_keeps_round_one() -> None:
    calls = {"n": 0}

    def answer(step: str, inputs: dict[str, str]) -> dict:
        from hegelion_dspy.lms.scripted import default_answer

        if step == "synthesis":
            calls["n"] += 1
            if calls["n"] == 2:
                return {"synthesis": ""}
        return default_answer(step, inputs)

    with pytest.raises(StepFailedError) as info:
        run(Dialectic(iterations=3), ScriptedLM(answer=answer))
    assert info.value.round_index == 2
    assert [r.index for r in info.value.completed_rounds] == [1]


async def test_acall_runs_many_dialectics_concurrently() -> None:
    lm = ScriptedLM(latency=0.05)
    program = Dialectic(iterations=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with dspy.context(lm=lm):
        preds = await asyncio.gather(*(program.acall(task=f"task {i}") for i in range(20)))
    elapsed = loop.time() - started

    assert [p.rounds[0].thesis for p in preds] == [f"Thesis: a first answer to 'task {i}'." for i in range(20)]
    assert all(len(p.rounds) == 2 for p in preds)
    assert len(lm.calls) == 20 * 5
    assert elapsed < 20 * 5 * 0.05 / 2  # far below the sequential time: the calls overlapped


def test_coding_mode_words_the_steps_for_software_without_new_logic(scripted_lm: ScriptedLM) -> None:
    pred = run(Dialectic(mode="coding"), scripted_lm, task="Fix the memory leak")

    system_prompts = [messages[0]["content"] for _, messages in scripted_lm.calls]
    assert CODING_INSTRUCTIONS["thesis"] in system_prompts[0]
    assert CODING_INSTRUCTIONS["antithesis"] in system_prompts[1]
    assert CODING_INSTRUCTIONS["synthesis"] in system_prompts[2]
    assert len(pred.rounds) == 1


def test_predictors_are_plain_attributes_for_optimizers() -> None:
    names = [name for name, _ in Dialectic().named_predictors()]
    assert names == ["thesis", "antithesis", "synthesis"]


def test_save_load_round_trip_keeps_behaviour(tmp_path: Path) -> None:
    program = Dialectic(mode="coding", iterations=2)
    program.antithesis.signature = program.antithesis.signature.with_instructions("Attack every assumption.")
    program.thesis.demos = [dspy.Example(task="Add 2 and 2", thesis="4")]
    path = tmp_path / "program.json"
    program.save(str(path))

    loaded = load_program(path)
    before, after = ScriptedLM(), ScriptedLM()
    pred_before = run(program, before)
    pred_after = run(loaded, after)

    assert (loaded.mode, loaded.iterations) == ("coding", 2)
    assert [m for _, m in after.calls] == [m for _, m in before.calls]  # identical prompts, demos included
    assert "Attack every assumption." in after.calls[1][1][0]["content"]
    assert [r.model_dump(exclude={"seconds"}) for r in pred_after.rounds] == [
        r.model_dump(exclude={"seconds"}) for r in pred_before.rounds
    ]


def test_load_program_names_a_missing_or_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_program(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        load_program(bad)


@pytest.mark.parametrize("iterations", [0, 11, "2", True])
def test_iterations_out_of_range_are_refused(iterations: object) -> None:
    with pytest.raises(ConfigError, match="iterations"):
        Dialectic(iterations=iterations)  # type: ignore[arg-type]


def test_lm_chosen_by_context_not_global_settings() -> None:
    a, b = ScriptedLM(model="scripted/a"), ScriptedLM(model="scripted/b")
    program = Dialectic()
    run(program, a)
    run(program, b)
    assert len(a.calls) == 3 and len(b.calls) == 3
    assert dspy.settings.lm is None


@pytest.mark.parametrize("iterations", [0, 11, -1])
def test_iterations_zero_at_call_time_is_an_error_not_the_default(iterations: int, scripted_lm: ScriptedLM) -> None:
    with pytest.raises(ConfigError, match="iterations"):
        run(Dialectic(iterations=2), scripted_lm, iterations=iterations)
    assert scripted_lm.calls == []


def test_on_step_hears_each_step_start_and_end_in_order_with_texts(scripted_lm: ScriptedLM) -> None:
    events = []
    program = Dialectic(iterations=2)
    run(program, scripted_lm, on_step=events.append)

    assert [(e.step, e.round, e.phase) for e in events] == [
        ("thesis", 1, "start"),
        ("thesis", 1, "end"),
        ("antithesis", 1, "start"),
        ("antithesis", 1, "end"),
        ("synthesis", 1, "start"),
        ("synthesis", 1, "end"),
        ("antithesis", 2, "start"),
        ("antithesis", 2, "end"),
        ("synthesis", 2, "start"),
        ("synthesis", 2, "end"),
    ]
    ends = [e for e in events if e.phase == "end"]
    assert len(ends) == program.total_steps() == program.total_steps(2) == 5
    assert ends[0].text.startswith("Thesis: a first answer")
    assert ends[1].contradictions[0].description == "It ignores edge cases."


def test_on_step_hears_the_failure_with_its_message() -> None:
    events = []
    with pytest.raises(StepFailedError):
        run(Dialectic(), ScriptedLM(fail_on={"antithesis"}), on_step=events.append)
    assert [(e.step, e.phase) for e in events][-2:] == [("antithesis", "start"), ("antithesis", "fail")]
    assert "scripted failure" in events[-1].error


def test_aforward_hears_the_same_events_as_forward() -> None:
    sync_events, async_events = [], []
    run(Dialectic(iterations=2), ScriptedLM(), on_step=sync_events.append)

    async def go() -> None:
        with dspy.context(lm=ScriptedLM()):
            await Dialectic(iterations=2).acall(task="Why is the sky blue?", on_step=async_events.append)

    asyncio.run(go())
    assert [(e.step, e.round, e.phase, e.text) for e in sync_events] == [
        (e.step, e.round, e.phase, e.text) for e in async_events
    ]
