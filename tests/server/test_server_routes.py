"""The route choice (server model -> sampling -> prompt workflow) and the round-budget refusal: pure functions,
tested without a client."""

from __future__ import annotations

import pytest
from hegelion_server.routes import CLIENT_ROUND_BUDGET, ClientOffer, choose_route, refuse_over_budget

from hegelion_dspy.program import total_steps

SAMPLES_MODERN = ClientOffer(samples=True, protocol_version="2026-07-28", can_send_requests=False)
SAMPLES_LEGACY = ClientOffer(samples=True, protocol_version="2025-11-25", can_send_requests=True)
NO_SAMPLING = ClientOffer(samples=False, protocol_version="2025-06-18", can_send_requests=True)


@pytest.mark.parametrize(
    ("answers_given", "server_model", "client", "route"),
    [
        (False, True, SAMPLES_LEGACY, "server"),  # a server model wins over the client's
        (False, False, SAMPLES_LEGACY, "sampling"),
        (False, False, SAMPLES_MODERN, "sampling_rounds"),
        (False, False, NO_SAMPLING, "prompt"),
        (True, True, SAMPLES_LEGACY, "prompt"),  # answers passed in always continue the prompt workflow
        # declared sampling, but this request's channel cannot carry a server request (e.g. a stateless HTTP call)
        (False, False, ClientOffer(samples=True, protocol_version="2025-11-25", can_send_requests=False), "prompt"),
        (False, False, ClientOffer(samples=True, protocol_version=None, can_send_requests=True), "sampling"),
    ],
)
def test_the_route_follows_the_order_server_model_sampling_prompt(
    answers_given: bool, server_model: bool, client: ClientOffer, route: str
) -> None:
    assert choose_route(answers_given=answers_given, server_model=server_model, client=client) == route


def test_only_input_required_sampling_is_bounded_by_the_clients_round_budget() -> None:
    assert CLIENT_ROUND_BUDGET == 10
    for iterations in range(1, 11):
        fits = total_steps(iterations) <= CLIENT_ROUND_BUDGET
        assert (refuse_over_budget("sampling_rounds", iterations, total_steps) is None) == fits
        for route in ("server", "sampling", "prompt"):
            assert refuse_over_budget(route, iterations, total_steps) is None  # type: ignore[arg-type]


def test_the_refusal_is_one_line_naming_the_alternatives() -> None:
    message = refuse_over_budget("sampling_rounds", 5, total_steps)
    assert message is not None and "\n" not in message
    assert message.startswith("iterations=5 needs 11 sampling round trips")
    assert "iterations <= 4" in message and "`dialectic` prompt" in message and "`thesis`" in message
    assert "HEGELION_MODEL" in message and "protocol 2025-11-25" in message
