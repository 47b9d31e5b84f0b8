"""``completion/complete``: values for the prompts' and resource templates' arguments (``mode``, ``format``,
``rejected``, ``pairs``, and the models, tags and trace ids the log holds), plus the ``export`` prompt and the
``hegelion://traces/{trace_id}`` template whose arguments come from the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, get_args

from mcp.server import MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference
from pydantic import Field

from hegelion_dspy.curate.formats import FORMATS, Pairs, Rejected
from hegelion_dspy.types import Mode

from .shaping import ArgumentCheck, PromptFunction, prompt_errors
from .views import ViewDesk

TRACE_TEMPLATE = "hegelion://traces/{trace_id}"
MAX_VALUES = 100  # the most values a completion result may carry (MCP)
FIXED: dict[str, tuple[str, ...]] = {
    "mode": get_args(Mode),
    "format": FORMATS,
    "rejected": get_args(Rejected),
    "pairs": get_args(Pairs),
}
FROM_LOG = {"model": "model", "tag": "tag", "trace_id": "trace_id"}  # argument -> what the log knows


def matching(values: list[str] | tuple[str, ...], prefix: str) -> Completion:
    """The values starting with ``prefix`` (case-insensitive), at most MAX_VALUES, with the total."""
    wanted = prefix.casefold()
    found = [v for v in values if v.casefold().startswith(wanted)]
    return Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)


def add_completions(server: MCPServer, check: ArgumentCheck, desk: ViewDesk) -> None:
    """Register the export prompt, the trace template and the completion handler on ``server``."""

    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name in FIXED:
            return matching(FIXED[argument.name], argument.value)
        if argument.name in FROM_LOG:
            known = await desk.call(lambda d: d.known())
            return matching(known.get(FROM_LOG[argument.name], []), argument.value)
        return None

    server.completion()(complete)

    def prompt(name: str, title: str) -> Callable[[PromptFunction], PromptFunction]:
        def register(fn: PromptFunction) -> PromptFunction:
            check.register("prompt", name, fn)
            return server.prompt(name=name, title=title)(fn)

        return register

    @prompt("export", "Export the trace log as a training set")
    async def export_prompt(
        format: Annotated[str, Field(description="dpo, dpo-chat, instruction, sft or sft-chat.")] = "dpo",
        rejected: Annotated[str, Field(description="The rejected side: thesis, antithesis or both.")] = "thesis",
        model: Annotated[str, Field(max_length=200, description="Only traces of this model (a glob).")] = "",
        tag: Annotated[str, Field(max_length=64, description="Only traces with this tag.")] = "",
    ) -> list[Message]:
        """Ask for an export with these options (each completes from the known values and the log)."""
        with prompt_errors():
            from hegelion_dspy.curate.options import ExportOptions

            asked = {
                "format": format,
                "rejected": rejected,
                "models": [model] if model else [],
                "tags": [tag] if tag else [],
            }
            ExportOptions.model_validate(asked)  # the export's own checks, so a bad value is refused here
            chosen = {name: value for name, value in asked.items() if value}
            return [UserMessage(f"Call export_dataset with {json.dumps(chosen)} and tell me what was written.")]

    @server.resource(
        TRACE_TEMPLATE,
        name="trace",
        title="One trace: every round, contradictions, flags and the thesis-to-synthesis diff",
        mime_type="application/json",
    )
    async def trace(trace_id: str) -> str:
        return json.dumps(await desk.view_of(trace_id))
