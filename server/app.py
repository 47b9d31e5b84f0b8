"""build_server() -> MCPServer: the hegelion tools, resource and prompts, each a thin adapter over the library.

Start-up imports only the SDK, pydantic and the library's light modules; dspy (and a model) load on the first call
that needs them, in a worker thread, so ``initialize`` and ``tools/list`` answer at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import AssistantMessage, Message, UserMessage
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import INVALID_PARAMS, EmptyResult, InputRequiredResult, SetLevelRequestParams, ToolAnnotations
from pydantic import Field, ValidationError

from hegelion_dspy import __version__
from hegelion_dspy.errors import ConfigError, HegelionError, UnsafePathError
from hegelion_dspy.exporters import Format, Pairs, Rejected
from hegelion_dspy.paths import safe_path
from hegelion_dspy.store import LOG_NAME, LogStats, TraceStore, default_data_dir
from hegelion_dspy.types import Mode, Step, TraceRecord

from .schemas import (
    MAX_CONTRADICTIONS,
    MAX_LATER_ROUNDS,
    MAX_NAME_CHARS,
    MAX_STEP_CHARS,
    MAX_SYSTEM_CHARS,
    MAX_TASK_CHARS,
    ContradictionIn,
    ExportDatasetResult,
    LaterRound,
    LmSource,
    LogTraceResult,
    ModelName,
    OptionalStepText,
    PartialRound,
    PromptMessage,
    RoundOut,
    RunDialecticResult,
    StepText,
    Tags,
    Task,
)

if TYPE_CHECKING:
    import dspy

    from hegelion_dspy.program import Dialectic

    from .sampling import ReplaySampler

logger = logging.getLogger("hegelion_server")

ENV_PROGRAM = "HEGELION_PROGRAM"
ENV_MODEL = "HEGELION_MODEL"
RESOURCE_URI = "hegelion://traces"
RECENT_TRACES = 10

INSTRUCTIONS = """\
hegelion turns a task into a dialectic - thesis, antithesis (a critique listing contradictions), synthesis - and logs
every run as training data (DPO/SFT) in a trace log.
- run_dialectic(task): the server runs the three steps with its own model or, if your client supports sampling, with
  yours. Otherwise it hands you each step's prompt to answer; finish with log_trace.
- log_trace(task, thesis, antithesis, synthesis, ...): log a dialectic you wrote yourself.
- export_dataset(format): write the log as a training set into the server's data folder.
Resource hegelion://traces has the log's counts and recent traces."""


# -- the edge: library errors become one-line tool errors, never a traceback --------------------------------------


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    try:
        yield
    except HegelionError as exc:
        raise ToolError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        raise ToolError(f"field {where!r}: {first.get('msg', 'invalid value')}") from None


@contextlib.contextmanager
def _prompt_errors() -> Iterator[None]:
    # A prompt cannot return an error result: a bad argument is a protocol error (invalid params) with our message.
    try:
        with _tool_errors():
            yield
    except ToolError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None


LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def _accept_log_level(server: MCPServer, state: Hegelion) -> None:
    """Handle logging/setLevel (handshake-era clients), which also declares the logging capability."""

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        state.client_log_level = params.level
        return EmptyResult()

    # MCPServer has no public hook for it; its low-level server does (the same one MCPServer registers tools on).
    server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


def _total_steps(iterations: int) -> int:
    return 3 + 2 * (iterations - 1)


# -- the trace log, with its counts kept current without re-reading it on every append ----------------------------


class TraceLog:
    """The server's trace log. Counts are cached and updated per append; another writer makes them recount."""

    def __init__(self, path: Path):
        self.store = TraceStore(path)
        self._stats: LogStats | None = None
        self._size = -1
        self._lock = anyio.Lock()

    @property
    def path(self) -> Path:
        return self.store.path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _count(self) -> tuple[LogStats, int]:
        size = self.size()
        return self.store.stats(), size

    async def _refresh(self) -> LogStats:
        if self._stats is None or self.size() != self._size:
            self._stats, self._size = await anyio.to_thread.run_sync(self._count)
        assert self._stats is not None
        return self._stats

    async def stats(self) -> LogStats:
        async with self._lock:
            return dataclasses.replace(await self._refresh())

    async def append(self, record: TraceRecord) -> LogStats:
        async with self._lock:
            stats = await self._refresh()
            line = len(record.to_json_line())
            self.store.append(record)
            if self.size() != self._size + line:  # someone else wrote too: recount
                return dataclasses.replace(await self._refresh())
            self._size += line
            stats.add(record)
            return dataclasses.replace(stats)

    def recent(self, n: int) -> list[TraceRecord]:
        return self.store.recent(n)


# -- the server's state: configuration, the log, the program and the model (both loaded on first use) ------------


def _rounds_out(record: TraceRecord) -> list[RoundOut]:
    return [
        RoundOut(
            index=r.index,
            thesis=r.thesis,
            antithesis=r.antithesis,
            contradictions=[c.model_dump() for c in r.contradictions],
            synthesis=r.synthesis,
        )
        for r in record.rounds
    ]


def _next_for_prompt(step: Step, round_index: int) -> str:
    first = round_index == 1
    if step == "thesis":
        add = "thesis=<your answer>"
    elif step == "antithesis" and first:
        add = "antithesis=<your critique> and contradictions=[{description, evidence}, ...]"
    elif step == "antithesis":
        add = f"a new last entry in rounds (round {round_index}): {{antithesis, contradictions}}"
    elif first:
        add = "synthesis=<your improved answer>"
    else:
        add = "synthesis=<your improved answer> on the last entry of rounds"
    return (
        f"Answer `prompt` (the {step} step of round {round_index}) yourself, as plain text. Then call run_dialectic "
        f"again with the same task, mode and iterations, everything you passed so far, and {add}."
    )


NEXT_WHEN_COMPLETE = (
    "All steps are answered. Call log_trace now with `log_trace_arguments` (your answers as plain text) plus "
    "model=<your model name> and any tags, to log this dialectic."
)


class Hegelion:
    """What the tools share. ``lm`` (a dspy.BaseLM) or ``model`` (a model string) give the server its own model."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        lm: Any = None,
        model: str | None = None,
        program: str | Path | None = None,
    ):
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = TraceLog(self.data_dir / LOG_NAME)
        self.model = (model if model is not None else os.environ.get(ENV_MODEL, "")).strip() or None
        self._lm = lm
        program = program if program is not None else (os.environ.get(ENV_PROGRAM) or None)
        self.program_path = self._program_file(program) if program is not None else None
        self._programs: dict[str, tuple[Dialectic, str | None]] = {}
        self._load_lock = anyio.Lock()
        self.client_log_level: str = "info"  # set by the client with logging/setLevel

    def _program_file(self, program: str | Path) -> str:
        # Like every file the server reads, the program lives in the data folder: a name, or an absolute path in it.
        path = Path(program).expanduser()
        name = str(program)
        if path.is_absolute():
            root = self.data_dir.resolve()
            if path.resolve().parent != root:
                raise UnsafePathError(
                    f"{ENV_PROGRAM} {name!r} is not in the data folder {str(root)!r}; copy the program file there "
                    "(every file the server reads or writes lives in it)"
                )
            name = path.name
        return str(safe_path(self.data_dir, name, must_exist=True))

    async def tell(self, ctx: Context[Any, Any], level: Literal["info", "warning"], message: str) -> None:
        """Send a log message to the client, at or above the level it asked for (logging/setLevel; default info).

        The logging capability is deprecated from protocol 2026-07-28 (there the client opts in per request and the
        SDK filters); today's clients still use it, so the SDK's deprecation warning is silenced for this one call.
        """
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(self.client_log_level):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            sending = ctx.session.send_log_message(
                level=level, data=message, logger="hegelion", related_request_id=ctx.request_id
            )
        await sending

    @property
    def has_server_model(self) -> bool:
        return self._lm is not None or self.model is not None

    # -- lazy loading, off the event loop ------------------------------------------------------------------------

    def _load_program(self, mode: Mode) -> tuple[Dialectic, str | None]:
        from hegelion_dspy.program import Dialectic, load_program

        if self.program_path is not None:
            compiled = load_program(self.program_path)
            if compiled.mode == mode:
                return compiled, self.program_path
            logger.info("the compiled program is for %r tasks; %r tasks use the default program", compiled.mode, mode)
        return Dialectic(mode=mode), None

    async def program(self, mode: Mode) -> tuple[Dialectic, str | None]:
        async with self._load_lock:
            if mode not in self._programs:
                self._programs[mode] = await anyio.to_thread.run_sync(self._load_program, mode)
            return self._programs[mode]

    async def server_lm(self) -> dspy.BaseLM:
        async with self._load_lock:
            if self._lm is None:
                from_model = self.model

                def make() -> Any:
                    from hegelion_dspy.lms.chooser import make_lm

                    return make_lm(from_model)

                self._lm = await anyio.to_thread.run_sync(make)
            return self._lm

    # -- run_dialectic -------------------------------------------------------------------------------------------

    async def run(
        self,
        ctx: Context[Any, Any],
        *,
        lm: dspy.BaseLM,
        source: LmSource,
        task: str,
        mode: Mode,
        iterations: int | None,
        tags: list[str],
        replay: ReplaySampler | None = None,
    ) -> RunDialecticResult | InputRequiredResult:
        from hegelion_dspy.collect import RunContext, arun_dialectic
        from hegelion_dspy.lms.chooser import adapter_for

        program, program_path = await self.program(mode)
        total = _total_steps(iterations or program.iterations)
        run_ctx = RunContext(lm=lm, program=program, adapter=adapter_for(lm), program_path=program_path)

        if replay is not None:  # one step per round: report where we are, then replay up to the next question
            if replay.answers:
                await ctx.report_progress(len(replay.answers), total, f"{len(replay.answers)} of {total} steps")
            record = await arun_dialectic(task, ctx=run_ctx, iterations=iterations, source="mcp", tags=tags)
            if replay.pending is not None:
                return replay.input_required()
        else:
            record = await self._run_with_progress(ctx, run_ctx, task, iterations, tags, total)
        stats = await self.log.append(record)
        if record.ok:
            await self.tell(ctx, "info", f"trace {record.id} logged ({stats.total} in the log)")
            return RunDialecticResult(
                lm_source=source,
                status="ok",
                next="Done: the trace is logged. `synthesis` is the improved answer.",
                model=record.model,
                trace_id=record.id,
                synthesis=record.synthesis,
                rounds=_rounds_out(record),
                program=program_path,
            )
        assert record.error is not None
        error = f"the {record.error.step} step of round {record.error.round} failed: {record.error.message}"
        await self.tell(ctx, "warning", f"{error} (failed trace {record.id} logged)")
        return RunDialecticResult(
            lm_source=source,
            status="failed",
            next="The run failed and was logged as a failure (never exported as training data). Retry, or answer "
            "the steps yourself and call log_trace.",
            model=record.model,
            trace_id=record.id,
            rounds=_rounds_out(record),
            error=error[:2000],
            program=program_path,
        )

    async def _run_with_progress(
        self, ctx: Context[Any, Any], run_ctx: Any, task: str, iterations: int | None, tags: list[str], total: int
    ) -> TraceRecord:
        import dspy

        from hegelion_dspy.collect import arun_dialectic

        sender, receiver = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        callback = _step_callback(run_ctx.program, sender.send_nowait)

        async def report() -> None:
            done = 0
            async with receiver:
                async for step in receiver:
                    done += 1
                    await ctx.report_progress(done, total, f"{step} done ({done} of {total} steps)")

        async with anyio.create_task_group() as tg:
            tg.start_soon(report)
            with sender, dspy.context(callbacks=[callback]):
                record = await arun_dialectic(task, ctx=run_ctx, iterations=iterations, source="mcp", tags=tags)
        return record

    async def prompt_step(
        self,
        *,
        task: str,
        mode: Mode,
        iterations: int | None,
        thesis: str | None,
        antithesis: str | None,
        contradictions: list[ContradictionIn] | None,
        synthesis: str | None,
        rounds: list[PartialRound] | None,
    ) -> RunDialecticResult:
        from hegelion_dspy.workflow import next_step, read_answer

        program, program_path = await self.program(mode)

        def plain(step: Step, text: str | None, found: list[dict[str, Any]]) -> str | None:
            # An answer in the prompt's [[ ## field ## ]] format is read field by field (an antithesis may carry its
            # contradictions); explicit contradictions win.
            if not text:
                return text
            fields = read_answer(program, step, text)
            if step == "antithesis" and not found and fields.get("contradictions"):
                found.extend(c.model_dump() for c in fields["contradictions"])
            return str(fields.get(step) or text)

        found = [c.model_dump() for c in contradictions or []]
        trace: dict[str, Any] = {
            "thesis": plain("thesis", thesis, []),
            "antithesis": plain("antithesis", antithesis, found),
            "contradictions": found,
            "synthesis": plain("synthesis", synthesis, []),
            "rounds": [],
        }
        for later in rounds or []:
            later_found = [c.model_dump() for c in later.contradictions]
            entry = {"antithesis": plain("antithesis", later.antithesis, later_found), "contradictions": later_found}
            if later.synthesis:
                entry["synthesis"] = plain("synthesis", later.synthesis, [])
            trace["rounds"].append(entry)
        prompt = next_step(program, task.strip(), iterations=iterations or program.iterations, **trace)
        if prompt is None:
            arguments = {"task": task, "mode": mode, **{k: v for k, v in trace.items() if v}}
            return RunDialecticResult(
                lm_source="prompt",
                status="complete",
                next=NEXT_WHEN_COMPLETE,
                program=program_path,
                log_trace_arguments=arguments,
            )
        return RunDialecticResult(
            lm_source="prompt",
            status="answer_needed",
            next=_next_for_prompt(prompt.step, prompt.round),
            step=prompt.step,
            round=prompt.round,
            prompt=prompt.text,
            messages=[PromptMessage(**m) for m in prompt.messages],
            program=program_path,
        )

    # -- log_trace and export_dataset ----------------------------------------------------------------------------

    async def log_trace(self, **fields: Any) -> LogTraceResult:
        from hegelion_dspy.collect import build_trace

        record = build_trace(source="mcp", **fields)
        stats = await self.log.append(record)
        return LogTraceResult(
            id=record.id,
            log=self.log.path.name,
            total=stats.total,
            ok=stats.ok,
            failed=stats.failed,
            invalid=stats.invalid,
        )

    async def export(self, output_name: str | None, overwrite: bool, **options: Any) -> ExportDatasetResult:
        from hegelion_dspy.exporters import export_dataset, split_paths

        name = output_name or f"{options['format']}.jsonl"
        target = safe_path(self.data_dir, name, overwrite=True)  # the name; each file written is checked below
        outputs = split_paths(target) if options.get("split") else {"train": target}
        for path in outputs.values():
            safe_path(self.data_dir, path.name, overwrite=overwrite)
        if self.log.path.resolve() in {p.resolve() for p in outputs.values()}:
            raise ConfigError(f"{name!r} is the trace log itself; write the dataset to another name")
        if self.log.size() == 0:
            raise ConfigError("the trace log is empty: run run_dialectic or log_trace first, then export")
        report = await anyio.to_thread.run_sync(
            lambda: export_dataset(self.log.path, target, force=overwrite, **options)
        )
        return ExportDatasetResult(
            path=report.outputs["train"],
            files=dict(report.outputs),
            rows=dict(report.rows),
            dropped={k: v for k, v in report.dropped.items() if v},
            report=report.as_dict(),
        )

    # -- the resource --------------------------------------------------------------------------------------------

    async def log_summary(self) -> dict[str, Any]:
        stats = await self.log.stats()
        recent = await anyio.to_thread.run_sync(self.log.recent, RECENT_TRACES)
        return {
            "data_dir": str(self.data_dir),
            "log": str(self.log.path),
            "stats": stats.as_dict(),
            "recent": [
                {
                    "id": r.id,
                    "created_at": r.created_at.isoformat(),
                    "source": r.source,
                    "mode": r.mode,
                    "model": r.model,
                    "status": r.status,
                    "rounds": len(r.rounds),
                    "task": r.task[:200],
                    "synthesis": r.synthesis[:300],
                    "tags": r.tags,
                }
                for r in reversed(recent)
            ],
        }


def _step_callback(program: Dialectic, on_step: Callable[[str], None]) -> Any:
    """A DSPy callback that calls ``on_step(step)`` each time one of the program's predictors finishes."""
    from dspy.utils.callback import BaseCallback

    steps = {id(getattr(program, s)): s for s in ("thesis", "antithesis", "synthesis")}

    class StepCallback(BaseCallback):
        def __init__(self) -> None:
            self.running: dict[str, str] = {}

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            step = steps.get(id(instance))
            if step is not None:
                self.running[call_id] = step

        def on_module_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
            step = self.running.pop(call_id, None)
            if step is not None and exception is None:
                on_step(step)

    return StepCallback()


def _prompt_messages(messages: list[dict[str, str]]) -> list[Message]:
    """Chat messages as MCP prompt messages: MCP has no system role, so the system text opens the first user turn."""
    out: list[Message] = []
    system = ""
    for m in messages:
        if m["role"] == "system":
            system = m["content"].strip() + "\n\n"
        elif m["role"] == "assistant":
            out.append(AssistantMessage(m["content"]))
        else:
            out.append(UserMessage(system + m["content"]))
            system = ""
    return out


# -- the server ---------------------------------------------------------------------------------------------------


def _tool_registrar(server: MCPServer) -> Callable[..., Callable[[Any], Any]]:
    """A decorator registering a tool with its cleaned docstring as description and its behaviour hints."""

    def tool(
        title: str, *, destructive: bool, idempotent: bool = False, open_world: bool = False
    ) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            annotations = ToolAnnotations(
                title=title,
                read_only_hint=False,
                destructive_hint=destructive,
                idempotent_hint=idempotent,
                open_world_hint=open_world,
            )
            server.add_tool(fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations)
            return fn

        return register

    return tool


PromptTask = Annotated[str, Field(min_length=1, max_length=MAX_TASK_CHARS, description="The question or task.")]
PromptText = Annotated[str, Field(min_length=1, max_length=MAX_STEP_CHARS)]


def build_server(
    *,
    data_dir: str | Path | None = None,
    lm: Any = None,
    model: str | None = None,
    program: str | Path | None = None,
    name: str = "hegelion",
) -> MCPServer:
    """The hegelion MCP server.

    ``data_dir`` holds every file it reads or writes (default: ``$HEGELION_DATA_DIR``, else
    ``$XDG_DATA_HOME/hegelion-dspy``, else ``~/.local/share/hegelion-dspy``); the trace log is ``traces.jsonl`` in it.
    A server-side model comes from ``lm`` (a dspy.BaseLM, e.g. ScriptedLM in tests) or ``model`` /
    ``$HEGELION_MODEL`` (``embedded`` for the offline model); ``program`` / ``$HEGELION_PROGRAM`` names a compiled
    program file. Without a server-side model, run_dialectic uses the client's model (sampling) or the prompt workflow.
    """
    state = Hegelion(data_dir=data_dir, lm=lm, model=model, program=program)
    server: MCPServer = MCPServer(name, version=__version__, instructions=INSTRUCTIONS)
    _accept_log_level(server, state)

    tool = _tool_registrar(server)

    @tool("Run a dialectic (thesis, antithesis, synthesis) and log it", destructive=False, open_world=True)
    async def run_dialectic(
        task: Task,
        ctx: Context,
        mode: Annotated[Mode, Field(description="'coding' words the steps for software tasks.")] = "general",
        iterations: Annotated[
            int | None, Field(ge=1, le=10, description="Rounds; each synthesis is the next round's thesis.")
        ] = None,
        thesis: Annotated[OptionalStepText, Field(description="Prompt workflow: your thesis.")] = None,
        antithesis: Annotated[OptionalStepText, Field(description="Prompt workflow: your critique (round 1).")] = None,
        contradictions: Annotated[
            list[ContradictionIn] | None,
            Field(max_length=MAX_CONTRADICTIONS, description="Prompt workflow: the flaws your critique found."),
        ] = None,
        synthesis: Annotated[OptionalStepText, Field(description="Prompt workflow: your improved answer.")] = None,
        rounds: Annotated[
            list[PartialRound] | None,
            Field(max_length=MAX_LATER_ROUNDS, description="Prompt workflow: rounds 2, 3, ... when iterations > 1."),
        ] = None,
        tags: Tags | None = None,
    ) -> RunDialecticResult | InputRequiredResult:
        """Argue with yourself about a task - thesis, antithesis (a critique listing contradictions), synthesis - and
        log the trace as training data. The server picks the model and reports it in `lm_source`:
        'server' - a model configured on the server runs every step; the trace is logged; read `synthesis`.
        'sampling' - your client's own model answers each step through MCP sampling; the trace is logged.
        'prompt' - there is no model here, so you answer the steps: the result has the step's `prompt` and `next`.
        Answer the prompt, then call run_dialectic again with the same task, mode and iterations plus what you have
        so far: `thesis`; then `antithesis` and `contradictions`; then `synthesis`; with iterations > 1, later rounds
        go in `rounds` ([{antithesis, contradictions, synthesis}], the last one without synthesis while you answer
        it). When status is 'complete', call log_trace with the same fields and your model name.
        Passing thesis/antithesis/synthesis/rounds always continues the prompt workflow."""
        with _tool_errors():
            partial = any(v for v in (thesis, antithesis, synthesis, rounds))
            route = None
            if not partial and not state.has_server_model:
                from .sampling import sampling_route

                route = sampling_route(ctx)
            if partial or (route is None and not state.has_server_model):
                if not partial:
                    await state.tell(
                        ctx, "info", "no model here and no sampling: you answer the steps (prompt workflow)"
                    )
                return await state.prompt_step(
                    task=task,
                    mode=mode,
                    iterations=iterations,
                    thesis=thesis,
                    antithesis=antithesis,
                    contradictions=contradictions,
                    synthesis=synthesis,
                    rounds=rounds,
                )
            if state.has_server_model:
                lm = await state.server_lm()
                await state.tell(ctx, "info", f"running the dialectic with the server's model {lm.model!r}")
                return await state.run(
                    ctx, lm=lm, source="server", task=task, mode=mode, iterations=iterations, tags=tags or []
                )
            from hegelion_dspy.lms.sampling import SamplingLM

            from .sampling import LiveSampler, ReplaySampler

            sampler: LiveSampler | ReplaySampler = LiveSampler(ctx) if route == "request" else ReplaySampler.resume(ctx)
            sampling_lm = SamplingLM(sampler)
            sampler.lm = sampling_lm
            if route == "request" or not ctx.request_state:
                await state.tell(ctx, "info", "running the dialectic with your model through MCP sampling")
            return await state.run(
                ctx,
                lm=sampling_lm,
                source="sampling",
                task=task,
                mode=mode,
                iterations=iterations,
                tags=tags or [],
                replay=sampler if isinstance(sampler, ReplaySampler) else None,
            )

    @tool("Log a dialectic you wrote yourself", destructive=False)
    async def log_trace(
        task: Task,
        thesis: Annotated[StepText, Field(description="Your first answer to the task.")],
        antithesis: Annotated[StepText, Field(description="Your critique of the thesis.")],
        synthesis: Annotated[StepText, Field(description="Your improved answer (of the last round).")],
        contradictions: Annotated[
            list[ContradictionIn] | None,
            Field(max_length=MAX_CONTRADICTIONS, description="The flaws the critique found, with evidence."),
        ] = None,
        rounds: Annotated[
            list[LaterRound] | None,
            Field(
                max_length=MAX_LATER_ROUNDS,
                description="Rounds 2, 3, ... of an iterated dialectic; each thesis is the previous synthesis, "
                "and `synthesis` above is then round 1's.",
            ),
        ] = None,
        mode: Mode = "general",
        model: ModelName = None,
        tags: Tags | None = None,
    ) -> LogTraceResult:
        """Log a thesis -> antithesis -> synthesis dialectic you produced yourself as a training trace. Validates
        every field and appends one line to the trace log; on invalid input nothing is written and the error names
        the field. Returns the trace id and the log's counts."""
        with _tool_errors():
            return await state.log_trace(
                task=task,
                thesis=thesis,
                antithesis=antithesis,
                synthesis=synthesis,
                contradictions=[c.model_dump() for c in contradictions or []],
                rounds=[r.model_dump() for r in rounds or []],
                mode=mode,
                model=model,
                tags=tags or [],
            )

    # destructive: with overwrite=true it replaces a file; idempotent: the same call writes the same file
    @tool("Export the trace log as a training set", destructive=True, idempotent=True)
    async def export_dataset(
        format: Annotated[
            Format, Field(description="dpo, dpo-chat (preference pairs); sft, sft-chat, instruction (synthesis only).")
        ] = "dpo",
        rejected: Annotated[Rejected, Field(description="dpo: the rejected side of each pair.")] = "thesis",
        output_name: Annotated[
            str | None,
            Field(
                max_length=MAX_NAME_CHARS,
                description="A plain file name inside the server's data folder (default: '<format>.jsonl').",
            ),
        ] = None,
        pairs: Annotated[Pairs, Field(description="dpo: 'first-last' or one pair per 'rounds'.")] = "first-last",
        system: Annotated[
            str | None, Field(max_length=MAX_SYSTEM_CHARS, description="Chat formats: a system prompt.")
        ] = None,
        min_chars: Annotated[int, Field(ge=0, le=MAX_STEP_CHARS, description="Drop shorter rows.")] = 0,
        min_score: Annotated[float | None, Field(ge=0, le=1, description="Drop traces scored lower.")] = None,
        dedupe: Annotated[bool, Field(description="Keep one trace per task.")] = True,
        split: Annotated[
            float | None, Field(gt=0, lt=1, description="Fraction of tasks in a test file (e.g. 0.1).")
        ] = None,
        seed: int = 7,
        overwrite: Annotated[bool, Field(description="Replace an existing file of that name.")] = False,
        skip_invalid: Annotated[bool, Field(description="Skip (and count) invalid log lines.")] = False,
        reviewed_only: Annotated[
            bool, Field(description="Keep only pairs a reviewer accepted, swapped or edited (labels are always used).")
        ] = False,
    ) -> ExportDatasetResult:
        """Write the server's trace log as a JSONL training set (TRL/axolotl/unsloth row shapes) into the server's
        data folder. Only successful traces are used; returns the file path(s), row counts and why traces or rows
        were dropped. An existing file is not replaced unless overwrite is true."""
        with _tool_errors():
            return await state.export(
                output_name,
                overwrite,
                format=format,
                rejected=rejected,
                pairs=pairs,
                system=system,
                min_chars=min_chars,
                min_score=min_score,
                dedupe=dedupe,
                split=split,
                seed=seed,
                skip_invalid=skip_invalid,
                reviewed_only=reviewed_only,
            )

    @server.resource(
        RESOURCE_URI,
        name="trace-log",
        title="Trace log: counts and recent traces",
        description="Counts of the server's trace log (by status, mode, model) and its 10 most recent traces.",
        mime_type="application/json",
    )
    async def trace_log() -> dict[str, Any]:
        return await state.log_summary()

    async def step_messages(step: Step, mode: Mode, inputs: dict[str, Any]) -> list[Message]:
        from hegelion_dspy.workflow import render_step

        program, _ = await state.program(mode)
        return _prompt_messages(render_step(program, step, inputs).messages)

    @server.prompt(name="thesis", title="Dialectic step 1: thesis")
    async def thesis_prompt(task: PromptTask, mode: Mode = "general") -> list[Message]:
        """The thesis prompt: answer the task directly and completely."""
        with _prompt_errors():
            return await step_messages("thesis", mode, {"task": task})

    @server.prompt(name="antithesis", title="Dialectic step 2: antithesis")
    async def antithesis_prompt(task: PromptTask, thesis: PromptText, mode: Mode = "general") -> list[Message]:
        """The antithesis prompt: critique the thesis and list its contradictions with evidence."""
        with _prompt_errors():
            return await step_messages("antithesis", mode, {"task": task, "thesis": thesis})

    @server.prompt(name="synthesis", title="Dialectic step 3: synthesis")
    async def synthesis_prompt(
        task: PromptTask,
        thesis: PromptText,
        antithesis: PromptText,
        contradictions: Annotated[
            str, Field(max_length=MAX_STEP_CHARS, description="JSON list of {description, evidence}; may be empty.")
        ] = "",
        mode: Mode = "general",
    ) -> list[Message]:
        """The synthesis prompt: resolve the critique into one improved answer."""
        import json

        from hegelion_dspy.types import Contradiction

        with _prompt_errors():
            try:
                items = json.loads(contradictions) if contradictions else []
                found = [Contradiction.model_validate(c) for c in items]
            except (ValueError, TypeError) as exc:
                reason = str(exc).splitlines()[0]
                raise ToolError(f"contradictions must be a JSON list of {{description, evidence}}: {reason}") from None
            inputs = {"task": task, "thesis": thesis, "antithesis": antithesis, "contradictions": found}
            return await step_messages("synthesis", mode, inputs)

    return server
