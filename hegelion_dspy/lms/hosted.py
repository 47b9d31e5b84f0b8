"""HostedLM: DSPy's own ``dspy.LM`` (LiteLLM / lm15 providers, OpenAI-compatible servers) with a bounded reply and the
cut-off reported per step.

The only addition to ``dspy.LM``: each finished call's response is checked for the provider's
``finish_reason == "length"`` and the running dialectic step is marked truncated (``base.report_truncated``). DSPy
hands every finished call to ``update_history``, in the caller's context, with the provider's response; with DSPy's
history turned off (``dspy.settings.disable_history``) truncation goes unrecorded.
"""

from __future__ import annotations

from typing import Any

import dspy

from .base import DEFAULT_MAX_TOKENS, report_truncated

# OpenAI's reasoning models (o-series, gpt-5) count their hidden reasoning in max_tokens; DSPy refuses less than this.
REASONING_MAX_TOKENS = 16000

__all__ = ["DEFAULT_MAX_TOKENS", "REASONING_MAX_TOKENS", "HostedLM", "finish_reasons"]


def finish_reasons(response: Any) -> list[str]:
    """The finish reasons in a response as DSPy records it: a LiteLLM/OpenAI-shaped response (``choices``), an lm15
    ``Response`` or a list of them."""
    if isinstance(response, (list, tuple)):
        return [reason for item in response for reason in finish_reasons(item)]
    reason = getattr(response, "finish_reason", None)
    if isinstance(reason, str):
        return [reason]
    choices = response.get("choices") if isinstance(response, dict) else getattr(response, "choices", None)
    found = []
    for choice in choices or ():
        value = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
        if isinstance(value, str):
            found.append(value)
    return found


class HostedLM(dspy.LM):
    """``dspy.LM`` that marks the running step truncated when the provider stopped at ``max_tokens``."""

    def update_history(self, entry: dict[str, Any]) -> None:
        if "length" in finish_reasons(entry.get("response")):
            report_truncated()
        super().update_history(entry)
