"""The prompt workflow: an agent plays the three steps itself, one prompt at a time.

When no LM can be called (an IDE agent with no API key and no MCP sampling), the program is not run; instead each
step's prompt is rendered exactly as the program would send it (the predictor's instructions, fields and demos,
formatted by the same DSPy adapter), so an optimized program's prompts are served too. The agent answers, hands its
answer back, gets the next prompt, and finally logs the finished trace with ``log_trace``.

A partial trace has the shape ``log_trace`` takes: ``thesis``, ``antithesis``, ``contradictions`` and ``synthesis``
for round 1, and ``rounds`` (each ``{antithesis, contradictions?, synthesis?}``) for later rounds, whose thesis is the
previous synthesis. ``next_step`` reads a partial trace and says which prompt comes next, or None when it is complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidTraceError
from .types import Contradiction, Step

if TYPE_CHECKING:
    import dspy

    from .program import Dialectic

OUTPUTS: dict[Step, tuple[str, ...]] = {
    "thesis": ("thesis",),
    "antithesis": ("antithesis", "contradictions"),
    "synthesis": ("synthesis",),
}
_MARKER = "[[ ## "


@dataclass(frozen=True)
class StepPrompt:
    """One step's prompt as the program would send it: chat messages, plus the fields the answer must give."""

    step: Step
    round: int
    messages: list[dict[str, str]]
    outputs: tuple[str, ...]

    @property
    def text(self) -> str:
        """The messages as one prompt for an agent: instructions, worked examples, then the input to answer."""
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
    program: Dialectic, step: Step, inputs: Mapping[str, Any], *, round_index: int = 1, adapter: Any = None
) -> StepPrompt:
    """Render ``step``'s prompt for ``inputs`` from the program's predictor (instructions, fields and demos)."""
    import dspy

    predictor = _predictor(program, step)
    adapter = adapter or dspy.ChatAdapter()
    messages = adapter.format(predictor.signature, list(predictor.demos), dict(inputs))
    plain = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return StepPrompt(step=step, round=round_index, messages=plain, outputs=OUTPUTS[step])


def read_answer(program: Dialectic, step: Step, text: str, *, adapter: Any = None) -> dict[str, Any]:
    """The output fields in an agent's answer to ``step``: the text itself, or parsed when it uses the field markers.

    Raises InvalidTraceError naming the step when a marked-up answer does not parse.
    """
    if _MARKER not in text:
        return {step: text.strip()}
    import dspy

    adapter = adapter or dspy.ChatAdapter()
    try:
        fields: dict[str, Any] = adapter.parse(_predictor(program, step).signature, text)
    except Exception as exc:  # dspy raises AdapterParseError and pydantic errors; either means "unreadable answer"
        reason = str(exc).splitlines()[0][:300]
        raise InvalidTraceError(
            f"the answer uses [[ ## field ## ]] markers but does not parse ({reason}); pass the plain text instead",
            field=step,
        ) from None
    return fields


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _contradictions(value: Any, field: str) -> list[Contradiction]:
    try:
        return [Contradiction.model_validate(c) for c in (value or [])]
    except ValueError as exc:
        raise InvalidTraceError(str(exc).splitlines()[0], field=field) from None


def next_step(
    program: Dialectic,
    task: str,
    *,
    iterations: int = 1,
    thesis: str | None = None,
    antithesis: str | None = None,
    contradictions: Sequence[Any] | None = None,
    synthesis: str | None = None,
    rounds: Sequence[Mapping[str, Any]] = (),
    adapter: Any = None,
) -> StepPrompt | None:
    """The next prompt for a partial trace, or None when it is complete (all ``iterations`` rounds synthesised).

    Raises InvalidTraceError (with ``field``) when the partial trace skips a step, e.g. an antithesis without a thesis.
    """

    def render(step: Step, inputs: dict[str, Any], index: int) -> StepPrompt:
        return render_step(program, step, {"task": task, **inputs}, round_index=index, adapter=adapter)

    if not _text(thesis):
        for name, value in (("antithesis", antithesis), ("synthesis", synthesis), ("rounds", rounds)):
            if value:
                raise InvalidTraceError("given without a thesis; a trace starts with the thesis", field=name)
        return render("thesis", {}, 1)
    if not _text(antithesis):
        for name, value in (("synthesis", synthesis), ("rounds", rounds)):
            if value:
                raise InvalidTraceError("given without an antithesis; answer the antithesis step first", field=name)
        return render("antithesis", {"thesis": _text(thesis)}, 1)
    found = _contradictions(contradictions, "contradictions")
    if not _text(synthesis):
        if rounds:
            raise InvalidTraceError("given before round 1 has a synthesis; finish round 1 first", field="rounds")
        inputs = {"thesis": _text(thesis), "antithesis": _text(antithesis), "contradictions": found}
        return render("synthesis", inputs, 1)
    previous = _text(synthesis)
    for n, later in enumerate(rounds):
        index = n + 2
        if not _text(later.get("antithesis")):
            raise InvalidTraceError("every later round needs its antithesis", field=f"rounds.{n}.antithesis")
        if not _text(later.get("synthesis")):
            if n != len(rounds) - 1:
                raise InvalidTraceError("only the last round may still lack a synthesis", field=f"rounds.{n}.synthesis")
            later_found = _contradictions(later.get("contradictions"), f"rounds.{n}.contradictions")
            inputs = {"thesis": previous, "antithesis": _text(later.get("antithesis")), "contradictions": later_found}
            return render("synthesis", inputs, index)
        previous = _text(later.get("synthesis"))
    if 1 + len(rounds) < iterations:
        return render("antithesis", {"thesis": previous}, len(rounds) + 2)
    return None
