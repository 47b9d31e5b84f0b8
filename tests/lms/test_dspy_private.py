"""What lms/dspy_private.py relies on below DSPy's public API still holds: these fail when upstream moves it."""

from __future__ import annotations

import importlib.metadata
import warnings

import dspy
import pytest
from dspy.utils import DummyLM

from hegelion_dspy.lms import dspy_private

MESSAGES = [{"role": "user", "content": "Say hi."}]


def _warnings_of(call: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()  # type: ignore[operator]
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def test_the_adapter_was_checked_against_the_installed_dspy_minor_version() -> None:
    installed = importlib.metadata.version("dspy")
    checked = dspy_private.CHECKED_AGAINST
    assert installed.split(".")[:2] == checked.split(".")[:2], (
        f"DSPy {installed} is installed, lms/dspy_private.py was checked against {checked}: re-check what it uses "
        "(dspy.clients._deprecation.adapter_message_call) and update CHECKED_AGAINST"
    )


def test_dspy_still_has_the_private_adapter_mark() -> None:
    from dspy.clients import _deprecation

    assert callable(_deprecation.adapter_message_call)


def test_a_marked_messages_call_does_not_warn_and_an_unmarked_one_does() -> None:
    lm = DummyLM([{"response": "hi"}, {"response": "hi"}])

    def marked() -> None:
        with dspy_private.adapter_message_call(lm, MESSAGES):
            lm(messages=MESSAGES)

    assert _warnings_of(marked) == []
    assert any("messages=" in text for text in _warnings_of(lambda: lm(messages=MESSAGES)))


@pytest.mark.parametrize("outer", [True, False])
def test_track_usage_rolls_a_call_up_into_the_tracker_around_it(outer: bool) -> None:
    """PoliteLM counts one call with dspy.track_usage and relies on the roll-up into the step's tracker."""
    lm = DummyLM([{"response": "hi"}])

    def call_tracked() -> dict[str, dict[str, int]]:
        with dspy.track_usage() as inner, dspy.context(lm=lm):
            lm(messages=MESSAGES)
        return inner.get_total_tokens()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if outer:
            with dspy.track_usage() as around:
                totals = call_tracked()
            assert around.get_total_tokens() == totals
        else:
            totals = call_tracked()
    assert set(totals) == {"dummy"}
