"""Choosing an LM from a model string: the embedded default, the scripted fake, or any DSPy/LiteLLM model.

Selection order everywhere: an explicit ``model`` argument (``--model``) > ``HEGELION_MODEL`` > the embedded default.
This module sits above the backends (``base``, ``scripted``, ``embedded``); nothing below imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dspy

from ..errors import ConfigError
from .adapters import FallbackAdapter
from .embedded import EMBEDDED_MODEL

ENV_MODEL = "HEGELION_MODEL"
ENV_API_BASE = "HEGELION_API_BASE"
ENV_API_KEY = "HEGELION_API_KEY"


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
        from .scripted import ScriptedLM

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
    """The adapter that formats prompts for ``lm``: the LM's own preference, else ``FallbackAdapter`` (DSPy's
    ChatAdapter that reads an unparseable reply whole instead of losing the step)."""
    preferred = getattr(lm, "preferred_adapter", None)
    if callable(preferred):
        adapter: dspy.Adapter = preferred()
        return adapter
    return FallbackAdapter()
