"""Dialectic: thesis -> antithesis -> synthesis as one optimizable ``dspy.Module``.

With ``iterations=N`` the synthesis of round n is the thesis of round n+1. The returned Prediction carries every
round. A step that raises, or returns an empty answer, raises StepFailedError carrying the finished rounds, so
callers can log the failure as a failure and never as an answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import dspy
from dspy.utils.usage_tracker import UsageTracker, track_usage

from .errors import ConfigError, StepFailedError
from .lms.base import StepRecord, recording_step
from .signatures import signature_for
from .types import Contradiction, JSONObject, Mode, Round, Step, Usage

# Where Dialectic.dump_state keeps its own settings (and save_program the optimizer's provenance).
STATE_KEY = "hegelion"
MAX_ITERATIONS = 10


@dataclass(frozen=True)
class StepEvent:
    """One step starting, finishing or failing, as ``on_step`` hears it.

    ``seconds`` and ``text`` (the step's answer; for an antithesis also ``contradictions``) are set at ``"end"``;
    ``error`` at ``"fail"``.
    """

    step: Step
    round: int
    phase: Literal["start", "end", "fail"]
    seconds: float = 0.0
    text: str = ""
    contradictions: tuple[Contradiction, ...] = ()
    error: str = ""


OnStep = Callable[[StepEvent], None]


def total_steps(iterations: int) -> int:
    """LM steps in a run of ``iterations`` rounds: three in the first, two in each later one (its thesis is given)."""
    return 3 + 2 * (iterations - 1)


def check_iterations(iterations: object) -> int:
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= MAX_ITERATIONS:
        raise ConfigError(f"iterations must be a whole number from 1 to {MAX_ITERATIONS}, got {iterations!r}")
    return iterations


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
        self.iterations = check_iterations(iterations)
        self.thesis = dspy.Predict(signature_for("thesis", mode))
        self.antithesis = dspy.Predict(signature_for("antithesis", mode))
        self.synthesis = dspy.Predict(signature_for("synthesis", mode))

    def total_steps(self, iterations: int | None = None) -> int:
        """LM steps a run makes (for progress): see ``total_steps``."""
        return total_steps(self._iterations(iterations))

    def _iterations(self, iterations: int | None) -> int:
        return self.iterations if iterations is None else check_iterations(iterations)

    def forward(self, task: str, iterations: int | None = None, on_step: OnStep | None = None) -> dspy.Prediction:
        run = _RunRounds(task, self._iterations(iterations), on_step)
        for state in run.rounds():
            for step in state.steps():
                with state.running(step):
                    state.answer(getattr(self, step)(**state.inputs(step)))
        return run.prediction()

    async def aforward(
        self, task: str, iterations: int | None = None, on_step: OnStep | None = None
    ) -> dspy.Prediction:
        run = _RunRounds(task, self._iterations(iterations), on_step)
        for state in run.rounds():
            for step in state.steps():
                with state.running(step):
                    state.answer(await getattr(self, step).acall(**state.inputs(step)))
        return run.prediction()

    # -- persistence: mode and iterations travel with the tuned predictors ---------------------------------------

    def dump_state(self, *args: object, **kwargs: object) -> JSONObject:
        state: JSONObject = super().dump_state(*args, **kwargs)
        state[STATE_KEY] = {"mode": self.mode, "iterations": self.iterations}
        return state

    def load_state(self, state: Mapping[str, object], *args: object, **kwargs: object) -> Dialectic:
        own = state.get(STATE_KEY)
        if isinstance(own, Mapping):  # absent from a state saved by plain dspy
            self.mode = own.get("mode", self.mode)
            self.iterations = own.get("iterations", self.iterations)
        super().load_state({k: v for k, v in state.items() if k != STATE_KEY}, *args, **kwargs)
        return self


# -- the bookkeeping both drivers share ------------------------------------------------------------------------------


def _usage_of(tracker: UsageTracker, record: StepRecord) -> Usage | None:
    totals: dict[str, int | float] = {}
    for per_model in tracker.get_total_tokens().values():
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = per_model.get(key)
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    if record.cost_usd is not None:
        totals["cost_usd"] = round(record.cost_usd, 8)
    return Usage.model_validate(totals) if totals else None


def _contradictions(value: object) -> list[Contradiction]:
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


class _RunRounds:
    """The rounds of one run: what is finished, and what the next round starts from."""

    def __init__(self, task: str, iterations: int, on_step: OnStep | None):
        self.task = task
        self.iterations = iterations
        self.on_step = on_step
        self.finished: list[Round] = []

    def rounds(self) -> Iterator[_RoundState]:
        thesis: str | None = None
        for index in range(1, self.iterations + 1):
            state = _RoundState(self, index, thesis)
            yield state
            self.finished.append(state.round())
            thesis = self.finished[-1].synthesis

    def prediction(self) -> dspy.Prediction:
        first, last = self.finished[0], self.finished[-1]
        return dspy.Prediction(
            rounds=list(self.finished),
            thesis=first.thesis,
            antithesis=last.antithesis,
            contradictions=last.contradictions,
            synthesis=last.synthesis,
        )


class _RoundState:
    """One round in progress: its steps' texts, timings, usage and adapters; finishing or failing a step."""

    def __init__(self, run: _RunRounds, index: int, thesis: str | None):
        self.run = run
        self.index = index
        self.texts: dict[Step, str] = {} if thesis is None else {"thesis": thesis}
        self.contradictions: list[Contradiction] = []
        self.seconds: dict[Step, float] = {}
        self.usage: dict[Step, Usage] = {}
        self.adapters: dict[Step, str] = {}
        self.truncated: list[Step] = []
        self._answer: dspy.Prediction | None = None

    def steps(self) -> tuple[Step, ...]:
        """The steps this round runs: round 1 writes its thesis, later rounds start from the last synthesis."""
        return ("antithesis", "synthesis") if "thesis" in self.texts else ("thesis", "antithesis", "synthesis")

    def inputs(self, step: Step) -> dict[str, object]:
        inputs: dict[str, object] = {"task": self.run.task}
        if step != "thesis":
            inputs["thesis"] = self.texts["thesis"]
        if step == "synthesis":
            inputs["antithesis"] = self.texts["antithesis"]
            inputs["contradictions"] = self.contradictions
        return inputs

    def answer(self, prediction: dspy.Prediction) -> None:
        self._answer = prediction

    @contextlib.contextmanager
    def running(self, step: Step) -> Iterator[None]:
        """Run one step inside: time it, track its usage and adapter, and turn any failure into StepFailedError."""
        self._emit(StepEvent(step, self.index, "start"))
        self._answer = None
        started = time.perf_counter()
        with track_usage() as tracker, recording_step() as record:
            try:
                yield
            except Exception as exc:  # the LM boundary: any provider/adapter error is a failed step, never data
                self._fail(step, exc)
        seconds = round(time.perf_counter() - started, 6)
        value = getattr(self._answer, step, None)
        text = (value if isinstance(value, str) else ("" if value is None else str(value))).strip()
        if not text:
            self._fail(step, f"the LM returned an empty {step}")
        self.texts[step] = text
        self.seconds[step] = seconds
        usage = _usage_of(tracker, record)
        if usage is not None:
            self.usage[step] = usage
        if record.adapter is not None:
            self.adapters[step] = record.adapter
        if record.truncated:
            self.truncated.append(step)
        if step == "antithesis":
            self.contradictions = _contradictions(getattr(self._answer, "contradictions", None))
        self._emit(StepEvent(step, self.index, "end", seconds, text, tuple(self.contradictions)))

    def _fail(self, step: Step, cause: BaseException | str) -> None:
        error = StepFailedError(
            step, self.index, cause, self.run.finished, partial={str(k): v for k, v in self.texts.items()}
        )
        self._emit(StepEvent(step, self.index, "fail", error=error.message))
        if isinstance(cause, BaseException):
            raise error from cause
        raise error

    def _emit(self, event: StepEvent) -> None:
        if self.run.on_step is not None:
            self.run.on_step(event)

    def round(self) -> Round:
        return Round(
            index=self.index,
            thesis=self.texts["thesis"],
            antithesis=self.texts["antithesis"],
            contradictions=self.contradictions,
            synthesis=self.texts["synthesis"],
            seconds=self.seconds,
            usage=self.usage,
            adapters=self.adapters,
            truncated=self.truncated,
        )


# -- saved programs ---------------------------------------------------------------------------------------------------


def program_digest(path: str | Path) -> str:
    """sha256 of a program file's bytes (first 16 hex digits): which program wrote a trace, whatever its path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def program_or_new(program: Dialectic | str | Path | None, *, mode: Mode, iterations: int) -> Dialectic:
    """The program given (loaded when it is a file, ``load_program``), else a fresh ``Dialectic(mode, iterations)``."""
    if isinstance(program, (str, Path)):
        return load_program(program)
    return program if program is not None else Dialectic(mode=mode, iterations=iterations)


def load_program(path: str | Path) -> Dialectic:
    """Load a Dialectic saved with ``save_program`` or ``Dialectic.save(path)``, keeping its mode and iterations."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"program file {str(path)!r} does not exist; save one with save_program() or hegelion-optimize"
        )
    program = Dialectic()
    try:
        program.load(str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a saved Dialectic program ({exc}); save one with save_program()") from None
    return program


def save_program(
    program: Dialectic, path: str | Path, *, info: Mapping[str, object] | None = None, overwrite: bool = False
) -> Path:
    """Write ``program`` as JSON state (``Dialectic.save``), atomically; ``info`` (e.g. an optimizer's summary) is kept
    under ``STATE_KEY -> "optimization"`` for provenance. Load it back with ``load_program(path)``."""
    path = Path(path)
    if path.suffix != ".json":
        raise ConfigError(f"save the program as a .json file, got {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"{str(path)!r} is a folder; give a file name such as {str(path / 'program.json')!r}")
    if path.exists() and not overwrite:
        raise ConfigError(f"{str(path)!r} already exists; choose another name or overwrite it (--force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        program.save(str(tmp))
        if info is not None:
            state = json.loads(tmp.read_text(encoding="utf-8"))
            state.setdefault(STATE_KEY, {})["optimization"] = {
                **dict(info),
                "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
