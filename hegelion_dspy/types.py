"""The on-disk contract: one TraceRecord per JSONL line, and the row shapes the exporters write.

This module imports only pydantic so that readers (exporters, the MCP server) start fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypeAliasType

SCHEMA_VERSION = 3

Mode = Literal["general", "coding"]
Source = Literal["cli", "mcp", "python"]
Step = Literal["thesis", "antithesis", "synthesis"]
Status = Literal["ok", "failed"]
# The quality flags a trace can carry (decided by quality.py); a name outside these is refused on read, so a reader
# never meets a flag it has no rule for.
QualityFlag = Literal["truncated", "copy", "no_critique", "leak", "loop"]
STEPS: tuple[Step, ...] = ("thesis", "antithesis", "synthesis")

# A JSON document as json.dumps takes it: for the signatures of functions that build or pass on JSON. Its containers
# are Sequence and Mapping (read-only, so a list[str] or a dict[str, int] is one); a JSONObject is a dict to fill in.
# (A pydantic field keeps ``dict[str, Any]``: this alias would change its JSON schema.)
JSONValue = TypeAliasType(
    "JSONValue", "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)
JSONObject = dict[str, JSONValue]

# Generous bounds: a record larger than this is almost certainly a runaway generation or a wrong file.
MAX_TEXT_CHARS = 200_000
MAX_ROUNDS = 50


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Contradiction(_Model):
    """One contradiction the antithesis found in the thesis."""

    description: str = Field(description="What in the thesis is wrong, inconsistent or missing.", max_length=20_000)
    evidence: str = Field(
        default="", description="The fact, counter-example or reasoning that shows it.", max_length=20_000
    )


class Usage(_Model):
    """Token usage of one step, when the LM reports it."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = Field(default=None, ge=0, description="What the step's LM calls cost, when known.")


class Round(_Model):
    """One thesis -> antithesis -> synthesis round. In round n>1 the thesis is round n-1's synthesis."""

    index: int = Field(ge=1)
    thesis: str = Field(max_length=MAX_TEXT_CHARS)
    antithesis: str = Field(max_length=MAX_TEXT_CHARS)
    contradictions: list[Contradiction] = Field(default_factory=list, max_length=200)
    synthesis: str = Field(max_length=MAX_TEXT_CHARS)
    seconds: dict[Step, float] = Field(default_factory=dict, description="Wall time per step.")
    usage: dict[Step, Usage] = Field(default_factory=dict, description="Token usage per step, when reported.")
    adapters: dict[Step, str] = Field(
        default_factory=dict,
        description="Per step, the adapter whose reading produced its fields: 'ChatAdapter' (parsed field markers) or "
        "'WholeReplyAdapter' (the reply read whole, e.g. a fallback for a reply without markers).",
    )
    truncated: list[Step] = Field(
        default_factory=list, description="Steps whose reply stopped at the max_tokens cap (maybe cut off)."
    )


class TraceFailure(_Model):
    """Why a dialectic did not finish. A failed trace is never exported as training data."""

    step: Step
    round: int = Field(ge=1)
    type: str = Field(max_length=200)
    message: str = Field(max_length=20_000)


class ModelIdentity(_Model):
    """What model actually answered, as far as it could be known when the run started (``lms/identity.py``)."""

    source: Literal["file", "server"] = Field(
        description="'file': a GGUF file read on this machine; 'server': what the server behind api_base reported."
    )
    path: str | None = Field(default=None, max_length=4096, description="The model file (as the server reports it).")
    sha256: str | None = Field(default=None, max_length=64, description="sha256 of the model file's bytes.")
    name: str | None = Field(default=None, max_length=500, description="The GGUF metadata's general.name.")
    served: str | None = Field(default=None, max_length=500, description="The model ids the server lists.")
    api_base: str | None = Field(default=None, max_length=2000, description="The server that was asked.")
    demo: bool = Field(default=False, description="The shipped demo model, or a model trained from one.")
    demo_reason: str | None = Field(default=None, max_length=500, description="Why it counts as demo.")


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class TraceRecord(_Model):
    """One dialectic run: the task, every round, the final synthesis and whether it succeeded."""

    # Versions 2 and 3 only added fields with defaults, so an older line validates as it is (the fast path) and is
    # upgraded in place by _status_is_consistent; see _upgrade_v1_to_v2 and _upgrade_v2_to_v3 for the dict path.
    schema_version: Literal[1, 2, 3] = 3
    id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    created_at: datetime = Field(default_factory=_now)
    source: Source = "python"
    task: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    mode: Mode = "general"
    model: str | None = Field(default=None, max_length=500, description="The model string of the LM used.")
    lm: str | None = Field(default=None, max_length=500, description="Which LM implementation ran (class / backend).")
    adapter: str | None = Field(default=None, max_length=200, description="The DSPy adapter that formatted prompts.")
    program: str | None = Field(default=None, max_length=1000, description="A compiled program file, if one was used.")
    program_digest: str | None = Field(
        default=None, max_length=64, description="sha256 (first 16 hex digits) of the compiled program file's bytes."
    )
    demo: bool = Field(
        default=False,
        description="Written by a demo model (the shipped embedded model, the scripted fake): proves the pipeline, "
        "is not training data; exports leave it out unless asked.",
    )
    rounds: list[Round] = Field(default_factory=list, max_length=MAX_ROUNDS)
    synthesis: str = Field(default="", max_length=MAX_TEXT_CHARS)
    status: Status = "ok"
    error: TraceFailure | None = None
    score: float | None = Field(default=None, description="A judge's score of the synthesis, 0..1, when measured.")
    cost_usd: float | None = Field(
        default=None, ge=0, description="What every LM call of this run cost (failed ones too), when known."
    )
    flags: list[QualityFlag] | None = Field(
        default=None,
        max_length=20,
        description="Quality flags (truncated, copy, no_critique, leak, loop: quality.py) computed when the "
        "trace was written; None when they were not (a v2 line, a record built by hand): readers compute them then.",
    )
    model_identity: ModelIdentity | None = Field(
        default=None,
        description="Which model file answered, when that could be known: a gguf: file's sha256 and GGUF name, or what "
        "the server behind api_base reported (lms/identity.py); None for a hosted provider or an older line.",
    )
    tags: list[str] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _status_is_consistent(self) -> TraceRecord:
        if self.schema_version != SCHEMA_VERSION:  # see the field's comment (assigning costs a __setattr__: when due)
            self.schema_version = 3  # == SCHEMA_VERSION
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must carry a timezone (UTC)")
        if self.status == "ok":
            if self.error is not None:
                raise ValueError("a trace with status 'ok' must not carry an error")
            if not self.rounds:
                raise ValueError("a trace with status 'ok' needs at least one round")
            for r in self.rounds:
                # one cheap test per round (this runs for every line an exporter reads); name the step on failure.
                # ``not t or t.isspace()`` is ``not t.strip()`` without copying the text.
                t, a, s = r.thesis, r.antithesis, r.synthesis
                if not t or t.isspace() or not a or a.isspace() or not s or s.isspace():
                    step = next(step for step in STEPS if not getattr(r, step).strip())
                    raise ValueError(f"round {r.index}: {step} is empty; an 'ok' trace needs all three steps")
            if self.synthesis != self.rounds[-1].synthesis:
                raise ValueError("synthesis must equal the last round's synthesis")
        elif self.error is None:
            raise ValueError("a trace with status 'failed' must say why in 'error'")
        return self

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def first_thesis(self) -> str:
        return self.rounds[0].thesis if self.rounds else ""

    def to_json_line(self) -> bytes:
        """The exact bytes written to a trace log: compact JSON, UTF-8, one trailing newline."""
        return self.model_dump_json().encode("utf-8") + b"\n"


# Upgrades from older schema versions, by the version they upgrade *from*. Add `_upgrade_vN_to_vN1` here when the
# schema changes, and register it.


def _upgrade_v1_to_v2(data: JSONObject) -> JSONObject:
    """v2 added demo, program_digest, cost_usd, and per-round adapters/truncated/usage cost, all with defaults."""
    return {**data, "schema_version": 2}


def _upgrade_v2_to_v3(data: JSONObject) -> JSONObject:
    """v3 added ``flags``, the quality flags, and ``model_identity``. A v2 line has no flags: they stay None here
    (this module holds the contract, not the curation rules, and must not import them) and ``quality.flags_of``
    computes them on read, which every reader of flags (the export's verdict, the review app, ``hegelion logs``) goes
    through. Its model identity stays None: what answered was not recorded then."""
    return {**data, "schema_version": 3}


UPGRADES: dict[int, Callable[[JSONObject], JSONObject]] = {1: _upgrade_v1_to_v2, 2: _upgrade_v2_to_v3}


def upgrade_record(data: JSONObject) -> JSONObject:
    """Bring a decoded record of any known older schema version up to SCHEMA_VERSION."""
    version = data.get("schema_version")
    while isinstance(version, int) and version < SCHEMA_VERSION and version in UPGRADES:
        data = UPGRADES[version](data)
        version = data.get("schema_version")
    return data


# Row shapes written by the exporters (TRL / datasets / axolotl / unsloth conventions).


class DPORow(TypedDict):
    prompt: str
    chosen: str
    rejected: str


class ChatTurn(TypedDict):
    """One chat message of a conversational row (named so it is not mistaken for MCP's or DSPy's Message)."""

    role: str
    content: str


class DPOChatRow(TypedDict):
    prompt: list[ChatTurn]
    chosen: list[ChatTurn]
    rejected: list[ChatTurn]


class InstructionRow(TypedDict):
    instruction: str
    input: str
    output: str


class SFTChatRow(TypedDict):
    messages: list[ChatTurn]


class SFTRow(TypedDict):
    prompt: str
    completion: str
