"""Errors raised by hegelion-dspy. Each message says what failed, quotes the value and gives the fix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class HegelionError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(HegelionError):
    """A setting (model string, flag, environment variable, path) is wrong."""


class InvalidTraceError(HegelionError):
    """A line of a trace log (or a trace handed in by a caller) is not a valid trace.

    ``path`` and ``lineno`` locate it when it came from a file; ``field`` names the offending field when known.
    """

    def __init__(
        self, reason: str, *, path: str | Path | None = None, lineno: int | None = None, field: str | None = None
    ):
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.lineno = lineno
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.lineno}: " if self.lineno is not None else f"{self.path}: "
        field = f"field {self.field!r}: " if self.field else ""
        return f"{where}{field}{self.reason}"


class InvalidLabelError(InvalidTraceError):
    """A line of a labels sidecar (``<log>.labels``) is not a valid label; ``path``/``lineno`` locate it."""


class ExportError(HegelionError):
    """An export cannot run as asked (output exists, output equals an input, unknown format...)."""


class LMError(HegelionError):
    """A language-model call failed or returned nothing usable."""


class StepFailedError(LMError):
    """One step of a dialectic failed. Carries the rounds finished before it so the failure can be logged."""

    def __init__(
        self,
        step: str,
        round_index: int,
        cause: BaseException | str,
        completed_rounds: list | None = None,
        partial: Mapping[str, str] | None = None,
    ):
        self.step = step
        self.round_index = round_index
        self.cause = cause
        self.completed_rounds = list(completed_rounds or [])
        self.partial = dict(partial or {})  # the failing round's steps that did finish
        cause_text = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        self.error_type = "EmptyOutput" if isinstance(cause, str) else type(cause).__name__
        self.message = str(cause_text)
        super().__init__(f"{step} step of round {round_index} failed: {cause_text}")


class UnsafePathError(ConfigError):
    """A file name handed to the server would leave its data folder or overwrite a file."""


class ClusterError(HegelionError):
    """A batch on a cluster cannot go on (every worker died, the cluster cannot be reached)."""


class LabelConflictError(HegelionError):
    """A label was written from a version of its pair that another reviewer has replaced meanwhile.

    ``base`` is the version the writer saw, ``version`` the pair's version now, ``latest`` the label that made it
    (a ``curate.labels.Label``): show it, and write again with ``base=version`` to overrule it.
    """

    def __init__(self, trace_id: str, pair: str, *, base: int, version: int, latest: object | None = None):
        self.trace_id = trace_id
        self.pair = pair
        self.base = base
        self.version = version
        self.latest = latest
        by = getattr(latest, "labeller", None)
        who = f" by {by}" if by else ""
        super().__init__(
            f"pair {pair!r} of trace {trace_id[:80]!r} was changed{who} since you read it (version {base}, now "
            f"{version}); read the latest label and write again with base={version} to replace it"
        )
