"""The one place that reaches into the MCP Python SDK below its public API, and why.

Checked against mcp 2.3.0. ``tests/server/test_sdk_private.py`` fails when upstream moves what this relies on.

- ``add_request_handler``: ``MCPServer`` has no public hook for a request method it does not serve itself
  (``logging/setLevel``); its low-level server (``MCPServer._lowlevel_server``, the one it registers tools on) has
  ``add_request_handler``, and registering ``logging/setLevel`` there is what declares the logging capability.
  An ``Extension`` could bind the method publicly, but would also advertise an extension the server does not offer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server import MCPServer

CHECKED_AGAINST = "2.3.0"


def add_request_handler(
    server: MCPServer, method: str, params_type: type[Any], handler: Callable[[Any, Any], Awaitable[Any]]
) -> None:
    """Serve ``method`` on ``server`` with ``handler(ctx, params)``."""
    server._lowlevel_server.add_request_handler(method, params_type, handler)


def request_handler(server: MCPServer, method: str) -> Any:
    """The handler ``server`` has for ``method``, or None (for the adapter's tests)."""
    return server._lowlevel_server.get_request_handler(method)
