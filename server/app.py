"""build_server() -> MCPServer: the hegelion tools, resource and prompts, each a few lines over the library.

Start-up imports only the SDK, pydantic and the library's light modules; dspy (and a model) load on the first call
that needs them, in a worker thread, so ``initialize`` and ``tools/list`` answer as fast as the SDK allows.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field, TypeAdapter

from hegelion_dspy import __version__
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.types import Mode, Step, TraceRecord

from .completions import add_completions
from .dialectic import DialecticCall, DialecticRuns
from .schemas import (
    EXPORT_OPTIONS_NOT_OFFERED,
    MAX_CONTRADICTIONS,
    MAX_LATER_ROUNDS,
    ContradictionIn,
    ExportDatasetArguments,
    ExportDatasetResult,
    LogTraceArguments,
    LogTraceResult,
    RunDialecticArguments,
    RunDialecticResult,
    StepText,
    Task,
)
from .shaping import ArgumentCheck, ClientLog, prompt_errors, tool_errors
from .state import ServerState
from .views import UI_META, build_apps, with_view

RESOURCE_URI = "hegelion://traces"
RECENT_TRACES = 10

INSTRUCTIONS = """\
hegelion turns a task into a dialectic - thesis, antithesis (a critique listing contradictions), synthesis - and logs
every run as training data (DPO/SFT) in a trace log.
- run_dialectic(task): the server runs the three steps with its own model or, if your client supports sampling, with
  yours. Otherwise it hands you each step's prompt to answer; finish with log_trace.
- log_trace(task, thesis, antithesis, synthesis, ...): log a dialectic you wrote yourself.
- export_dataset(format): write the log as a training set into the server's data folder.
The prompt `dialectic` explains the whole workflow in one read. Resource hegelion://traces has the log's counts and
recent traces."""

Arguments = TypeVar("Arguments", bound=BaseModel)
ToolImpl = Callable[[Context[Any, Any], Any], Awaitable[Any]]


_ANNOTATED: Any = Annotated  # subscripted at run time with each field's type and metadata


def _signature(arguments: type[BaseModel], returns: Any, omit: frozenset[str]) -> inspect.Signature:
    """A tool function's signature whose parameters are the fields of ``arguments`` (type, limits, description,
    default) but ``omit``, so the SDK builds the tool's input schema from the one model."""
    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    for name, info in arguments.model_fields.items():
        if name in omit:
            continue
        described = Field(description=info.description, title=info.title, json_schema_extra=info.json_schema_extra)
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        annotation = _ANNOTATED[(info.annotation, *info.metadata, described)]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return inspect.Signature(params, return_annotation=returns)


def _tool_registrar(server: MCPServer, check: ArgumentCheck) -> Callable[..., Callable[[ToolImpl], ToolImpl]]:
    """A decorator registering ``impl(ctx, arguments)`` as a tool taking the fields of its arguments model, with the
    cleaned docstring as description and its behaviour hints."""

    def tool(
        title: str,
        arguments: type[BaseModel],
        *,
        destructive: bool,
        idempotent: bool = False,
        open_world: bool = False,
        omit: frozenset[str] = frozenset(),
        meta: dict[str, Any] | None = None,
    ) -> Callable[[ToolImpl], ToolImpl]:
        def register(impl: ToolImpl) -> ToolImpl:
            async def call(ctx: Context[Any, Any], **values: Any) -> Any:
                with tool_errors():  # library errors and invalid values become one-line tool errors
                    return await impl(ctx, arguments.model_validate(values))

            signature = _signature(arguments, inspect.signature(impl, eval_str=True).return_annotation, omit)
            call.__signature__ = signature  # type: ignore[attr-defined]
            call.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
            call.__annotations__["return"] = signature.return_annotation
            hints = ToolAnnotations(
                title=title,
                read_only_hint=False,
                destructive_hint=destructive,
                idempotent_hint=idempotent,
                open_world_hint=open_world,
            )
            description = inspect.cleandoc(impl.__doc__ or "")
            server.add_tool(
                call, name=impl.__name__, title=title, description=description, annotations=hints, meta=meta
            )
            check.register("tool", impl.__name__, call)
            return impl

        return register

    return tool


ContradictionList = TypeAdapter(
    Annotated[list[ContradictionIn], Field(max_length=MAX_CONTRADICTIONS)]  # the limits log_trace applies
)


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
    state = ServerState(data_dir=data_dir, lm=lm, model=model, program=program)
    check = ArgumentCheck()
    apps, desk = build_apps(state, check)  # the MCP App: views for run_dialectic/log_trace, the in-chat review
    # subscriptions=False: resource updates are not advertised in either protocol era (see docs/mcp.md, Subscriptions)
    server = MCPServer(name, version=__version__, instructions=INSTRUCTIONS, subscriptions=False, extensions=[apps])
    server.middleware.append(check)
    client_log = ClientLog(server)
    runs = DialecticRuns(state, client_log)
    tool = _tool_registrar(server, check)

    @tool(
        "Run a dialectic (thesis, antithesis, synthesis) and log it",
        RunDialecticArguments,
        destructive=False,
        open_world=True,
        meta=UI_META,
    )
    async def run_dialectic(
        ctx: Context[Any, Any], args: RunDialecticArguments
    ) -> RunDialecticResult | InputRequiredResult:
        """Argue with yourself about a task - thesis, antithesis (a critique listing contradictions), synthesis - and
        log the trace as training data. The server picks the model and reports it in `lm_source`:
        'server' - a model configured on the server runs every step; the trace is logged; read `synthesis`.
        'sampling' - your client's own model answers each step through MCP sampling; the trace is logged.
        'prompt' - there is no model here, so you answer the steps: the result has the step's `prompt` and `next`.
        Answer the prompt, then call run_dialectic again with the same task, mode and iterations plus what you have
        so far: `thesis`; then `antithesis` and `contradictions`; then `synthesis`; with iterations > 1, later rounds
        go in `rounds` ([{antithesis, contradictions, synthesis}], the last one without synthesis while you answer
        it). When status is 'complete', call log_trace with `log_trace_arguments` and your model name.
        Passing thesis/antithesis/synthesis/rounds always continues the prompt workflow."""
        call = DialecticCall(args.task, args.mode, args.iterations, args.tags or [], args.answers())
        return await with_view(ctx, desk, await runs.run(ctx, call))

    @tool("Log a dialectic you wrote yourself", LogTraceArguments, destructive=False, meta=UI_META)
    async def log_trace(ctx: Context[Any, Any], args: LogTraceArguments) -> LogTraceResult:
        """Log a thesis -> antithesis -> synthesis dialectic you produced yourself as a training trace. Validates
        every field and appends one line to the trace log; on invalid input nothing is written and the error names
        the field. Returns the trace id and the log's counts."""
        record = build_trace(source="mcp", **args.model_dump(exclude_none=True))
        counts = await state.append(record)
        logged = LogTraceResult.model_validate({"id": record.id, "log": state.store.path.name, **counts.as_dict()})
        return await with_view(ctx, desk, logged)

    # destructive: with force=true it replaces a file; idempotent: the same call writes the same file
    @tool(
        "Export the trace log as a training set",
        ExportDatasetArguments,
        destructive=True,
        idempotent=True,
        omit=EXPORT_OPTIONS_NOT_OFFERED,
    )
    async def export_dataset(ctx: Context[Any, Any], args: ExportDatasetArguments) -> ExportDatasetResult:
        """Write the server's trace log as a JSONL training set (TRL/axolotl/unsloth row shapes) into the server's
        data folder. Only successful traces are used (not those of demo models unless include_demo); the other
        options choose traces and rows as `hegelion-dataset` does. Returns the file path(s), row counts and why
        traces or rows were dropped. An existing file is not replaced unless force is true."""
        return ExportDatasetResult.of(await state.export(args))

    @server.resource(
        RESOURCE_URI,
        name="trace-log",
        title="Trace log: counts and recent traces",
        description="Counts of the server's trace log (by status, mode, model) and its 10 most recent traces.",
        mime_type="application/json",
    )
    async def trace_log() -> dict[str, Any]:
        counts, recent = await state.counts(), await state.recent(RECENT_TRACES)
        summary = [_summary(r) for r in reversed(recent)]
        return {
            "data_dir": str(state.data_dir),
            "log": str(state.store.path),
            "stats": counts.as_dict(),
            "recent": summary,
        }

    def prompt(name: str, title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            check.register("prompt", name, fn)
            return server.prompt(name=name, title=title)(fn)

        return register

    async def step_prompt(step: Step, mode: Mode, inputs: dict[str, Any]) -> list[Message]:
        from hegelion_dspy.collect.workflow import agent_prompt

        loaded = await state.program(mode)
        return [UserMessage(agent_prompt(loaded.dialectic, step, inputs).text)]

    @prompt("thesis", "Dialectic step 1: thesis")
    async def thesis_prompt(task: Task, mode: Mode = "general") -> list[Message]:
        """The thesis step: answer the task directly and completely."""
        with prompt_errors():
            return await step_prompt("thesis", mode, {"task": task})

    @prompt("antithesis", "Dialectic step 2: antithesis")
    async def antithesis_prompt(task: Task, thesis: StepText, mode: Mode = "general") -> list[Message]:
        """The antithesis step: critique the thesis and list its contradictions with evidence."""
        with prompt_errors():
            return await step_prompt("antithesis", mode, {"task": task, "thesis": thesis})

    @prompt("synthesis", "Dialectic step 3: synthesis")
    async def synthesis_prompt(
        task: Task,
        thesis: StepText,
        antithesis: StepText,
        contradictions: Annotated[str, Field(description="JSON list of {description, evidence}; may be empty.")] = "",
        mode: Mode = "general",
    ) -> list[Message]:
        """The synthesis step: resolve the critique into one improved answer."""
        with prompt_errors():
            found = ContradictionList.validate_json(contradictions or "[]")
            inputs = {"task": task, "thesis": thesis, "antithesis": antithesis, "contradictions": found}
            return await step_prompt("synthesis", mode, inputs)

    @prompt("dialectic", "Run a whole dialectic and log it")
    async def dialectic_prompt(
        task: Task,
        mode: Mode = "general",
        iterations: Annotated[int, Field(ge=1, le=MAX_LATER_ROUNDS + 1, description="Rounds (default 1).")] = 1,
    ) -> list[Message]:
        """The whole workflow in one read: write the thesis, antithesis and synthesis yourself, then log them with
        log_trace. For clients without sampling (e.g. Claude Code, which shows this as a slash command)."""
        from hegelion_dspy.collect.workflow import dialectic_brief

        with prompt_errors():
            loaded = await state.program(mode)
            return [UserMessage(dialectic_brief(loaded.dialectic, task, iterations))]

    add_completions(server, check, desk)
    return server


def _summary(record: TraceRecord) -> dict[str, Any]:
    """One recent trace in the resource: its labels and the start of its task and synthesis."""
    fields = record.model_dump(mode="json", include={"id", "created_at", "source", "mode", "model", "status", "tags"})
    return {**fields, "rounds": len(record.rounds), "task": record.task[:200], "synthesis": record.synthesis[:300]}
