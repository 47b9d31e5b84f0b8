"""The judge on hand-made cases: cheap checks, score parsing, the LM judge, the DSPy metric, scores at collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
import pytest
from judge_cases import EMPTY, EVEN, GOOD, HALF, TASK, THESIS

from hegelion_dspy.cli.agent import main as agent_main
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.judge import DialecticJudge, TraceJudge
from hegelion_dspy.collect.metric import DialecticMetric
from hegelion_dspy.collect.run import arun_dialectic, run_dialectic
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.errors import ConfigError, LMError
from hegelion_dspy.lms.scripted import ScriptedLM, default_answer
from hegelion_dspy.program import Dialectic
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceFailure, TraceRecord


def judge_answer(score: Any = "0.9", feedback: str = "Fixes both flaws.") -> Any:
    def answer(step: str, inputs: dict[str, str]) -> dict[str, Any]:
        if step == "feedback":
            return {"feedback": feedback, "score": score}
        return default_answer(step, inputs)

    return answer


# -- the LM judge --------------------------------------------------------------------------------------------------


def test_the_judge_sees_both_answers_and_the_contradictions_and_combines_scores() -> None:
    lm = ScriptedLM(answer=judge_answer("0.5", "Handles the empty list; the even case is still wrong."))
    verdict = DialecticJudge(lm=lm).judge(TASK, THESIS, HALF, [EMPTY, EVEN])
    assert verdict.judge_score == 0.5
    assert verdict.score == pytest.approx(0.8 * 0.5 + 0.2 * 0.5)
    assert verdict.feedback.startswith("Handles the empty list; the even case is still wrong.")
    assert "does not address 1 of 2 contradictions" in verdict.feedback and EVEN.description in verdict.feedback
    [(step, messages)] = lm.calls
    prompt = messages[-1]["content"]
    assert step == "feedback"
    assert THESIS in prompt and HALF in prompt and EVEN.description in prompt and TASK in prompt


def test_a_copy_scores_zero_without_asking_the_lm() -> None:
    lm = ScriptedLM(answer=judge_answer("1.0"))
    verdict = DialecticJudge(lm=lm).judge(TASK, THESIS, THESIS, [EMPTY])
    assert verdict.score == 0.0 and verdict.judge_score is None
    assert "near copy of the thesis" in verdict.feedback
    assert lm.calls == []


def test_without_the_lm_the_score_is_the_coverage() -> None:
    lm = ScriptedLM()
    verdict = DialecticJudge(lm=lm, use_lm=False).judge(TASK, THESIS, HALF, [EMPTY, EVEN])
    assert (verdict.score, verdict.judge_score) == (0.5, None)
    assert lm.calls == []


def test_a_failing_judge_raises_lm_error_and_is_counted() -> None:
    judge = DialecticJudge(lm=ScriptedLM(fail_on={"feedback"}))
    with pytest.raises(LMError, match=r"judge.s LM call failed: .*scripted failure in the feedback step"):
        judge.judge(TASK, THESIS, GOOD, [EMPTY])
    assert (judge.lm_calls, judge.lm_failures) == (1, 1)


def test_a_judge_without_a_number_raises_lm_error() -> None:
    judge = DialecticJudge(lm=ScriptedLM(answer=judge_answer("great")))
    with pytest.raises(LMError, match="'great' is not a number"):
        judge.judge(TASK, THESIS, GOOD, [EMPTY])
    assert judge.lm_failures == 1


def test_judgements_are_cached_by_their_inputs() -> None:
    lm = ScriptedLM(answer=judge_answer("0.9"))
    judge = DialecticJudge(lm=lm, cache_size=1)
    first = judge.judge(TASK, THESIS, GOOD, [EMPTY])
    assert judge.judge(TASK, THESIS, GOOD, [EMPTY]) == first
    assert len(lm.calls) == 1
    judge.judge(TASK, THESIS, HALF, [EMPTY])  # evicts the first (cache_size=1)
    judge.judge(TASK, THESIS, GOOD, [EMPTY])
    assert len(lm.calls) == 3


def test_the_judge_uses_the_surrounding_lm_when_it_has_none() -> None:
    lm = ScriptedLM(answer=judge_answer("0.6"))
    with dspy.context(lm=lm):
        verdict = DialecticJudge().judge(TASK, THESIS, GOOD, [EMPTY])
    assert verdict.judge_score == 0.6 and len(lm.calls) == 1


@pytest.mark.parametrize(("option", "value"), [("judge_weight", 1.5), ("copy_threshold", 0.0)])
def test_judge_options_are_checked(option: str, value: float) -> None:
    with pytest.raises(ConfigError, match=option):
        DialecticJudge(**{option: value})


# -- the DSPy metric -----------------------------------------------------------------------------------------------


def run_program(lm: ScriptedLM, task: str = TASK, iterations: int = 1) -> dspy.Prediction:
    with dspy.context(lm=lm):
        return Dialectic(iterations=iterations)(task=task)


def test_the_metric_is_a_float_for_plain_use_and_score_with_feedback_for_gepa() -> None:
    lm = ScriptedLM(answer=judge_answer("0.9", "Good."))
    pred = run_program(lm)
    gold = dspy.Example(task=TASK).with_inputs("task")
    metric = DialecticMetric(lm=lm)
    plain = metric(gold, pred)
    assert isinstance(plain, float) and plain == pytest.approx(0.8 * 0.9 + 0.2 * 1.0)
    assert metric(gold, pred, []) == plain
    for step in ("thesis", "antithesis", "synthesis"):
        rich = metric(gold, pred, [], step, [])
        assert isinstance(rich, dspy.Prediction)
        assert rich.score == plain  # the same score at module and predictor level (GEPA checks this)
        assert rich.feedback.startswith(f"Score {plain:.2f}. Good.")
        assert f"You are tuning the {step} step" in rich.feedback
    assert lm.steps_called().count("feedback") == 1  # one judgement, reused from the cache


def test_the_metric_judges_the_first_thesis_against_the_last_synthesis() -> None:
    lm = ScriptedLM(answer=judge_answer("0.7"))
    pred = run_program(lm, iterations=2)
    metric = DialecticMetric(lm=lm)
    metric(dspy.Example(task=TASK), pred)
    judged = lm.calls[-1][1][-1]["content"]
    assert "Thesis: a first answer" in judged and "Synthesis v2:" in judged


def test_a_prediction_without_synthesis_scores_zero() -> None:
    metric = DialecticMetric(lm=ScriptedLM())
    assert metric(dspy.Example(task=TASK), dspy.Prediction(thesis="T", synthesis="")) == 0.0


def test_the_metric_works_with_dspy_evaluate() -> None:
    lm = ScriptedLM(answer=judge_answer("0.5"))
    devset = [dspy.Example(task=f"Task {i}").with_inputs("task") for i in range(3)]
    evaluate = dspy.Evaluate(devset=devset, metric=DialecticMetric(lm=lm), num_threads=1)
    with dspy.context(lm=lm):
        result = evaluate(Dialectic())
    assert result.score == pytest.approx(60.0)  # 0.8 * 0.5 + 0.2 * 1.0, as a percentage


def test_metric_takes_a_judge_or_options_not_both() -> None:
    with pytest.raises(ConfigError, match="not both"):
        DialecticMetric(DialecticJudge(), use_lm=False)


# -- scores at collection ------------------------------------------------------------------------------------------


def test_run_dialectic_with_a_judge_logs_the_score(store: TraceStore) -> None:
    lm = ScriptedLM(answer=judge_answer("0.5", "Fine."))
    record = run_dialectic(TASK, store=store, lm=lm, judge=True)
    assert record.score == pytest.approx(0.6)
    assert record.metadata["judge"]["feedback"].startswith("Fine.")
    checks = record.metadata["judge"]["checks"]
    assert (checks["coverage"], checks["missed"], checks["is_copy"]) == (1.0, [], False)
    assert 0.0 < checks["similarity"] < 0.9
    assert record.metadata["judge"]["model"] == "scripted/dialectic"
    assert list(store) == [record]
    assert lm.steps_called() == ["thesis", "antithesis", "synthesis", "feedback"]


def test_a_separate_judge_lm_judges(store: TraceStore) -> None:
    runner, judge_lm = ScriptedLM(fail_on={"feedback"}), ScriptedLM(answer=judge_answer("1.0"), model="judge/lm")
    record = run_dialectic(TASK, store=store, ctx=RunContext.build(lm=runner, judge=judge_lm))
    assert record.score == 1.0 and record.metadata["judge"]["model"] == "judge/lm"
    assert "feedback" not in runner.steps_called()


def test_a_failed_judge_keeps_the_trace_ok_and_says_why(store: TraceStore, caplog: pytest.LogCaptureFixture) -> None:
    record = run_dialectic(TASK, store=store, lm=ScriptedLM(fail_on={"feedback"}), judge=True)
    assert record.ok and record.score is None
    assert "judge's LM call failed" in record.metadata["judge_error"]
    assert list(store) == [record]  # logged, and still valid training data
    assert "judge failed on trace" in caplog.text


def test_a_failed_run_is_not_judged(store: TraceStore) -> None:
    lm = ScriptedLM(fail_on={"synthesis"}, answer=judge_answer())
    record = run_dialectic(TASK, store=store, lm=lm, judge=True)
    assert record.status == "failed" and record.score is None
    assert "feedback" not in lm.steps_called() and "judge" not in record.metadata


async def test_async_runs_are_judged_too(store: TraceStore) -> None:
    lm = ScriptedLM(answer=judge_answer("0.5"))
    record = await arun_dialectic(TASK, store=store, lm=lm, judge=True)
    assert record.score == pytest.approx(0.6) and list(store) == [record]


def test_trace_judge_scores_a_logged_trace_of_several_rounds() -> None:
    record = build_trace(
        task=TASK,
        thesis=THESIS,
        antithesis="Two flaws.",
        contradictions=[EMPTY],
        synthesis=HALF,
        rounds=[{"antithesis": "One more.", "contradictions": [EVEN.model_dump()], "synthesis": GOOD}],
    )
    lm = ScriptedLM(answer=judge_answer("0.8"))
    scored = TraceJudge(lm=lm).score(record)
    assert scored.score == pytest.approx(0.8 * 0.8 + 0.2 * 1.0)
    judged = lm.calls[0][1][-1]["content"]
    assert THESIS in judged and GOOD in judged and EMPTY.description in judged and EVEN.description in judged
    assert record.score is None  # the original is untouched
    TraceRecord.model_validate_json(scored.model_dump_json())  # still a valid record


def test_trace_judge_leaves_failed_records_alone() -> None:
    failed = TraceRecord(task=TASK, status="failed", error=TraceFailure(step="thesis", round=1, type="X", message="x"))
    lm = ScriptedLM()
    assert TraceJudge(lm=lm).score(failed) is failed and lm.calls == []


def test_agent_judge_flag_logs_scores(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        agent_main([TASK, "-m", "scripted", "--judge", "--log-file", str(log_path)])
    assert done.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("Synthesis v1:")
    assert "judge score 0.80" in err  # the scripted judge says 0.75; coverage 1.0 adds 0.2 * 1.0
    [record] = list(TraceStore(log_path))
    assert record.score == pytest.approx(0.8)


def test_agent_judge_model_judges_a_batch_with_another_lm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Task one\nTask two\n")
    log = tmp_path / "traces.jsonl"
    with pytest.raises(SystemExit) as done:
        # Another LM judges (a scripted one that would fail a thesis, so a different model string).
        agent_main(
            [
                "--prompts",
                str(prompts),
                "-m",
                "scripted",
                "--judge-model",
                "scripted/fail=thesis",
                "--log-file",
                str(log),
                "--format",
                "json",
            ]
        )
    assert done.value.code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 2 and all(p["status"] == "ok" for p in printed)
    records = list(TraceStore(log))
    assert [r.score for r in records] == [pytest.approx(0.8)] * 2
    assert all(r.metadata["judge"]["model"] == "scripted/fail=thesis" for r in records)


def test_judged_scores_drive_the_dataset_min_score_filter(tmp_path: Path, store: TraceStore) -> None:
    exporters = pytest.importorskip("hegelion_dspy.curate.driver")
    verdicts = {"Task high": "0.9", "Task low": "0.1"}

    def answer(step: str, inputs: dict[str, str]) -> dict[str, Any]:
        if step == "feedback":
            return {"feedback": "Judged.", "score": verdicts[inputs["task"]]}
        return default_answer(step, inputs)

    lm = ScriptedLM(answer=answer)
    for task in verdicts:
        run_dialectic(task, store=store, lm=lm, judge=True)
    run_dialectic("Task unjudged", store=store, lm=lm)  # no score: dropped when a minimum is asked for
    assert [r.score for r in store] == [pytest.approx(0.92), pytest.approx(0.28), None]

    report = exporters.export_dataset(
        store.path, tmp_path / "dpo.jsonl", format="dpo", min_score=0.5, include_demo=True
    )
    rows = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    assert [row["prompt"] for row in rows] == ["Task high"]
    assert (report.dropped["below_min_score"], report.dropped["no_score"]) == (1, 1)
