"""Options shared by the hegelion commands, declared once: the model and its server, prompt files, compiled
programs, and the flags made from a pydantic model's fields (``ExportOptions``, ``TraceFilter``), so an option added to
the library's model appears on every command that takes it."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..collect.spec import RunSpec
from ..errors import option

F = TypeVar("F", bound=Callable[..., object])

# The CLI spellings of ExportOptions / TraceFilter fields whose flag is not simply --field-name.
FLAG_NAMES: dict[str, tuple[str, ...]] = {
    "format": ("--format", "-f"),
    "models": ("--model",),
    "exclude_models": ("--exclude-model",),
    "sources": ("--source",),
    "tags": ("--tag",),
    "exclude_tags": ("--exclude-tag",),
    "labels_file": ("--labels",),
    "allow_flags": ("--allow-flag",),
}
INVERTED = {"dedupe": "--keep-duplicates", "labels": "--no-labels"}  # fields that default to True, off by a flag


def flag_of(name: str) -> str:
    """The flag of the library option ``name``: ``labels_file`` -> ``--labels``, ``sources.0`` -> ``--source``."""
    field = name.split(".")[0]
    return INVERTED.get(field) or FLAG_NAMES.get(field, (_flag(field),))[0]


def as_flags(message: str, options: Iterable[str]) -> str:
    """A library message in the command line's words: each of the ``options`` it names (an error's ``options``) as
    its flag, "set option 'include_demo'" -> "pass --include-demo", "option 'format'" -> "--format"."""
    for name in options:
        message = message.replace(f"set {option(name)}", f"pass {flag_of(name)}").replace(option(name), flag_of(name))
    return message


prompts_option = click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A prompts file: one prompt a line, or JSONL with a 'prompt' field.",
)


def format_option(what: str) -> Callable[[F], F]:
    """``--format text|json``: what the command prints, in words (``what``) or as JSON."""
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help=what
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bounds(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in info.metadata:
        for attr, key in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max")):
            value = getattr(item, attr, None)
            if value is not None and isinstance(item, annotated_types.BaseMetadata):
                found[key] = value
                if attr in ("gt", "lt"):
                    found[f"{key}_open"] = True
    return found


def _click_type(annotation: Any, info: FieldInfo) -> tuple[Any, bool]:
    """(click type, multiple) for a field's annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
        origin = get_origin(annotation)
    if origin is list:
        inner, _ = _click_type(get_args(annotation)[0], info)
        return inner, True
    if origin is Literal:
        return click.Choice([str(a) for a in get_args(annotation)]), False
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):  # Annotated[...]
        return _click_type(get_args(annotation)[0], info)
    if annotation is int:
        bounds = _bounds(info)
        return (click.IntRange(**bounds) if bounds else click.INT), False
    if annotation is float:
        bounds = _bounds(info)
        return (click.FloatRange(**bounds) if bounds else click.FLOAT), False
    if origin is tuple:
        inner, _ = _click_type(get_args(annotation)[0], info)
        return inner, True
    if annotation is datetime:
        return click.STRING, False  # pydantic parses dates and date-times, with or without a zone
    if annotation is Path:
        return click.Path(path_type=Path, dir_okay=False), False
    return click.STRING, False


def fields_as_options(
    model: type[BaseModel],
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    names: Mapping[str, tuple[str, ...]] | None = None,
    inverted: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Decorate a click command with one option per field of ``model``, named ``--field-name``.

    ``names`` gives a field other spellings (``{"format": ("--format", "-f")}``); ``inverted`` turns a field that
    defaults to True into an off-switch (``{"dedupe": "--keep-duplicates"}``). Lists become repeatable options.
    Every option defaults to None (not given), so ``given_options`` hands the model only what the user chose and the
    model's own defaults (shown in the help) apply to the rest.
    """
    names = dict(names or {})
    inverted = dict(inverted or {})
    wanted = [n for n in (only or model.model_fields) if n not in set(skip)]

    def decorate(command: F) -> F:
        for name in reversed(wanted):
            info = model.model_fields[name]
            help_text = info.description or ""
            if name in inverted:
                option = click.option(inverted[name], f"{name}__off", is_flag=True, default=None, help=help_text)
            elif info.annotation is bool:
                option = click.option(
                    *names.get(name, (_flag(name),)), name, is_flag=True, default=None, help=help_text
                )
            else:
                kind, multiple = _click_type(info.annotation, info)
                default = info.get_default(call_default_factory=True)
                shown = f" [default: {default}]" if default not in (None, [], "") and not multiple else ""
                option = click.option(
                    *names.get(name, (_flag(name),)),
                    name,
                    type=kind,
                    multiple=multiple,
                    default=None,
                    help=help_text + (" Repeatable." if multiple else "") + shown,
                )
            command = option(command)
        return command

    return decorate


def given_options(params: Mapping[str, object], model: type[BaseModel]) -> dict[str, object]:
    """The fields of ``model`` the user gave on the command line (from ``fields_as_options``' parameters)."""
    given: dict[str, object] = {}
    for key, value in params.items():
        name, _, off = key.partition("__")
        if name not in model.model_fields or value is None or value == ():
            continue
        if off:
            if value:
                given[name] = False
        else:
            given[name] = list(value) if isinstance(value, tuple) else value
    return given


# The CLI spellings of RunSpec fields whose flag is not simply --field-name.
RUN_FLAG_NAMES: dict[str, tuple[str, ...]] = {
    "model": ("--model", "-m"),
    "iterations": ("--iterations", "-n"),
    "tags": ("--tag",),
}


def run_options(*names: str) -> Callable[[F], F]:
    """One option per named ``RunSpec`` field (``hegelion run``, ``hegelion optimize``): ``given_options(params,
    RunSpec)`` reads them back."""
    return fields_as_options(RunSpec, only=names, names=RUN_FLAG_NAMES)


model_option = run_options("model")
max_tokens_option = run_options("max_tokens")
api_base_option = run_options("api_base")
program_option = run_options("program")
