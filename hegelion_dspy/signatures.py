"""Thesis, Antithesis and Synthesis as DSPy signatures.

Docstrings and field descriptions are prompt text sent to the model. Coding mode swaps only the instructions
(via ``Signature.with_instructions``); the fields, and so the program logic, are shared.
"""

from __future__ import annotations

import dspy

from .types import Contradiction, Mode


class Thesis(dspy.Signature):
    """Answer the task directly and completely. Commit to a clear position and give the reasoning behind it."""

    task: str = dspy.InputField(desc="The question or task to answer.")
    thesis: str = dspy.OutputField(desc="Your complete answer to the task.")


class Antithesis(dspy.Signature):
    """Critique the thesis as a rigorous opponent. Find where it is wrong, inconsistent, incomplete or unsupported,
    and back each contradiction with evidence: a fact, a counter-example or a line of reasoning."""

    task: str = dspy.InputField(desc="The question or task the thesis answers.")
    thesis: str = dspy.InputField(desc="The answer under attack.")
    antithesis: str = dspy.OutputField(desc="Your critique of the thesis, in prose.")
    contradictions: list[Contradiction] = dspy.OutputField(
        desc="Each flaw you found, as a description plus the evidence for it. Empty if there is none."
    )


class Synthesis(dspy.Signature):
    """Resolve the conflict between the thesis and its critique. Keep what survives the critique, fix every valid
    contradiction, and give one improved, self-contained answer to the task (not a summary of the debate)."""

    task: str = dspy.InputField(desc="The question or task.")
    thesis: str = dspy.InputField(desc="The original answer.")
    antithesis: str = dspy.InputField(desc="The critique of that answer.")
    contradictions: list[Contradiction] = dspy.InputField(desc="The flaws the critique found, with evidence.")
    synthesis: str = dspy.OutputField(desc="The improved, complete answer to the task.")


# Coding mode: the same fields, instructions worded for software tasks.
CODING_INSTRUCTIONS: dict[str, str] = {
    "thesis": (
        "You are a senior software engineer. Solve the coding task: name the files and functions you would change, "
        "give a minimal diff or code, and say which tests prove the fix."
    ),
    "antithesis": (
        "Review the proposed change as a strict code reviewer. Find bugs, unhandled edge cases, missing or wrong "
        "tests, performance and security risks, and changes larger than needed. Back each contradiction with "
        "evidence: the line, input or scenario that breaks."
    ),
    "synthesis": (
        "Write the corrected solution: fix every valid review point, keep the diff minimal, name the files touched "
        "and the tests to add or run, and list the remaining risks."
    ),
}

SIGNATURES: dict[str, type[dspy.Signature]] = {"thesis": Thesis, "antithesis": Antithesis, "synthesis": Synthesis}


def signature_for(step: str, mode: Mode = "general") -> type[dspy.Signature]:
    """The signature of ``step`` ("thesis", "antithesis", "synthesis") worded for ``mode``."""
    base = SIGNATURES[step]
    if mode == "coding":
        worded: type[dspy.Signature] = base.with_instructions(CODING_INSTRUCTIONS[step])
        return worded
    return base
