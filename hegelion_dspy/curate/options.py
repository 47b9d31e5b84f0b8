"""ExportOptions: every choice an export makes, validated once and shared by the Python API, the CLI and the MCP
tool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ExportError, OptionProblem, from_validation, option
from ..types import QualityFlag
from .formats import CHAT_FORMATS, PREFERENCE_FORMATS, Format, Pairs, Rejected
from .selection import Keep, TraceFilter

KEEP_CHOICES: tuple[str, ...] = get_args(Keep)
Flag = QualityFlag  # the names a trace's flags take (types.py), so --allow-flag accepts exactly those
# -- the options ---------------------------------------------------------------------------------------------------


class ExportOptions(TraceFilter):
    """Every choice an export makes, validated once. The Python API (``export_dataset(..., **options)``),
    ``hegelion-dataset`` (its flags are made from these fields) and the MCP ``export_dataset`` tool all take it, so an
    option is added here and nowhere else. The ``TraceFilter`` fields choose traces by model, source, tag and date, and
    leave demo traces out unless ``include_demo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = Field(
        default="dpo",
        description="dpo: {prompt, chosen, rejected} text; dpo-chat: the same as message lists; instruction: Alpaca "
        "{instruction, input, output}; sft: {prompt, completion}; sft-chat: {messages}.",
    )
    rejected: Rejected = Field(
        default="thesis",
        description="Preference formats: what the synthesis is preferred to; 'both' writes two rows.",
    )
    pairs: Pairs = Field(
        default="first-last",
        description="Preference formats, iterated traces: the first thesis vs the final synthesis, or one pair per "
        "round.",
    )
    system: str | None = Field(
        default=None, max_length=20_000, description="A system prompt put first in every dpo-chat / sft-chat row."
    )
    min_chars: int = Field(
        default=0, ge=0, le=1_000_000, strict=True, description="Drop rows whose chosen text is shorter than this."
    )
    min_score: float | None = Field(
        default=None, ge=0, le=1, strict=True, description="Drop traces whose judge score is below this, or unscored."
    )
    allow_flags: list[Flag] = Field(
        default_factory=list,
        description="Keep pairs of traces carrying these quality flags (truncated: a synthesis stopped at the token "
        "cap; copy: a synthesis (near-)equal to its thesis or antithesis; no_critique: an antithesis that found "
        "nothing and praises; leak: prompt or adapter scaffolding in the text; loop: a synthesis repeating itself). "
        "By default pairs of flagged traces are left out and counted per flag.",
    )
    dedupe: bool = Field(default=True, description="Keep one trace per prompt (see keep); false keeps every trace.")
    keep: Keep = Field(
        default="best",
        description="Which trace of a prompt is kept: best = highest judge score, ties (and unscored logs) to the "
        "latest; latest = the newest; first = the first read.",
    )
    split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        strict=True,
        description="Send this fraction of prompts to a test split (OUTPUT's stem + .train.jsonl / .test.jsonl).",
    )
    seed: int = Field(default=7, strict=True, description="Seed of the deterministic split.")
    with_metadata: bool = Field(
        default=False,
        description="Add a 'metadata' column (trace_id, model, mode, round, score); TRL's trainers drop it.",
    )
    card: bool = Field(
        default=False,
        description="Write a dataset folder instead of a file: data/train.jsonl (+ test) and a README.md dataset card "
        "that datasets.load_dataset(FOLDER) and the Hub read.",
    )
    labels: bool = Field(
        default=True,
        description="Honour reviewers' labels (hegelion-review writes them to INPUT.labels beside each log): rejected "
        "pairs are dropped, swapped pairs swapped, edited chosen texts used.",
    )
    labels_file: str | None = Field(
        default=None,
        max_length=4096,
        description="Read the labels of every input from this file instead of each input's INPUT.labels.",
    )
    reviewed_only: bool = Field(
        default=False, description="Keep only pairs a reviewer accepted, swapped or edited (see labels)."
    )
    skip_invalid: bool = Field(default=False, description="Skip (and count) invalid log lines instead of stopping.")
    force: bool = Field(default=False, description="Replace an existing output.")

    @field_validator("allow_flags", mode="before")
    @classmethod
    def _one_flag_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> ExportOptions:
        if self.format not in PREFERENCE_FORMATS:
            for name, default in (("rejected", "thesis"), ("pairs", "first-last")):
                if getattr(self, name) != default:
                    raise OptionProblem(
                        f"{option(name)} chooses preference pairs and applies to the formats dpo and dpo-chat only, "
                        f"not {self.format!r} (which trains on the final synthesis); drop it or use format dpo",
                        options=(name,),
                    )
        if self.system is not None and self.format not in CHAT_FORMATS:
            raise OptionProblem(
                f"{option('system')} applies to the formats dpo-chat and sft-chat only, not {self.format!r}; drop it",
                options=("system",),
            )
        if not self.labels and (self.reviewed_only or self.labels_file is not None):
            raise OptionProblem(
                f"{option('reviewed_only')} and {option('labels_file')} work on labels, and {option('labels')} leaves "
                "them out; drop one of them",
                options=("reviewed_only", "labels_file", "labels"),
            )
        return self

    @classmethod
    def of(cls, options: ExportOptions | Mapping[str, object] | None = None, **changes: object) -> ExportOptions:
        """``options`` (or the defaults) with ``changes`` applied, validated; ExportError names a bad field."""
        base = options.model_dump() if isinstance(options, ExportOptions) else dict(options or {})
        try:
            return cls.model_validate({**base, **changes})
        except ValidationError as exc:
            raise from_validation(exc, source="option", error=ExportError) from None
