"""The prompt workflow: the answers so far (PartialTrace) choose the next step; each step rendered for an agent (one
plain-text answer format) or as the program sends it (sampling rounds); answers read as the program reads replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dspy
import pytest

from hegelion_dspy.collect.partial import PartialTrace
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.collect.workflow import (
    agent_prompt,
    dialectic_brief,
    prompt_text,
    read_answers,
    read_reply,
    render_step,
)
from hegelion_dspy.errors import InvalidTraceError, LMError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import Dialectic, load_program
from hegelion_dspy.signatures import CODING_INSTRUCTIONS
from hegelion_dspy.types import Contradiction, TraceFailure

TASK = "Is 1 a prime number?"


def test_the_sampling_prompt_is_what_the_program_sends_its_lm(scripted_lm: ScriptedLM) -> None:
    program = Dialectic()
    with dspy.context(lm=scripted_lm):
        program(task=TASK)
    sent_to_lm = scripted_lm.calls[0][1]

    following = PartialTrace().next_step(TASK, 1)
    assert following is not None and (following.step, following.round) == ("thesis", 1)
    assert render_step(program, following.step, following.inputs).messages == sent_to_lm


def test_the_agent_prompt_has_instructions_input_and_one_answer_format() -> None:
    prompt = agent_prompt(Dialectic(), "antithesis", {"task": TASK, "thesis": "Yes."})
    text = prompt.text
    assert [m["role"] for m in prompt.messages] == ["user"]
    assert text.startswith("## Instructions\n\nCritique the thesis as a rigorous opponent.")
    assert (
        text.index("## Instructions") < text.index("## Your input") < text.index("Yes.") < text.index("## Your answer")
    )
    assert text.count("plain text") == 1 and "[[ ##" not in text and "maxLength" not in text
    assert "contradiction" in text.split("## Your answer")[1]


def test_coding_mode_serves_coding_instructions() -> None:
    text = agent_prompt(Dialectic(mode="coding"), "thesis", {"task": "Fix the off-by-one in pagination"}).text
    assert CODING_INSTRUCTIONS["thesis"] in " ".join(text.split())


def test_an_optimized_programs_instructions_and_demos_are_served(tmp_path: Path) -> None:
    program = Dialectic()
    program.antithesis.signature = program.antithesis.signature.with_instructions("TUNED: attack the weakest claim.")
    program.antithesis.demos = [
        dspy.Example(
            task="Is 2 prime?",
            thesis="No.",
            antithesis="DEMO CRITIQUE: 2 has exactly two divisors.",
            contradictions=[Contradiction(description="2 is prime", evidence="divisors 1 and 2")],
        ).with_inputs("task", "thesis")
    ]
    program.save(str(tmp_path / "program.json"))
    loaded = load_program(tmp_path / "program.json")

    for_agent = agent_prompt(loaded, "antithesis", {"task": TASK, "thesis": "Yes, 1 is prime."}).text
    for_lm = render_step(loaded, "antithesis", {"task": TASK, "thesis": "Yes, 1 is prime."})

    assert "TUNED: attack the weakest claim." in for_agent
    assert "## Example 1" in for_agent and "DEMO CRITIQUE: 2 has exactly two divisors." in for_agent
    assert "- 2 is prime (evidence: divisors 1 and 2)" in for_agent
    assert [m["role"] for m in for_lm.messages] == ["system", "user", "assistant", "user"]


def _answer(answers: PartialTrace, step: str, index: int) -> None:
    texts = {"thesis": "Yes.", "antithesis": f"Critique {index}.", "synthesis": f"No, take {index}."}
    found = [{"description": "1 has one divisor", "evidence": "primes have exactly two"}]
    answers.add(step, index, {step: texts[step], "contradictions": found if step == "antithesis" else None})  # type: ignore[arg-type]


def test_the_steps_follow_the_answers_through_two_rounds() -> None:
    answers = PartialTrace()
    seen = []
    while (following := answers.next_step(TASK, 2)) is not None:
        seen.append((following.round, following.step))
        if following.round == 2 and following.step == "synthesis":
            assert following.inputs["thesis"] == "No, take 1."  # round 2's thesis is round 1's synthesis
            assert following.inputs["antithesis"] == "Critique 2."
        assert answers.steps_answered() == len(seen) - 1
        _answer(answers, following.step, following.round)
        assert len(seen) < 10

    assert seen == [(1, "thesis"), (1, "antithesis"), (1, "synthesis"), (2, "antithesis"), (2, "synthesis")]
    arguments = answers.log_trace_arguments()
    assert arguments["rounds"] == [
        {"antithesis": "Critique 2.", "contradictions": arguments["contradictions"], "synthesis": "No, take 2."}
    ]
    assert PartialTrace.from_json(answers.to_json()) == answers
    record = build_trace(task=TASK, **arguments)  # exactly what log_trace takes
    assert [r.synthesis for r in record.rounds] == ["No, take 1.", "No, take 2."]


def test_the_synthesis_step_carries_the_contradictions() -> None:
    answers = PartialTrace.from_answers(thesis="Yes.", antithesis="Wrong.", contradictions=[{"description": "ONE"}])
    following = answers.next_step(TASK, 1)
    assert following is not None and following.step == "synthesis"
    assert "- ONE" in agent_prompt(Dialectic(), following.step, following.inputs).text


def test_a_complete_trace_has_no_next_step() -> None:
    assert PartialTrace.from_answers(thesis="a", antithesis="b", synthesis="c").next_step(TASK, 1) is None


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
def test_answers_that_skip_a_step_name_the_field(partial: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidTraceError) as info:
        PartialTrace.from_answers(**partial).next_step(TASK, 3)
    assert info.value.field == field


def test_a_reply_is_read_by_its_markers_or_whole() -> None:
    program = Dialectic()
    assert read_reply(program, "thesis", "  Plain answer. ") == {"thesis": "Plain answer."}

    marked = '[[ ## antithesis ## ]]\nIt is wrong.\n\n[[ ## contradictions ## ]]\n[{"description": "d"}]\n\n'
    fields = read_reply(program, "antithesis", marked + "[[ ## completed ## ]]")
    assert fields["antithesis"] == "It is wrong." and fields["contradictions"][0].description == "d"

    prose = read_reply(program, "antithesis", "Antithesis: it is wrong.\n\n- 1 has one divisor\n- primes have two")
    assert prose["antithesis"].startswith("it is wrong.")
    assert [c.description for c in prose["contradictions"]] == ["1 has one divisor", "primes have two"]

    broken = read_reply(program, "antithesis", "[[ ## nonsense ## ]]\nStill a critique.")
    assert broken["antithesis"] == "Still a critique."

    with pytest.raises(LMError, match="empty"):
        read_reply(program, "synthesis", "  ")


def test_an_agents_answers_keep_explicit_contradictions_over_those_read_from_the_text() -> None:
    answers = read_answers(
        Dialectic(),
        thesis="Yes.",
        antithesis="Wrong.\n\n- from a bullet",
        contradictions=[{"description": "explicit"}],
        rounds=[{"antithesis": "Again.\n\n- round two bullet"}],
    )
    assert [c.description for c in answers.contradictions] == ["explicit"]
    assert [c.description for c in answers.rounds[0].contradictions] == ["round two bullet"]


def test_a_failed_run_keeps_its_finished_rounds() -> None:
    answers = PartialTrace()
    for step, index in [("thesis", 1), ("antithesis", 1), ("synthesis", 1), ("antithesis", 2)]:
        _answer(answers, step, index)
    failure = TraceFailure(step="synthesis", round=2, type="LMError", message="the client declined")

    record = answers.to_trace(TASK, mode="general", source="mcp", model="m", failure=failure)

    assert (record.status, len(record.rounds), record.rounds[0].synthesis) == ("failed", 1, "No, take 1.")
    assert record.metadata == {"partial_round": {"antithesis": "Critique 2."}}
    ok = PartialTrace.from_answers(thesis="a", antithesis="b", synthesis="c")
    assert ok.to_trace(TASK, mode="coding", source="mcp", model="m", adapter="FallbackAdapter").ok


def test_the_dialectic_brief_holds_the_whole_workflow() -> None:
    brief = dialectic_brief(Dialectic(), TASK, iterations=3)
    assert TASK in brief and "Answer the task directly" in brief and "rigorous opponent" in brief
    assert "2 more rounds" in brief and "rounds: rounds 2 and later" in brief and "`log_trace`" in brief
    single = dialectic_brief(Dialectic(), TASK)
    assert "more round" not in single and "rounds:" not in single


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
