"""The DSPy metric for ``Dialectic``: the judge's score for every optimizer, and written feedback for GEPA."""

from __future__ import annotations

from typing import Any

import dspy

from ..checks import Checks, dedupe_contradictions
from ..collect.judge import DialecticJudge, Judgement
from ..errors import ConfigError
from ..types import Contradiction


def _prediction_parts(pred: object) -> tuple[str, str, str, list[Contradiction]]:
    rounds = getattr(pred, "rounds", None) or []
    if rounds:
        found = [c for r in rounds for c in r.contradictions]
    else:
        value = getattr(pred, "contradictions", None) or []
        found = [c if isinstance(c, Contradiction) else Contradiction.model_validate(c) for c in value]
    return (
        str(getattr(pred, "task", "") or ""),
        str(getattr(pred, "thesis", "") or ""),
        str(getattr(pred, "synthesis", "") or ""),
        dedupe_contradictions(found),
    )


class DialecticMetric:
    """A DSPy metric for ``Dialectic``, usable by BootstrapFewShot, MIPROv2, GEPA and ``dspy.Evaluate``.

    ``metric(gold, pred)`` and ``metric(gold, pred, trace)`` return the score as a float in 0..1 (pass
    ``metric_threshold`` to BootstrapFewShot to set the bar for a demo). ``metric(gold, pred, trace, pred_name,
    pred_trace)`` with a predictor name (GEPA's feedback call) returns ``dspy.Prediction(score=, feedback=)``,
    the feedback naming the step being tuned. A failed judge call raises LMError: every optimizer counts that as a
    failed example (``max_errors``) instead of learning from a made-up score.
    """

    def __init__(self, judge: DialecticJudge | None = None, **judge_options: Any):
        if judge is not None and judge_options:
            raise ConfigError("give either a DialecticJudge or judge options (lm=, use_lm=, ...), not both")
        self.judge = judge or DialecticJudge(**judge_options)

    def __call__(
        self,
        gold: object,
        pred: object,
        trace: object = None,
        pred_name: str | None = None,
        pred_trace: object = None,
    ) -> float | dspy.Prediction:
        task, thesis, synthesis, contradictions = _prediction_parts(pred)
        task = task or str(getattr(gold, "task", "") or "")
        if not thesis.strip() or not synthesis.strip():
            verdict = Judgement(
                0.0, "The program produced no thesis or no synthesis.", None, Checks(0.0, (), 0.0, False)
            )
        else:
            verdict = self.judge.judge(task, thesis, synthesis, contradictions)
        if pred_name is None:
            return verdict.score
        return dspy.Prediction(score=verdict.score, feedback=_for_step(pred_name, verdict, len(contradictions)))


_STEP_HINTS = {
    "thesis": "You are tuning the thesis step: a good thesis commits to a clear, complete first answer.",
    "antithesis": (
        "You are tuning the antithesis step: it must find the real contradictions in the thesis, each with "
        "evidence, so the synthesis has something concrete to fix."
    ),
    "synthesis": (
        "You are tuning the synthesis step: it must fix every valid contradiction and give one improved, "
        "self-contained answer, not a copy of the thesis."
    ),
}


def _for_step(pred_name: str, verdict: Judgement, n_contradictions: int) -> str:
    step = pred_name.rsplit(".", 1)[-1]
    hint = _STEP_HINTS.get(step, "")
    if step == "antithesis" and n_contradictions == 0:
        hint += " This critique listed no contradictions."
    return f"Score {verdict.score:.2f}. {verdict.feedback}" + (f"\n{hint}" if hint else "")
