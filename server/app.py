"""build_server() -> MCPServer: the hegelion tools, resource and prompts, each a few lines over the library.

Each tool is a plain typed function registered as it is: its parameters are its input schema. Where a parameter is a
library option (a ``RunSpec`` or ``ExportOptions`` field), its default is ``offered(Model, name)``, which brings the
option's default, limits and description from the library's one declaration of it.

Start-up imports only the SDK, pydantic and the library's light modules; dspy (and a model) load on the first call
that needs them, in a worker thread, so ``initialize`` and ``tools/list`` answer as fast as the SDK allows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import Field

from hegelion_dspy import __version__
from hegelion_dspy.collect.spec import RunSpec
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.formats import Format, Pairs, Rejected
from hegelion_dspy.curate.options import Flag
from hegelion_dspy.curate.selection import Glob, Keep, TagName
from hegelion_dspy.types import JSONObject, Mode, Source, TraceRecord

from .completions import add_completions
from .dialectic import DialecticCall, DialecticRuns
from .prompts import add_prompts
from .schemas import (
    MAX_CONTRADICTIONS,
    MAX_LATER_ROUNDS,
    ContradictionIn,
    ExportDatasetArguments,
    ExportDatasetResult,
    LaterRound,
    LogTraceResult,
    ModelName,
    OptionalStepText,
    PartialRound,
    RunDialecticResult,
    StepText,
    Tags,
    Task,
    answers,
    offered,
    plain,
)
from .shaping import ArgumentCheck, ClientLog, ToolFunction, tool_errors
from .state import ServerState
from .views import UI_META, ViewDesk, build_apps, with_view

if TYPE_CHECKING:
    from hegelion_dspy.lms.base import NamedLM

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

Registration = Callable[[ToolFunction], ToolFunction]


def build_server(
    *,
    data_dir: str | Path | None = None,
    lm: NamedLM | None = None,
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
    tools = Tools(server, check)
    add_run_dialectic(tools, DialecticRuns(state, ClientLog(server)), desk)
    add_log_trace(tools, state, desk)
    add_export_dataset(tools, state)
    add_trace_log(server, state)
    add_prompts(server, check, state)
    add_completions(server, check, desk)
    return server


@dataclass
class Tools:
    """Registers plain typed tool functions on ``server`` as they are, with the cleaned docstring as description,
    behaviour hints, and their parameter names for the argument check."""

    server: MCPServer
    check: ArgumentCheck

    def tool(
        self,
        title: str,
        *,
        destructive: bool,
        idempotent: bool = False,
        open_world: bool = False,
        meta: Mapping[str, object] | None = None,
    ) -> Registration:
        hints = ToolAnnotations(
            title=title,
            read_only_hint=False,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=open_world,
        )

        def register(fn: ToolFunction) -> ToolFunction:
            description = inspect.cleandoc(fn.__doc__ or "")
            self.server.add_tool(
                fn, name=fn.__name__, title=title, description=description, annotations=hints, meta=_dict(meta)
            )
            self.check.register("tool", fn.__name__, fn)
            return fn

        return register


def _dict(meta: Mapping[str, object] | None) -> dict[str, object] | None:
    return None if meta is None else dict(meta)


def add_run_dialectic(tools: Tools, runs: DialecticRuns, desk: ViewDesk) -> None:
    tool = tools.tool

    @tool(
        "Run a dialectic (thesis, antithesis, synthesis) and log it",
        destructive=False,
        open_world=True,
        meta=UI_META,
    )
    async def run_dialectic(
        ctx: Context,
        task: Task,
        mode: Mode = offered(RunSpec, "mode", description="'coding' words the steps for software tasks."),
        iterations: int | None = offered(
            RunSpec, "iterations", description="Rounds; each synthesis is the next round's thesis."
        ),
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
        tags: Tags | None = None,  # a RunSpec field, with a client's tighter limits (RUN_OPTIONS_RESHAPED)
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
        given = answers(
            thesis=thesis, antithesis=antithesis, contradictions=contradictions, synthesis=synthesis, rounds=rounds
        )
        call = DialecticCall(task, mode, iterations, tags or [], given)
        with tool_errors():
            return await with_view(ctx, desk, await runs.run(ctx, call))


def add_log_trace(tools: Tools, state: ServerState, desk: ViewDesk) -> None:
    tool = tools.tool

    @tool("Log a dialectic you wrote yourself", destructive=False, meta=UI_META)
    async def log_trace(
        ctx: Context,
        task: Task,
        thesis: Annotated[StepText, Field(description="Your first answer to the task.")],
        antithesis: Annotated[StepText, Field(description="Your critique of the thesis.")],
        synthesis: Annotated[StepText, Field(description="Your improved answer (of round 1 when `rounds` follow).")],
        contradictions: Annotated[
            list[ContradictionIn] | None,
            Field(max_length=MAX_CONTRADICTIONS, description="The flaws the critique found, with evidence."),
        ] = None,
        rounds: Annotated[
            list[LaterRound] | None,
            Field(
                max_length=MAX_LATER_ROUNDS,
                description="Rounds 2, 3, ... of an iterated dialectic; each thesis is the previous synthesis.",
            ),
        ] = None,
        mode: Mode = "general",
        model: ModelName = None,
        tags: Tags | None = None,
    ) -> LogTraceResult:
        """Log a thesis -> antithesis -> synthesis dialectic you produced yourself as a training trace. Validates
        every field and appends one line to the trace log; on invalid input nothing is written and the error names
        the field. Returns the trace id and the log's counts."""
        given = plain(contradictions=contradictions, rounds=rounds, model=model, tags=tags)
        with tool_errors():
            record = build_trace(
                source="mcp", task=task, thesis=thesis, antithesis=antithesis, synthesis=synthesis, mode=mode, **given
            )
            counts = await state.append(record)
            logged = LogTraceResult.model_validate({"id": record.id, "log": state.store.path.name, **counts.as_dict()})
            return await with_view(ctx, desk, logged)


E = ExportDatasetArguments  # each export option's default, limits and description: offered(E, name)

# Why export_dataset spells out the names and types of ExportOptions' fields instead of deriving them, as it derives
# everything else about them: the SDK (MCPServer.tool / add_tool, mcp 2.3) builds a tool's input schema from the
# function's own signature and takes no schema or model besides it. Deriving the parameters would mean either writing
# a synthesised ``__signature__`` (the run-time ``inspect.Signature`` that issue 23 took out, which type checkers and
# readers cannot see) or one parameter holding an ``ExportOptions`` object, which nests every option under its name
# and changes the wire schema. So the list is written once here, and tests/server/test_server.py
# (test_export_dataset_takes_its_options_from_the_one_export_options_model) fails when it and ExportOptions part:
# a field added, dropped or renamed there, or a description that is not the library's.


def add_export_dataset(tools: Tools, state: ServerState) -> None:
    tool = tools.tool

    # destructive: with force=true it replaces a file; idempotent: the same call writes the same file
    @tool("Export the trace log as a training set", destructive=True, idempotent=True)
    async def export_dataset(
        ctx: Context,
        include_demo: bool = offered(E, "include_demo"),
        models: list[Glob] = offered(E, "models"),
        exclude_models: list[Glob] = offered(E, "exclude_models"),
        sources: list[Source] = offered(E, "sources"),
        tags: list[TagName] = offered(E, "tags"),
        exclude_tags: list[TagName] = offered(E, "exclude_tags"),
        since: datetime | None = offered(E, "since"),
        until: datetime | None = offered(E, "until"),
        format: Format = offered(E, "format"),
        rejected: Rejected = offered(E, "rejected"),
        pairs: Pairs = offered(E, "pairs"),
        system: str | None = offered(E, "system"),
        min_chars: int = offered(E, "min_chars"),
        min_score: float | None = offered(E, "min_score"),
        allow_flags: list[Flag] = offered(E, "allow_flags"),
        dedupe: bool = offered(E, "dedupe"),
        keep: Keep = offered(E, "keep"),
        split: float | None = offered(E, "split"),
        seed: int = offered(E, "seed"),
        with_metadata: bool = offered(E, "with_metadata"),
        reviewed_only: bool = offered(E, "reviewed_only"),
        skip_invalid: bool = offered(E, "skip_invalid"),
        force: bool = offered(E, "force"),
        output_name: str | None = offered(E, "output_name"),
    ) -> ExportDatasetResult:
        """Write the server's trace log as a JSONL training set (TRL/axolotl/unsloth row shapes) into the server's
        data folder. Only successful traces are used (not those of demo models unless include_demo); the other
        options choose traces and rows as `hegelion-dataset` does. Returns the file path(s), row counts and why
        traces or rows were dropped. An existing file is not replaced unless force is true."""
        parameters = locals()  # exactly the parameters: the first statement
        with tool_errors():
            return ExportDatasetResult.of(await state.export(E.of_parameters(parameters)))


def add_trace_log(server: MCPServer, state: ServerState) -> None:
    @server.resource(
        RESOURCE_URI,
        name="trace-log",
        title="Trace log: counts and recent traces",
        description="Counts of the server's trace log (by status, mode, model) and its 10 most recent traces.",
        mime_type="application/json",
    )
    async def trace_log() -> dict[str, object]:
        counts, recent = await state.counts(), await state.recent(RECENT_TRACES)
        summary = [_summary(r) for r in reversed(recent)]
        return {
            "data_dir": str(state.data_dir),
            "log": str(state.store.path),
            "stats": counts.as_dict(),
            "recent": summary,
        }


def _summary(record: TraceRecord) -> JSONObject:
    """One recent trace in the resource: its labels and the start of its task and synthesis."""
    fields = record.model_dump(mode="json", include={"id", "created_at", "source", "mode", "model", "status", "tags"})
    return {**fields, "rounds": len(record.rounds), "task": record.task[:200], "synthesis": record.synthesis[:300]}
