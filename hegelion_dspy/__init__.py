"""hegelion-dspy: thesis -> antithesis -> synthesis as an optimizable DSPy program, logged as training data.

Names that need dspy are imported lazily, so readers of trace logs (the exporter, the MCP server) start fast.
Importing it changes nothing outside itself: no environment variable, no other library's settings (LiteLLM is set up
in ``lms/chooser``, when an LM is built).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, ExportError, HegelionError, InvalidTraceError, LMError, StepFailedError
from .store import TraceStore, read_records
from .types import SCHEMA_VERSION, Contradiction, Round, TraceRecord

__version__ = "0.1.0"

_LAZY = {
    "Dialectic": "program",
    "load_program": "program",
    "Thesis": "signatures",
    "Antithesis": "signatures",
    "Synthesis": "signatures",
    "make_lm": "lms.chooser",
    "MessagesLM": "lms.base",
    "ScriptedLM": "lms.scripted",
    "EmbeddedLM": "lms.embedded",
    "embedded_lm": "lms.embedded",
    "GGUFLM": "lms.llamacpp",
    "FallbackAdapter": "lms.adapters",
    "WholeReplyAdapter": "lms.adapters",
    "run_dialectic": "collect.run",
    "arun_dialectic": "collect.run",
    "run_batch": "collect.batch",
    "RunContext": "collect.context",
    "RunRecipe": "collect.spec",
    "RunSpec": "collect.spec",
    "run_ray_batch": "collect.distributed",
    "Manners": "lms.manners",
    "log_trace": "collect.traces",
    "export_dataset": "curate.driver",
    "DialecticJudge": "collect.judge",
    "DialecticMetric": "collect.metric",
    "optimize_program": "collect.optimize",
    "save_program": "program",
    "split_examples": "collect.optimize",
    "tasks_from_log": "collect.optimize",
    "tasks_from_prompts": "collect.optimize",
}

__all__ = [
    "GGUFLM",
    "SCHEMA_VERSION",
    "Antithesis",
    "ConfigError",
    "Contradiction",
    "Dialectic",
    "DialecticJudge",
    "DialecticMetric",
    "EmbeddedLM",
    "ExportError",
    "FallbackAdapter",
    "HegelionError",
    "InvalidTraceError",
    "LMError",
    "Manners",
    "MessagesLM",
    "Round",
    "RunContext",
    "RunRecipe",
    "RunSpec",
    "ScriptedLM",
    "StepFailedError",
    "Synthesis",
    "Thesis",
    "TraceRecord",
    "TraceStore",
    "WholeReplyAdapter",
    "arun_dialectic",
    "embedded_lm",
    "export_dataset",
    "load_program",
    "log_trace",
    "make_lm",
    "optimize_program",
    "read_records",
    "run_batch",
    "run_dialectic",
    "run_ray_batch",
    "save_program",
    "split_examples",
    "tasks_from_log",
    "tasks_from_prompts",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hegelion_dspy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
