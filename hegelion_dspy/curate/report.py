"""ExportReport: what an export read, kept, dropped and wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from ..types import JSONObject

# -- the report ----------------------------------------------------------------------------------------------------


class ReportDict(TypedDict):
    """``ExportReport.as_dict()``: the report as JSON (the MCP tool's ``report``, the dataset card's source)."""

    format: str
    inputs: list[str]
    outputs: dict[str, str]
    folder: str | None
    rows: dict[str, int]
    rows_written: int
    traces_read: int
    traces_kept: int
    dropped: dict[str, int]
    labels: dict[str, int]
    flagged: dict[str, int]
    label_files: list[str]
    invalid: int
    invalid_locations: list[str]
    warnings: list[str]
    kept_by_model: dict[str, int]
    kept_by_mode: dict[str, int]
    kept_by_program: dict[str, int]
    first_created: str | None
    last_created: str | None
    cost_usd: float
    priced_traces: int
    options: JSONObject
    seconds: float


@dataclass
class ExportReport:
    """What an export did. ``dropped`` counts traces for trace-level reasons and rows for row-level ones (a quality
    flag counts the rows it left out, under the first flag of the trace that is not allowed); ``flagged`` counts, per
    flag, the traces carrying it among those that passed the trace-level checks (a trace may carry several).

    ``kept_by_model`` / ``kept_by_mode`` / ``kept_by_program`` count the kept traces; ``first_created`` and
    ``last_created`` bound their creation times (ISO, UTC). ``cost_usd`` is what the LM calls of every trace read cost
    (failed and dropped ones too: what collecting the logs cost), over the ``priced_traces`` that carry a cost.
    """

    format: str
    inputs: list[str]
    outputs: dict[str, str]
    rows: dict[str, int]
    options: JSONObject = field(default_factory=dict)
    traces_read: int = 0
    traces_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # examples by label outcome (accepted, swapped, ...)
    flagged: dict[str, int] = field(default_factory=dict)  # traces carrying each quality flag, of those considered
    label_files: list[str] = field(default_factory=list)
    invalid: int = 0
    invalid_locations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept_by_model: dict[str, int] = field(default_factory=dict)
    kept_by_mode: dict[str, int] = field(default_factory=dict)
    kept_by_program: dict[str, int] = field(default_factory=dict)
    first_created: str | None = None
    last_created: str | None = None
    folder: str | None = None  # with card: the dataset folder
    cost_usd: float = 0.0
    priced_traces: int = 0
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> ReportDict:
        return {
            "format": self.format,
            "inputs": list(self.inputs),
            "outputs": dict(self.outputs),
            "folder": self.folder,
            "rows": dict(self.rows),
            "rows_written": self.rows_written,
            "traces_read": self.traces_read,
            "traces_kept": self.traces_kept,
            "dropped": dict(self.dropped),
            "labels": dict(self.labels),
            "flagged": dict(self.flagged),
            "label_files": list(self.label_files),
            "invalid": self.invalid,
            "invalid_locations": list(self.invalid_locations),
            "warnings": list(self.warnings),
            "kept_by_model": dict(self.kept_by_model),
            "kept_by_mode": dict(self.kept_by_mode),
            "kept_by_program": dict(self.kept_by_program),
            "first_created": self.first_created,
            "last_created": self.last_created,
            "cost_usd": round(self.cost_usd, 6),
            "priced_traces": self.priced_traces,
            "options": dict(self.options),
            "seconds": round(self.seconds, 3),
        }
