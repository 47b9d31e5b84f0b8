"""Batches on a Ray cluster: ``run_ray_batch`` is ``collect.run_batch`` with the dialectics run by Ray actors.

The driver (this process) plans the batch exactly as a local one (``collect.plan_batch``: resume by provenance),
starts ``workers`` actors, and hands each one prompts as it asks for them (at most twice its ``concurrency`` waiting or
running). An actor (``ray_worker.py``) builds its own ``RunContext`` from a ``RunRecipe`` (its share of the rate
limits) and runs ``collect.run_queue`` on its event loop: the same loop as a local batch. Each finished trace streams
back at once (a Ray streaming generator; traces that finish together travel together) with the actor's running cost,
and the driver, the only writer, appends them to the one log under the store's lock. So:

- an interrupt (Ctrl-C) or an error in the driver kills the actors; every trace already received is in the log;
- an actor that dies has its unfinished prompts handed to the others (and a replacement actor is started); a trace
  that arrives twice for one prompt is logged once;
- ``max_cost`` is one budget for every actor, never passed by what was served: a ``BudgetKeeper`` actor holds it and
  hands it out in pieces; each actor's calls reserve their worst case on its ``LeasedBudget`` (what it was granted)
  before they are sent and ask the keeper for more when it does not fit. Once the keeper is dry an actor starts
  nothing new; its unstarted prompts are not run, and a rerun resumes them.

Ray is an optional extra (``pip install 'hegelion-dspy[ray]'``); this module imports it only when a batch runs.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Unpack

from ..collect.batch import BatchOptions, BatchResult, BatchSettings, Queued
from ..collect.context import RunContext, RunRecipe
from ..errors import ClusterError, ConfigError
from ..lms.metering import CallMeter
from ..store import TraceStore
from ..types import TraceRecord
from .ray_worker import BudgetKeeper, DialecticWorker, WorkerPlan

if TYPE_CHECKING:
    from ray import ObjectRefGenerator
    from ray.actor import ActorHandle

log = logging.getLogger("hegelion_dspy.collect.distributed")

INSTALL_HINT = "pip install 'hegelion-dspy[ray]'"
LOCAL = "local"  # the address that starts a Ray cluster on this machine for the batch


def import_ray() -> ModuleType:
    """The ``ray`` module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"running a batch on Ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address`` (None or "local": start one on this machine); True when this call started
    Ray (the caller shuts it down). Ray already initialised in this process is used as it is."""
    if ray.is_initialized():
        return False
    options: dict[str, object] = {"logging_level": logging.ERROR, "include_dashboard": False}
    try:
        if address in (None, LOCAL):
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {str(exc).splitlines()[0][:200]}; give the address "
            "`ray start --head` printed (host:6379, or ray://host:10001 with ray[client]), or leave it out for a "
            "local cluster"
        ) from None
    return True


# -- the driver -------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    actor: ActorHandle[DialecticWorker]
    stream: ObjectRefGenerator  # its results(), as they come
    outstanding: set[int] = field(default_factory=set)
    counts: dict[str, float] = field(default_factory=dict)  # its meter's last snapshot


class _Driver:
    """Hands prompts to workers, receives their traces, logs each once, replaces workers that die."""

    def __init__(self, ray: ModuleType, plan: WorkerPlan, todo: list[str], workers: int, restarts: int, cpus: float):
        self.ray = ray
        self.plan = plan
        self.todo = todo
        self.pending: collections.deque[int] = collections.deque(range(len(todo)))
        self.done: set[int] = set()
        self.live: dict[ObjectRefGenerator, _Worker] = {}  # by stream
        self.finished = CallMeter()  # counts of workers that are gone
        self.restarts = restarts
        self.window = 2 * plan.concurrency
        self.actor_class = ray.remote(max_restarts=0, max_task_retries=0)(DialecticWorker).options(
            num_cpus=min(1.0, cpus / workers)
        )
        self._start(workers)

    def _start(self, count: int) -> None:
        """Start ``count`` workers. One that dies while starting is replaced like one that dies later (while
        restarts last); a worker that reports it cannot build its context, or cannot import this package, ends the
        batch with that reason: every other worker would fail the same way."""
        actors = [self.actor_class.remote(self.plan) for _ in range(count)]
        answers = [actor.ready.remote() for actor in actors]
        died = 0
        for actor, answer in zip(actors, answers, strict=True):
            try:
                error, _pid = self.ray.get(answer)
            except self.ray.exceptions.RayActorError as exc:
                if _missing_package(exc):
                    self._kill_all(actors)
                    raise ClusterError(
                        "a Ray worker could not import hegelion-dspy: install it on every node of the cluster, in "
                        f"the same version ({_first_line(exc)})"
                    ) from None
                log.warning("a Ray worker died while starting (%s: %s)", type(exc).__name__, _first_line(exc))
                died += 1
                continue
            if error is not None:
                self._kill_all(actors)
                raise ClusterError(f"a Ray worker could not start: {error}")
            worker = _Worker(actor, actor.results.options(num_returns="streaming").remote())
            self.live[worker.stream] = worker
            self._feed(worker)
        self._replace(died)

    def _replace(self, died: int) -> None:
        """Start workers in place of ``died`` that are gone, while restarts last; ClusterError when none is left."""
        again = min(died, self.restarts) if len(self.done) < len(self.todo) else 0
        if again:
            self.restarts -= again
            self._start(again)
        if not self.live and len(self.done) < len(self.todo):
            raise ClusterError(
                f"every Ray worker died; {len(self.todo) - len(self.done)} prompts have no trace. The finished "
                "traces are logged: rerun to resume"
            )

    def _kill_all(self, actors: list[ActorHandle[DialecticWorker]]) -> None:
        for actor in actors:
            self.ray.kill(actor)
        self.kill()

    def _feed(self, worker: _Worker) -> None:
        batch: list[Queued] = []
        while self.pending and len(worker.outstanding) < self.window:
            index = self.pending.popleft()
            if index in self.done:
                continue
            worker.outstanding.add(index)
            batch.append((index, self.todo[index]))
        if batch:
            worker.actor.submit.remote(batch)

    def receive(self) -> list[TraceRecord]:
        """Wait for the next traces; returns those of prompts not logged before."""
        ready, _ = self.ray.wait(list(self.live), num_returns=1)
        fresh: list[TraceRecord] = []
        for stream in ready:
            worker = self.live[stream]
            try:
                batch, counts = self.ray.get(next(stream))
            except StopIteration:  # closed, or its budget ran out: what it had not started goes to the others
                self._retire(worker)
                for other in list(self.live.values()):
                    self._feed(other)
                continue
            except self.ray.exceptions.RayActorError as exc:
                self._lost(worker, exc)
                continue
            worker.counts = counts
            for key, record in batch:
                worker.outstanding.discard(key)
                if key not in self.done:
                    self.done.add(key)
                    fresh.append(record)
            if batch:  # an empty one is a worker's last word on its counts: it takes no more
                self._feed(worker)
        if len(self.done) == len(self.todo):
            self.close()
        return fresh

    def _retire(self, worker: _Worker) -> None:
        del self.live[worker.stream]
        self.finished.absorb(worker.counts)
        self.pending.extendleft(sorted(worker.outstanding - self.done, reverse=True))

    def _lost(self, worker: _Worker, exc: Exception) -> None:
        unfinished = len(worker.outstanding - self.done)
        self._retire(worker)
        log.warning(
            "a Ray worker died (%s); its %d unfinished prompts go to the others",
            type(exc).__name__,
            unfinished,
        )
        self._replace(1)
        for other in list(self.live.values()):
            self._feed(other)

    def close(self) -> None:
        for worker in self.live.values():
            worker.actor.close.remote()

    def kill(self) -> None:
        for worker in self.live.values():
            self.finished.absorb(worker.counts)
            self.ray.kill(worker.actor)
        self.live.clear()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _missing_package(exc: BaseException) -> bool:
    """True when a worker died because it could not import this package (it is not installed on that node)."""
    text = str(exc)
    return ("ModuleNotFoundError" in text or "ImportError" in text or "No module named" in text) and any(
        name in text for name in ("'hegelion_dspy", "hegelion-dspy", "'hegelion_server")
    )


def run_ray_batch(
    tasks: Sequence[str],
    *,
    recipe: RunRecipe,
    store: TraceStore | None,
    address: str | None = None,
    workers: int | None = None,
    restarts: int | None = None,
    **options: Unpack[BatchOptions],
) -> BatchResult:
    """``collect.run_batch`` on a Ray cluster: ``workers`` actors (default: one per CPU of the cluster), each running
    ``concurrency`` dialectics at once, with its share of ``recipe.manners``' rate limits. The options
    (``BatchOptions``) are run_batch's.

    ``address``: a running cluster (``auto``, ``host:6379``, ``ray://host:10001``); None (or ``LOCAL``) starts a local
    one for the batch (and stops it after). Ray already initialised in this process (``ray.init(...)``) is used as it
    is. The driver builds a context from ``recipe`` too (it checks the model and its credentials before any worker
    starts, and gives the provenance that resume compares). Up to ``restarts`` (default: ``workers``) dead workers are
    replaced. Raises ConfigError without Ray, ClusterError when the cluster cannot be reached or every worker died.
    """
    ray = import_ray()
    batch = BatchSettings.of(options)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be at least 1, got {workers!r}")
    todo, result = batch.plan(tasks, store, RunContext.build(recipe))
    if not todo:
        return result
    program_bytes = Path(recipe.program).read_bytes() if recipe.program is not None else None
    started = connect(ray, address)
    driver: _Driver | None = None
    keeper = None
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        count = min(workers or max(1, int(cpus)), len(todo))
        if batch.max_cost is not None:
            keeper = ray.remote(BudgetKeeper).options(num_cpus=0).remote(batch.max_cost)
        plan = WorkerPlan(
            recipe, program_bytes, count, batch.concurrency, batch.iterations, batch.source, batch.tags, keeper
        )
        driver = _Driver(ray, plan, todo, count, count if restarts is None else restarts, cpus)
        while driver.live:
            batch.log(driver.receive(), store, result)
            if result.log_error is not None:
                break  # the log cannot take more: the traces received are in its fallback file
        if batch.max_cost is not None and result.stopped is None and result.not_run > 0:
            result.stopped = "max_cost"  # every worker ended with the keeper dry
    finally:
        if driver is not None:
            driver.kill()
            result.meter.absorb(driver.finished.snapshot())
        if keeper is not None:
            ray.kill(keeper)
        if started:
            ray.shutdown()
    return result
