"""One dialectic run: its options, the program run under the context's LM, and the trace it leaves.

dspy is imported only by the functions that run a program, so logging and reading stay fast to import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ..curate.quality import with_flags
from ..errors import StepFailedError
from ..lms.metering import CallMeter, metering
from ..store import TraceStore
from ..types import Mode, Source, TraceFailure, TraceRecord
from .context import RunContext, check_task, model_of

if TYPE_CHECKING:
    import dspy

    from ..lms.manners import Manners
    from ..program import Dialectic, OnStep
    from .judge import TraceJudge


class RunOptions(TypedDict, total=False):
    """The keyword options of ``run_dialectic`` / ``arun_dialectic`` (declared once for both)."""

    ctx: RunContext  # a prepared LM, adapter and program; without it one is built from the fields further down
    store: TraceStore | None  # append the trace here
    iterations: int | None  # rounds for this run [default: the program's]
    source: Source  # who asked: cli, mcp or python [default: python]
    tags: Sequence[str]
    on_step: OnStep | None  # hears each step start, finish or fail
    # without ``ctx`` (see RunContext.build):
    lm: dspy.BaseLM
    model: str | None
    api_base: str | Sequence[str] | None
    mode: Mode
    program: Dialectic | str | Path | None
    adapter: dspy.Adapter | None
    judge: bool | dspy.BaseLM | TraceJudge
    manners: Manners | None  # rate limits and retries of the LM calls (lms.manners) [default: Manners()]


_BUILD_OPTIONS = ("lm", "model", "api_base", "mode", "program", "adapter", "judge", "manners")


@dataclass
class _TaskRun:
    """One run's settings (from RunOptions) and what it produces: the outcome, then the logged trace."""

    task: str
    ctx: RunContext
    store: TraceStore | None = None
    iterations: int | None = None
    source: Source = "python"
    tags: Sequence[str] = ()
    on_step: OnStep | None = None
    outcome: Any = None  # the program's Prediction, or the StepFailedError that stopped it

    @classmethod
    def of(cls, task: str, options: RunOptions) -> _TaskRun:
        unknown = sorted(set(options) - set(RunOptions.__annotations__))
        if unknown:
            raise TypeError(f"unexpected options {unknown}; the options are {sorted(RunOptions.__annotations__)}")
        own: dict[str, Any] = {k: v for k, v in options.items() if k not in _BUILD_OPTIONS and k != "ctx"}
        build: dict[str, Any] = {k: v for k, v in options.items() if k in _BUILD_OPTIONS}
        ctx = options.get("ctx") or RunContext.build(**build)
        return cls(task=check_task(task), ctx=ctx, **own)

    def program_inputs(self) -> dict[str, Any]:
        return {"task": self.task, "iterations": self.iterations, "on_step": self.on_step}

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Run the program inside: with the context's LM and adapter; a failed step becomes the outcome, not raised."""
        import dspy

        with dspy.context(lm=self.ctx.lm, adapter=self.ctx.adapter):
            try:
                yield
            except StepFailedError as exc:
                self.outcome = exc

    def record(self) -> TraceRecord:
        """The trace of the outcome (before any judging), with its quality flags."""
        from ..lms.base import describe_lm
        from ..lms.manners import unwrapped

        ctx, outcome = self.ctx, self.outcome
        common: dict[str, Any] = {
            "source": self.source,
            "task": self.task,
            "mode": ctx.program.mode,
            "model": model_of(ctx.lm),
            "lm": describe_lm(unwrapped(ctx.lm)),
            "adapter": type(ctx.adapter).__name__,
            "program": ctx.program_path,
            "program_digest": ctx.program_digest,
            "demo": bool(getattr(ctx.lm, "demo", False)),
            "tags": list(self.tags),
        }
        if isinstance(outcome, StepFailedError):
            return TraceRecord(
                **common,
                rounds=outcome.completed_rounds,
                synthesis="",
                status="failed",
                metadata={"partial_round": outcome.partial} if outcome.partial else {},
                error=TraceFailure(
                    step=outcome.step,  # type: ignore[arg-type]
                    round=outcome.round_index,
                    type=outcome.error_type,
                    message=outcome.message[:20_000],
                ),
            )
        return with_flags(TraceRecord(**common, rounds=outcome.rounds, synthesis=outcome.synthesis, status="ok"))

    def logged(self, record: TraceRecord, spent: CallMeter) -> TraceRecord:
        """The trace with what its LM calls cost (every call: failed ones and the judge's too), appended to the
        store when there is one."""
        if spent.priced:
            record = record.model_copy(update={"cost_usd": round(spent.cost_usd, 8)})
        if self.store is not None:
            self.store.append(record)
        return record


def run_dialectic(task: str, **options: Unpack[RunOptions]) -> TraceRecord:
    """Run the dialectic on ``task`` and return its trace (``status`` says whether it succeeded).

    Options (``RunOptions``): ``ctx`` carries a prepared LM and program, otherwise ``lm=``/``model=``, ``mode=``,
    ``program=``, ``judge=`` make one; ``store`` gets the trace appended; ``iterations``, ``source``, ``tags``;
    ``on_step`` hears each step start, finish or fail. A failed LM call is returned as a failed trace, never raised.
    ``record.cost_usd`` is what the run's LM calls cost, when their prices are known. ``arun_dialectic`` is the same
    for an event loop (the steps awaited, so many tasks run concurrently).
    """
    run = _TaskRun.of(task, options)
    with metering() as spent:
        with run.attempt():
            run.outcome = run.ctx.program(**run.program_inputs())
        record = run.record()
        if run.ctx.judge is not None:
            record = run.ctx.judge.score(record)
    return run.logged(record, spent)


async def arun_dialectic(task: str, **options: Unpack[RunOptions]) -> TraceRecord:
    run = _TaskRun.of(task, options)
    with metering() as spent:
        with run.attempt():
            run.outcome = await run.ctx.program.acall(**run.program_inputs())
        record = run.record()
        if run.ctx.judge is not None:
            record = await run.ctx.judge.ascore(record)
    return run.logged(record, spent)
