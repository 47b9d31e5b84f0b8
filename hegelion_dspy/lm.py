"""Choosing an LM: model strings, the embedded default, and a BaseLM for anything that maps chat messages to text.

Selection order everywhere: an explicit ``model`` argument (``--model``) > ``HEGELION_MODEL`` > the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.lm15 import Message as LMMessage
from dspy.lm15 import Response, TextPart
from dspy.lm15 import Usage as LMUsage

from .errors import ConfigError, LMError

EMBEDDED_MODEL = "embedded/smollm2-135m-instruct"
ENV_MODEL = "HEGELION_MODEL"
ENV_API_BASE = "HEGELION_API_BASE"
ENV_API_KEY = "HEGELION_API_KEY"

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


def resolve_model(model: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The model string to use: explicit > $HEGELION_MODEL > the embedded default."""
    env = os.environ if env is None else env
    chosen = (model or env.get(ENV_MODEL) or "").strip()
    return chosen or EMBEDDED_MODEL


def is_embedded(model: str) -> bool:
    """True for the embedded model's names; ConfigError for another ``embedded/...`` name (there is only one)."""
    if model in ("embedded", EMBEDDED_MODEL):
        return True
    if model.startswith("embedded/"):
        raise ConfigError(f"unknown embedded model {model!r}; the embedded model is 'embedded' ({EMBEDDED_MODEL!r})")
    return False


def check_model_string(model: str) -> None:
    """Raise ConfigError for a model string no provider accepts (before any call is made)."""
    import litellm

    litellm.suppress_debug_info = True  # it prints a provider list to stdout on this error otherwise
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:  # litellm raises its own BadRequestError subclasses; any failure means "unknown"
        raise ConfigError(
            f"unknown model {model!r}: {str(exc).splitlines()[0][:200]}. Use a 'provider/model' string DSPy "
            "accepts, e.g. 'openai/gpt-4o-mini', 'anthropic/claude-sonnet-4-5', 'ollama_chat/llama3.2', "
            "'hosted_vllm/NAME' with --api-base, or 'embedded' for the offline default"
        ) from None


def make_lm(
    model: str | None = None,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    env: Mapping[str, str] | None = None,
) -> dspy.BaseLM:
    """Build the LM for ``model`` (see ``resolve_model``). The embedded model is loaded once and shared."""
    env = os.environ if env is None else env
    name = resolve_model(model, env)
    if is_embedded(name):
        from .embedded import embedded_lm

        return embedded_lm()
    if name == "scripted" or name.startswith("scripted/"):
        from .testing import ScriptedLM

        return ScriptedLM.from_model_string(name)
    check_model_string(name)
    kwargs: dict[str, Any] = {}
    base = api_base or env.get(ENV_API_BASE)
    key = api_key or env.get(ENV_API_KEY)
    if base:
        kwargs["api_base"] = base
    if key:
        kwargs["api_key"] = key
    if temperature is not None:
        kwargs["temperature"] = temperature
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    return dspy.LM(name, **kwargs)


def adapter_for(lm: dspy.BaseLM) -> dspy.Adapter:
    """The adapter that formats prompts for ``lm``: the LM's own preference, else DSPy's ChatAdapter."""
    preferred = getattr(lm, "preferred_adapter", None)
    if callable(preferred):
        adapter: dspy.Adapter = preferred()
        return adapter
    return dspy.ChatAdapter()


def describe_lm(lm: dspy.BaseLM) -> str:
    return f"{type(lm).__module__}.{type(lm).__qualname__}"


# The sampling bridge: (system prompt, user/assistant messages, max_tokens, temperature) -> the reply.
SendFn = Callable[[str | None, ChatMessages, int, float | None], Awaitable["Completion | str"]]


class SamplingLM(MessagesLM):
    """A BaseLM whose every call is answered by a model someone else runs, e.g. an MCP client's own model.

    ``send(system, messages, max_tokens, temperature)`` is an async callable supplied by the caller (the MCP server
    wraps the client's ``sampling/createMessage`` in it). It receives the system prompt separately and the
    user/assistant messages in order, and returns the reply as a Completion or plain text. There is no synchronous
    path: run programs with ``acall`` / ``arun_dialectic``.
    """

    def __init__(
        self, send: SendFn, *, model: str = "mcp-sampling", max_tokens: int = 2048, temperature: float | None = None
    ):
        super().__init__(model, temperature=temperature or 0.0, max_tokens=max_tokens)
        self.send = send
        self.requested_temperature = temperature

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        raise LMError(
            "SamplingLM answers only asynchronously (its replies come from an event loop); run the program with "
            "acall() or arun_dialectic() instead of calling it synchronously"
        )

    async def acomplete(self, messages: ChatMessages, config: Any) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        chat = [m for m in messages if m["role"] != "system"]
        max_tokens = getattr(config, "max_tokens", None) or self.kwargs.get("max_tokens") or 2048
        temperature = getattr(config, "temperature", None)
        if temperature is None:
            temperature = self.requested_temperature
        reply = await self.send(system, chat, int(max_tokens), temperature)
        return reply if isinstance(reply, Completion) else Completion(str(reply))
