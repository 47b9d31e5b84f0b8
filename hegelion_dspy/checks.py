"""Cheap checks of a synthesis, pure Python and free (no dspy, no LM): does it address each contradiction the critique
listed (keyword coverage), is it more than a copy of the thesis (difflib similarity); and reading a judge's score.

The LM judge (``judge.py``) combines these with its own verdict; the optimizer metric (``metric.py``) and the trace
judge (``collect.py``) use both.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import LMError
from .types import Contradiction, JSONObject

COPY_THRESHOLD = 0.9  # difflib ratio at or above which the synthesis counts as a copy of the thesis
_MAX_COMPARE_CHARS = 20_000  # difflib is quadratic in the worst case: compare at most this much of each text

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

    def as_dict(self) -> JSONObject:
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


# -- reading a judge's score ---------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_score(value: object) -> float:
    """A judge's score as a float in 0..1. Accepts ``0.7``, ``"0.7"``, ``"7/10"``, ``"70%"``, and a whole number
    ``"7"`` (read as out of 10) or ``"70"`` (out of 100). Raises LMError when there is no number, or when a number
    above 1 has no scale and is not whole (``"1.5"``, ``"7.5"``): 1.5 might be a slip on the 0..1 scale or 1.5 out of
    5, so guessing would put a made-up score into the training data; the judge call fails and is counted instead."""
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
        if not number.is_integer():
            raise LMError(
                f"the judge's score {value!r} is above 1 with no scale (like 7/10 or 70%); expected 0.0 to 1.0"
            )
        number = number / 10 if number <= 10 else number / 100
    return _clamp(number)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


# -- notes for feedback --------------------------------------------------------------------------------------------


def check_notes(checks: Checks, n_contradictions: int) -> list[str]:
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


def dedupe_contradictions(contradictions: Iterable[Contradiction]) -> list[Contradiction]:
    seen: set[str] = set()
    out = []
    for c in contradictions:
        key = " ".join(c.description.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
