"""The prompt workflow: each step's prompt rendered from the program, and the partial trace driving the next step."""

from __future__ import annotations

from pathlib import Path

import dspy
import pytest

from hegelion_dspy.errors import InvalidTraceError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import Dialectic, load_program
from hegelion_dspy.signatures import CODING_INSTRUCTIONS
from hegelion_dspy.types import Contradiction
from hegelion_dspy.workflow import next_step, prompt_text, read_answer, render_step

TASK = "Is 1 a prime number?"


def test_the_thesis_prompt_is_what_the_program_sends_its_lm(scripted_lm: ScriptedLM) -> None:
    program = Dialectic()
    with dspy.context(lm=scripted_lm):
        program(task=TASK)
    sent_to_lm = scripted_lm.calls[0][1]

    prompt = next_step(program, TASK)

    assert prompt is not None
    assert (prompt.step, prompt.round, prompt.outputs) == ("thesis", 1, ("thesis",))
    assert prompt.messages == sent_to_lm


def test_the_text_has_instructions_then_the_input() -> None:
    prompt = next_step(Dialectic(), TASK)
    assert prompt is not None
    text = prompt.text
    assert text.startswith("## Instructions\n")
    assert "Answer the task directly and completely." in text
    assert text.index("## Instructions") < text.index("## Your input") < text.index(TASK)


def test_coding_mode_serves_coding_instructions() -> None:
    prompt = next_step(Dialectic(mode="coding"), "Fix the off-by-one in pagination")
    assert prompt is not None
    assert CODING_INSTRUCTIONS["thesis"] in " ".join(prompt.text.split())


def test_an_optimized_programs_instructions_and_demos_are_served(tmp_path: Path) -> None:
    program = Dialectic()
    program.antithesis.signature = program.antithesis.signature.with_instructions("TUNED: attack the weakest claim.")
    program.antithesis.demos = [
        dspy.Example(
            task="Is 2 prime?",
            thesis="No.",
            antithesis="DEMO CRITIQUE: 2 has exactly two divisors.",
            contradictions=[Contradiction(description="2 is prime")],
        ).with_inputs("task", "thesis")
    ]
    program.save(str(tmp_path / "program.json"))
    loaded = load_program(tmp_path / "program.json")

    prompt = next_step(loaded, TASK, thesis="Yes, 1 is prime.")

    assert prompt is not None and prompt.step == "antithesis"
    assert "TUNED: attack the weakest claim." in prompt.text
    assert "## Example 1: input" in prompt.text
    assert "DEMO CRITIQUE: 2 has exactly two divisors." in prompt.text
    assert [m["role"] for m in prompt.messages] == ["system", "user", "assistant", "user"]


def test_the_steps_follow_the_partial_trace_through_two_rounds() -> None:
    program = Dialectic()
    contradictions = [{"description": "1 has one divisor", "evidence": "primes have exactly two"}]
    seen = []
    state: dict = {}
    answers = {
        (1, "thesis"): {"thesis": "Yes."},
        (1, "antithesis"): {"antithesis": "Wrong.", "contradictions": contradictions},
        (1, "synthesis"): {"synthesis": "No, 1 is not prime."},
    }
    while (prompt := next_step(program, TASK, iterations=2, **state)) is not None:
        seen.append((prompt.round, prompt.step))
        if prompt.round == 1:
            state.update(answers[(1, prompt.step)])
        elif prompt.step == "antithesis":
            state["rounds"] = [{"antithesis": "Still vague.", "contradictions": []}]
        else:
            assert "No, 1 is not prime." in prompt.text  # round 2's thesis is round 1's synthesis
            assert "Still vague." in prompt.text
            state["rounds"][-1]["synthesis"] = "No: a prime has exactly two divisors, 1 has one."
        assert len(seen) < 10

    assert seen == [(1, "thesis"), (1, "antithesis"), (1, "synthesis"), (2, "antithesis"), (2, "synthesis")]


def test_the_synthesis_prompt_carries_the_contradictions() -> None:
    prompt = next_step(
        Dialectic(), TASK, thesis="Yes.", antithesis="Wrong.", contradictions=[{"description": "ONE DIVISOR"}]
    )
    assert prompt is not None and prompt.step == "synthesis"
    assert "ONE DIVISOR" in prompt.text


def test_a_complete_trace_has_no_next_step() -> None:
    assert next_step(Dialectic(), TASK, thesis="a", antithesis="b", synthesis="c") is None


@pytest.mark.parametrize(
    ("partial", "field"),
    [
        ({"antithesis": "b"}, "antithesis"),
        ({"synthesis": "c"}, "synthesis"),
        ({"thesis": "a", "synthesis": "c"}, "synthesis"),
        ({"thesis": "a", "antithesis": "b", "rounds": [{"antithesis": "x"}]}, "rounds"),
        ({"thesis": "a", "antithesis": "b", "synthesis": "c", "rounds": [{"synthesis": "x"}]}, "rounds.0.antithesis"),
        (
            {"thesis": "a", "antithesis": "b", "synthesis": "c", "rounds": [{"antithesis": "x"}, {"antithesis": "y"}]},
            "rounds.0.synthesis",
        ),
        ({"thesis": "a", "antithesis": "b", "contradictions": [{"evidence": "no description"}]}, "contradictions"),
    ],
)
def test_a_partial_trace_that_skips_a_step_names_the_field(partial: dict, field: str) -> None:
    with pytest.raises(InvalidTraceError) as info:
        next_step(Dialectic(), TASK, iterations=3, **partial)
    assert info.value.field == field


def test_read_answer_takes_plain_text_or_marked_up_fields() -> None:
    program = Dialectic()
    assert read_answer(program, "thesis", "  Plain answer. ") == {"thesis": "Plain answer."}

    marked = '[[ ## antithesis ## ]]\nIt is wrong.\n\n[[ ## contradictions ## ]]\n[{"description": "d"}]\n\n'
    fields = read_answer(program, "antithesis", marked + "[[ ## completed ## ]]")
    assert fields["antithesis"] == "It is wrong."
    assert fields["contradictions"][0].description == "d"

    with pytest.raises(InvalidTraceError) as info:
        read_answer(program, "antithesis", "[[ ## nonsense ## ]]\nx")
    assert info.value.field == "antithesis"


def test_prompt_text_labels_examples() -> None:
    text = prompt_text(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "U2"},
        ]
    )
    expected = (
        "## Instructions\n\nS\n\n## Example 1: input\n\nU1\n\n## Example 1: answer\n\nA1\n\n## Your input\n\nU2\n"
    )
    assert text == expected


def test_render_step_uses_the_given_inputs() -> None:
    prompt = render_step(Dialectic(), "thesis", {"task": "UNIQUE-TASK-TEXT"}, round_index=3)
    assert prompt.round == 3
    assert "UNIQUE-TASK-TEXT" in prompt.messages[-1]["content"]
