"""Batches: plan which prompts still need a trace, run them concurrently from one queue, log each as it finishes;
and read a prompts file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

from ..errors import ConfigError, LogWriteError
from ..lms.metering import BudgetExhausted, CallMeter, metering
from ..store import TraceStore, normalize_task
from ..types import Source, TraceRecord
from .context import RunContext, model_of
from .run import arun_dialectic


@dataclass
class BatchResult:
    """What a batch run did. ``failures`` keeps (task, reason) of the first few failed prompts; ``meter`` counts the
    LM calls (cost, retries, waits); ``stopped`` is ``"max_cost"`` when the budget ended the batch early, ``"log"``
    when the log could not be written (``log_error`` names the fallback file holding every trace kept out of it)."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    planned: int = 0  # prompts this run set out to do (the rest were skipped)
    failures: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None
    meter: CallMeter = field(default_factory=CallMeter)
    log_error: LogWriteError | None = None

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def not_run(self) -> int:
        """Prompts planned but without a trace (the batch stopped early); a rerun resumes them."""
        return self.planned - self.ok - self.failed

    @property
    def cost_usd(self) -> float | None:
        """What the batch's LM calls cost (those in unfinished runs too), when their prices are known."""
        return self.meter.cost_usd if self.meter.priced else None

    def add(self, record: TraceRecord, keep_failures: int = 5) -> None:
        """Count one finished trace."""
        if record.ok:
            self.ok += 1
            return
        self.failed += 1
        if len(self.failures) < keep_failures and record.error is not None:
            self.failures.append((record.task, f"{record.error.step}: {record.error.message.splitlines()[0][:300]}"))


def plan_batch(
    tasks: Iterable[str], store: TraceStore | None, ctx: RunContext, *, resume: bool = True
) -> tuple[list[str], int]:
    """The tasks still to run (each once) and how many were skipped as already done or repeated.

    A task is done only when the log holds an ``ok`` trace of it from the same mode, model and program
    (``Provenance``): a rerun with another model, or a re-optimized program, collects it again.
    """
    done = store.completed(ctx.provenance()) if (resume and store is not None) else set()
    todo: list[str] = []
    skipped = 0
    for task in tasks:
        key = normalize_task(task)
        if key in done:
            skipped += 1
            continue
        done.add(key)
        todo.append(task)
    return todo, skipped


class BatchOptions(TypedDict, total=False):
    """The keyword options of every batch (``run_batch``, ``distributed.run_ray_batch``), declared once."""

    concurrency: int  # dialectics in flight (per worker on Ray) [default: 4]
    iterations: int | None  # rounds [default: the program's]
    source: Source  # [default: cli]
    tags: Sequence[str]
    resume: bool  # skip prompts the log holds an ok trace of from the same provenance [default: True]
    on_result: Callable[[TraceRecord], None] | None  # hears each trace once it is logged
    keep_failures: int  # (task, reason) of the first few failures kept in the result [default: 5]
    max_cost: float | None  # USD: stop once the batch's LM calls have cost this much


@dataclass(frozen=True)
class BatchSettings:
    """A batch's settings (from BatchOptions) and the steps every batch driver shares: planning and logging."""

    concurrency: int = 4
    iterations: int | None = None
    source: Source = "cli"
    tags: tuple[str, ...] = ()
    resume: bool = True
    on_result: Callable[[TraceRecord], None] | None = None
    keep_failures: int = 5
    max_cost: float | None = None

    @classmethod
    def of(cls, options: BatchOptions) -> BatchSettings:
        unknown = sorted(set(options) - set(BatchOptions.__annotations__))
        if unknown:
            raise TypeError(f"unexpected options {unknown}; the options are {sorted(BatchOptions.__annotations__)}")
        batch = cls(**{**options, "tags": tuple(options.get("tags", ()))})  # type: ignore[arg-type]
        if not isinstance(batch.concurrency, int) or batch.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {batch.concurrency!r}")
        cost = batch.max_cost
        if cost is not None and not (isinstance(cost, (int, float)) and cost > 0):
            raise ConfigError(f"max_cost must be a positive amount of US dollars, got {cost!r}")
        return batch

    def plan(self, tasks: Iterable[str], store: TraceStore | None, ctx: RunContext) -> tuple[list[str], BatchResult]:
        """The prompts to run (``plan_batch``) and the result to count them in; refuses a budget without prices and a
        log that cannot be written (before any LM call)."""
        if self.max_cost is not None:
            _check_priced(ctx)
        if store is not None:
            store.check_writable()
        todo, skipped = plan_batch(tasks, store, ctx, resume=self.resume)
        return todo, BatchResult(skipped=skipped, planned=len(todo))

    @staticmethod
    def stop(result: BatchResult) -> bool:
        """Start no more dialectics: the budget is spent, or the log cannot take their traces."""
        return result.meter.reached or result.log_error is not None

    def log(self, records: list[TraceRecord], store: TraceStore | None, result: BatchResult) -> None:
        """Append finished traces (one locked write), count them, then tell ``on_result``. When the disk refuses
        them they are in the store's fallback file: the batch stops starting dialectics (``stop``)."""
        if store is not None:
            try:
                store.append_many(records)
            except LogWriteError as exc:
                result.log_error, result.stopped = exc, "log"
        for record in records:
            result.add(record, self.keep_failures)
            if self.on_result is not None:
                self.on_result(record)


def _check_priced(ctx: RunContext) -> None:
    """A budget needs prices: refuse ``max_cost`` for a model LiteLLM's price map does not price."""
    from ..lms.metering import token_prices

    model = model_of(ctx.lm)
    if token_prices(model) is None:
        raise ConfigError(
            f"max_cost needs the model's prices, and LiteLLM's price map has none for {model!r} (self-hosted and "
            "offline models cost nothing per token); drop the budget, or use a model the map prices"
        )


Queued = tuple[object, str]  # (key, task): the key, whatever the caller's, comes back with the task's trace


async def run_queue(
    queue: asyncio.Queue[Queued | None],
    *,
    ctx: RunContext,
    concurrency: int,
    on_record: Callable[[object, TraceRecord], None],
    iterations: int | None = None,
    source: Source = "cli",
    tags: Sequence[str] = (),
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run the tasks taken from ``queue``, ``concurrency`` at a time, until each of ``concurrency`` runners has taken
    a None; ``on_record(key, record)`` hears each trace as it finishes (nothing is logged here).

    The one loop of every batch: ``run_batch`` fills the queue with its prompts, a Ray worker with what its driver
    sends. Once ``stop()`` is true (a budget ran out) no new task starts and the dialectics in flight end at their
    next LM call, which the budget refuses (``BudgetExhausted``): such a dialectic leaves no trace, and resume reruns
    it. The calls already sent finish and are counted.
    """

    async def runner() -> None:
        while not (stop is not None and stop()) and (item := await queue.get()) is not None:
            key, task = item
            record = await arun_dialectic(task, ctx=ctx, iterations=iterations, source=source, tags=tags)
            if not stopped_by_budget(record):
                on_record(key, record)

    runners = [asyncio.ensure_future(runner()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*runners)  # a runner's error (a full disk, a failing callback) ends the batch
    finally:
        for waiting in runners:
            waiting.cancel()
        await asyncio.gather(*runners, return_exceptions=True)


def stopped_by_budget(record: TraceRecord) -> bool:
    """True for the trace of a dialectic cut short because its next LM call would have passed the budget."""
    return record.error is not None and record.error.type == BudgetExhausted.__name__


async def run_batch(
    tasks: Sequence[str], *, ctx: RunContext, store: TraceStore | None, **options: Unpack[BatchOptions]
) -> BatchResult:
    """Run many tasks concurrently; each trace is appended as soon as it finishes, so an interrupt loses none.

    Options (``BatchOptions``): ``concurrency``, ``iterations``, ``source``, ``tags``, ``on_result``. With ``resume``
    tasks that already have an ``ok`` trace in ``store`` from the same mode, model and program are skipped
    (``plan_batch``). ``max_cost`` (USD) is a budget the batch's LM calls never pass: each call reserves its worst
    case when sent (``lms.metering``), and once the next one would not fit no call is sent: every finished trace is
    kept, the dialectics cut short leave none, ``result.stopped`` says so, ``result.meter`` what was spent and was in
    flight, and ``result.not_run`` how many prompts a rerun would resume. ``distributed.run_ray_batch`` is the same
    on a Ray cluster.
    """
    batch = BatchSettings.of(options)
    todo, result = batch.plan(tasks, store, ctx)
    queue: asyncio.Queue[Queued | None] = asyncio.Queue()
    for item in enumerate(todo):
        queue.put_nowait(item)
    for _ in range(batch.concurrency):
        queue.put_nowait(None)
    result.meter.limit = batch.max_cost
    with metering(result.meter):
        await run_queue(
            queue,
            ctx=ctx,
            concurrency=min(batch.concurrency, max(1, len(todo))),
            on_record=lambda _key, record: batch.log([record], store, result),
            iterations=batch.iterations,
            source=batch.source,
            tags=batch.tags,
            stop=lambda: batch.stop(result),
        )
    if result.meter.reached and result.stopped is None:
        result.stopped = "max_cost"
    return result


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a file: one a line, or JSONL objects with a ``prompt`` (or ``task``) field. Blank lines skip."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"cannot read prompts file {str(path)!r}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read prompts file {str(path)!r}: it is a folder") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the prompts file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read prompts file {str(path)!r}: {exc.strerror}") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    jsonl = path.suffix == ".jsonl" or (bool(lines) and all(line.startswith("{") for _, line in lines))
    prompts: list[str] = []
    for lineno, line in lines:
        if not jsonl:
            prompts.append(line)
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{lineno}: not JSON ({exc.msg}); write one JSON object a line") from None
        prompt = data.get("prompt", data.get("task")) if isinstance(data, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f"{path}:{lineno}: field 'prompt': missing or not a non-empty string; add \"prompt\"")
        prompts.append(prompt.strip())
    if not prompts:
        raise ConfigError(f"{path}: no prompts found; write one prompt a line (or JSONL with a 'prompt' field)")
    return prompts
