"""Typed inputs and outputs of the MCP tools: clients get their JSON schemas, and every text field has a size limit.

Imports only pydantic and the library's types module, so the server starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from hegelion_dspy.curate.options import ExportOptions
from hegelion_dspy.curate.report import ExportReport
from hegelion_dspy.paths import MAX_NAME_CHARS  # a file name in the data folder
from hegelion_dspy.types import Step

# Size limits of what a client may send. The trace schema allows more (200,000 characters a step); a tool call this
# large is almost certainly a mistake, and a smaller bound keeps one call from filling the log.
MAX_TASK_CHARS = 20_000
MAX_STEP_CHARS = 100_000
MAX_CONTRADICTION_CHARS = 10_000  # a contradiction's description or evidence
MAX_CONTRADICTIONS = 50
MAX_LATER_ROUNDS = 9
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_MODEL_CHARS = 200
MAX_SYSTEM_CHARS = 20_000

LmSource = Literal["server", "sampling", "prompt"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Task = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TASK_CHARS, description="The question or task."),
    AfterValidator(_not_blank),
]
StepText = Annotated[str, Field(min_length=1, max_length=MAX_STEP_CHARS), AfterValidator(_not_blank)]
OptionalStepText = Annotated[str | None, Field(max_length=MAX_STEP_CHARS)]
Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS, pattern=r"^[^\x00-\x1f]+$")]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS, description="Labels stored with the trace.")]
ModelName = Annotated[
    str | None,
    Field(
        max_length=MAX_MODEL_CHARS,
        description="The model that wrote the steps (e.g. 'claude-sonnet-4-5'); stored with the trace.",
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContradictionIn(_Input):
    """One flaw the antithesis found in the thesis."""

    description: str = Field(
        min_length=1, max_length=MAX_CONTRADICTION_CHARS, description="What in the thesis is wrong or missing."
    )
    evidence: str = Field(
        default="", max_length=MAX_CONTRADICTION_CHARS, description="The fact or example that shows it."
    )


class LaterRound(_Input):
    """Round 2, 3, ... of an iterated dialectic: its thesis is the previous round's synthesis."""

    antithesis: StepText
    contradictions: list[ContradictionIn] = Field(default_factory=list, max_length=MAX_CONTRADICTIONS)
    synthesis: StepText


class PartialRound(_Input):
    """A later round in the prompt workflow; its synthesis is missing while that step is being answered."""

    antithesis: StepText
    contradictions: list[ContradictionIn] = Field(default_factory=list, max_length=MAX_CONTRADICTIONS)
    synthesis: OptionalStepText = None


class ExportDatasetArguments(ExportOptions):
    """export_dataset's arguments: the library's export options (each declared once, in ``ExportOptions``) and the
    file to write in the data folder."""

    output_name: str | None = Field(
        default=None,
        max_length=MAX_NAME_CHARS,
        description="A plain file name inside the server's data folder (default: '<format>.jsonl').",
    )

    @classmethod
    def of_parameters(cls, parameters: Mapping[str, object]) -> ExportDatasetArguments:
        """The tool's parameters (``locals()`` of its function, which also holds ``ctx`` and the names it closes
        over) as the one validated model, so the export's checks across fields run as they do for the CLI."""
        return cls.model_validate({name: value for name, value in parameters.items() if name in cls.model_fields})


# Export options the tool does not offer: a dataset card writes a folder, and the server writes plain files only;
# labels are always applied (the review app writes them beside the log) and no file path is taken from a client.
EXPORT_OPTIONS_NOT_OFFERED = frozenset({"card", "labels", "labels_file"})


# RunSpec fields run_dialectic does not take, and why; every other field is one of its parameters (the test in
# tests/server/test_server_wire.py fails on a RunSpec field that is neither).
RUN_OPTIONS_NOT_OFFERED: dict[str, str] = {
    "model": "the server's model is its operator's choice (HEGELION_MODEL), never a client's",
    "api_base": "where the server's model runs is its operator's choice, like the model",
    "program": "a file path: the operator's HEGELION_PROGRAM; no path is taken from a client",
    "max_tokens": "a setting of the server's model, built once for every client",
    "judge": "judging calls the operator's model once more per trace; `hegelion run --judge` does it",
    "judge_model": "the judge is the operator's, like --judge",
    "rpm": "call manners are the server's, shared by every client (the library's defaults)",
    "tpm": "call manners are the server's, like rpm",
    "max_retries": "call manners are the server's, like rpm",
    "timeout": "call manners are the server's, like rpm",
    "manners": "a Python object, not JSON; call manners are the server's",
    "parallel": "one run_dialectic call runs one dialectic",
    "lm": "a Python function, not JSON",
}
# RunSpec fields run_dialectic declares with its own type: a client's tags have tighter limits than the library's.
RUN_OPTIONS_RESHAPED: dict[str, str] = {"tags": "at most MAX_TAGS tags of MAX_TAG_CHARS printable characters"}


def offered(model: type[BaseModel], name: str, *, description: str | None = None) -> Any:
    """The field ``name`` of ``model`` as the default of a tool parameter: ``mode: Mode = offered(RunSpec, "mode")``.

    The parameter takes the field's default, limits and description (``description`` rewords it for an MCP client),
    so a plain typed tool function names a library option and its type, and everything else about it stays declared
    once, in the library's model. Typed ``Any`` like pydantic's ``Field``, whose value it is."""
    info = model.model_fields[name]
    default = ... if info.is_required() else info.get_default(call_default_factory=True)
    field: Any = Field(
        default,
        description=description or info.description,
        title=info.title,
        json_schema_extra=info.json_schema_extra,
    )
    field.metadata = list(info.metadata)  # the field's limits: ge, le, max_length, strict, ...
    return field


def plain(**values: object) -> dict[str, Any]:
    """``values`` that are not None, models among them dumped to dicts: tool parameters as the library takes them."""
    dumped: dict[str, Any] = _PLAIN.dump_python(values)
    return {name: value for name, value in dumped.items() if value is not None}


def answers(**given: object) -> dict[str, Any]:
    """The prompt workflow's answers passed to run_dialectic so far (none when a call starts a dialectic)."""
    return {name: value for name, value in plain(**given).items() if value}


_PLAIN = TypeAdapter(dict[str, object])


class RoundOut(BaseModel):
    index: int
    thesis: str
    antithesis: str
    contradictions: list[dict[str, Any]]
    synthesis: str


class RunDialecticResult(BaseModel):
    """What run_dialectic did. With lm_source 'prompt' it returns the next prompt for you to answer."""

    lm_source: LmSource = Field(
        description="Where the model came from: 'server' (HEGELION_MODEL), 'sampling' (your client's model) or "
        "'prompt' (no model here: you answer the prompts yourself)."
    )
    status: Literal["ok", "failed", "answer_needed", "complete"] = Field(
        description="'ok': the dialectic ran and was logged; 'failed': a step failed (logged as a failure); "
        "'answer_needed': answer `prompt` and call run_dialectic again; 'complete': call log_trace now."
    )
    next: str = Field(description="What to do next, in words.")
    model: str | None = None
    trace_id: str | None = None
    synthesis: str | None = None
    rounds: list[RoundOut] = Field(default_factory=list)
    error: str | None = None
    step: Step | None = Field(default=None, description="The step `prompt` asks for.")
    round: int | None = None
    prompt: str | None = Field(
        default=None, description="The step's prompt (the program's instructions and examples) and its answer format."
    )
    program: str | None = Field(default=None, description="The compiled program whose prompts were used, if any.")
    log_trace_arguments: dict[str, Any] | None = Field(
        default=None, description="When status is 'complete': the arguments for log_trace (add model and tags)."
    )


class LogTraceResult(BaseModel):
    """The logged trace's id and the trace log's counts after the append."""

    id: str
    log: str = Field(description="The trace log's file name inside the data folder.")
    total: int
    ok: int
    failed: int
    invalid: int


class ExportDatasetResult(BaseModel):
    """What export_dataset wrote into the data folder."""

    path: str = Field(description="The dataset file (with a split: the train file).")
    files: dict[str, str] = Field(description="Every file written, by split name ('train', 'test').")
    rows: dict[str, int] = Field(description="Rows written to each file.")
    dropped: dict[str, int] = Field(description="Traces or rows left out, by reason.")
    report: dict[str, Any] = Field(description="The exporter's full report.")

    @classmethod
    def of(cls, report: ExportReport) -> ExportDatasetResult:
        dropped = {k: v for k, v in report.dropped.items() if v}
        return cls(
            path=report.outputs["train"],
            files=report.outputs,
            rows=report.rows,
            dropped=dropped,
            report=dict(report.as_dict()),  # a ReportDict, as the plain dict the output schema declares
        )
