"""One dialectic run: its options, the program run under the context's LM, and the trace it leaves.

dspy is imported only by the functions that run a program, so logging and reading stay fast to import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ..errors import StepFailedError
from ..lms.metering import CallMeter, metering
from ..quality import with_flags
from ..store import TraceStore
from ..types import Mode, Source, TraceFailure, TraceRecord
from .context import RunContext, check_task, model_of

if TYPE_CHECKING:
    import dspy

    from ..lms.manners import Manners
    from ..program import Dialectic, OnStep
    from .judge import TraceJudge


class RunOptions(TypedDict, total=False):
    """The keyword options of ``run_dialectic`` / ``arun_dialectic``, for type checkers: the run's own, then
    ``RunContext.build``'s live objects, then the ``RunSpec`` fields (the one declaration of the values; a test
    checks that this list follows it)."""

    ctx: RunContext  # a prepared LM, adapter and program; without it one is built from the options below
    store: TraceStore | None  # append the trace here
    source: Source  # who asked: cli, mcp or python [default: python]
    on_step: OnStep | None  # hears each step start, finish or fail
    iterations: int | None  # rounds for this run [default: the program's]
    tags: Sequence[str]
    # without ``ctx`` (see RunContext.build):
    lm: dspy.BaseLM
    program: Dialectic | str | Path | None
    adapter: dspy.Adapter | None
    judge: bool | dspy.BaseLM | TraceJudge
    manners: Manners | None  # rate limits and retries of the LM calls (lms.manners) [default: the spec's]
    model: str | None
    api_base: str | Sequence[str] | None
    mode: Mode
    max_tokens: int | None
    judge_model: str | None
    rpm: float | None
    tpm: float | None
    max_retries: int
    parallel: int | None
    timeout: float | None  # seconds per LM call (hosted models) [default: lms.hosted's]


_RUN_OWN = ("store", "source", "on_step", "iterations", "tags")  # the rest builds the context


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
        own: dict[str, Any] = {k: v for k, v in options.items() if k in _RUN_OWN}
        build: dict[str, Any] = {k: v for k, v in options.items() if k not in _RUN_OWN and k != "ctx"}
        ctx = options.get("ctx") or RunContext.build(**build)
        run = cls(task=check_task(task), ctx=ctx, **own)
        if run.store is not None:
            run.store.check_writable()  # before the first LM call: paid work must have somewhere to go
        return run

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
            "demo": ctx.demo,
            "model_identity": ctx.identity,
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
    A ``store`` that cannot be written is refused before any LM call (ConfigError); one whose disk fills up during
    the run raises LogWriteError, whose ``records`` holds the trace and ``saved_to`` the fallback file it went to.
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
