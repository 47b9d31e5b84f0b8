"""Judging a dialectic: did the synthesis improve on the thesis?

Two layers, combined into one score in 0..1:

* cheap checks, pure Python and free: does the synthesis address each contradiction the critique listed (keyword
  coverage), and is it more than a copy of the thesis (difflib similarity);
* the ``Judge`` signature, run on an LM: it compares the synthesis with the thesis for the same task and writes a
  score and feedback.

``DialecticMetric`` turns that into a DSPy metric usable by every optimizer (a float for BootstrapFewShot, MIPROv2
and ``dspy.Evaluate``; ``dspy.Prediction(score=, feedback=)`` when GEPA asks for feedback on a predictor), and
``TraceJudge`` scores logged traces (``TraceRecord.score``) at collection time.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from .errors import ConfigError, LMError
from .types import Contradiction, TraceRecord

log = logging.getLogger("hegelion_dspy.judge")

COPY_THRESHOLD = 0.9  # difflib ratio at or above which the synthesis counts as a copy of the thesis
JUDGE_WEIGHT = 0.8  # share of the LM judge in the combined score; the rest is contradiction coverage
_MAX_COMPARE_CHARS = 20_000  # difflib is quadratic in the worst case: compare at most this much of each text
_MAX_FEEDBACK_CHARS = 2_000  # feedback kept in a trace's metadata


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


# -- cheap checks --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Function words that say nothing about what a contradiction is about.
_STOPWORD_TEXT = (
    "a about above after again against all also an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each either else few for from further had has have having he "
    "her here hers him his how i if in into is it its itself just may me might more most must my neither no nor not "
    "now of off on once only or other our ours out over own same shall she should so some such than that the their "
    "them then there these they this those through to too under until up upon very was we were what when where which "
    "while who whom why will with would yet you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    # A deliberately light stemmer: enough to match "ignores"/"ignored"/"ignoring"/"ignore" and "case"/"cases".
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def keywords(text: str) -> set[str]:
    """The content words of ``text``: lower-cased, stop words and words under 3 letters dropped, lightly stemmed."""
    return {
        _stem(w) for w in (m.group().casefold() for m in _WORD.finditer(text)) if len(w) >= 3 and w not in _STOPWORDS
    }


def addresses(synthesis: str | set[str], contradiction: Contradiction | str) -> bool:
    """Whether the synthesis mentions at least half of the keywords of the contradiction's description.

    A description without content words cannot be checked and counts as addressed.
    """
    described = contradiction.description if isinstance(contradiction, Contradiction) else contradiction
    wanted = keywords(described)
    if not wanted:
        return True
    present = synthesis if isinstance(synthesis, set) else keywords(synthesis)
    return 2 * len(wanted & present) >= len(wanted)


def similarity(thesis: str, synthesis: str) -> float:
    """difflib ratio of the two texts with case and whitespace normalised (1.0 = identical).

    Texts that are clearly different get difflib's cheap upper bound (``quick_ratio``) instead of the exact ratio.
    """
    a = " ".join(thesis.split()).casefold()[:_MAX_COMPARE_CHARS]
    b = " ".join(synthesis.split()).casefold()[:_MAX_COMPARE_CHARS]
    if a == b:
        return 1.0
    matcher = difflib.SequenceMatcher(None, a, b)
    if matcher.real_quick_ratio() < COPY_THRESHOLD - 0.2 or matcher.quick_ratio() < COPY_THRESHOLD - 0.2:
        return matcher.quick_ratio()  # clearly different: skip the expensive exact ratio
    return matcher.ratio()


@dataclass(frozen=True)
class Checks:
    """The cheap checks of one synthesis. ``coverage`` is 1.0 when there was no contradiction to address."""

    coverage: float
    missed: tuple[str, ...]
    similarity: float
    is_copy: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "coverage": round(self.coverage, 4),
            "missed": list(self.missed),
            "similarity": round(self.similarity, 4),
            "is_copy": self.is_copy,
        }


def check_synthesis(
    thesis: str,
    synthesis: str,
    contradictions: Iterable[Contradiction | str] = (),
    *,
    copy_threshold: float = COPY_THRESHOLD,
) -> Checks:
    """Contradiction coverage and copy detection, with no LM call."""
    present = keywords(synthesis)
    items = [c.description if isinstance(c, Contradiction) else c for c in contradictions]
    missed = tuple(d for d in items if not addresses(present, d))
    coverage = 1.0 - len(missed) / len(items) if items else 1.0
    ratio = similarity(thesis, synthesis)
    return Checks(coverage=coverage, missed=missed, similarity=ratio, is_copy=ratio >= copy_threshold)


# -- the LM judge --------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_score(value: Any) -> float:
    """A judge's score as a float in 0..1. Accepts ``0.7``, ``"0.7"``, ``"7/10"``, ``"70%"`` and ``"7"`` (read
    as out of 10) or ``"70"`` (out of 100). Raises LMError when there is no number."""
    if isinstance(value, bool):
        raise LMError(f"the judge's score {value!r} is not a number; expected 0.0 to 1.0")
    if isinstance(value, int | float):
        number, text = float(value), ""
    else:
        text = str(value).strip()
        found = _NUMBER.search(text)
        if found is None:
            raise LMError(f"the judge's score {text[:80]!r} is not a number; expected 0.0 to 1.0")
        number = float(found.group())
        out_of = re.match(r"\s*/\s*(\d+(?:\.\d+)?)", text[found.end() :])
        if out_of and float(out_of.group(1)) > 0:
            return _clamp(number / float(out_of.group(1)))
        if text[found.end() :].lstrip().startswith("%"):
            return _clamp(number / 100)
    if number > 1:
        number = number / 10 if number <= 10 else number / 100
    return _clamp(number)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "judge_score": None if self.judge_score is None else round(self.judge_score, 4),
            "feedback": self.feedback[:_MAX_FEEDBACK_CHARS],
            "checks": self.checks.as_dict(),
        }


def _check_notes(checks: Checks, n_contradictions: int) -> list[str]:
    notes = []
    if checks.is_copy:
        notes.append(
            f"The synthesis is a near copy of the thesis (similarity {checks.similarity:.2f}); it must rewrite the "
            "answer to fix the contradictions, not repeat it."
        )
    if n_contradictions == 0:
        notes.append("The critique listed no contradictions, so there was nothing concrete to fix.")
    elif checks.missed:
        listed = "; ".join(repr(d[:160]) for d in checks.missed[:5])
        notes.append(
            f"The synthesis does not address {len(checks.missed)} of {n_contradictions} contradictions: {listed}."
        )
    else:
        notes.append(f"The synthesis addresses all {n_contradictions} contradictions.")
    return notes


def _dedupe(contradictions: Iterable[Contradiction]) -> list[Contradiction]:
    seen: set[str] = set()
    out = []
    for c in contradictions:
        key = " ".join(c.description.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


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

    # -- sync and async entry points share everything but the LM call -------------------------------------------

    def judge(self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction] = ()) -> Judgement:
        """Judge one synthesis. Raises LMError when the LM judge fails or gives no usable score."""
        key, checks, found = self._prepare(task, thesis, synthesis, contradictions)
        if found is not None:
            return found
        raw = None
        if self.use_lm and not checks.is_copy:
            with self._context():
                try:
                    raw = self.predictor(
                        task=task, thesis=thesis, contradictions=list(contradictions), synthesis=synthesis
                    )
                except Exception as exc:  # the LM boundary: provider and parse errors alike mean "no judgement"
                    raise self._failure(exc) from exc
        return self._finish(key, checks, len(contradictions), raw)

    async def ajudge(
        self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction] = ()
    ) -> Judgement:
        """The async twin of ``judge``."""
        key, checks, found = self._prepare(task, thesis, synthesis, contradictions)
        if found is not None:
            return found
        raw = None
        if self.use_lm and not checks.is_copy:
            with self._context():
                try:
                    raw = await self.predictor.acall(
                        task=task, thesis=thesis, contradictions=list(contradictions), synthesis=synthesis
                    )
                except Exception as exc:  # the LM boundary, as in judge()
                    raise self._failure(exc) from exc
        return self._finish(key, checks, len(contradictions), raw)

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

    def _prepare(
        self, task: str, thesis: str, synthesis: str, contradictions: Sequence[Contradiction]
    ) -> tuple[tuple[str, ...], Checks, Judgement | None]:
        key = (task, thesis, synthesis, *(f"{c.description}\x00{c.evidence}" for c in contradictions))
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return key, found.checks, found
        checks = check_synthesis(thesis, synthesis, contradictions, copy_threshold=self.copy_threshold)
        return key, checks, None

    def _finish(self, key: tuple[str, ...], checks: Checks, n_contradictions: int, raw: Any) -> Judgement:
        notes = _check_notes(checks, n_contradictions)
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


def _prediction_parts(pred: Any) -> tuple[str, str, str, list[Contradiction]]:
    rounds = getattr(pred, "rounds", None) or []
    if rounds:
        found = [c for r in rounds for c in r.contradictions]
    else:
        value = getattr(pred, "contradictions", None) or []
        found = [c if isinstance(c, Contradiction) else Contradiction.model_validate(c) for c in value]
    return (
        str(getattr(pred, "task", "") or ""),
        str(getattr(pred, "thesis", "") or ""),
        str(getattr(pred, "synthesis", "") or ""),
        _dedupe(found),
    )


class DialecticMetric:
    """A DSPy metric for ``Dialectic``, usable by BootstrapFewShot, MIPROv2, GEPA and ``dspy.Evaluate``.

    ``metric(gold, pred)`` and ``metric(gold, pred, trace)`` return the score as a float in 0..1 (pass
    ``metric_threshold`` to BootstrapFewShot to set the bar for a demo). ``metric(gold, pred, trace, pred_name,
    pred_trace)`` with a predictor name (GEPA's feedback call) returns ``dspy.Prediction(score=, feedback=)``,
    the feedback naming the step being tuned. A failed judge call raises LMError: every optimizer counts that as a
    failed example (``max_errors``) instead of learning from a made-up score.
    """

    def __init__(self, judge: DialecticJudge | None = None, **judge_options: Any):
        if judge is not None and judge_options:
            raise ConfigError("give either a DialecticJudge or judge options (lm=, use_lm=, ...), not both")
        self.judge = judge or DialecticJudge(**judge_options)

    def __call__(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> float | dspy.Prediction:
        task, thesis, synthesis, contradictions = _prediction_parts(pred)
        task = task or str(getattr(gold, "task", "") or "")
        if not thesis.strip() or not synthesis.strip():
            verdict = Judgement(
                0.0, "The program produced no thesis or no synthesis.", None, Checks(0.0, (), 0.0, False)
            )
        else:
            verdict = self.judge.judge(task, thesis, synthesis, contradictions)
        if pred_name is None:
            return verdict.score
        return dspy.Prediction(score=verdict.score, feedback=_for_step(pred_name, verdict, len(contradictions)))


_STEP_HINTS = {
    "thesis": "You are tuning the thesis step: a good thesis commits to a clear, complete first answer.",
    "antithesis": (
        "You are tuning the antithesis step: it must find the real contradictions in the thesis, each with "
        "evidence, so the synthesis has something concrete to fix."
    ),
    "synthesis": (
        "You are tuning the synthesis step: it must fix every valid contradiction and give one improved, "
        "self-contained answer, not a copy of the thesis."
    ),
}


def _for_step(pred_name: str, verdict: Judgement, n_contradictions: int) -> str:
    step = pred_name.rsplit(".", 1)[-1]
    hint = _STEP_HINTS.get(step, "")
    if step == "antithesis" and n_contradictions == 0:
        hint += " This critique listed no contradictions."
    return f"Score {verdict.score:.2f}. {verdict.feedback}" + (f"\n{hint}" if hint else "")


# -- scoring traces at collection time -----------------------------------------------------------------------------


def trace_parts(record: TraceRecord) -> tuple[str, str, str, list[Contradiction]]:
    """(task, first thesis, final synthesis, every round's contradictions) of an ok trace."""
    return (
        record.task,
        record.first_thesis,
        record.synthesis,
        _dedupe(c for r in record.rounds for c in r.contradictions),
    )


class TraceJudge:
    """Scores ``ok`` traces: sets ``record.score`` and keeps the judgement in ``record.metadata["judge"]``.

    A judge that fails never spoils the trace: the score stays None and ``metadata["judge_error"]`` says why.
    Failed traces are returned untouched. Give the judge its own ``lm`` unless the caller runs it inside a
    ``dspy.context(lm=...)``.
    """

    def __init__(self, judge: DialecticJudge | None = None, **judge_options: Any):
        if judge is not None and judge_options:
            raise ConfigError("give either a DialecticJudge or judge options (lm=, use_lm=, ...), not both")
        self.judge = judge or DialecticJudge(**judge_options)

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
        metadata = {**record.metadata, "judge_error": str(exc)[:_MAX_FEEDBACK_CHARS]}
        return record.model_copy(update={"score": None, "metadata": metadata})
