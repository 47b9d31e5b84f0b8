"""Collection: run dialectics and log them as TraceRecords; log traces an agent produced itself.

This is the library behind ``hegelion-agent`` and the MCP tools ``run_dialectic`` / ``log_trace``. dspy is
imported only by the functions that run a program, so logging and reading stay fast to import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from pydantic import ValidationError

from .checks import dedupe_contradictions
from .errors import ConfigError, InvalidTraceError, LMError, StepFailedError
from .lms.metering import CallMeter, metering
from .store import Provenance, TraceStore, normalize_task
from .types import MAX_TEXT_CHARS, Contradiction, Mode, Round, Source, TraceFailure, TraceRecord

if TYPE_CHECKING:
    import dspy

    from .judge import DialecticJudge, Judgement
    from .lms.manners import Manners
    from .program import Dialectic, OnStep

log = logging.getLogger("hegelion_dspy.collect")


@dataclass
class RunContext:
    """Everything a run needs besides the task: the LM, the adapter and the program (built once, shared)."""

    lm: dspy.BaseLM
    program: Dialectic
    adapter: dspy.Adapter
    program_path: str | None = None
    judge: TraceJudge | None = None  # scores ok traces (record.score) when set
    program_digest: str | None = None  # which program file wrote a trace, whatever its path (resume keys on it)

    def provenance(self) -> Provenance:
        """What makes a trace of this context count as done for resume: mode, model and program."""
        return Provenance(mode=self.program.mode, model=_model_of(self.lm), program=self.program_digest)

    @classmethod
    def build(
        cls,
        *,
        lm: dspy.BaseLM | None = None,
        model: str | None = None,
        api_base: str | Sequence[str] | None = None,
        mode: Mode = "general",
        iterations: int = 1,
        program: Dialectic | str | Path | None = None,
        adapter: dspy.Adapter | None = None,
        judge: bool | dspy.BaseLM | TraceJudge = False,
        manners: Manners | None = None,
        max_tokens: int | None = None,
        parallel: int | None = None,
    ) -> RunContext:
        """``judge``: True scores each ok trace with the run's own LM, an LM scores with that LM, a TraceJudge as is.

        The LM (``lm``, else ``make_lm(model, api_base=..., max_tokens=..., parallel=...)``; several base URLs give one
        LM each, called in turn) is wrapped in ``manners`` (``lms.manners.PoliteLM``: rate limits, retries on 429/5xx,
        cost per call), the defaults when none are given; so is a judge's own LM. ``max_tokens``: new tokens per step;
        ``parallel``: calls at once (a local model's slots); both only for an LM built here.
        """
        from .lms.chooser import adapter_for, make_lm
        from .lms.manners import polite
        from .program import Dialectic, load_program, program_digest

        program_path = digest = None
        if isinstance(program, (str, Path)):
            program_path = str(program)
            program = load_program(program)
            digest = program_digest(program_path)
        if program is None:
            program = Dialectic(mode=mode, iterations=iterations)
        if lm is None:
            bases = [api_base] if isinstance(api_base, str) or api_base is None else list(api_base)
            lms = [make_lm(model, api_base=base, max_tokens=max_tokens, parallel=parallel) for base in bases or [None]]
            lm = polite(lms, manners)
        else:
            lm = polite(lm, manners)
        adapter = adapter or adapter_for(lm)
        if judge is not True and judge is not False and not isinstance(judge, TraceJudge):
            judge = polite(judge, manners)
        return cls(
            lm=lm,
            program=program,
            adapter=adapter,
            program_path=program_path,
            judge=_trace_judge(judge, lm),
            program_digest=digest,
        )


@dataclass(frozen=True)
class RunRecipe:
    """How to build a RunContext, as plain values that pickle: a Ray worker builds its own from it
    (``RunContext.build`` with these arguments). ``judge`` is True, False or the judge's model string; ``lm``, a
    picklable function returning the LM, replaces ``model``/``api_base`` (tests, custom LMs)."""

    model: str | None = None
    api_base: str | tuple[str, ...] | None = None
    mode: Mode = "general"
    iterations: int = 1
    program: str | None = None
    judge: bool | str = False
    manners: Manners | None = None
    lm: Callable[[], dspy.BaseLM] | None = None
    max_tokens: int | None = None  # new tokens per step (make_lm's default when None)
    parallel: int | None = None  # calls at once: a local model loads with at least this many slots

    def build(self, *, manners: Manners | None = None) -> RunContext:
        """The context; ``manners`` replaces the recipe's (a Ray worker's share of the rate limits)."""
        from .lms.chooser import make_lm

        judge: bool | dspy.BaseLM = make_lm(self.judge) if isinstance(self.judge, str) else self.judge
        return RunContext.build(
            lm=self.lm() if self.lm is not None else None,
            model=self.model,
            api_base=self.api_base,
            mode=self.mode,
            iterations=self.iterations,
            program=self.program,
            judge=judge,
            manners=manners or self.manners,
            max_tokens=self.max_tokens,
            parallel=self.parallel,
        )


def _model_of(lm: dspy.BaseLM) -> str:
    from .lms.manners import unwrapped

    return str(unwrapped(lm).model)


def _trace_judge(judge: bool | dspy.BaseLM | TraceJudge, lm: dspy.BaseLM) -> TraceJudge | None:
    if judge is False or judge is None:
        return None
    from .lms.chooser import adapter_for

    if isinstance(judge, TraceJudge):
        return judge
    judge_lm = lm if judge is True else judge
    return TraceJudge(lm=judge_lm, adapter=adapter_for(judge_lm))


def check_task(task: Any) -> str:
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f"the task must be a non-empty string, got {task!r}")
    if len(task) > MAX_TEXT_CHARS:
        raise ConfigError(f"the task is {len(task):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return task.strip()


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
class _Run:
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
    def of(cls, task: str, options: RunOptions) -> _Run:
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
        """The trace of the outcome (before any judging)."""
        from .lms.base import describe_lm
        from .lms.manners import unwrapped

        ctx, outcome = self.ctx, self.outcome
        common: dict[str, Any] = {
            "source": self.source,
            "task": self.task,
            "mode": ctx.program.mode,
            "model": _model_of(ctx.lm),
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
        return TraceRecord(**common, rounds=outcome.rounds, synthesis=outcome.synthesis, status="ok")

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
    run = _Run.of(task, options)
    with metering() as spent:
        with run.attempt():
            run.outcome = run.ctx.program(**run.program_inputs())
        record = run.record()
        if run.ctx.judge is not None:
            record = run.ctx.judge.score(record)
    return run.logged(record, spent)


async def arun_dialectic(task: str, **options: Unpack[RunOptions]) -> TraceRecord:
    run = _Run.of(task, options)
    with metering() as spent:
        with run.attempt():
            run.outcome = await run.ctx.program.acall(**run.program_inputs())
        record = run.record()
        if run.ctx.judge is not None:
            record = await run.ctx.judge.ascore(record)
    return run.logged(record, spent)


# -- batches ---------------------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What a batch run did. ``failures`` keeps (task, reason) of the first few failed prompts; ``meter`` counts the
    LM calls (cost, retries, waits); ``stopped`` is ``"max_cost"`` when the budget ended the batch early."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    planned: int = 0  # prompts this run set out to do (the rest were skipped)
    failures: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None
    meter: CallMeter = field(default_factory=CallMeter)

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
        """The prompts to run (``plan_batch``) and the result to count them in; refuses a budget without prices."""
        if self.max_cost is not None:
            _check_priced(ctx)
        todo, skipped = plan_batch(tasks, store, ctx, resume=self.resume)
        return todo, BatchResult(skipped=skipped, planned=len(todo))

    def log(self, records: list[TraceRecord], store: TraceStore | None, result: BatchResult) -> None:
        """Append finished traces (one locked write), count them, then tell ``on_result``."""
        if store is not None:
            store.append_many(records)
        for record in records:
            result.add(record, self.keep_failures)
            if self.on_result is not None:
                self.on_result(record)


def _check_priced(ctx: RunContext) -> None:
    """A budget needs prices: refuse ``max_cost`` for a model LiteLLM's price map does not price."""
    from .lms.metering import token_prices

    model = _model_of(ctx.lm)
    if token_prices(model) is None:
        raise ConfigError(
            f"max_cost needs the model's prices, and LiteLLM's price map has none for {model!r} (self-hosted and "
            "offline models cost nothing per token); drop the budget, or use a model the map prices"
        )


Queued = tuple[Any, str]  # (key, task): the key comes back with the task's trace


async def run_queue(
    queue: asyncio.Queue[Queued | None],
    *,
    ctx: RunContext,
    concurrency: int,
    on_record: Callable[[Any, TraceRecord], None],
    iterations: int | None = None,
    source: Source = "cli",
    tags: Sequence[str] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """Run the tasks taken from ``queue``, ``concurrency`` at a time, until each of ``concurrency`` runners has taken
    a None; ``on_record(key, record)`` hears each trace as it finishes (nothing is logged here).

    The one loop of every batch: ``run_batch`` fills the queue with its prompts, a Ray worker with what its driver
    sends. When ``stop`` is set the dialectics in flight are cancelled: they leave no trace, and resume reruns them.
    """

    async def runner() -> None:
        while (item := await queue.get()) is not None:
            key, task = item
            on_record(key, await arun_dialectic(task, ctx=ctx, iterations=iterations, source=source, tags=tags))

    runners = [asyncio.ensure_future(runner()) for _ in range(concurrency)]
    everything: asyncio.Future[Any] = asyncio.gather(*runners)
    stopper: asyncio.Future[Any] | None = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        await asyncio.wait([everything] if stopper is None else [everything, stopper], return_when="FIRST_COMPLETED")
        if everything.done():
            everything.result()  # a runner's error (a full disk, a failing callback) ends the batch
    finally:
        for waiting in (*runners, stopper):
            if waiting is not None:
                waiting.cancel()
        await asyncio.gather(everything, *([stopper] if stopper else []), return_exceptions=True)


async def run_batch(
    tasks: Sequence[str], *, ctx: RunContext, store: TraceStore | None, **options: Unpack[BatchOptions]
) -> BatchResult:
    """Run many tasks concurrently; each trace is appended as soon as it finishes, so an interrupt loses none.

    Options (``BatchOptions``): ``concurrency``, ``iterations``, ``source``, ``tags``, ``on_result``. With ``resume``
    tasks that already have an ``ok`` trace in ``store`` from the same mode, model and program are skipped
    (``plan_batch``). ``max_cost`` (USD) stops the batch once its LM calls have cost that much: every finished trace
    is kept, the dialectics in flight are dropped, ``result.stopped`` says so and ``result.not_run`` how many prompts
    a rerun would resume. ``distributed.run_ray_batch`` is the same on a Ray cluster.
    """
    batch = BatchSettings.of(options)
    todo, result = batch.plan(tasks, store, ctx)
    queue: asyncio.Queue[Queued | None] = asyncio.Queue()
    for item in enumerate(todo):
        queue.put_nowait(item)
    for _ in range(batch.concurrency):
        queue.put_nowait(None)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    result.meter.limit = batch.max_cost
    result.meter.on_limit = lambda: loop.call_soon_threadsafe(stop.set)
    with metering(result.meter):
        await run_queue(
            queue,
            ctx=ctx,
            concurrency=min(batch.concurrency, max(1, len(todo))),
            on_record=lambda _key, record: batch.log([record], store, result),
            iterations=batch.iterations,
            source=batch.source,
            tags=batch.tags,
            stop=stop,
        )
    if result.meter.reached:
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


def build_trace(
    *,
    task: str,
    thesis: str,
    antithesis: str,
    synthesis: str,
    contradictions: Sequence[Contradiction | dict[str, Any]] | None = None,
    rounds: Sequence[Round | dict[str, Any]] | None = None,
    mode: Mode = "general",
    model: str | None = None,
    tags: Sequence[str] | None = None,
    source: Source = "python",
    score: float | None = None,
) -> TraceRecord:
    """A validated ``ok`` trace from text produced outside the program (an IDE agent, a human, another tool).

    ``thesis``/``antithesis``/``synthesis`` (+ ``contradictions``) are round 1; ``rounds`` are later rounds of an
    iterated run, each ``{antithesis, synthesis, contradictions?}`` whose thesis is the previous synthesis.
    Raises InvalidTraceError naming the field when something is missing or malformed.
    """
    try:
        first = Round(
            index=1,
            thesis=thesis,
            antithesis=antithesis,
            contradictions=[Contradiction.model_validate(c) for c in (contradictions or [])],
            synthesis=synthesis,
        )
        all_rounds = [first]
        for n, later in enumerate(rounds or [], start=2):
            data = later.model_dump() if isinstance(later, Round) else dict(later)
            data.setdefault("thesis", all_rounds[-1].synthesis)
            data["index"] = n
            all_rounds.append(Round.model_validate(data))
        return TraceRecord(
            source=source,
            task=task,
            mode=mode,
            model=model,
            rounds=all_rounds,
            synthesis=all_rounds[-1].synthesis,
            status="ok",
            score=score,
            tags=list(tags or []),
        )
    except ValidationError as exc:
        first_error = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first_error.get("loc", ()))
        raise InvalidTraceError(f"{first_error.get('msg')}; nothing was written", field=loc or None) from None
    except TypeError as exc:
        raise InvalidTraceError(f"malformed value ({exc}); nothing was written") from None


def log_trace(store: TraceStore, **fields: Any) -> TraceRecord:
    """Validate a trace produced outside the program (see ``build_trace``) and append it to ``store``."""
    record = build_trace(**fields)
    store.append(record)
    return record


# -- scoring traces at collection time -----------------------------------------------------------------------------


_MAX_FEEDBACK_CHARS = 2_000  # a judge error kept in a trace's metadata


def trace_parts(record: TraceRecord) -> tuple[str, str, str, list[Contradiction]]:
    """(task, first thesis, final synthesis, every round's contradictions) of an ok trace."""
    return (
        record.task,
        record.first_thesis,
        record.synthesis,
        dedupe_contradictions(c for r in record.rounds for c in r.contradictions),
    )


class TraceJudge:  # scores traces as they are collected
    """Scores ``ok`` traces: sets ``record.score`` and keeps the judgement in ``record.metadata["judge"]``.

    A judge that fails never spoils the trace: the score stays None and ``metadata["judge_error"]`` says why.
    Failed traces are returned untouched. Give the judge its own ``lm`` unless the caller runs it inside a
    ``dspy.context(lm=...)``.
    """

    def __init__(self, judge: DialecticJudge | None = None, **judge_options: Any):
        if judge is not None and judge_options:
            raise ConfigError("give either a DialecticJudge or judge options (lm=, use_lm=, ...), not both")
        if judge is None:
            from .judge import DialecticJudge

            judge = DialecticJudge(**judge_options)
        self.judge = judge

    def score(self, record: TraceRecord) -> TraceRecord:
        """The record with its score (a failed record comes back untouched)."""
        if not record.ok:
            return record
        try:
            verdict = self.judge.judge(*trace_parts(record))
        except LMError as exc:
            return self._failed(record, exc)
        return self._scored(record, verdict)

    async def ascore(self, record: TraceRecord) -> TraceRecord:
        """The async twin of ``score``."""
        if not record.ok:
            return record
        try:
            verdict = await self.judge.ajudge(*trace_parts(record))
        except LMError as exc:
            return self._failed(record, exc)
        return self._scored(record, verdict)

    def _scored(self, record: TraceRecord, verdict: Judgement) -> TraceRecord:
        info = {**verdict.as_dict(), "model": self.judge.model if verdict.judge_score is not None else None}
        metadata = {**record.metadata, "judge": info}
        return record.model_copy(update={"score": verdict.score, "metadata": metadata})

    def _failed(self, record: TraceRecord, exc: LMError) -> TraceRecord:
        log.warning("judge failed on trace %s; its score stays empty: %s", record.id, exc)
        metadata = {**record.metadata, "judge_error": str(exc)[:_MAX_FEEDBACK_CHARS]}
        return record.model_copy(update={"score": None, "metadata": metadata})
