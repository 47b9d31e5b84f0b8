"""What server/sdk_private.py relies on below the MCP SDK's public API still holds; fails when upstream moves it."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from hegelion_server import sdk_private
from mcp import Client
from mcp.server import MCPServer
from mcp_types import EmptyResult, SetLevelRequestParams


def test_the_adapter_was_checked_against_the_installed_sdk_minor_version() -> None:
    installed = importlib.metadata.version("mcp")
    checked = sdk_private.CHECKED_AGAINST
    assert installed.split(".")[:2] == checked.split(".")[:2], (
        f"mcp {installed} is installed, server/sdk_private.py was checked against {checked}: re-check "
        "MCPServer._lowlevel_server.add_request_handler (or a public hook for it) and update CHECKED_AGAINST"
    )


async def test_a_handler_added_through_the_adapter_is_served_and_declares_its_capability() -> None:
    server = MCPServer("probe")
    levels: list[str] = []

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        levels.append(params.level)
        return EmptyResult()

    assert sdk_private.request_handler(server, "logging/setLevel") is None
    sdk_private.add_request_handler(server, "logging/setLevel", SetLevelRequestParams, set_level)
    assert sdk_private.request_handler(server, "logging/setLevel") is not None
    async with Client(server, mode="legacy") as client:
        assert client.server_capabilities.logging is not None
