"""The cheap checks on hand-made cases: contradiction coverage, copy detection, reading a judge's score."""

from __future__ import annotations

import difflib
from typing import Any

import pytest
from judge_cases import EMPTY, EVEN, GOOD, HALF, THESIS

from hegelion_dspy.checks import check_synthesis, parse_score, similarity
from hegelion_dspy.errors import LMError

# -- cheap checks --------------------------------------------------------------------------------------------------


def test_a_synthesis_that_fixes_every_contradiction_covers_them_all() -> None:
    checks = check_synthesis(THESIS, GOOD, [EMPTY, EVEN])
    assert (checks.coverage, checks.missed, checks.is_copy) == (1.0, (), False)
    assert checks.similarity < 0.9


def test_a_synthesis_that_ignores_one_contradiction_names_it() -> None:
    checks = check_synthesis(THESIS, HALF, [EMPTY, EVEN])
    assert checks.coverage == 0.5
    assert checks.missed == (EVEN.description,)


def test_word_forms_still_match() -> None:
    # "ignores edge cases" is addressed by "handles the edge case": edge + case, 2 of 3 keywords.
    assert check_synthesis("x", "It now handles the edge case.", ["It ignores edge cases."]).coverage == 1.0
    assert check_synthesis("x", "It is fast.", ["It ignores edge cases."]).coverage == 0.0


@pytest.mark.parametrize(
    "synthesis",
    [THESIS, "  " + THESIS.upper() + "\n", THESIS.replace("middle", "centre")],
    ids=["identical", "case-and-space", "one-word-changed"],
)
def test_a_near_copy_of_the_thesis_is_a_copy(synthesis: str) -> None:
    checks = check_synthesis(THESIS, synthesis, [EMPTY])
    assert checks.is_copy and checks.similarity >= 0.9


def test_no_contradictions_means_nothing_to_miss() -> None:
    checks = check_synthesis(THESIS, GOOD, [])
    assert (checks.coverage, checks.missed) == (1.0, ())


def test_clearly_different_long_texts_skip_the_quadratic_exact_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exact_ratio(self: difflib.SequenceMatcher) -> float:
        raise AssertionError("the exact (quadratic) ratio was computed for texts that are clearly different")

    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", no_exact_ratio)
    thesis = "alpha beta gamma. " * 10_000
    synthesis = "delta epsilon zeta. " * 10_000
    assert not check_synthesis(thesis, synthesis).is_copy


def test_only_the_first_20000_characters_are_compared() -> None:
    same_start = "alpha beta gamma. " * 2_000  # 36,000 characters
    assert similarity(same_start + "x" * 30_000, same_start + "y" * 30_000) == 1.0  # the difference lies past the cap
    assert similarity(same_start[:19_000] + "x" * 5_000, same_start[:19_000] + "y" * 5_000) < 1.0


# -- score parsing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.7", 0.7),
        (0.7, 0.7),
        ("Score: 0.85", 0.85),
        ("7/10", 0.7),
        ("4 / 5", 0.8),
        ("70%", 0.7),
        ("7", 0.7),
        ("85", 0.85),
        ("1", 1.0),
        ("250", 1.0),
        ("-0.3", 0.0),
    ],
)
def test_parse_score_reads_what_judges_write(raw: Any, expected: float) -> None:
    assert parse_score(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["excellent", "", None, True])
def test_parse_score_without_a_number_is_an_lm_error(raw: Any) -> None:
    with pytest.raises(LMError, match="not a number"):
        parse_score(raw)


@pytest.mark.parametrize("raw", ["1.5", "7.5", 2.5])
def test_a_fraction_above_one_without_a_scale_is_refused_not_guessed(raw: Any) -> None:
    # 1.5 could be a slip on the 0..1 scale or 1.5 out of 5: a guess would put a made-up score into the data
    with pytest.raises(LMError, match="above 1 with no scale"):
        parse_score(raw)
