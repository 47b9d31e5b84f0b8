"""The prompt workflow: a dialectic played one step at a time by someone outside the program.

Two players use it, both through the MCP server:

- an agent with no model to lend (an IDE agent without MCP sampling) answers each step itself. ``agent_prompt``
  renders a step for it from the program's predictor (its instructions, demos and field descriptions, so a compiled
  program's tuned prompts are served) with one answer format, stated once: plain text. ``dialectic_brief`` tells an
  agent the whole workflow in one read.
- the client's own model over MCP sampling on protocol 2026-07-28, where a server cannot wait for a reply mid-call:
  each round asks for one step exactly as the program would send it (``render_step``) and reads the reply with
  ``read_reply`` (the field markers when they parse, else the whole reply: never a second request).

Both keep the answers so far as a ``PartialTrace`` (``partial.py``), which has the shape ``log_trace`` takes and says
which step comes next.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LMError
from ..types import Contradiction, Step
from .partial import PartialTrace

if TYPE_CHECKING:
    import dspy

    from ..program import Dialectic

OUTPUTS: dict[Step, tuple[str, ...]] = {
    "thesis": ("thesis",),
    "antithesis": ("antithesis", "contradictions"),
    "synthesis": ("synthesis",),
}

# The one answer format of the agent prompts: what to write for each step, after the step's own instructions.
LIST_CONTRADICTIONS = (
    "List each flaw separately as a contradiction: a one-line description and the evidence that shows it (none if "
    "the thesis holds)."
)
ANSWER_FORMAT: dict[Step, str] = {
    "thesis": "Write your thesis as plain text: your complete answer to the task.",
    "antithesis": f"Write your antithesis as plain text: your critique of the thesis, in prose. {LIST_CONTRADICTIONS}",
    "synthesis": "Write your synthesis as plain text: the improved, complete answer to the task.",
}


# -- reading answers ----------------------------------------------------------------------------------------------


def read_reply(program: Dialectic, step: Step, text: str) -> dict[str, object]:
    """The output fields of an answer to ``step``, read as the program reads its LM's replies: by DSPy's field markers
    when they parse, else the whole text as the step's answer (an antithesis's contradictions from its bullet lines).
    Never fails on format, never asks again; an empty answer is an LMError."""
    from dspy.utils.exceptions import AdapterParseError

    from ..lms.adapters import FallbackAdapter

    try:
        return FallbackAdapter().parse(_predictor(program, step).signature, text)
    except AdapterParseError:
        raise LMError(f"the {step} answer is empty") from None


def read_answers(
    program: Dialectic,
    *,
    thesis: str | None = None,
    antithesis: str | None = None,
    contradictions: Sequence[object] | None = None,
    synthesis: str | None = None,
    rounds: Sequence[Mapping[str, object]] = (),
) -> PartialTrace:
    """An agent's answers so far as a PartialTrace, each read by ``read_reply``; contradictions passed explicitly win
    over those read from the antithesis."""

    def read(step: Step, text: object, found: object = None) -> tuple[str | None, object]:
        if not isinstance(text, str) or not text.strip():  # nothing to read (PartialTrace refuses what is malformed)
            return (text if isinstance(text, str) else None), found
        fields = read_reply(program, step, text)
        return str(fields.get(step) or text), (found or fields.get("contradictions") or [])

    thesis, _ = read("thesis", thesis)
    antithesis, found = read("antithesis", antithesis, contradictions)
    synthesis, _ = read("synthesis", synthesis)
    later = []
    for r in rounds:
        entry = dict(r)
        entry["antithesis"], entry["contradictions"] = read("antithesis", r.get("antithesis"), r.get("contradictions"))
        entry["synthesis"], _ = read("synthesis", r.get("synthesis"))
        later.append(entry)
    return PartialTrace.from_answers(
        thesis=thesis, antithesis=antithesis, contradictions=found, synthesis=synthesis, rounds=later
    )


# -- rendering a step ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPrompt:
    """One step's prompt: chat messages, plus the fields the answer must give."""

    step: Step
    round: int
    messages: list[dict[str, str]]
    outputs: tuple[str, ...]

    @property
    def text(self) -> str:
        """The prompt as one text (the messages of a chat prompt joined by ``prompt_text``)."""
        if len(self.messages) == 1:
            return self.messages[0]["content"]
        return prompt_text(self.messages)


def prompt_text(messages: Sequence[Mapping[str, str]]) -> str:
    """Chat messages as one text: the system message as instructions, demo pairs as examples, the last as input."""
    parts: list[str] = []
    body = list(messages)
    if body and body[0]["role"] == "system":
        parts.append("## Instructions\n\n" + body.pop(0)["content"].strip())
    last = body.pop() if body else None
    example = 0
    for message in body:
        if message["role"] == "user":
            example += 1
            parts.append(f"## Example {example}: input\n\n" + message["content"].strip())
        else:
            parts.append(f"## Example {example}: answer\n\n" + message["content"].strip())
    if last is not None:
        parts.append("## Your input\n\n" + last["content"].strip())
    return "\n\n".join(parts) + "\n"


def _predictor(program: Dialectic, step: Step) -> dspy.Predict:
    predictor: dspy.Predict = getattr(program, step)
    return predictor


def render_step(
    program: Dialectic,
    step: Step,
    inputs: Mapping[str, object],
    *,
    round_index: int = 1,
    adapter: dspy.Adapter | None = None,
) -> StepPrompt:
    """``step``'s prompt for ``inputs`` exactly as the program sends it to an LM through ``adapter`` (default: DSPy's
    ChatAdapter): the predictor's instructions, fields and demos."""
    import dspy

    predictor = _predictor(program, step)
    adapter = adapter or dspy.ChatAdapter()
    messages = adapter.format(predictor.signature, list(predictor.demos), dict(inputs))
    plain = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return StepPrompt(step=step, round=round_index, messages=plain, outputs=OUTPUTS[step])


def agent_prompt(program: Dialectic, step: Step, inputs: Mapping[str, object], *, round_index: int = 1) -> StepPrompt:
    """``step``'s prompt for an agent that answers it itself: the predictor's instructions, its demos as worked
    examples, the inputs, and ``ANSWER_FORMAT`` - one user message."""
    predictor = _predictor(program, step)
    signature = predictor.signature
    parts = ["## Instructions", _instructions(signature)]
    for n, demo in enumerate(_complete_demos(predictor), start=1):
        parts += [f"## Example {n}", _fields(signature.input_fields, demo), f"Answer:\n{_demo_answer(signature, demo)}"]
    parts += ["## Your input", _fields(signature.input_fields, inputs), "## Your answer", ANSWER_FORMAT[step]]
    text = "\n\n".join(p for p in parts if p) + "\n"
    return StepPrompt(step=step, round=round_index, messages=[{"role": "user", "content": text}], outputs=OUTPUTS[step])


def _instructions(signature: type[dspy.Signature]) -> str:
    return " ".join(textwrap.dedent(signature.instructions).split())


def _complete_demos(predictor: dspy.Predict) -> list[Mapping[str, object]]:
    signature = predictor.signature
    return [
        d
        for d in predictor.demos
        if all(d.get(name) for name in signature.input_fields) and d.get(_main_output(signature))
    ]


def _main_output(signature: type[dspy.Signature]) -> str:
    return next(name for name in signature.output_fields if name != "contradictions")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _fields(fields: Mapping[str, object], values: Mapping[str, object]) -> str:
    return "\n\n".join(f"{_label(name)}:\n{_value(values.get(name))}" for name in fields if _value(values.get(name)))


def _value(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {_value(item)}" for item in value if _value(item))
    if isinstance(value, Contradiction):
        return f"{value.description} (evidence: {value.evidence})" if value.evidence else value.description
    if isinstance(value, Mapping):
        return _value(
            Contradiction(description=str(value.get("description", "")), evidence=str(value.get("evidence") or ""))
        )
    return "" if value is None else str(value).strip()


def _demo_answer(signature: type[dspy.Signature], demo: Mapping[str, object]) -> str:
    main = _main_output(signature)
    text = _value(demo.get(main))
    found = _value(demo.get("contradictions")) if "contradictions" in signature.output_fields else ""
    return f"{text}\n\nContradictions:\n{found}" if found else text


# -- the whole workflow in one read -------------------------------------------------------------------------------


def dialectic_brief(program: Dialectic, task: str, iterations: int = 1) -> str:
    """Everything an agent needs to run a dialectic on ``task`` itself and log it with the ``log_trace`` tool."""
    steps = {step: _instructions(_predictor(program, step).signature) for step in OUTPUTS}
    more = iterations - 1
    later = f"Then run {more} more round{'s' * (more > 1)}: critique your latest synthesis again (step 2) and write an "
    later += "improved synthesis (step 3)."
    arguments = [
        "task: the task above, unchanged",
        "thesis, antithesis, synthesis: your answers to steps 1-3" + (" (round 1's)" if more else ""),
        'contradictions: the flaws from step 2, as [{"description": ..., "evidence": ...}] (an empty list if none)',
        *(["rounds: rounds 2 and later, in order, each as {antithesis, contradictions, synthesis}"] if more else []),
        f'mode: "{program.mode}"',
        "model: the name of the model you are",
    ]
    parts = [
        "Run a dialectic on the task below: answer it, attack your answer, then write a better one. Do each step "
        "yourself, in order, and show the user each step's text as you go. Write every answer as plain text.",
        f"## Task\n\n{task.strip()}",
        f"## Step 1: thesis\n\n{steps['thesis']}",
        f"## Step 2: antithesis\n\n{steps['antithesis']} {LIST_CONTRADICTIONS}",
        f"## Step 3: synthesis\n\n{steps['synthesis']}" + (f"\n\n{later}" if more else ""),
        "## Log it\n\nCall the `log_trace` tool once, with:\n" + "\n".join(f"- {a}" for a in arguments),
        "It returns the trace id: tell the user the final synthesis and the id.",
    ]
    return "\n\n".join(parts) + "\n"
