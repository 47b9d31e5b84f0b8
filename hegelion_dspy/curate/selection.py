"""Which traces a reader wants: one ``TraceFilter`` shared by exports, ``hegelion logs`` and the review app.

A filter says why a trace is left out (a reason key counted by ``--stats``) or None to keep it. It is pure and cheap:
exports run it on every line of logs with 100,000s of traces, so globs are matched once per distinct model string.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..types import Source, TraceRecord

# Why a trace was left out by the filter, in the order the checks run.
FILTER_REASONS: tuple[str, ...] = (
    "demo",  # written by a demo model (embedded, scripted) and include_demo is off
    "model",  # the model matches no --model glob, or an --exclude-model glob
    "source",  # the source (cli/mcp/python) is not among --source
    "tag",  # no --tag among its tags, or an --exclude-tag
    "date",  # created before --since or at/after --until
)

# Which trace of a prompt an export keeps (``ExportOptions.keep``); ``outranks`` is the rule, for every reader.
Keep = Literal["best", "latest", "first"]
Rank = tuple[float, float]  # (score, -1 when unscored; creation time as a timestamp)


def keep_rank(score: float | None, created: float) -> Rank:
    """A trace's rank among the traces of its prompt: its judge score (-1 when unscored), then its creation time."""
    return (-1.0 if score is None else score, created)


def outranks(keep: Keep, later: Rank, kept: Rank) -> bool:
    """Whether a trace read later replaces the kept trace of the same prompt: under ``best`` a higher score wins,
    else (same score, unscored logs) the later creation; under ``latest`` the later creation; on a tie the trace
    read later. Under ``first`` the first trace read stays. The export and the review app both decide by this."""
    if keep == "first":
        return False
    if keep == "best" and later[0] != kept[0]:
        return later[0] > kept[0]
    return later[1] >= kept[1]


Glob = Annotated[str, Field(min_length=1, max_length=500)]
TagName = Annotated[str, Field(min_length=1, max_length=200)]


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_list(value: object) -> object:
    # Accept one string where a list is expected (a CLI flag given once, an API caller passing "openai/*").
    return [value] if isinstance(value, str) else value


class TraceFilter(BaseModel):
    """Which traces to keep. Empty lists mean "any"; every condition given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include_demo: bool = Field(
        default=False,
        description="Include traces written by a demo model (the shipped embedded model, the scripted fake); "
        "they prove the pipeline but are not training data.",
    )
    models: list[Glob] = Field(
        default_factory=list,
        max_length=50,
        description="Keep only traces whose model matches one of these globs (e.g. 'openai/*').",
    )
    exclude_models: list[Glob] = Field(
        default_factory=list, max_length=50, description="Leave out traces whose model matches one of these globs."
    )
    sources: list[Source] = Field(
        default_factory=list, description="Keep only traces from these sources (cli, mcp, python)."
    )
    tags: list[TagName] = Field(
        default_factory=list, max_length=50, description="Keep only traces carrying at least one of these tags."
    )
    exclude_tags: list[TagName] = Field(
        default_factory=list, max_length=50, description="Leave out traces carrying any of these tags."
    )
    since: datetime | None = Field(
        default=None, description="Keep traces created at or after this time (ISO date or date-time; UTC if no zone)."
    )
    until: datetime | None = Field(
        default=None, description="Keep traces created before this time (ISO date or date-time; UTC if no zone)."
    )

    @field_validator("models", "exclude_models", "sources", "tags", "exclude_tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _as_list(value)

    @field_validator("since", "until", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> TraceFilter:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")
        return self

    @property
    def narrows(self) -> bool:
        """Whether any condition besides the demo rule is set."""
        return bool(
            self.models
            or self.exclude_models
            or self.sources
            or self.tags
            or self.exclude_tags
            or self.since
            or self.until
        )

    def reason(self, record: TraceRecord) -> str | None:
        """Why ``record`` is left out (a key of FILTER_REASONS), or None to keep it. For many records, take
        ``compiled()`` once and call that."""
        return self.compiled()(record)

    def compiled(self) -> Callable[[TraceRecord], str | None]:
        """``reason`` as a plain function with only the checks that are set, for hot loops: an export calls it for
        every line of logs with 100,000s of traces (a pydantic attribute read per check would cost more than the
        check). Globs are matched once per distinct model string."""
        include_demo = self.include_demo
        models, exclude_models = tuple(self.models), tuple(self.exclude_models)
        sources = frozenset(self.sources)
        tags, exclude_tags = frozenset(self.tags), frozenset(self.exclude_tags)
        since, until = self.since, self.until
        matched: dict[str | None, bool] = {}

        def model_matches(model: str | None) -> bool:
            name = model or ""
            included = not models or any(fnmatch.fnmatchcase(name, glob) for glob in models)
            matched[model] = ok = included and not any(fnmatch.fnmatchcase(name, glob) for glob in exclude_models)
            return ok

        def reason(record: TraceRecord) -> str | None:
            if record.demo and not include_demo:
                return "demo"
            if models or exclude_models:
                ok = matched.get(record.model)
                if not (model_matches(record.model) if ok is None else ok):
                    return "model"
            if sources and record.source not in sources:
                return "source"
            if tags and tags.isdisjoint(record.tags):
                return "tag"
            if exclude_tags and not exclude_tags.isdisjoint(record.tags):
                return "tag"
            if since is not None and record.created_at < since:
                return "date"
            if until is not None and record.created_at >= until:
                return "date"
            return None

        return reason

    def describe(self) -> list[str]:
        """The conditions in words, for a dataset card or a summary ('model in openai/*', ...)."""
        parts: list[str] = []
        parts.append("demo traces included" if self.include_demo else "demo traces left out")
        for label, values in (
            ("model in", self.models),
            ("model not in", self.exclude_models),
            ("source in", self.sources),
            ("tagged", self.tags),
            ("not tagged", self.exclude_tags),
        ):
            if values:
                parts.append(f"{label} {', '.join(values)}")
        if self.since is not None:
            parts.append(f"created since {self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"created before {self.until.isoformat()}")
        return parts
