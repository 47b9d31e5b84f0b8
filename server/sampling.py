"""The MCP side of the sampling bridge: ``SamplingLM`` (in the library) calls one of these to reach the client's model.

Two transports, chosen by the negotiated protocol:

- up to 2025-11-25 (every IDE client today): ``LiveSampler`` sends a standalone ``sampling/createMessage`` request
  to the client for each step, while the tool call waits;
- from 2026-07-28 a server cannot send requests mid-call; instead the tool returns an ``InputRequiredResult``
  carrying one sampling request and the client retries the call with the answer. ``ReplaySampler`` runs the program
  again each round, answering the steps already answered from ``request_state`` (sealed by the SDK) and stopping at
  the first new one. The program is deterministic given the answers, so each round asks exactly one new question.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

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
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from hegelion_dspy.errors import LMError
from hegelion_dspy.lms.base import ChatMessages, Completion

_INPUT_REQUIRED_VERSION = "2026-07-28"
_STATE_VERSION = 1
MODEL_PREFIX = "mcp-sampling"

Route = Literal["request", "input_required"]


def sampling_route(ctx: Context[Any, Any]) -> Route | None:
    """How this call can reach the client's model, or None when the client does not offer sampling."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.sampling is None:
        return None
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
        return "input_required"
    return "request" if ctx.session.can_send_request else None


def _request(system: str | None, messages: ChatMessages, max_tokens: int, temperature: float | None) -> Any:
    chat = [
        SamplingMessage(
            role="assistant" if m["role"] == "assistant" else "user",
            content=TextContent(type="text", text=m["content"]),
        )
        for m in messages
    ]
    params = CreateMessageRequestParams(
        messages=chat, system_prompt=system, max_tokens=max_tokens, temperature=temperature
    )
    return CreateMessageRequest(params=params)


def _text_of(result: CreateMessageResult) -> str:
    content = result.content
    if not isinstance(content, TextContent):
        raise LMError(f"the client's model answered with {content.type!r} content; a dialectic step needs text")
    return content.text


def _model_name(reported: str | None) -> str:
    return f"{MODEL_PREFIX}/{reported}" if reported else MODEL_PREFIX


class SamplingPendingError(Exception):
    """Raised inside a replayed run at the first step the client has not answered yet (never reaches a user)."""


@dataclass
class LiveSampler:
    """Sends each step to the client as a standalone ``sampling/createMessage`` request (protocol <= 2025-11-25)."""

    ctx: Context[Any, Any]
    lm: Any = None  # the SamplingLM; its model string is updated to the model the client reports
    calls: int = 0

    async def __call__(
        self, system: str | None, messages: ChatMessages, max_tokens: int, temperature: float | None
    ) -> Completion:
        self.calls += 1
        result = await self.ctx.session.send_request(
            _request(system, messages, max_tokens, temperature),
            CreateMessageResult,
            metadata=ServerMessageMetadata(related_request_id=self.ctx.request_id),
        )
        if self.lm is not None:
            self.lm.model = _model_name(result.model)
        return Completion(_text_of(result))


def _digest(request: Any) -> str:
    wire = request.params.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw = hashlib.sha256(json.dumps(wire, sort_keys=True, ensure_ascii=True).encode()).digest()[:16]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class _Answer:
    q: str  # digest of the exact request it answers
    text: str
    model: str | None = None


@dataclass
class ReplaySampler:
    """Answers steps from earlier rounds' replies and stops at the first unanswered one (protocol >= 2026-07-28)."""

    answers: list[_Answer] = field(default_factory=list)
    lm: Any = None
    calls: int = 0
    pending: tuple[str, Any, str] | None = None  # (key, request, digest) of the question to ask this round

    @classmethod
    def resume(cls, ctx: Context[Any, Any]) -> ReplaySampler:
        """Rebuild the answers so far from this retry's ``request_state`` and ``input_responses``."""
        sampler = cls()
        state: dict[str, Any] = {}
        if ctx.request_state:
            try:
                state = json.loads(ctx.request_state)
            except ValueError:
                state = {}
        if state.get("v") != _STATE_VERSION:
            return sampler
        sampler.answers = [_Answer(**a) for a in state.get("answers", [])]
        asked = state.get("asked")
        responses = ctx.input_responses or {}
        if asked and asked.get("key") in responses:
            wire = responses[asked["key"]].model_dump(mode="json", by_alias=True, exclude_none=True)
            try:
                result = CreateMessageResult.model_validate(wire)
            except ValidationError:
                raise LMError("the client answered the sampling request with something other than a message") from None
            sampler.answers.append(_Answer(q=asked["q"], text=_text_of(result), model=result.model))
        return sampler

    async def __call__(
        self, system: str | None, messages: ChatMessages, max_tokens: int, temperature: float | None
    ) -> Completion:
        index = self.calls
        self.calls += 1
        request = _request(system, messages, max_tokens, temperature)
        digest = _digest(request)
        if index < len(self.answers):
            answer = self.answers[index]
            if answer.q != digest:
                raise LMError(
                    "the dialectic asked a different question than in the previous round (was the server restarted "
                    "with another program?); call run_dialectic again to start over"
                )
            if self.lm is not None:
                self.lm.model = _model_name(answer.model)
            return Completion(answer.text)
        if self.pending is None:
            self.pending = (f"step-{index + 1}", request, digest)
        raise SamplingPendingError(f"waiting for the client's answer to step {index + 1}")

    def input_required(self) -> InputRequiredResult:
        """The result that asks the client for the pending step and carries the answers so far."""
        assert self.pending is not None
        key, request, digest = self.pending
        state = {
            "v": _STATE_VERSION,
            "answers": [a.__dict__ for a in self.answers],
            "asked": {"key": key, "q": digest},
        }
        return InputRequiredResult(input_requests={key: request}, request_state=json.dumps(state, ensure_ascii=False))
