"""Choosing an LM from a model string: the embedded default, a local GGUF file (``gguf:PATH``), the scripted fake,
or any DSPy/LiteLLM model.

Selection order everywhere: an explicit ``model`` argument (``--model``) > ``HEGELION_MODEL`` > the embedded default.
Every LM it builds has a per-step ``max_tokens`` (``--max-tokens`` changes it). This module sits above the backends
(``base``, ``scripted``, ``llamacpp``, ``embedded``, ``hosted``); nothing below imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dspy

from ..errors import ConfigError
from .adapters import FallbackAdapter
from .base import DEFAULT_MAX_TOKENS
from .embedded import EMBEDDED_MODEL
from .env import ENV_API_BASE, ENV_API_KEY, ENV_MODEL
from .llamacpp import GGUF_PREFIX, parse_gguf_model


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


def _litellm() -> Any:
    """LiteLLM, imported for a hosted model (never when this module is imported) and set up as we use it: its bundled
    price map, not one fetched from the network when it is imported, and no provider list printed to stdout on an
    unknown model. Both settings are LiteLLM's own and process-wide, so they are made here, when an LM is built."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def check_model_string(model: str) -> None:
    """Raise ConfigError for a model string no provider accepts (before any call is made)."""
    litellm = _litellm()
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:  # litellm raises its own BadRequestError subclasses; any failure means "unknown"
        if model.lower().endswith(".gguf"):
            raise ConfigError(
                f"unknown model {model!r}; to run a local GGUF file write {GGUF_PREFIX}PATH, e.g. --model "
                f"{GGUF_PREFIX}{model}"
            ) from None
        raise ConfigError(
            f"unknown model {model!r}: {str(exc).splitlines()[0][:200]}. Use a 'provider/model' string DSPy "
            "accepts, e.g. 'openai/gpt-4o-mini', 'anthropic/claude-sonnet-4-5', 'ollama_chat/llama3.2', "
            f"'hosted_vllm/NAME' with --api-base, '{GGUF_PREFIX}PATH' for a local .gguf file, or 'embedded' for "
            "the offline default"
        ) from None


# Providers that run on the user's own machine by default (no key; their base URL has a local default).
LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "llamafile", "vllm"})
# What an OpenAI-compatible server behind --api-base gets as its key when none is set: most local servers ignore it,
# and the OpenAI client refuses to start without one.
NO_KEY = "no-key"


def missing_credentials(model: str) -> list[str]:
    """The environment variables ``model``'s provider needs that are not set (empty when it needs none). LiteLLM reads
    them from ``os.environ`` when it calls, so that is where this looks."""
    litellm = _litellm()

    if model.split("/", 1)[0] in LOCAL_PROVIDERS:
        return []
    found = litellm.validate_environment(model)
    return [] if found.get("keys_in_environment") else list(found.get("missing_keys") or [])


def check_credentials(model: str, *, api_base: str | None, api_key: str | None) -> None:
    """ConfigError naming the variable to set when ``model``'s provider needs credentials that are missing, before
    any call is made. A model served through ``api_base`` (an OpenAI-compatible server) or given a key is exempt."""
    if api_base or api_key:
        return
    missing = missing_credentials(model)
    if not missing:
        return
    if len(missing) > 1 and all(name.endswith("_API_KEY") for name in missing):
        needs = "one of " + " or ".join(missing)  # alternatives, e.g. GEMINI_API_KEY or GOOGLE_API_KEY
    else:
        needs = " and ".join(missing)
    raise ConfigError(
        f"model {model!r} needs {needs} set in the environment; export it and rerun (a model served by an "
        "OpenAI-compatible server needs no key: pass --api-base URL). Nothing was run or logged"
    )


def make_lm(
    model: str | None = None,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    parallel: int | None = None,
    cache: bool = False,
    env: Mapping[str, str] | None = None,
) -> dspy.BaseLM:
    """Build the LM for ``model`` (see ``resolve_model``).

    ``max_tokens``: new tokens per step [default: the backend's, ``DEFAULT_MAX_TOKENS`` for hosted models].
    ``parallel``: how many calls will run at once (a batch's concurrency); a local model loads with at least that many
    parallel slots. A local model (embedded, ``gguf:PATH``) is loaded once per process and shared.
    ``cache`` turns on DSPy's request cache for hosted models. It is off by default: collecting data again (another
    sample of a prompt, ``--no-resume``) must ask the model again, not replay a cached reply as a new trace. The
    optimizer turns it on, since it evaluates the same prompts many times.
    """
    env = os.environ if env is None else env
    name = resolve_model(model, env)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before DSPy imports LiteLLM for any backend
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    if is_embedded(name):
        from .embedded import embedded_lm

        return embedded_lm(max_tokens=max_tokens, slots=parallel)
    gguf = parse_gguf_model(name)
    if gguf is not None:
        from .llamacpp import GGUFLM

        local: dict[str, Any] = {"slots": parallel}
        if max_tokens is not None:
            local["max_tokens"] = max_tokens
        if temperature is not None:
            local["temperature"] = temperature
        return GGUFLM(gguf, **local)
    if name == "scripted" or name.startswith("scripted/"):
        from .scripted import ScriptedLM

        return ScriptedLM.from_model_string(name)
    check_model_string(name)
    kwargs: dict[str, Any] = {}
    base = api_base or env.get(ENV_API_BASE)
    key = api_key or env.get(ENV_API_KEY)
    check_credentials(name, api_base=base, api_key=key)
    if base:
        kwargs["api_base"] = base
        if not key and missing_credentials(name):
            key = NO_KEY
    if key:
        kwargs["api_key"] = key
    if temperature is not None:
        kwargs["temperature"] = temperature
    return _hosted_lm(name, max_tokens, cache, kwargs)


def _hosted_lm(name: str, max_tokens: int | None, cache: bool, kwargs: dict[str, Any]) -> dspy.BaseLM:
    from dspy.utils.exceptions import LMConfigurationError

    from .hosted import REASONING_MAX_TOKENS, HostedLM

    try:
        return HostedLM(name, max_tokens=max_tokens or DEFAULT_MAX_TOKENS, cache=cache, **kwargs)
    except LMConfigurationError as exc:
        if max_tokens is None and "max_tokens" in str(exc):  # a reasoning model: DSPy's own minimum is the default
            return HostedLM(name, max_tokens=REASONING_MAX_TOKENS, cache=cache, **kwargs)
        raise ConfigError(f"model {name!r}: {exc}") from None


def adapter_for(lm: dspy.BaseLM) -> dspy.Adapter:
    """The adapter that formats prompts for ``lm``: the LM's own preference, else ``FallbackAdapter`` (DSPy's
    ChatAdapter that reads an unparseable reply whole instead of losing the step)."""
    preferred = getattr(lm, "preferred_adapter", None)
    if callable(preferred):
        adapter: dspy.Adapter = preferred()
        return adapter
    return FallbackAdapter()
