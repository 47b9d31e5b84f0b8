"""Dialectic: thesis -> antithesis -> synthesis as one optimizable ``dspy.Module``.

With ``iterations=N`` the synthesis of round n is the thesis of round n+1. The returned Prediction carries every
round. A step that raises, or returns an empty answer, raises StepFailedError carrying the finished rounds, so
callers can log the failure as a failure and never as an answer.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.usage_tracker import UsageTracker, track_usage

from .errors import ConfigError, StepFailedError
from .signatures import signature_for
from .types import Contradiction, Mode, Round, Usage

# A step request: (step name, predictor, inputs). The driver sends back the Prediction.
_StepRequest = tuple[str, dspy.Predict, dict[str, Any]]
_STATE_KEY = "hegelion"


def _usage_of(tracker: UsageTracker) -> Usage | None:
    totals: dict[str, int] = {}
    for per_model in tracker.get_total_tokens().values():
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = per_model.get(key)
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return Usage(**totals) if totals else None


def _contradictions(value: Any) -> list[Contradiction]:
    if not value:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Contradiction):
            out.append(item)
        elif isinstance(item, dict):
            out.append(Contradiction.model_validate(item))
        else:
            out.append(Contradiction(description=str(item)))
    return out


class Dialectic(dspy.Module):
    """Thesis, antithesis and synthesis composed into one program.

    Predictors ``thesis``, ``antithesis`` and ``synthesis`` are plain attributes, so DSPy optimizers can tune their
    instructions and demos; ``save()``/``load()`` round-trip them together with ``mode`` and ``iterations``.
    """

    def __init__(self, mode: Mode = "general", iterations: int = 1):
        super().__init__()
        if mode not in ("general", "coding"):
            raise ConfigError(f"unknown mode {mode!r}; use 'general' or 'coding'")
        self.mode: Mode = mode
        self.iterations = _check_iterations(iterations)
        self.thesis = dspy.Predict(signature_for("thesis", mode))
        self.antithesis = dspy.Predict(signature_for("antithesis", mode))
        self.synthesis = dspy.Predict(signature_for("synthesis", mode))

    # -- the logic, written once; forward/aforward only drive it -------------------------------------------------

    def _rounds(self, task: str, iterations: int) -> Generator[_StepRequest, Any, dspy.Prediction]:
        rounds: list[Round] = []
        thesis_text: str | None = None
        for index in range(1, iterations + 1):
            seconds: dict[str, float] = {}
            usage: dict[str, Usage] = {}

            def record(step: str, started: float, tracker: UsageTracker, seconds=seconds, usage=usage) -> None:
                seconds[step] = round(time.perf_counter() - started, 6)
                step_usage = _usage_of(tracker)
                if step_usage is not None:
                    usage[step] = step_usage

            if thesis_text is None:
                started = time.perf_counter()
                pred, tracker = _checked((yield ("thesis", self.thesis, {"task": task})), "thesis", index, rounds)
                record("thesis", started, tracker)
                thesis_text = _text(pred, "thesis", index, rounds)
            started = time.perf_counter()
            pred, tracker = _checked(
                (yield ("antithesis", self.antithesis, {"task": task, "thesis": thesis_text})),
                "antithesis",
                index,
                rounds,
            )
            record("antithesis", started, tracker)
            antithesis_text = _text(pred, "antithesis", index, rounds)
            contradictions = _contradictions(getattr(pred, "contradictions", None))
            started = time.perf_counter()
            inputs = {
                "task": task,
                "thesis": thesis_text,
                "antithesis": antithesis_text,
                "contradictions": contradictions,
            }
            pred, tracker = _checked((yield ("synthesis", self.synthesis, inputs)), "synthesis", index, rounds)
            record("synthesis", started, tracker)
            synthesis_text = _text(pred, "synthesis", index, rounds)
            rounds.append(
                Round(
                    index=index,
                    thesis=thesis_text,
                    antithesis=antithesis_text,
                    contradictions=contradictions,
                    synthesis=synthesis_text,
                    seconds=seconds,  # type: ignore[arg-type]
                    usage=usage,  # type: ignore[arg-type]
                )
            )
            thesis_text = synthesis_text
        last = rounds[-1]
        return dspy.Prediction(
            rounds=rounds,
            thesis=rounds[0].thesis,
            antithesis=last.antithesis,
            contradictions=last.contradictions,
            synthesis=last.synthesis,
        )

    def forward(self, task: str, iterations: int | None = None) -> dspy.Prediction:
        steps = self._rounds(task, _check_iterations(iterations or self.iterations))
        reply: Any = None
        while True:
            try:
                _, predictor, inputs = steps.send(reply)
            except StopIteration as done:
                prediction: dspy.Prediction = done.value
                return prediction
            with track_usage() as tracker:
                try:
                    reply = (predictor(**inputs), tracker)
                except Exception as exc:  # the LM boundary: any provider/adapter error is a failed step, never data
                    reply = exc

    async def aforward(self, task: str, iterations: int | None = None) -> dspy.Prediction:
        steps = self._rounds(task, _check_iterations(iterations or self.iterations))
        reply: Any = None
        while True:
            try:
                _, predictor, inputs = steps.send(reply)
            except StopIteration as done:
                prediction: dspy.Prediction = done.value
                return prediction
            with track_usage() as tracker:
                try:
                    reply = (await predictor.acall(**inputs), tracker)
                except Exception as exc:  # the LM boundary: any provider/adapter error is a failed step, never data
                    reply = exc

    # -- persistence: mode and iterations travel with the tuned predictors ---------------------------------------

    def dump_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state: dict[str, Any] = super().dump_state(*args, **kwargs)
        state[_STATE_KEY] = {"mode": self.mode, "iterations": self.iterations}
        return state

    def load_state(self, state: dict[str, Any], *args: Any, **kwargs: Any) -> Dialectic:
        own = state.get(_STATE_KEY) or {}
        self.mode = own.get("mode", self.mode)
        self.iterations = own.get("iterations", self.iterations)
        super().load_state({k: v for k, v in state.items() if k != _STATE_KEY}, *args, **kwargs)
        return self


def _check_iterations(iterations: int) -> int:
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= 10:
        raise ConfigError(f"iterations must be a whole number from 1 to 10, got {iterations!r}")
    return iterations


def _checked(reply: Any, step: str, index: int, rounds: list[Round]) -> tuple[dspy.Prediction, UsageTracker]:
    # The drivers send (prediction, usage tracker) or the exception the step raised.
    if isinstance(reply, BaseException):
        raise StepFailedError(step, index, reply, rounds) from reply
    result: tuple[dspy.Prediction, UsageTracker] = reply
    return result


def _text(pred: dspy.Prediction, step: str, index: int, rounds: list[Round]) -> str:
    value = getattr(pred, step, None)
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not text.strip():
        raise StepFailedError(step, index, f"the LM returned an empty {step}", rounds)
    return text.strip()


def load_program(path: str | Path) -> Dialectic:
    """Load a Dialectic saved with ``Dialectic.save(path)`` (JSON state), keeping its mode and iterations."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"program file {str(path)!r} does not exist; save one with Dialectic.save() or hegelion-optimize"
        )
    program = Dialectic()
    try:
        program.load(str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a saved Dialectic program ({exc}); save one with Dialectic.save()") from None
    return program
