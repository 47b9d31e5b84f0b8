"""The MCP side of sampling: how a step reaches the client's model, in each protocol era.

- Up to 2025-11-25 (every IDE client today) the server may send the client requests while a tool call runs: the
  program runs as usual with a ``SamplingLM`` whose every call is one ``sampling/createMessage`` (``LiveSampler``).
- From 2026-07-28 a server cannot: a tool call that needs the client's model returns an ``InputRequiredResult``
  carrying one sampling request, and the client retries the call with the answer. ``SamplingRounds`` keeps the
  answers so far (a ``PartialTrace``) in the ``request_state`` the SDK seals, reads the newest answer, and asks for
  the next step as the program would send it. One step per round; a round that is only waiting for the client is
  not a trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    InputRequiredResult,
    SamplingMessage,
    TextContent,
)
from pydantic import ValidationError

from hegelion_dspy.collect.partial import PartialTrace
from hegelion_dspy.collect.workflow import StepPrompt
from hegelion_dspy.errors import LMError
from hegelion_dspy.types import Step

if TYPE_CHECKING:
    from hegelion_dspy.lms.base import ChatMessages, Completion, NamedLM

MODEL_PREFIX = "mcp-sampling"
MAX_TOKENS = 2048  # what SamplingLM asks for by default
_STATE_VERSION = 2


def request(
    system: str | None, messages: ChatMessages, max_tokens: int, temperature: float | None
) -> CreateMessageRequest:
    """A ``sampling/createMessage`` request: the system prompt travels separately, the rest as user/assistant turns."""
    chat = [
        SamplingMessage(
            role="assistant" if m["role"] == "assistant" else "user",
            content=TextContent(type="text", text=m["content"]),
        )
        for m in messages
        if m["role"] != "system"
    ]
    params = CreateMessageRequestParams(
        messages=chat, system_prompt=system, max_tokens=max_tokens, temperature=temperature
    )
    return CreateMessageRequest(params=params)


def reply_text(result: CreateMessageResult) -> str:
    content = result.content
    if not isinstance(content, TextContent):
        raise LMError(f"the client's model answered with {content.type!r} content; a dialectic step needs text")
    return content.text


def model_name(reported: str | None) -> str:
    """The trace's model string: what the client says its model is, under ``mcp-sampling/``."""
    return f"{MODEL_PREFIX}/{reported}" if reported else MODEL_PREFIX


@dataclass
class LiveSampler:
    """``SamplingLM``'s send function up to 2025-11-25: one ``sampling/createMessage`` per step, during the call."""

    ctx: Context
    lm: NamedLM | None = None  # the SamplingLM; its model string follows the model the client reports

    async def __call__(
        self, system: str | None, messages: ChatMessages, max_tokens: int, temperature: float | None
    ) -> Completion:
        from hegelion_dspy.lms.base import Completion

        result = await self.ctx.session.send_request(
            request(system, messages, max_tokens, temperature),
            CreateMessageResult,
            metadata=ServerMessageMetadata(related_request_id=self.ctx.request_id),
        )
        if self.lm is not None:
            self.lm.model = model_name(result.model)
        # the client's model stopped at the step's max_tokens: the step is recorded as cut off, as with any backend
        return Completion(reply_text(result), truncated=result.stop_reason == "maxTokens")


@dataclass
class SamplingRounds:
    """A sampling run on protocol 2026-07-28, between two rounds: the answers so far and the step last asked for."""

    answers: PartialTrace
    model: str | None = None  # as the client's model reports itself
    asked: tuple[Step, int] | None = None  # the step and round whose reply this retry carries

    @classmethod
    def resume(cls, ctx: Context) -> SamplingRounds:
        """The run so far, from this retry's ``request_state``; a fresh run when there is none."""
        if not ctx.request_state:
            return cls(PartialTrace())
        state = json.loads(ctx.request_state)
        if state.get("v") != _STATE_VERSION:
            raise LMError("this retry carries state from another server version; call run_dialectic again")
        asked = state.get("asked")
        return cls(PartialTrace.from_json(state["answers"]), state.get("model"), (asked[0], asked[1]))

    def reply(self, ctx: Context) -> str:
        """The client's answer to the step asked last round (its text)."""
        assert self.asked is not None
        response = (ctx.input_responses or {}).get(_key(*self.asked))
        if response is None:
            raise LMError(f"the client retried without answering the {self.asked[0]} step; call run_dialectic again")
        try:
            result = CreateMessageResult.model_validate(response.model_dump(mode="json", by_alias=True))
        except ValidationError:
            raise LMError("the client answered the sampling request with something other than a message") from None
        self.model = result.model or self.model
        return reply_text(result)

    def ask(self, prompt: StepPrompt) -> InputRequiredResult:
        """The result that asks the client's model for ``prompt`` and carries the answers so far."""
        system = "\n\n".join(m["content"] for m in prompt.messages if m["role"] == "system") or None
        state = {"v": _STATE_VERSION, "answers": self.answers.to_json(), "model": self.model}
        state["asked"] = [prompt.step, prompt.round]
        key = _key(prompt.step, prompt.round)
        return InputRequiredResult(
            input_requests={key: request(system, prompt.messages, MAX_TOKENS, None)},
            request_state=json.dumps(state, ensure_ascii=False),
        )


def _key(step: str, round_index: int) -> str:
    return f"{step}-{round_index}"
