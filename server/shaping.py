"""MCP shaping shared by every tool and prompt: library errors become one-line errors, an unknown argument is refused
by name, and log messages reach the client at the level it asked for."""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, EmptyResult, SetLevelRequestParams, TextContent
from pydantic import ValidationError

from hegelion_dspy.errors import HegelionError, from_validation

from .sdk_private import add_request_handler

ToolFunction = Callable[..., Awaitable[object]]  # a tool: a plain typed async function, its parameters the input schema
PromptFunction = Callable[..., object]  # a prompt: a plain typed function, its parameters the prompt's arguments


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Library errors and invalid values as a one-line tool error (``isError: true``), never a traceback."""
    try:
        yield
    except HegelionError as exc:
        raise ToolError(str(exc)) from None
    except ValidationError as exc:
        raise ToolError(str(from_validation(exc, source="field", error=HegelionError))) from None


@contextlib.contextmanager
def prompt_errors() -> Iterator[None]:
    """The same, for prompts: they have no error result, so a bad argument is a protocol error (invalid params)."""
    try:
        with tool_errors():
            yield
    except ToolError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None


def unknown_arguments(kind: str, name: str, given: object, allowed: tuple[str, ...]) -> str | None:
    """One line naming the arguments ``given`` that ``name`` does not take, and the ones it does; None if all fit."""
    unknown = sorted(set(given) - set(allowed)) if isinstance(given, dict) else []
    if not unknown:
        return None
    names = ", ".join(repr(u) for u in unknown)
    plural = "s" if len(unknown) > 1 else ""
    return f"unknown argument{plural} {names} for the {kind} {name!r}; it takes: {', '.join(allowed)}"


class ArgumentCheck:
    """Middleware that refuses a ``tools/call`` or ``prompts/get`` passing an argument the tool or prompt does not
    take (the SDK would ignore it without a word, e.g. a ``model`` passed to ``run_dialectic``)."""

    def __init__(self) -> None:
        self.takes: dict[tuple[str, str], tuple[str, ...]] = {}

    def register(self, kind: Literal["tool", "prompt"], name: str, fn: Callable[..., object]) -> None:
        parameters = inspect.signature(fn).parameters
        self.takes[(kind, name)] = tuple(p for p in parameters if p != "ctx")

    async def __call__(self, ctx: ServerRequestContext, call_next: CallNext) -> HandlerResult:
        kind = {"tools/call": "tool", "prompts/get": "prompt"}.get(ctx.method)
        params = ctx.params or {}
        allowed = self.takes.get((kind or "", str(params.get("name"))))
        problem = unknown_arguments(kind or "", str(params.get("name")), params.get("arguments"), allowed or ())
        if kind is None or allowed is None or problem is None:
            return await call_next(ctx)
        if kind == "prompt":
            raise MCPError(code=INVALID_PARAMS, message=problem)
        return CallToolResult(content=[TextContent(type="text", text=problem)], is_error=True)


LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


class ClientLog:
    """MCP log messages to the client, at or above the level it asked for with ``logging/setLevel`` (default info);
    registering it declares the logging capability. The level is the server's (one client per stdio process; the
    SDK gives handlers no stable per-connection key), and on 2026-07-28 the SDK filters per request as well."""

    def __init__(self, server: MCPServer) -> None:
        self.level = "info"

        async def set_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
            self.level = params.level
            return EmptyResult()

        add_request_handler(server, "logging/setLevel", SetLevelRequestParams, set_level)  # no public hook: see there

    async def send_log_message(self, ctx: Context, level: Literal["info", "warning"], text: str) -> None:
        """Send ``text`` as a ``notifications/message`` about this request.

        Logging is deprecated from protocol 2026-07-28 (there the client opts in per request and the SDK filters);
        today's clients still use it, so the SDK's deprecation warning is silenced for this one call.
        """
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(self.level):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            sending = ctx.session.send_log_message(
                level=level, data=text, logger="hegelion", related_request_id=ctx.request_id
            )
        await sending
