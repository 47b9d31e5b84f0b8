"""HostedLM: DSPy's own ``dspy.LM`` (LiteLLM / lm15 providers, OpenAI-compatible servers) with a bounded reply and the
cut-off reported per step; and the time limit of one hosted call (``with_timeout``).

The only addition to ``dspy.LM``: each finished call's response is checked for the provider's
``finish_reason == "length"`` and the running dialectic step is marked truncated (``base.report_truncated``). DSPy
hands every finished call to ``update_history``, in the caller's context, with the provider's response; with DSPy's
history turned off (``dspy.settings.disable_history``) truncation goes unrecorded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import dspy

from ..errors import ConfigError
from .base import DEFAULT_MAX_TOKENS, report_truncated

# OpenAI's reasoning models (o-series, gpt-5) count their hidden reasoning in max_tokens; DSPy refuses less than this.
REASONING_MAX_TOKENS = 16000

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TIMEOUT",
    "REASONING_MAX_TOKENS",
    "HostedLM",
    "default_timeout",
    "finish_reasons",
    "with_timeout",
]


def finish_reasons(response: object) -> list[str]:
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


# -- how long one call may take ----------------------------------------------------------------------------------------

ENV_TIMEOUT = "HEGELION_TIMEOUT"
DEFAULT_TIMEOUT = 120.0  # seconds: without one a hung provider call waits the HTTP client's 600 s
SLOW_TOKENS_PER_SECOND = 20.0  # a slow provider writing a long reply: a big max_tokens gets longer than the default


def is_hosted(lm: dspy.BaseLM) -> bool:
    """True for an LM that calls a provider over HTTP (``dspy.LM`` and ``HostedLM``), False for the in-process ones
    (the scripted fake, llama.cpp, the MCP sampling bridge: ``MessagesLM``) and for custom ``BaseLM`` classes."""
    from .base import MessagesLM

    return isinstance(lm, dspy.LM) and not isinstance(lm, MessagesLM)


def default_timeout(max_tokens: object, env: Mapping[str, str] | None = None) -> float:
    """Seconds one hosted call may wait for its answer: ``$HEGELION_TIMEOUT``, else 120 s, or longer when
    ``max_tokens`` could take a slow provider longer than that (``max_tokens / 20`` seconds)."""
    env = os.environ if env is None else env
    given = env.get(ENV_TIMEOUT, "").strip()
    if given:
        return check_timeout(given, f"${ENV_TIMEOUT}")
    cap = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_TOKENS
    return max(DEFAULT_TIMEOUT, cap / SLOW_TOKENS_PER_SECOND)


def check_timeout(value: Any, name: str = "timeout") -> float:
    """``value`` as a number of seconds > 0, or ConfigError naming ``name``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{name} must be a number of seconds > 0 (one LM call's limit), got {value!r}")
    return seconds


def with_timeout(lm: dspy.BaseLM, seconds: float | None) -> dspy.BaseLM:
    """``lm`` with a time limit per call when it is hosted (``is_hosted``; others are returned as they are).

    ``seconds`` None keeps a ``timeout`` the LM was built with, else gives it ``default_timeout``. The limit bounds
    each wait for the provider (the answer's first byte, then each next one), so a hung call fails as a transport
    error after it, and ``lms.manners`` retries it.
    """
    if not is_hosted(lm):
        return lm
    if seconds is None:
        if lm.kwargs.get("timeout") is not None:
            return lm
        seconds = default_timeout(lm.kwargs.get("max_tokens"))
    return lm.copy(timeout=seconds)
