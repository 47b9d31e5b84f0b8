"""errors.from_validation: one way from pydantic's ValidationError to our errors, with the field name carried; the CLI
says the options an error names as its flags from those names, not by reading the text."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError, model_validator

from hegelion_dspy.cli.options import as_flags, flag_of
from hegelion_dspy.curate.options import ExportOptions
from hegelion_dspy.errors import (
    ExportError,
    HegelionError,
    InvalidLabelError,
    InvalidTraceError,
    OptionProblem,
    from_validation,
    option,
)


class Probe(BaseModel):
    split: float = Field(default=0.5, lt=1)
    names: list[int] = []
    a: bool = False
    b: bool = False

    @model_validator(mode="after")
    def _not_both(self) -> Probe:
        if self.a and self.b:
            raise OptionProblem(f"{option('a')} and {option('b')} exclude each other; drop one", options=("a", "b"))
        return self


def _problem(**values: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Probe.model_validate(values)
    return caught.value


def test_an_option_is_named_quoted_and_listed_in_the_error() -> None:
    error = from_validation(_problem(split=1.5), source="option", error=ExportError)
    assert isinstance(error, ExportError)
    assert str(error) == "option 'split': Input should be less than 1 (got 1.5)"
    assert (error.field, error.options) == ("split", ("split",))


def test_a_validator_naming_options_hands_them_to_the_error() -> None:
    error = from_validation(_problem(a=True, b=True), source="option", error=ExportError)
    assert str(error) == "option 'a' and option 'b' exclude each other; drop one"
    assert (error.field, error.options) == (None, ("a", "b"))


def test_a_trace_field_names_path_line_field_and_counts_the_other_problems() -> None:
    error = from_validation(
        _problem(split=2, names=["x"]), source="field", error=InvalidTraceError, fix="fix it", path="t.jsonl", lineno=3
    )
    assert isinstance(error, InvalidTraceError)
    assert str(error) == "t.jsonl:3: field 'split': Input should be less than 1 (and 1 more problems); fix it"
    assert (error.field, error.path, error.lineno) == ("split", "t.jsonl", 3)


def test_a_label_error_is_built_the_same_way() -> None:
    error = from_validation(_problem(names=["x"]), source="field", error=InvalidLabelError, path="l", lineno=1)
    assert isinstance(error, InvalidLabelError)
    assert error.field == "names.0"


@pytest.mark.parametrize(("source", "expected"), [("field", "field 'names.0': "), ("", "")])
def test_other_errors_name_the_field_as_asked(source: str, expected: str) -> None:
    error = from_validation(_problem(names=["x"]), source=source, error=HegelionError)
    assert str(error) == expected + "Input should be a valid integer, unable to parse string as an integer"
    assert error.field == "names.0"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"format": "csv"}, "--format: Input should be"),
        ({"sources": ["web"]}, "--source: Input should be 'cli', 'mcp' or 'python'"),
        ({"labels": False, "reviewed_only": True}, "--reviewed-only and --labels work on labels, and --no-labels"),
        ({"format": "dpo", "system": "Be brief."}, "--system applies to the formats dpo-chat and sft-chat only"),
    ],
)
def test_the_cli_says_the_options_an_export_error_names_as_flags(changes: dict[str, object], said: str) -> None:
    with pytest.raises(ExportError) as caught:
        ExportOptions.of(**changes)
    assert said in as_flags(str(caught.value), caught.value.options)


def test_flags_come_from_the_option_names_only() -> None:
    assert [flag_of(n) for n in ("labels_file", "sources.0", "dedupe", "min_chars")] == [
        "--labels",
        "--source",
        "--keep-duplicates",
        "--min-chars",
    ]
    text = "x exists; set option 'force' to replace it, see option 'format'"
    assert as_flags(text, ["force"]) == "x exists; pass --force to replace it, see option 'format'"
