"""The LM judge: did the synthesis improve on the thesis?

``DialecticJudge`` combines the cheap checks (``checks.py``: contradiction coverage, copy detection) with the ``Judge``
signature run on an LM into one score in 0..1. The optimizer metric (``metric.py``) and the trace judge that scores
logged traces at collection time (``collect.TraceJudge``) build on it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from ..checks import COPY_THRESHOLD, Checks, check_notes, check_synthesis, dedupe_contradictions, parse_score
from ..errors import ConfigError, LMError
from ..types import Contradiction, JSONObject, TraceRecord

log = logging.getLogger("hegelion_dspy.collect")

JUDGE_WEIGHT = 0.8  # share of the LM judge in the combined score; the rest is contradiction coverage
MAX_FEEDBACK_CHARS = 2_000  # feedback kept in a trace's metadata


class Judge(dspy.Signature):
    """Judge a revised answer. A first answer (the thesis) was criticised, and the critique listed contradictions;
    the revised answer (the synthesis) should fix every valid one while keeping what was right. Compare the revised
    answer with the first answer for the same task. Judge correctness and completeness first, then improvement:
    a revised answer that only restates the first one, drops correct content, or ignores valid contradictions
    deserves a low score."""

    task: str = dspy.InputField(desc="The question or task both answers respond to.")
    thesis: str = dspy.InputField(desc="The first answer.")
    contradictions: list[Contradiction] = dspy.InputField(desc="The flaws the critique found in the first answer.")
    synthesis: str = dspy.InputField(desc="The revised answer to judge.")
    feedback: str = dspy.OutputField(
        desc="Concrete feedback on the revised answer: what it does better or worse than the first answer, which "
        "contradictions it fixes or ignores, and what would make it better."
    )
    score: str = dspy.OutputField(
        desc="One number from 0.0 to 1.0: 0.0 = wrong or worse than the first answer, 0.5 = no better than the "
        "first answer, 1.0 = correct, complete, and fixes every valid contradiction."
    )


@dataclass(frozen=True)
class Judgement:
    """The combined verdict on one synthesis.

    ``score`` (0..1) is 0 for a copy of the thesis, else ``judge_weight * judge_score + (1 - judge_weight) *
    coverage``; without an LM judge (``judge_score`` None) it is the coverage alone.
    """

    score: float
    feedback: str
    judge_score: float | None
    checks: Checks

    def as_dict(self) -> JSONObject:
        return {
            "score": round(self.score, 4),
            "judge_score": None if self.judge_score is None else round(self.judge_score, 4),
            "feedback": self.feedback[:MAX_FEEDBACK_CHARS],
            "checks": self.checks.as_dict(),
        }


@dataclass
class _Case:
    """One synthesis being judged: its cache key, cheap checks, the LM's inputs, and (after the call) its verdict."""

    key: tuple[str, ...]
    checks: Checks
    inputs: dict[str, Any]  # the Judge signature's inputs, passed to it as keywords
    asks_lm: bool
    cached: Judgement | None = None
    verdict: dspy.Prediction | None = None


class DialecticJudge:
    """Judges a synthesis against its thesis: the cheap checks, then (unless ``use_lm`` is False) the ``Judge``
    signature on ``lm``.

    ``lm`` None means the LM of the surrounding ``dspy.context`` (inside an optimizer: the program's own LM).
    A copy of the thesis scores 0 without an LM call. Judgements are cached by their inputs (``cache_size``), so a
    GEPA feedback request after an evaluation costs nothing and returns the same score.
    """

    def __init__(
        self,
        lm: dspy.BaseLM | None = None,
        *,
        use_lm: bool = True,
        adapter: dspy.Adapter | None = None,
        judge_weight: float = JUDGE_WEIGHT,
        copy_threshold: float = COPY_THRESHOLD,
        cache_size: int = 4096,
    ):
        if not 0.0 <= judge_weight <= 1.0:
            raise ConfigError(f"judge_weight must be between 0 and 1, got {judge_weight!r}")
        if not 0.0 < copy_threshold <= 1.0:
            raise ConfigError(f"copy_threshold must be above 0 and at most 1, got {copy_threshold!r}")
        self.lm = lm
        self.use_lm = use_lm
        self.adapter = adapter
        self.judge_weight = judge_weight
        self.copy_threshold = copy_threshold
        self.predictor = dspy.Predict(Judge)
        self._cache: OrderedDict[tuple[str, ...], Judgement] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.lm_calls = 0  # judge LM calls made (cache hits and copies make none)
        self.lm_failures = 0
        self.first_error: str | None = None

    @property
    def model(self) -> str | None:
        """The judge LM's model string, when it has its own LM."""
        return None if self.lm is None else str(self.lm.model)

    # -- sync and async entry points: the same steps, the LM called plainly or awaited --------------------------

    def judge(self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction] = ()) -> Judgement:
        """Judge one synthesis. Raises LMError when the LM judge fails or gives no usable score. ``ajudge`` is the same
        for an event loop."""
        case = self._case(task, thesis, synthesis, contradictions)
        if case.asks_lm:
            with self._calling(case):
                case.verdict = self.predictor(**case.inputs)
        return self._finish(case)

    async def ajudge(
        self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction] = ()
    ) -> Judgement:
        case = self._case(task, thesis, synthesis, contradictions)
        if case.asks_lm:
            with self._calling(case):
                case.verdict = await self.predictor.acall(**case.inputs)
        return self._finish(case)

    @contextlib.contextmanager
    def _calling(self, case: _Case) -> Iterator[None]:
        """Around the judge's LM call: its own LM and adapter, and any failure as one LMError."""
        with self._context():
            try:
                yield
            except Exception as exc:  # the LM boundary: provider and parse errors alike mean "no judgement"
                raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> LMError:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        error = LMError(f"the judge's LM call failed: {type(exc).__name__}: {first_line}")
        with self._lock:
            self.lm_calls += 1
            self.lm_failures += 1
            self.first_error = self.first_error or str(error)
        return error

    def _context(self) -> Any:
        settings: dict[str, Any] = {"trace": None}  # never let judge calls into an optimizer's program trace
        if self.lm is not None:
            settings["lm"] = self.lm
        if self.adapter is not None:
            settings["adapter"] = self.adapter
        return dspy.context(**settings)

    def _case(self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction]) -> _Case:
        key = (task, thesis, synthesis, *(f"{c.description}\x00{c.evidence}" for c in contradictions))
        inputs = {"task": task, "thesis": thesis, "contradictions": list(contradictions), "synthesis": synthesis}
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return _Case(key, found.checks, inputs, asks_lm=False, cached=found)
        checks = check_synthesis(thesis, synthesis, contradictions, copy_threshold=self.copy_threshold)
        return _Case(key, checks, inputs, asks_lm=self.use_lm and not checks.is_copy)

    def _finish(self, case: _Case) -> Judgement:
        if case.cached is not None:
            return case.cached
        key, checks, raw = case.key, case.checks, case.verdict
        notes = check_notes(checks, len(case.inputs["contradictions"]))
        judge_score = None
        if checks.is_copy:
            score = 0.0
        elif raw is None:
            score = checks.coverage
        else:
            with self._lock:
                self.lm_calls += 1
            try:
                judge_score = parse_score(getattr(raw, "score", None))
            except LMError as exc:
                with self._lock:
                    self.lm_failures += 1
                    self.first_error = self.first_error or str(exc)
                raise
            score = self.judge_weight * judge_score + (1 - self.judge_weight) * checks.coverage
            written = str(getattr(raw, "feedback", "") or "").strip()
            if written:
                notes.insert(0, written)
        judgement = Judgement(score=round(score, 6), feedback="\n".join(notes), judge_score=judge_score, checks=checks)
        with self._lock:
            self._cache[key] = judgement
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return judgement


# -- scoring traces at collection time -----------------------------------------------------------------------------


def trace_parts(record: TraceRecord) -> tuple[str, str, str, list[Contradiction]]:
    """(task, first thesis, final synthesis, every round's contradictions) of an ok trace."""
    return (
        record.task,
        record.first_thesis,
        record.synthesis,
        dedupe_contradictions(c for r in record.rounds for c in r.contradictions),
    )


class TraceJudge:  # scores traces as they are collected
    """Scores ``ok`` traces: sets ``record.score`` and keeps the judgement in ``record.metadata["judge"]``.

    A judge that fails never spoils the trace: the score stays None and ``metadata["judge_error"]`` says why.
    Failed traces are returned untouched. Give the judge its own ``lm`` unless the caller runs it inside a
    ``dspy.context(lm=...)``.
    """

    def __init__(self, judge: DialecticJudge | None = None, **judge_options: Any):
        if judge is not None and judge_options:
            raise ConfigError("give either a DialecticJudge or judge options (lm=, use_lm=, ...), not both")
        if judge is None:
            judge = DialecticJudge(**judge_options)
        self.judge = judge

    def score(self, record: TraceRecord) -> TraceRecord:
        """The record with its score (a failed record comes back untouched)."""
        if not record.ok:
            return record
        try:
            verdict = self.judge.judge(*trace_parts(record))
        except LMError as exc:
            return self._failed(record, exc)
        return self._scored(record, verdict)

    async def ascore(self, record: TraceRecord) -> TraceRecord:
        """The async twin of ``score``."""
        if not record.ok:
            return record
        try:
            verdict = await self.judge.ajudge(*trace_parts(record))
        except LMError as exc:
            return self._failed(record, exc)
        return self._scored(record, verdict)

    def _scored(self, record: TraceRecord, verdict: Judgement) -> TraceRecord:
        info = {**verdict.as_dict(), "model": self.judge.model if verdict.judge_score is not None else None}
        metadata = {**record.metadata, "judge": info}
        return record.model_copy(update={"score": verdict.score, "metadata": metadata})

    def _failed(self, record: TraceRecord, exc: LMError) -> TraceRecord:
        log.warning("judge failed on trace %s; its score stays empty: %s", record.id, exc)
        metadata = {**record.metadata, "judge_error": str(exc)[:MAX_FEEDBACK_CHARS]}
        return record.model_copy(update={"score": None, "metadata": metadata})
