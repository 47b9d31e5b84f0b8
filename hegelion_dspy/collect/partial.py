"""The answers of a dialectic played one step at a time, as a ``PartialTrace``: what ``log_trace`` takes and what
the next step is.

A ``PartialTrace`` has the shape ``log_trace`` takes: ``thesis``, ``antithesis``, ``contradictions`` and
``synthesis`` for round 1, and ``rounds`` (each ``{antithesis, contradictions, synthesis?}``) for later rounds, whose
thesis is the previous synthesis. ``PartialTrace.next_step`` says which step comes next, with which inputs, or None
when the trace is complete; ``to_trace`` makes the trace of the answers. Plain data: no program, no LM (the prompts
and the reading of replies are ``workflow.py``'s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from pydantic import ValidationError

from ..errors import InvalidTraceError, from_validation
from ..quality import with_flags
from ..types import Contradiction, JSONObject, Mode, Round, Source, Step, TraceFailure, TraceRecord


class _TraceFields(TypedDict):
    """A trace's fields besides its rounds and outcome, as ``to_trace`` passes them to TraceRecord."""

    source: Source
    task: str
    mode: Mode
    model: str | None
    lm: str | None
    adapter: str | None
    program: str | None
    tags: list[str]


@dataclass
class RoundSoFar:
    """Round 2, 3, ...: its thesis is the previous synthesis; ``synthesis`` is empty while it is being answered."""

    antithesis: str
    contradictions: list[Contradiction] = field(default_factory=list)
    synthesis: str = ""


@dataclass(frozen=True)
class NextStep:
    """The step a partial trace needs next, and the inputs of its prompt."""

    step: Step
    round: int
    inputs: dict[str, object]


@dataclass
class PartialTrace:
    """The answers of a dialectic in progress, in the shape ``log_trace`` takes."""

    thesis: str = ""
    antithesis: str = ""
    contradictions: list[Contradiction] = field(default_factory=list)
    synthesis: str = ""
    rounds: list[RoundSoFar] = field(default_factory=list)

    @classmethod
    def from_answers(
        cls,
        *,
        thesis: str | None = None,
        antithesis: str | None = None,
        contradictions: object = None,
        synthesis: str | None = None,
        rounds: Sequence[Mapping[str, object]] = (),
    ) -> PartialTrace:
        """Answers handed in by a caller (texts stripped, contradictions validated: any value is checked, a list of
        Contradiction or of their dicts is taken); InvalidTraceError names the field of a malformed one."""
        later = [
            RoundSoFar(
                antithesis=_text(r.get("antithesis")),
                contradictions=_contradictions(r.get("contradictions"), f"rounds.{n}.contradictions"),
                synthesis=_text(r.get("synthesis")),
            )
            for n, r in enumerate(rounds)
        ]
        return cls(
            thesis=_text(thesis),
            antithesis=_text(antithesis),
            contradictions=_contradictions(contradictions, "contradictions"),
            synthesis=_text(synthesis),
            rounds=later,
        )

    def next_step(self, task: str, iterations: int) -> NextStep | None:
        """The next step and its inputs, or None once all ``iterations`` rounds have a synthesis.

        Raises InvalidTraceError (with ``field``) when the answers skip a step, e.g. an antithesis without a thesis.
        """
        if not self.thesis:
            for name, value in (
                ("antithesis", self.antithesis),
                ("synthesis", self.synthesis),
                ("rounds", self.rounds),
            ):
                if value:
                    raise InvalidTraceError("given without a thesis; a trace starts with the thesis", field=name)
            return NextStep("thesis", 1, {"task": task})
        if not self.antithesis:
            for name, value in (("synthesis", self.synthesis), ("rounds", self.rounds)):
                if value:
                    raise InvalidTraceError("given without an antithesis; answer the antithesis step first", field=name)
            return NextStep("antithesis", 1, {"task": task, "thesis": self.thesis})
        if not self.synthesis:
            if self.rounds:
                raise InvalidTraceError("given before round 1 has a synthesis; finish round 1 first", field="rounds")
            return NextStep(
                "synthesis", 1, self._synthesis_inputs(task, self.thesis, self.antithesis, self.contradictions)
            )
        previous = self.synthesis
        for n, later in enumerate(self.rounds):
            if not later.antithesis:
                raise InvalidTraceError("every later round needs its antithesis", field=f"rounds.{n}.antithesis")
            if not later.synthesis:
                if n != len(self.rounds) - 1:
                    raise InvalidTraceError(
                        "only the last round may still lack a synthesis", field=f"rounds.{n}.synthesis"
                    )
                inputs = self._synthesis_inputs(task, previous, later.antithesis, later.contradictions)
                return NextStep("synthesis", n + 2, inputs)
            previous = later.synthesis
        if 1 + len(self.rounds) < iterations:
            return NextStep("antithesis", len(self.rounds) + 2, {"task": task, "thesis": previous})
        return None

    @staticmethod
    def _synthesis_inputs(task: str, thesis: str, antithesis: str, found: list[Contradiction]) -> dict[str, object]:
        return {"task": task, "thesis": thesis, "antithesis": antithesis, "contradictions": list(found)}

    def add(self, step: Step, round_index: int, fields: Mapping[str, object]) -> None:
        """Record one step's answer (the fields ``read_reply`` returned) in round ``round_index``."""
        text = _text(fields.get(step))
        if round_index == 1:
            setattr(self, step, text)
            if step == "antithesis":
                self.contradictions = _contradictions(fields.get("contradictions"), "contradictions")
        elif step == "antithesis":
            found = _contradictions(fields.get("contradictions"), f"rounds.{round_index - 2}.contradictions")
            self.rounds.append(RoundSoFar(antithesis=text, contradictions=found))
        else:
            self.rounds[round_index - 2].synthesis = text

    def steps_answered(self) -> int:
        """How many LM steps these answers hold (round 1 has three, each later round two)."""
        first = sum(1 for text in (self.thesis, self.antithesis, self.synthesis) if text)
        return first + sum(1 + bool(r.synthesis) for r in self.rounds)

    # -- out: log_trace's arguments, a JSON state, a trace --------------------------------------------------------

    def log_trace_arguments(self) -> JSONObject:
        """The answers as ``log_trace`` arguments (JSON values; empty ones left out)."""
        arguments: JSONObject = {
            "thesis": self.thesis,
            "antithesis": self.antithesis,
            "contradictions": [c.model_dump() for c in self.contradictions],
            "synthesis": self.synthesis,
            "rounds": [
                {
                    "antithesis": r.antithesis,
                    "contradictions": [c.model_dump() for c in r.contradictions],
                    **({"synthesis": r.synthesis} if r.synthesis else {}),
                }
                for r in self.rounds
            ],
        }
        return {k: v for k, v in arguments.items() if v}

    def to_json(self) -> str:
        return json.dumps(self.log_trace_arguments(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PartialTrace:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidTraceError("a partial trace must be a JSON object")
        return cls.from_answers(**data)

    def finished_rounds(self) -> list[Round]:
        """The rounds that have all three steps."""
        done: list[Round] = []
        if not self.synthesis:
            return done
        done.append(
            Round(
                index=1,
                thesis=self.thesis,
                antithesis=self.antithesis,
                contradictions=self.contradictions,
                synthesis=self.synthesis,
            )
        )
        for later in self.rounds:
            if not later.synthesis:
                break
            index = len(done) + 1
            done.append(
                Round(
                    index=index,
                    thesis=done[-1].synthesis,
                    antithesis=later.antithesis,
                    contradictions=later.contradictions,
                    synthesis=later.synthesis,
                )
            )
        return done

    def to_trace(
        self,
        task: str,
        *,
        mode: Mode,
        source: Source,
        model: str | None,
        lm: str | None = None,
        adapter: str | None = None,
        program: str | None = None,
        tags: Sequence[str] = (),
        failure: TraceFailure | None = None,
    ) -> TraceRecord:
        """The trace of these answers: ``ok`` when complete, or ``failed`` with ``failure`` and the finished rounds
        (the failing round's finished steps in ``metadata.partial_round``) - finished work is never dropped."""
        rounds = self.finished_rounds()
        common: _TraceFields = {
            "source": source,
            "task": task,
            "mode": mode,
            "model": model,
            "lm": lm,
            "adapter": adapter,
            "program": program,
            "tags": list(tags),
        }
        try:
            if failure is None:
                synthesis = rounds[-1].synthesis if rounds else ""
                return with_flags(TraceRecord(**common, rounds=rounds, synthesis=synthesis))
            return TraceRecord(
                **common, rounds=rounds, status="failed", error=failure, metadata=self._partial_round(len(rounds))
            )
        except ValidationError as exc:
            raise from_validation(exc, source="field", error=InvalidTraceError, fix="nothing was written") from None

    def _partial_round(self, finished: int) -> dict[str, dict[str, str]]:
        if finished == 0:
            partial = {"thesis": self.thesis, "antithesis": self.antithesis}
        elif finished <= len(self.rounds):
            partial = {"antithesis": self.rounds[finished - 1].antithesis}
        else:
            partial = {}
        partial = {k: v for k, v in partial.items() if v}
        return {"partial_round": partial} if partial else {}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _contradictions(value: object, where: str) -> list[Contradiction]:
    items = value or []
    if not isinstance(items, Iterable):
        raise InvalidTraceError(f"expected a list of contradictions, got {type(items).__name__}", field=where)
    try:
        return [c if isinstance(c, Contradiction) else Contradiction.model_validate(c) for c in items]
    except ValueError as exc:
        raise InvalidTraceError(str(exc).splitlines()[0], field=where) from None
