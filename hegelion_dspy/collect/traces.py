"""Traces produced outside the program (an IDE agent, a human, another tool): validated, then logged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidTraceError, from_validation
from ..quality import with_flags
from ..store import TraceStore
from ..types import Contradiction, Mode, Round, Source, TraceRecord


def build_trace(
    *,
    task: str,
    thesis: str,
    antithesis: str,
    synthesis: str,
    contradictions: Sequence[Contradiction | Mapping[str, object]] | None = None,
    rounds: Sequence[Round | Mapping[str, object]] | None = None,
    mode: Mode = "general",
    model: str | None = None,
    tags: Sequence[str] | None = None,
    source: Source = "python",
    score: float | None = None,
) -> TraceRecord:
    """A validated ``ok`` trace from text produced outside the program (an IDE agent, a human, another tool).

    ``thesis``/``antithesis``/``synthesis`` (+ ``contradictions``) are round 1; ``rounds`` are later rounds of an
    iterated run, each ``{antithesis, synthesis, contradictions?}`` whose thesis is the previous synthesis.
    Raises InvalidTraceError naming the field when something is missing or malformed. The trace carries its quality
    flags (``quality.py``).
    """
    try:
        first = Round(
            index=1,
            thesis=thesis,
            antithesis=antithesis,
            contradictions=[Contradiction.model_validate(c) for c in (contradictions or [])],
            synthesis=synthesis,
        )
        all_rounds = [first]
        for n, later in enumerate(rounds or [], start=2):
            data = later.model_dump() if isinstance(later, Round) else dict(later)
            data.setdefault("thesis", all_rounds[-1].synthesis)
            data["index"] = n
            all_rounds.append(Round.model_validate(data))
        record = TraceRecord(
            source=source,
            task=task,
            mode=mode,
            model=model,
            rounds=all_rounds,
            synthesis=all_rounds[-1].synthesis,
            status="ok",
            score=score,
            tags=list(tags or []),
        )
    except ValidationError as exc:
        raise from_validation(exc, source="field", error=InvalidTraceError, fix="nothing was written") from None
    except TypeError as exc:
        raise InvalidTraceError(f"malformed value ({exc}); nothing was written") from None
    return with_flags(record)


def log_trace(store: TraceStore, **fields: Any) -> TraceRecord:
    """Validate a trace produced outside the program (see ``build_trace``) and append it to ``store``."""
    record = build_trace(**fields)
    store.append(record)
    return record
