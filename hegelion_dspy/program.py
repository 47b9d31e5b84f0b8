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
            state = _RoundState(index, rounds)
            if thesis_text is None:
                _, thesis_text = yield from state.step("thesis", self.thesis, {"task": task})
            else:
                state.done["thesis"] = thesis_text
            pred, antithesis_text = yield from state.step(
                "antithesis", self.antithesis, {"task": task, "thesis": thesis_text}
            )
            contradictions = _contradictions(getattr(pred, "contradictions", None))
            inputs = {
                "task": task,
                "thesis": thesis_text,
                "antithesis": antithesis_text,
                "contradictions": contradictions,
            }
            _, synthesis_text = yield from state.step("synthesis", self.synthesis, inputs)
            rounds.append(
                Round(
                    index=index,
                    thesis=thesis_text,
                    antithesis=antithesis_text,
                    contradictions=contradictions,
                    synthesis=synthesis_text,
                    seconds=state.seconds,  # type: ignore[arg-type]
                    usage=state.usage,  # type: ignore[arg-type]
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


class _RoundState:
    """Timings, usage and finished step texts of the round in progress."""

    def __init__(self, index: int, rounds: list[Round]):
        self.index = index
        self.rounds = rounds
        self.seconds: dict[str, float] = {}
        self.usage: dict[str, Usage] = {}
        self.done: dict[str, str] = {}

    def step(
        self, step: str, predictor: dspy.Predict, inputs: dict[str, Any]
    ) -> Generator[_StepRequest, Any, tuple[dspy.Prediction, str]]:
        """Ask the driver to run one step; check and time its reply. The driver sends (prediction, usage tracker)
        or the exception the step raised."""
        started = time.perf_counter()
        reply = yield (step, predictor, inputs)
        if isinstance(reply, BaseException):
            raise StepFailedError(step, self.index, reply, self.rounds, partial=self.done) from reply
        prediction, tracker = reply
        self.seconds[step] = round(time.perf_counter() - started, 6)
        step_usage = _usage_of(tracker)
        if step_usage is not None:
            self.usage[step] = step_usage
        value = getattr(prediction, step, None)
        text = (value if isinstance(value, str) else ("" if value is None else str(value))).strip()
        if not text:
            raise StepFailedError(step, self.index, f"the LM returned an empty {step}", self.rounds, partial=self.done)
        self.done[step] = text
        return prediction, text


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
