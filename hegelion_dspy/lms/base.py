"""The base of every LM backend here: ``MessagesLM`` (a ``dspy.BaseLM`` over "chat messages -> text") and the step
recorder through which adapters and backends report what happened during one dialectic step.

Nothing in this module imports another backend: the arrows of ``lms/`` point down to here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.lm15 import Message as LMMessage
from dspy.lm15 import Response, TextPart
from dspy.lm15 import Usage as LMUsage

ChatMessages = list[dict[str, str]]


@dataclass
class Completion:
    """What a MessagesLM backend returns for one call."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def request_messages(request: Any) -> ChatMessages:
    """An lm15 Request as plain ``[{"role", "content"}]`` chat messages (system first)."""
    messages: ChatMessages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return messages


def _response(model: str, completion: Completion) -> Response:
    usage = LMUsage(
        input_tokens=completion.prompt_tokens or 0,
        output_tokens=completion.completion_tokens or 0,
        total_tokens=(completion.prompt_tokens or 0) + (completion.completion_tokens or 0),
    )
    return Response(
        id=None,
        model=model,
        message=LMMessage.assistant([TextPart(completion.text)]),
        finish_reason="stop",
        usage=usage,
    )


class _Engine:
    def __init__(self, owner: MessagesLM):
        self.owner = owner

    def complete(self, request: Any) -> Response:
        return _response(self.owner.model, self.owner.complete(request_messages(request), request.config))

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


class _AsyncEngine:
    def __init__(self, owner: MessagesLM):
        self.owner = owner

    async def complete(self, request: Any) -> Response:
        return _response(self.owner.model, await self.owner.acomplete(request_messages(request), request.config))

    async def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


class MessagesLM(dspy.BaseLM):
    """A ``dspy.BaseLM`` whose backend maps chat messages to a text completion.

    Subclasses implement ``complete`` (and ``acomplete`` when they have a native async path; the default runs
    ``complete`` in a worker thread). Used by the scripted test LM, the embedded model and the MCP sampling bridge.
    """

    demo = False  # True for the shipped demo models: their traces are marked demo and left out of exports by default

    def __init__(self, model: str, *, temperature: float = 0.0, max_tokens: int = 1024, cache: bool = False):
        super().__init__(model, "chat", temperature, max_tokens, cache)
        self._engine_spec = _Engine(self)
        self._async_engine_spec = _AsyncEngine(self)
        self._cache_responses = cache

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        raise NotImplementedError

    async def acomplete(self, messages: ChatMessages, config: Any) -> Completion:
        import asyncio

        return await asyncio.to_thread(self.complete, messages, config)


def describe_lm(lm: dspy.BaseLM) -> str:
    """Which LM implementation ran, as ``module.Class`` (stored in every trace as ``lm``)."""
    return f"{type(lm).__module__}.{type(lm).__qualname__}"


# -- the step recorder ---------------------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """What happened inside one dialectic step, reported by the parts that know it.

    ``adapter``: the adapter that produced the step's fields (``FallbackAdapter`` writes ``"WholeReplyAdapter"`` when it
    fell back); ``truncated``: the LM stopped at its ``max_tokens``; ``cost_usd``: what the calls cost, when known.
    """

    adapter: str | None = None
    truncated: bool = False
    cost_usd: float | None = None

    def add_cost(self, usd: float | None) -> None:
        if usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + usd


_current_step: ContextVar[StepRecord | None] = ContextVar("hegelion_step", default=None)


@contextlib.contextmanager
def recording_step() -> Iterator[StepRecord]:
    """Collect what the adapter and the LM report during one step (context-local: concurrent runs do not mix)."""
    record = StepRecord()
    token = _current_step.set(record)
    try:
        yield record
    finally:
        _current_step.reset(token)


def current_step() -> StepRecord | None:
    """The record of the step running in this context, or None outside a dialectic step."""
    return _current_step.get()
