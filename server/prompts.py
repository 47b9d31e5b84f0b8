"""The prompts: each dialectic step's prompt (thesis, antithesis, synthesis) and the whole workflow in one read, in
the words of the server's program; a bad argument is a protocol error (prompts have no error result)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from pydantic import Field, TypeAdapter

from hegelion_dspy.types import Mode, Step

from .schemas import MAX_CONTRADICTIONS, MAX_LATER_ROUNDS, ContradictionIn, StepText, Task
from .shaping import ArgumentCheck, PromptFunction, prompt_errors
from .state import ServerState

ContradictionList = TypeAdapter(
    Annotated[list[ContradictionIn], Field(max_length=MAX_CONTRADICTIONS)]  # the limits log_trace applies
)


def add_prompts(server: MCPServer, check: ArgumentCheck, state: ServerState) -> None:
    """Register the step prompts and the dialectic prompt on ``server``."""

    def prompt(name: str, title: str) -> Callable[[PromptFunction], PromptFunction]:
        def register(fn: PromptFunction) -> PromptFunction:
            check.register("prompt", name, fn)
            return server.prompt(name=name, title=title)(fn)

        return register

    async def step_prompt(step: Step, mode: Mode, inputs: Mapping[str, object]) -> list[Message]:
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
