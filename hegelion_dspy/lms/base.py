"""The base of every LM backend here: ``MessagesLM`` (a ``dspy.LM`` over "chat messages -> text") and the step
recorder through which adapters and backends report what happened during one dialectic step.

Nothing in this module imports another backend: the arrows of ``lms/`` point down to here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import dspy
from dspy.lm15 import Config, Request, Response, TextPart, response_to_events
from dspy.lm15 import Message as LMMessage
from dspy.lm15 import Usage as LMUsage

ChatMessages = list[dict[str, str]]

# Every step is bounded: the new tokens one LM call may write unless the user says otherwise (--max-tokens). Enough
# for a long answer with code; a model that loops stops here instead of at the end of its context. Backends with their
# own default (the embedded 135M model, local GGUF files) set it in their module.
DEFAULT_MAX_TOKENS = 2048


class NamedLM(Protocol):
    """What the layers above the LM (the CLI, the MCP server) read of a dspy LM: its model string. They pass the LM
    on to the library as it is."""

    model: str


@dataclass
class Completion:
    """What a MessagesLM backend returns for one call. ``truncated``: the reply stopped at its ``max_tokens``."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    truncated: bool = False


def request_messages(request: Request) -> ChatMessages:
    """An lm15 Request as plain ``[{"role", "content"}]`` chat messages (system first)."""
    messages: ChatMessages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return messages


def _response(model: str, completion: Completion) -> Response:
    if completion.truncated:
        report_truncated()
    usage = LMUsage(
        input_tokens=completion.prompt_tokens or 0,
        output_tokens=completion.completion_tokens or 0,
        total_tokens=(completion.prompt_tokens or 0) + (completion.completion_tokens or 0),
    )
    return Response(
        id=None,
        model=model,
        message=LMMessage.assistant([TextPart(completion.text)]),
        finish_reason="length" if completion.truncated else "stop",
        usage=usage,
    )


class MessagesEngine:
    """DSPy's custom-engine interface (``complete(Request) -> Response``, passed as ``dspy.LM(engine=...)``) over a
    ``MessagesLM``'s ``complete(messages, config)``."""

    def __init__(self, owner: MessagesLM):
        self.owner = owner

    def complete(self, request: Request) -> Response:
        return _response(self.owner.model, self.owner.complete(request_messages(request), request.config))

    def stream(self, request: Request) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        pass


class AsyncMessagesEngine:
    """The async counterpart of ``MessagesEngine`` (``dspy.LM(async_engine=...)``), over ``MessagesLM.acomplete``."""

    def __init__(self, owner: MessagesLM):
        self.owner = owner

    async def complete(self, request: Request) -> Response:
        return _response(self.owner.model, await self.owner.acomplete(request_messages(request), request.config))

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


class MessagesLM(dspy.LM):
    """A ``dspy.LM`` whose backend maps chat messages to a text completion.

    It uses DSPy's public custom-engine interface: the LM is a ``dspy.LM`` built with ``engine=`` / ``async_engine=``
    objects that implement ``complete(Request) -> Response`` and call this LM's ``complete`` / ``acomplete``.
    Subclasses implement ``complete`` (and ``acomplete`` when they have a native async path; the default runs
    ``complete`` in a worker thread) and report a reply cut off at ``max_tokens`` as ``Completion.truncated``.
    Used by the scripted LM, the local llama.cpp runtime (GGUF files, the embedded model) and the MCP sampling bridge.
    DSPy's response cache is off: these backends are local or answered by someone else.
    """

    demo = False  # True for the shipped demo models: their traces are marked demo and left out of exports by default

    def __init__(self, model: str, *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS):
        super().__init__(
            model,
            temperature=temperature,
            max_tokens=max_tokens,
            cache=False,
            engine=MessagesEngine(self),
            async_engine=AsyncMessagesEngine(self),
        )

    def copy(self, **kwargs: Any) -> MessagesLM:
        # The engines call back into their owner: a copy gets its own pair, so it answers with its own settings.
        copied = super().copy(**kwargs)
        if "engine" not in kwargs:
            copied._engine_spec = MessagesEngine(copied)
            copied._async_engine_spec = AsyncMessagesEngine(copied)
        return copied

    def complete(self, messages: ChatMessages, config: Config) -> Completion:
        raise NotImplementedError

    async def acomplete(self, messages: ChatMessages, config: Config) -> Completion:
        return await asyncio.to_thread(self.complete, messages, config)

    def call_max_tokens(self, config: Config | None) -> int:
        """The token cap of one call: the call's own ``max_tokens``, else this LM's."""
        asked = getattr(config, "max_tokens", None) or self.kwargs.get("max_tokens") or DEFAULT_MAX_TOKENS
        return int(asked)

    def call_temperature(self, config: Config | None) -> float:
        asked = getattr(config, "temperature", None)
        return float(asked if asked is not None else self.kwargs.get("temperature") or 0.0)


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


def report_truncated() -> None:
    """Mark the running step as cut off at its ``max_tokens`` (a no-op outside a dialectic step)."""
    step = current_step()
    if step is not None:
        step.truncated = True
