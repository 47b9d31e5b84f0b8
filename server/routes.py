"""Which model answers ``run_dialectic``: a pure function of the server's settings and what the client offers.

Order: answers passed in continue the prompt workflow; else the server's own model; else the client's model over MCP
sampling (live requests up to protocol 2025-11-25, ``input_required`` rounds from 2026-07-28); else the prompt
workflow, where the agent answers each step itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mcp_types.version import MODERN_PROTOCOL_VERSIONS

Route = Literal["server", "sampling", "sampling_rounds", "prompt"]

# input_required rounds an MCP client retries before it gives up: the default of the Python and TypeScript SDKs
# (`input_required_max_rounds`, `inputRequired.maxRounds`), a fixed constant in the C# and Go SDKs. A server cannot
# ask a client for its cap, so a run needing more rounds than this is refused before it starts.
CLIENT_ROUND_BUDGET = 10


@dataclass(frozen=True)
class ClientOffer:
    """What a request says about its client."""

    samples: bool  # it declared the sampling capability
    protocol_version: str | None
    can_send_requests: bool  # the session can send it requests mid-call (the handshake era)


def choose_route(*, answers_given: bool, server_model: bool, client: ClientOffer) -> Route:
    """The route for a ``run_dialectic`` call."""
    if answers_given:
        return "prompt"
    if server_model:
        return "server"
    if client.samples:
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return "sampling_rounds"
        if client.can_send_requests:
            return "sampling"
    return "prompt"


def refuse_over_budget(route: Route, iterations: int, total_steps: Callable[[int], int]) -> str | None:
    """Why a run cannot finish within the client's round budget (one line naming the alternatives), or None.

    ``total_steps(iterations)`` is the number of LM steps a run needs: one round trip each on ``sampling_rounds``.
    """
    steps = total_steps(iterations)
    if route != "sampling_rounds" or steps <= CLIENT_ROUND_BUDGET:
        return None
    most = 1
    while total_steps(most + 1) <= CLIENT_ROUND_BUDGET:
        most += 1
    return (
        f"iterations={iterations} needs {steps} sampling round trips, and MCP clients on protocol 2026-07-28 stop "
        f"after {CLIENT_ROUND_BUDGET}; nothing was run. Use iterations <= {most}; or run the steps yourself (the "
        "`dialectic` prompt, or pass your own `thesis` to continue as the prompt workflow); or give the server a "
        "model (HEGELION_MODEL); or connect with protocol 2025-11-25 or older, where sampling has no round limit"
    )
