"""The worker side of a Ray batch (``distributed.py`` is the driver's): ``DialecticWorker``, a Ray actor running
``collect.run_queue`` on its event loop with its own ``RunContext`` built from the batch's ``WorkerPlan``, and the
``BudgetKeeper`` actor that hands the batch's ``max_cost`` out to the workers' ``LeasedBudget`` meters in pieces.
Nothing here imports Ray: the driver makes these classes actors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..lms.metering import CallMeter, LeasedBudget, metering
from ..types import Source, TraceRecord
from .batch import Queued, run_queue
from .context import RunContext, RunRecipe

if TYPE_CHECKING:
    from ray.actor import ActorHandle


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker of one batch gets: the recipe, its share of the rate limits, how to run and tag."""

    recipe: RunRecipe
    program_bytes: bytes | None  # the program file travels by value: a remote node need not have the path
    share: int  # the rate limits are divided between this many workers
    concurrency: int
    iterations: int | None
    source: Source
    tags: tuple[str, ...]
    budget: ActorHandle[BudgetKeeper] | None = None  # the batch's keeper of its max_cost


class BudgetKeeper:
    """A Ray batch's ``max_cost`` (an actor): hands it out to the workers' meters in pieces, never more in all."""

    def __init__(self, limit: float):
        self.left = limit

    def grant(self, usd: float) -> float:
        """Up to ``usd`` of what is left (less when less is left; 0 once it is all handed out)."""
        given = min(max(0.0, usd), self.left)
        self.left -= given
        return given


def _meter(plan: WorkerPlan, on_limit: Callable[[], object]) -> CallMeter:
    """A worker's meter: a ``LeasedBudget`` on the batch's keeper when it has a budget, asking it without blocking
    the worker's event loop (the keeper's answer is a future the meter looks at when a call next asks)."""
    if plan.budget is None:
        return CallMeter()
    keeper = plan.budget

    def answer(request: concurrent.futures.Future[float]) -> float | None:
        return float(request.result()) if request.done() else None

    return LeasedBudget(
        ask=lambda usd: keeper.grant.remote(usd).future(), answer=answer, ahead=plan.concurrency, on_limit=on_limit
    )


def _worker_context(plan: WorkerPlan) -> RunContext:
    recipe = plan.recipe
    manners = recipe.call_manners().share(plan.share)
    if plan.program_bytes is None:
        return RunContext.build(recipe, manners=manners)
    with tempfile.TemporaryDirectory(prefix="hegelion-program-") as folder:
        local = Path(folder) / Path(recipe.program or "program.json").name
        local.write_bytes(plan.program_bytes)
        ctx = RunContext.build(recipe.model_copy(update={"program": local}), manners=manners)
    ctx.program_path = str(recipe.program)  # the digest is of the same bytes; the path is the one the user gave
    return ctx


class DialecticWorker:
    """A Ray actor running ``plan.concurrency`` dialectics at once on its event loop (``collect.run_queue``)."""

    def __init__(self, plan: WorkerPlan):
        self.plan = plan
        self.queue: asyncio.Queue[Queued | None] = asyncio.Queue()
        self.error: str | None = None
        try:
            self.ctx: RunContext | None = _worker_context(plan)
        except Exception as exc:  # reported by ready(): an actor that cannot start must not look like a crash
            self.ctx, self.error = None, f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[str | None, int]:
        """(why this worker cannot run, or None; its process id)."""
        return self.error, os.getpid()

    async def submit(self, items: list[Queued]) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def close(self) -> None:
        self._stop_now()

    def _stop_now(self) -> None:
        """Every runner ends once its dialectic does (the driver closed, or the budget is spent)."""
        for _ in range(self.plan.concurrency):
            self.queue.put_nowait(None)

    async def results(self) -> AsyncIterator[tuple[list[tuple[object, TraceRecord]], dict[str, float]]]:
        """Stream ([(key, trace), ...], the worker's call counts so far) as dialectics finish, until closed: every
        trace finished since the last item, so a busy worker sends fewer, larger items."""
        ctx = self.ctx
        assert ctx is not None, self.error
        finished: list[tuple[object, TraceRecord]] = []
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        meter = _meter(self.plan, lambda: loop.call_soon_threadsafe(self._stop_now))

        def on_record(key: object, record: TraceRecord) -> None:
            finished.append((key, record))
            wake.set()

        async def work() -> None:
            try:
                with metering(meter):
                    await run_queue(
                        self.queue,
                        ctx=ctx,
                        concurrency=self.plan.concurrency,
                        on_record=on_record,
                        iterations=self.plan.iterations,
                        source=self.plan.source,
                        tags=self.plan.tags,
                        stop=lambda: meter.reached,
                    )
            finally:
                wake.set()

        running = asyncio.ensure_future(work())
        sent: dict[str, float] = {}
        while not running.done() or finished:
            await wake.wait()
            wake.clear()
            if finished:
                batch, finished = finished, []
                sent = meter.snapshot()
                yield batch, sent
        await running  # its error, if any, reaches the driver
        last = meter.snapshot()
        if last != sent:  # calls of dialectics that left no trace (stopped by the budget) cost too
            yield [], last
