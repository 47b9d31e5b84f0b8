"""Quality flags on crafted traces: each flag caught where it should be and only there, near-copies just under and
over the threshold, and flags stored on write, computed on read for a v2 line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.quality import (
    COPY_THRESHOLD,
    FLAGS,
    LOOP_TIMES,
    LOOP_WORDS,
    copy_similarity,
    flags_of,
    has_leak,
    has_loop,
    is_no_critique,
    quality_flags,
)
from hegelion_dspy.store import read_records
from hegelion_dspy.types import SCHEMA_VERSION, Contradiction, Round, TraceRecord

THESIS = (
    "Cities should ban private cars from their centres because cars crowd the streets, pollute the air and make "
    "walking dangerous for children and older people who live there."
)
CRITIQUE = (
    "The thesis ignores deliveries, disabled residents and the shops that depend on drivers; a ban without buses "
    "and exemptions would hurt the people it means to help."
)
SYNTHESIS = (
    "Cities should phase out private through-traffic in their centres, with exemptions for deliveries and disabled "
    "residents, better buses first, and a review of what happens to local shops after a year."
)


def record(rounds: list[dict[str, Any]] | None = None, **first: Any) -> TraceRecord:
    fields: dict[str, Any] = {"thesis": THESIS, "antithesis": CRITIQUE, "synthesis": SYNTHESIS, **first}
    contradictions = fields.pop("contradictions", [{"description": "ignores deliveries", "evidence": "shops"}])
    return TraceRecord(
        task="Should cities ban cars?",
        rounds=[
            Round(index=1, contradictions=[Contradiction(**c) for c in contradictions], **fields),
            *[Round(index=n, **r) for n, r in enumerate(rounds or [], start=2)],
        ],
        synthesis=(rounds or [fields])[-1]["synthesis"],
    )


def test_a_clean_trace_has_no_flag() -> None:
    assert quality_flags(record()) == []


# -- truncated --------------------------------------------------------------------------------------------------------


def test_a_synthesis_stopped_at_the_cap_is_truncated_in_any_round() -> None:
    assert quality_flags(record(truncated=["synthesis"])) == ["truncated"]
    later = {"thesis": SYNTHESIS, "antithesis": CRITIQUE, "synthesis": THESIS + " More.", "truncated": ["synthesis"]}
    assert "truncated" in quality_flags(record(rounds=[later]))


def test_a_truncated_thesis_or_antithesis_is_not_a_truncated_chosen_side() -> None:
    assert quality_flags(record(truncated=["thesis", "antithesis"])) == []


# -- copy -------------------------------------------------------------------------------------------------------------


def _edited(text: str, changes: int) -> str:
    """``text`` with its first ``changes`` words replaced."""
    words = text.split()
    return " ".join([f"other{i}" for i in range(changes)] + words[changes:])


def test_a_verbatim_copy_of_the_antithesis_or_the_thesis_is_a_copy() -> None:
    assert quality_flags(record(synthesis=CRITIQUE)) == ["copy"]
    assert quality_flags(record(synthesis="  " + THESIS.upper() + "\n")) == ["copy"]  # case and spacing normalised


def test_near_copies_just_over_the_threshold_are_copies_and_just_under_are_not() -> None:
    base = " ".join(f"{THESIS} {CRITIQUE}".split()[:50])  # 50 words: each replaced word costs 0.02 of similarity
    over, under = _edited(base, 4), _edited(base, 6)  # ratio 0.92 and 0.88
    assert copy_similarity(over, base) == pytest.approx(0.92)
    assert copy_similarity(under, base) == pytest.approx(0.88)
    assert copy_similarity(over, base) >= COPY_THRESHOLD > copy_similarity(under, base)
    assert quality_flags(record(thesis=base, synthesis=over)) == ["copy"]
    assert quality_flags(record(thesis=base, synthesis=under)) == []


def test_copy_similarity_bounds_never_hide_a_copy() -> None:
    # a cheap bound below the threshold must mean the exact ratio is below it too
    assert copy_similarity(THESIS, THESIS + " " + THESIS) < COPY_THRESHOLD
    assert copy_similarity("", THESIS) == 0.0
    assert copy_similarity(SYNTHESIS, THESIS) < 0.5


def test_round_two_copying_its_antithesis_flags_the_trace() -> None:
    later = {"thesis": SYNTHESIS, "antithesis": CRITIQUE + " Also buses.", "synthesis": CRITIQUE + " Also buses."}
    assert quality_flags(record(rounds=[later])) == ["copy"]


# -- no critique ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "antithesis",
    [
        "This is an excellent answer. I agree with every point; it is well-reasoned and clear.",
        "No contradictions found. The thesis is correct.",
        "Great job! Nothing to add.",
    ],
)
def test_praise_without_contradictions_is_no_critique(antithesis: str) -> None:
    assert quality_flags(record(antithesis=antithesis, contradictions=[])) == ["no_critique"]


@pytest.mark.parametrize(
    ("antithesis", "contradictions"),
    [
        ("A good answer, but it ignores deliveries.", []),  # praise with an objection
        ("It misses the disabled residents entirely.", []),  # an objection, no praise
        ("This is an excellent answer.", [{"description": "ignores deliveries"}]),  # a contradiction was found
        ("The thesis is correct, however the numbers are unsupported.", []),
    ],
)
def test_an_antithesis_that_objects_is_a_critique(antithesis: str, contradictions: list[dict[str, str]]) -> None:
    r = Round(index=1, thesis=THESIS, antithesis=antithesis, synthesis=SYNTHESIS, contradictions=contradictions)
    assert not is_no_critique(r)


# -- leak -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[[ ## synthesis ## ]]\nCities should phase out cars.",
        "Respond with the corresponding output fields, starting with the field `[[ ## thesis ## ]]`.",
        "Your input fields are: task. Then my answer.",
        # a sentence of our Antithesis signature's instructions (signatures.py), echoed by the model
        "Critique the thesis as a rigorous opponent. The thesis is fine.",
        # a coding-mode instruction
        "Review the proposed change as a strict code reviewer. Looks fine.",
    ],
)
def test_adapter_and_prompt_scaffolding_is_a_leak(text: str) -> None:
    assert has_leak(text)
    assert quality_flags(record(synthesis=SYNTHESIS + "\n" + text)) == ["leak"]


def test_prose_about_fields_and_answers_is_not_a_leak() -> None:
    assert not has_leak("The original answer. The fields near the river should stay green; [[ not a marker ]].")
    assert not has_leak(THESIS)


# -- loop -------------------------------------------------------------------------------------------------------------


def test_a_synthesis_saying_the_same_run_of_words_over_and_over_is_a_loop() -> None:
    sentence = "the buses must come first in every plan"  # 8 words
    assert has_loop(f"{SYNTHESIS} " + " ".join([sentence] * LOOP_TIMES))
    assert has_loop("the " * (LOOP_WORDS + LOOP_TIMES))  # a stutter
    assert quality_flags(record(synthesis=SYNTHESIS + " " + " ".join([sentence] * 5))) == ["loop"]


def test_a_run_said_fewer_times_or_a_loop_in_the_thesis_is_not_a_loop() -> None:
    sentence = "the buses must come first in every plan"
    assert not has_loop(f"{SYNTHESIS} " + " ".join([sentence] * (LOOP_TIMES - 1)))
    assert quality_flags(record(thesis=THESIS + " " + " ".join([sentence] * 6))) == []


def test_flags_come_in_the_order_of_FLAGS() -> None:
    found = quality_flags(record(synthesis="[[ ## synthesis ## ]] " + CRITIQUE, truncated=["synthesis"]))
    assert found == ["truncated", "copy", "leak"]
    assert list(FLAGS).index("truncated") < list(FLAGS).index("copy")


# -- stored on write, computed on read --------------------------------------------------------------------------------


def test_a_trace_built_by_the_collect_side_carries_its_flags() -> None:
    built = build_trace(task="t", thesis=THESIS, antithesis=CRITIQUE, synthesis=CRITIQUE)
    assert built.flags == ["copy"]
    assert built.schema_version == SCHEMA_VERSION == 3
    assert TraceRecord.model_validate_json(built.to_json_line()).flags == ["copy"]


def test_a_v2_line_reads_as_v3_and_gets_its_flags_on_read(tmp_path: Path) -> None:
    line = record(synthesis=CRITIQUE).model_dump(mode="json")
    line.pop("flags")
    line["schema_version"] = 2
    log = tmp_path / "v2.jsonl"
    log.write_text(json.dumps(line) + "\n")
    (read,) = read_records(log)
    assert read.schema_version == 3 and read.flags is None
    assert flags_of(read) == ["copy"]
    # the dict path (a line that needs upgrading through UPGRADES) gives the same
    line["created_at"] = "2026-11-24T10:00:00+00:00"
    log.write_text(json.dumps({**line, "schema_version": 1}) + "\n")
    (old,) = read_records(log)
    assert old.schema_version == 3 and flags_of(old) == ["copy"]


def test_stored_flags_are_used_as_stored() -> None:
    stored = record().model_copy(update={"flags": ["loop"]})
    assert flags_of(stored) == ["loop"]
