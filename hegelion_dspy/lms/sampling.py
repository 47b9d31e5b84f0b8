"""SamplingLM: a BaseLM answered by a model someone else runs (an MCP client's own model, through sampling)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import LMError
from .base import DEFAULT_MAX_TOKENS, ChatMessages, Completion, MessagesLM

if TYPE_CHECKING:
    from dspy.lm15 import Config

# The sampling bridge: (system prompt, user/assistant messages, max_tokens, temperature) -> the reply.
SendFn = Callable[[str | None, ChatMessages, int, float | None], Awaitable["Completion | str"]]


class SamplingLM(MessagesLM):
    """A BaseLM whose every call is answered by a model someone else runs, e.g. an MCP client's own model.

    ``send(system, messages, max_tokens, temperature)`` is an async callable supplied by the caller (the MCP server
    wraps the client's ``sampling/createMessage`` in it). It receives the system prompt separately and the
    user/assistant messages in order, and returns the reply as a Completion or plain text (a Completion with
    ``truncated=True`` when the client's model stopped at ``max_tokens``). There is no synchronous path: run programs
    with ``acall`` / ``arun_dialectic``.
    """

    def __init__(
        self,
        send: SendFn,
        *,
        model: str = "mcp-sampling",
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
    ):
        super().__init__(model, temperature=temperature or 0.0, max_tokens=max_tokens)
        self.send = send
        self.requested_temperature = temperature

    def complete(self, messages: ChatMessages, config: Config) -> Completion:
        raise LMError(
            "SamplingLM answers only asynchronously (its replies come from an event loop); run the program with "
            "acall() or arun_dialectic() instead of calling it synchronously"
        )

    async def acomplete(self, messages: ChatMessages, config: Config) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        chat = [m for m in messages if m["role"] != "system"]
        max_tokens = self.call_max_tokens(config)
        temperature = getattr(config, "temperature", None)
        if temperature is None:
            temperature = self.requested_temperature
        reply = await self.send(system, chat, int(max_tokens), temperature)
        return reply if isinstance(reply, Completion) else Completion(str(reply))
