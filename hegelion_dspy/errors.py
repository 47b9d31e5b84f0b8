"""Errors raised by hegelion-dspy. Each message says what failed, quotes the value and gives the fix.

An error carries the names it is about, so the edges phrase them in their own words without reading the text:
``field`` is the offending field (of a trace, a label, or the options), and ``options`` are the library options the
message names as ``option 'NAME'`` (the CLI says them as its flags, ``--name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NotRequired, Protocol, TypedDict, TypeVar


class HegelionError(Exception):
    """Base class of every error this library raises on purpose."""

    def __init__(self, *args: object, field: str | None = None, options: Iterable[str] = ()):
        super().__init__(*args)
        self.field = field
        self.options = tuple(options)


def option(name: str) -> str:
    """How a message names a library option: ``option 'force'`` (the CLI shows ``--force``; list it in ``options``)."""
    return f"option {name!r}"


class OptionProblem(ValueError):
    """A validator's complaint that names options: raised inside a pydantic validator, it reaches the error that
    ``from_validation`` builds with its ``options``."""

    def __init__(self, message: str, *, options: Iterable[str]):
        super().__init__(message)
        self.options = tuple(options)


class ConfigError(HegelionError):
    """A setting (model string, flag, environment variable, path) is wrong."""


class InvalidTraceError(HegelionError):
    """A line of a trace log (or a trace handed in by a caller) is not a valid trace.

    ``path`` and ``lineno`` locate it when it came from a file; ``field`` names the offending field when known.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | Path | None = None,
        lineno: int | None = None,
        field: str | None = None,
        options: Iterable[str] = (),
    ):
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.lineno = lineno
        super().__init__(self._render(field), field=field, options=options)

    def _render(self, field: str | None) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.lineno}: " if self.lineno is not None else f"{self.path}: "
        named = f"field {field!r}: " if field else ""
        return f"{where}{named}{self.reason}"


class InvalidLabelError(InvalidTraceError):
    """A line of a labels sidecar (``<log>.labels``) is not a valid label; ``path``/``lineno`` locate it."""


class _ErrorDetails(TypedDict):  # what is read here of pydantic's ErrorDetails
    loc: tuple[int | str, ...]
    msg: str
    input: object
    ctx: NotRequired[dict[str, object]]


class _Validation(Protocol):  # pydantic.ValidationError, without importing pydantic here
    def errors(self, *, include_url: bool = ...) -> Sequence[_ErrorDetails]: ...

    def error_count(self) -> int: ...


E = TypeVar("E", bound=HegelionError)


def from_validation(
    exc: _Validation,
    *,
    source: str,
    error: type[E],
    fix: str = "",
    path: str | Path | None = None,
    lineno: int | None = None,
) -> E:
    """The ``error`` for pydantic's ``exc``: its first problem, where it is and the fix, with ``field`` set.

    ``source`` says what was validated and how the message names the place: ``"option"`` (``option 'split': Input
    should be less than 1 (got 1.0)``, and the field is one of the error's ``options``), ``"field"`` (a trace, a
    label, a tool's arguments: ``field 'rounds.0.thesis': ...``), ``""`` (the caller names the place itself).
    An ``InvalidTraceError`` (or child) names field, path and line itself. ``fix`` ends the message (``"fix or
    remove this line"``); with ``path``, further problems are counted.
    """
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if path is not None and exc.error_count() > 1:
        message += f" (and {exc.error_count() - 1} more problems)"
    named = tuple(getattr((first.get("ctx") or {}).get("error"), "options", ()))
    if source == "option" and where is not None:
        value = first.get("input")
        message = f"{option(where)}: {message}" + ("" if isinstance(value, dict) else f" (got {value!r})")
        named = (where, *named)
    tail = f"; {fix}" if fix else ""
    if issubclass(error, InvalidTraceError):
        return error(message + tail, path=path, lineno=lineno, field=where, options=named)
    if source not in ("option", "") and where is not None:
        message = f"{source} {where!r}: {message}"
    return error(message + tail, field=where, options=named)


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


class LogWriteError(HegelionError):
    """The trace log cannot be written (a full disk, a read-only file system, no permission, over quota).

    ``records``: the finished traces that were not written to the log; ``saved_to``: the fallback file holding them
    (None when none could be written: ``save_error`` says why). ``error`` is the OSError the log write raised.
    """

    def __init__(
        self,
        path: str | Path,
        error: OSError,
        records: list | None = None,
        saved_to: str | Path | None = None,
        save_error: str | None = None,
    ):
        self.path = str(path)
        self.error = error
        self.records = list(records or [])
        self.saved_to = str(saved_to) if saved_to is not None else None
        self.save_error = save_error
        super().__init__(self._render())

    def _render(self) -> str:
        import errno as errnos

        code = errnos.errorcode.get(self.error.errno or 0, "?")
        head = f"cannot write the trace log {self.path}: {self.error.strerror or self.error} ({code})"
        count = len(self.records)
        if not count:
            return f"{head}; nothing was lost"
        what = f"{count} finished trace{'s' if count != 1 else ''}"
        if self.saved_to is None:
            return f"{head}; {what} could not be saved anywhere ({self.save_error})"
        return (
            f"{head}; {what} saved to {self.saved_to}; once there is room, append them to the log: "
            f"cat {self.saved_to} >> {self.path}"
        )


class TrainError(HegelionError):
    """Training cannot run as asked (rows of no known shape, no train split, an output folder holding another model,
    a base that cannot be loaded, a missing training package)."""


class TrainingInterrupted(TrainError):
    """Training stopped early on Ctrl-C; ``checkpoint`` is the folder ``resume`` continues from (None if none yet)."""

    def __init__(self, message: str, *, checkpoint: Path | None = None, step: int = 0):
        self.checkpoint = checkpoint
        self.step = step
        super().__init__(message)


class EvalError(HegelionError):
    """An evaluation cannot run as asked (unknown suite, no test split, models with different tokenizers, an output
    folder holding another evaluation, a model that cannot be loaded)."""


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
