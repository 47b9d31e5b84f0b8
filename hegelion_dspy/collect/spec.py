"""RunSpec: the options of a run, declared once.

``RunContext.build(spec, ...)`` and ``run_dialectic`` take them (as a RunSpec or as keyword arguments), a Ray worker
builds its context from a pickled RunSpec, and the flags of ``hegelion run`` and ``hegelion optimize`` are made from
the fields (``cli/options.run_options``: type, limits, help from the description), the way the dataset flags come
from ``ExportOptions``. To add a run option, add a field here and use it in ``RunContext.build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, OptionProblem, from_validation, option
from ..types import Mode

if TYPE_CHECKING:
    from ..lms.manners import Manners


class RunSpec(BaseModel):
    """How to run dialectics, as plain values (they pickle, so a Ray worker builds its own context from them).

    ``lm``, a picklable function returning the LM, replaces ``model``/``api_base`` (tests, custom LMs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    model: str | None = Field(
        default=None,
        max_length=1000,
        description="Any model string DSPy/LiteLLM accepts (openai/gpt-4o-mini, ollama_chat/llama3.2, hosted_vllm/NAME "
        "with --api-base), gguf:PATH (a local GGUF file, run in-process by llama.cpp), 'scripted' (an offline fake) "
        "or 'embedded' [default: $HEGELION_MODEL, else the embedded model].",
    )
    api_base: tuple[str, ...] = Field(
        default=(),
        description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, LM Studio); it needs no API key. "
        "Several, comma-separated, are called in turn [default: $HEGELION_API_BASE].",
    )
    mode: Mode = Field(default="general", description="How the three steps are worded: general or coding tasks.")
    iterations: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Rounds; each synthesis becomes the next thesis [default: 1, or what a --program was saved with].",
    )
    program: Path | None = Field(
        default=None, description="A compiled Dialectic saved by hegelion optimize or save_program()."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="New tokens per step; a step that stops there is marked truncated in the trace [default: 2048 for "
        "hosted models, 1024 for gguf:PATH, 256 for the embedded model].",
    )
    judge: bool = Field(
        default=False,
        description="Score each ok trace 0..1 with the judge (synthesis vs thesis) and log it as its score, for "
        "hegelion-dataset --min-score.",
    )
    judge_model: str | None = Field(
        default=None, max_length=1000, description="The LM that judges (implies --judge) [default: the --model LM]."
    )
    rpm: float | None = Field(
        default=None,
        gt=0,
        description="At most this many LM requests per minute, shared by all concurrent calls (and split across Ray "
        "workers).",
    )
    tpm: float | None = Field(
        default=None,
        gt=0,
        description="At most this many LM tokens (prompt + completion) per minute, shared like --rpm.",
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Retries of a call answered 429 or 5xx, timed out or cut off (exponential backoff with jitter, "
        "or the server's Retry-After).",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds one call to a hosted model may wait for its answer before it is retried like a 429 "
        "[default: $HEGELION_TIMEOUT, else 120 s, longer for a big --max-tokens; none for in-process models].",
    )
    tags: tuple[str, ...] = Field(default=(), description="Tag the traces.")
    parallel: int | None = Field(
        default=None, ge=1, description="Calls at once: a local model loads with at least this many slots."
    )
    # a lms.manners.Manners, checked without importing it (and dspy) when none is given
    manners: Any = Field(
        default=None, description="All the manners of the LM calls (backoff too); instead of rpm, tpm and max_retries."
    )
    lm: Callable[[], object] | None = Field(default=None, exclude=True, description="A function returning the LM.")

    @field_validator("manners")
    @classmethod
    def _is_manners(cls, value: object) -> object:
        if value is not None:
            from ..lms.manners import Manners

            if not isinstance(value, Manners):
                raise ValueError(f"expected lms.manners.Manners, got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _manners_once(self) -> RunSpec:
        given = self.model_fields_set & {"rpm", "tpm", "max_retries", "timeout"}
        if self.manners is not None and given:
            names = sorted(given)
            raise OptionProblem(
                f"{option('manners')} includes {', '.join(option(n) for n in names)}; give one or the other",
                options=("manners", *names),
            )
        return self

    @field_validator("api_base", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else value
        if not isinstance(items, list):
            return items
        return tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())

    @classmethod
    def of(cls, spec: RunSpec | Mapping[str, object] | None = None, **changes: object) -> RunSpec:
        """``spec`` (or the defaults) with ``changes`` applied, validated; ConfigError names a bad option."""
        base = dict(spec) if isinstance(spec, RunSpec) else dict(spec or {})
        try:
            return cls.model_validate({**base, **changes})
        except ValidationError as exc:
            raise from_validation(exc, source="option", error=ConfigError) from None

    def call_manners(self) -> Manners:
        """The manners of the run's LM calls: ``manners``, else rate limits, retries and the time limit of a call
        from rpm, tpm, max_retries, timeout."""
        from ..lms.manners import Manners

        given: Manners | None = self.manners
        return given or Manners(rpm=self.rpm, tpm=self.tpm, max_retries=self.max_retries, timeout=self.timeout)


RunRecipe = RunSpec  # its name before the run options were declared once


def spec_fields(options: Mapping[str, object]) -> dict[str, object]:
    """The entries of ``options`` that are RunSpec fields."""
    return {k: v for k, v in options.items() if k in RunSpec.model_fields}
