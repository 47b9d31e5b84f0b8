"""Quality flags: what makes a trace's pairs unfit to train on, decided by one pure function over its texts.

``quality_flags(trace)`` names every problem it finds, in ``FLAGS`` order:

- ``truncated``: a chosen side (the synthesis of a round; the last one is the final synthesis) stopped at the token
  cap (``Round.truncated`` lists it): the text is probably cut off mid-answer.
- ``copy``: a round's synthesis is equal or near-equal to its thesis or its antithesis (``copy_similarity`` at or
  above ``COPY_THRESHOLD``): the dialectic changed nothing, or the synthesis parroted the critique.
- ``no_critique``: a round's antithesis lists no contradiction and does not object: it praises or agrees
  (``_PRAISE``) and says nothing critical (``_OBJECTION``) outside those phrases. The pair then teaches nothing.
- ``leak``: adapter or prompt scaffolding in a step's text: DSPy field markers (``[[ ## synthesis ## ]]``), DSPy's
  ChatAdapter instructions ("Respond with the corresponding output fields..."), or a sentence of our signatures'
  instructions or field descriptions (read from ``signatures.py`` without importing dspy).
- ``loop``: a synthesis repeats itself: some run of ``LOOP_WORDS`` words occurs ``LOOP_TIMES`` times or more (a
  stutter "the the the ..." and a sentence said over and over both count).

The collect side stores the flags in each trace it writes (``TraceRecord.flags``); a trace without them (a v2 log,
a record built by hand) gets them from ``flags_of`` when read. The verdict (``verdict.py``) decides with them.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections import Counter
from functools import cache
from importlib.resources import files

from ..types import Round, TraceRecord

FLAGS: tuple[str, ...] = ("truncated", "copy", "no_critique", "leak", "loop")

# Word-level similarity (difflib ratio over case-folded words) at or above which a synthesis is a copy. 0.9 is the
# judge's copy threshold too (checks.COPY_THRESHOLD, there on characters): at 0.9 a 100-word answer may differ from
# the other text in about 5 words (a greeting, a reworded clause) and still count; a real rewrite keeps far fewer
# words in order. Words, not characters: any two English texts share most letters, so the cheap bounds below would
# never rule a pair out and difflib's exact ratio (quadratic) would run on every pair.
COPY_THRESHOLD = 0.9
LOOP_WORDS = 8
LOOP_TIMES = 4
_MAX_COMPARE_WORDS = 4000  # difflib is quadratic in the worst case: compare at most this many words of each text


def copy_similarity(text: str, other: str) -> float:
    """difflib's ratio of the two texts as case-folded word lists (1.0 = the same words in the same order).

    Pairs that cannot reach ``COPY_THRESHOLD`` get a cheap upper bound instead (the length ratio, then the shared
    word multiset), so the exact ratio runs only on likely copies."""
    a = text.casefold().split()[:_MAX_COMPARE_WORDS]
    b = other.casefold().split()[:_MAX_COMPARE_WORDS]
    if a == b:
        return 1.0
    total = len(a) + len(b)
    if not a or not b:
        return 0.0
    bound = 2 * min(len(a), len(b)) / total
    if bound < COPY_THRESHOLD:
        return bound
    bound = 2 * sum((Counter(a) & Counter(b)).values()) / total
    if bound < COPY_THRESHOLD:
        return bound
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


# -- no critique ---------------------------------------------------------------------------------------------------

# Phrases that praise or agree. Removed before looking for objections, so "no issues" and "no flaws" do not count as
# objecting (they contain "issue"/"flaw").
_PRAISE = re.compile(
    r"\b(?:i (?:fully |completely |largely )?agree|agree with|well[- ](?:written|reasoned|structured|argued|explained)|"
    r"(?:excellent|great|good|solid|strong|thorough|comprehensive|clear|correct|accurate|sound)"
    r" (?:answer|response|thesis|job|work|point|points|explanation|solution|argument|overview)|"
    r"is (?:correct|accurate|sound|valid|right|well[- ]\w+)|makes sense|spot on|valid points?|"
    r"no (?:contradictions?|issues?|problems?|flaws?|errors?|mistakes?|weakness(?:es)?|objections?)"
    r"(?: (?:found|here))?|"
    r"nothing (?:to (?:add|criticize|criticise|object to|fix)|wrong))\b"
)
# Words of an objection. Any of them outside the praise phrases means the antithesis does criticise.
_OBJECTION = re.compile(
    r"\b(?:but|however|although|though|yet|wrong|incorrect|inaccurate|fails?|failing|missing|misses|ignores?|"
    r"overlooks?|neglects?|flaws?|flawed|problems?|problematic|issues?|errors?|mistakes?|contradicts?|"
    r"contradictions?|inconsisten\w*|weak\w*|unclear|vague|lacks?|lacking|should|unsupported|oversimplif\w*|"
    r"not (?:true|correct|accurate|enough|always)|doesn't|does not|cannot|can't|risk\w*|bug\w*|concerns?)\b"
)


def is_no_critique(r: Round) -> bool:
    """Whether round ``r``'s antithesis found no contradiction and praises or agrees instead of objecting."""
    if r.contradictions:
        return False
    text = " ".join(r.antithesis.casefold().split())
    if not _PRAISE.search(text):
        return False
    return _OBJECTION.search(_PRAISE.sub(" ", text)) is None


# -- leaks ---------------------------------------------------------------------------------------------------------

_FIELD_MARKER = re.compile(r"\[\[ ## \w+ ## \]\]")
# DSPy ChatAdapter's own instructions (dspy 3.4), as they appear in its system and user messages.
_ADAPTER_PHRASES = (
    "respond with the corresponding output fields",
    "your input fields are:",
    "your output fields are:",
    "all interactions will be structured in the following way",
    "in adhering to this structure, your objective is",
)
_MIN_PROMPT_SENTENCE = 30  # shorter sentences of our instructions ("The original answer.") occur in honest text


@cache
def _prompt_phrases() -> tuple[str, ...]:
    """Every sentence of our signatures' instructions and field descriptions (case-folded), and the adapter's phrases.

    Read from ``signatures.py``'s source (class docstrings, ``desc=`` strings, CODING_INSTRUCTIONS) so the prompt
    text has one home and this module need not import dspy."""
    source = files("hegelion_dspy").joinpath("signatures.py").read_text(encoding="utf-8")
    texts: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and (doc := ast.get_docstring(node)):
            texts.append(doc)
        elif isinstance(node, ast.keyword) and node.arg == "desc" and isinstance(node.value, ast.Constant):
            texts.append(str(node.value.value))
        elif isinstance(node, ast.AnnAssign) and node.value and getattr(node.target, "id", "") == "CODING_INSTRUCTIONS":
            texts += [v.value for v in ast.walk(node.value) if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    sentences = {
        s.strip()
        for text in texts
        for s in re.split(r"(?<=[.:])\s+", " ".join(text.casefold().split()))
        if len(s.strip()) >= _MIN_PROMPT_SENTENCE
    }
    return (*_ADAPTER_PHRASES, *sorted(sentences))


def has_leak(text: str) -> bool:
    """Whether ``text`` carries adapter or prompt scaffolding (see the module docstring)."""
    if "[[ ##" in text and _FIELD_MARKER.search(text):
        return True
    folded = " ".join(text.casefold().split())
    return any(phrase in folded for phrase in _prompt_phrases())


# -- loops ---------------------------------------------------------------------------------------------------------


def has_loop(text: str) -> bool:
    """Whether some run of ``LOOP_WORDS`` words occurs ``LOOP_TIMES`` times or more in ``text``."""
    words = text.casefold().split()
    if len(words) < LOOP_WORDS + LOOP_TIMES - 1:
        return False
    runs = Counter(zip(*(words[i:] for i in range(LOOP_WORDS)), strict=False))
    return max(runs.values()) >= LOOP_TIMES


# -- the flags -----------------------------------------------------------------------------------------------------


def quality_flags(trace: TraceRecord) -> list[str]:
    """Every quality flag of ``trace`` (a sub-list of ``FLAGS``, in its order); ``[]`` when none applies."""
    rounds = trace.rounds
    found = set()
    for r in rounds:
        if "synthesis" in r.truncated:
            found.add("truncated")
        if "copy" not in found and (
            copy_similarity(r.synthesis, r.thesis) >= COPY_THRESHOLD
            or copy_similarity(r.synthesis, r.antithesis) >= COPY_THRESHOLD
        ):
            found.add("copy")
        if "no_critique" not in found and is_no_critique(r):
            found.add("no_critique")
        if "leak" not in found and any(has_leak(t) for t in (r.thesis, r.antithesis, r.synthesis)):
            found.add("leak")
        if "loop" not in found and has_loop(r.synthesis):
            found.add("loop")
    return [flag for flag in FLAGS if flag in found]


def flags_of(trace: TraceRecord) -> list[str]:
    """The trace's stored flags, or (a v2 trace, one built by hand) the flags computed now."""
    return trace.flags if trace.flags is not None else quality_flags(trace)


def with_flags(trace: TraceRecord) -> TraceRecord:
    """``trace`` with its quality flags computed and stored (what the collect side writes)."""
    return trace.model_copy(update={"flags": quality_flags(trace)})
