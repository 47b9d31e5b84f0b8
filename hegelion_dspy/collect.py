"""Collection: run dialectics and log them as TraceRecords; log traces an agent produced itself.

This is the library behind ``hegelion-agent`` and the MCP tools ``run_dialectic`` / ``log_trace``. dspy is
imported only by the functions that run a program, so logging and reading stay fast to import.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .errors import ConfigError, InvalidTraceError, StepFailedError
from .store import TraceStore, normalize_task
from .types import MAX_TEXT_CHARS, Contradiction, Mode, Round, Source, TraceFailure, TraceRecord

if TYPE_CHECKING:
    import dspy

    from .judge import TraceJudge
    from .program import Dialectic


@dataclass
class RunContext:
    """Everything a run needs besides the task: the LM, the adapter and the program (built once, shared)."""

    lm: dspy.BaseLM
    program: Dialectic
    adapter: dspy.Adapter
    program_path: str | None = None
    judge: TraceJudge | None = None  # scores ok traces (record.score) when set
    program_digest: str | None = None  # which program file wrote a trace, whatever its path (resume keys on it)

    @classmethod
    def build(
        cls,
        *,
        lm: dspy.BaseLM | None = None,
        model: str | None = None,
        mode: Mode = "general",
        iterations: int = 1,
        program: Dialectic | str | Path | None = None,
        adapter: dspy.Adapter | None = None,
        judge: bool | dspy.BaseLM | TraceJudge = False,
    ) -> RunContext:
        """``judge``: True scores each ok trace with the run's own LM, an LM scores with that LM, a TraceJudge as is."""
        from .lms.chooser import adapter_for, make_lm
        from .program import Dialectic, load_program, program_digest

        program_path = digest = None
        if isinstance(program, (str, Path)):
            program_path = str(program)
            program = load_program(program)
            digest = program_digest(program_path)
        if program is None:
            program = Dialectic(mode=mode, iterations=iterations)
        lm = lm if lm is not None else make_lm(model)
        adapter = adapter or adapter_for(lm)
        return cls(
            lm=lm,
            program=program,
            adapter=adapter,
            program_path=program_path,
            judge=_trace_judge(judge, lm),
            program_digest=digest,
        )


def _trace_judge(judge: bool | dspy.BaseLM | TraceJudge, lm: dspy.BaseLM) -> TraceJudge | None:
    if judge is False or judge is None:
        return None
    from .judge import TraceJudge
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


def _record(
    ctx: RunContext,
    task: str,
    outcome: Any,
    *,
    source: Source,
    tags: Sequence[str],
) -> TraceRecord:
    from .lms.base import describe_lm

    common: dict[str, Any] = {
        "source": source,
        "task": task,
        "mode": ctx.program.mode,
        "model": str(ctx.lm.model),
        "lm": describe_lm(ctx.lm),
        "adapter": type(ctx.adapter).__name__,
        "program": ctx.program_path,
        "program_digest": ctx.program_digest,
        "demo": bool(getattr(ctx.lm, "demo", False)),
        "tags": list(tags),
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


def run_dialectic(
    task: str,
    *,
    ctx: RunContext | None = None,
    store: TraceStore | None = None,
    iterations: int | None = None,
    source: Source = "python",
    tags: Sequence[str] = (),
    **build: Any,
) -> TraceRecord:
    """Run the dialectic on ``task`` and return its trace (``status`` says whether it succeeded).

    ``ctx`` carries a prepared LM and program; otherwise ``build`` (lm=, model=, mode=, iterations=, program=) makes
    one. The trace is appended to ``store`` when given. A failed LM call is returned as a failed trace, never raised.
    """
    import dspy

    task = check_task(task)
    ctx = ctx or RunContext.build(**build)
    with dspy.context(lm=ctx.lm, adapter=ctx.adapter):
        try:
            outcome: Any = ctx.program(task=task, iterations=iterations)
        except StepFailedError as exc:
            outcome = exc
    record = _record(ctx, task, outcome, source=source, tags=tags)
    if ctx.judge is not None:
        record = ctx.judge.score(record)
    if store is not None:
        store.append(record)
    return record


async def arun_dialectic(
    task: str,
    *,
    ctx: RunContext | None = None,
    store: TraceStore | None = None,
    iterations: int | None = None,
    source: Source = "python",
    tags: Sequence[str] = (),
    **build: Any,
) -> TraceRecord:
    """The async twin of ``run_dialectic``: steps go through ``acall`` so many tasks run concurrently."""
    import dspy

    task = check_task(task)
    ctx = ctx or RunContext.build(**build)
    with dspy.context(lm=ctx.lm, adapter=ctx.adapter):
        try:
            outcome: Any = await ctx.program.acall(task=task, iterations=iterations)
        except StepFailedError as exc:
            outcome = exc
    record = _record(ctx, task, outcome, source=source, tags=tags)
    if ctx.judge is not None:
        record = await ctx.judge.ascore(record)
    if store is not None:
        store.append(record)
    return record


@dataclass
class BatchResult:
    """What a batch run did. ``failures`` keeps (task, reason) of the first few failed prompts."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.skipped


def plan_batch(
    tasks: Iterable[str], store: TraceStore | None, *, mode: str, resume: bool = True
) -> tuple[list[str], int]:
    """The tasks still to run (each once) and how many were skipped as already done or repeated."""
    done = store.completed_tasks(mode) if (resume and store is not None) else set()
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


async def run_batch(
    tasks: Sequence[str],
    *,
    ctx: RunContext,
    store: TraceStore | None,
    concurrency: int = 4,
    iterations: int | None = None,
    source: Source = "cli",
    tags: Sequence[str] = (),
    resume: bool = True,
    on_result: Callable[[TraceRecord], None] | None = None,
    keep_failures: int = 5,
) -> BatchResult:
    """Run many tasks concurrently; each trace is appended as soon as it finishes, so an interrupt loses none.

    With ``resume`` tasks that already have an ``ok`` trace in ``store`` (same mode) are skipped.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    todo, skipped = plan_batch(tasks, store, mode=ctx.program.mode, resume=resume)
    result = BatchResult(skipped=skipped)
    gate = asyncio.Semaphore(concurrency)

    async def one(task: str) -> None:
        async with gate:
            record = await arun_dialectic(task, ctx=ctx, store=store, iterations=iterations, source=source, tags=tags)
        if record.ok:
            result.ok += 1
        else:
            result.failed += 1
            if len(result.failures) < keep_failures and record.error is not None:
                result.failures.append((task, f"{record.error.step}: {record.error.message.splitlines()[0][:300]}"))
        if on_result is not None:
            on_result(record)

    await asyncio.gather(*(one(t) for t in todo))
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
