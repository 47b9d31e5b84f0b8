"""Quality flags: what makes a trace's pairs unfit to train on, decided by one pure function over its texts.

``quality_flags(trace)`` names every problem it finds, in ``FLAGS`` order:

- ``truncated``: a chosen side (the synthesis of a round; the last one is the final synthesis) stopped at the token
  cap (``Round.truncated`` lists it): the text is probably cut off mid-answer.
- ``copy``: a synthesis is equal or near-equal (``copy_similarity`` at or above ``COPY_THRESHOLD``) to its round's
  antithesis (it parroted the critique), or the first synthesis or the final one to the first thesis (the dialectic
  changed nothing). A later round's synthesis that only repeats the one before it (a round that changed nothing) is
  not a copy: the first-last pair still carries the first round's change.
- ``no_critique``: a round's antithesis lists no contradiction and does not object: it praises or agrees
  (``_PRAISE``) and says nothing critical (``_OBJECTION``) outside those phrases. The pair then teaches nothing.
- ``leak``: adapter or prompt scaffolding in a step's text: DSPy field markers (``[[ ## synthesis ## ]]``), DSPy's
  ChatAdapter instructions ("Respond with the corresponding output fields..."), a field label as our WholeReplyAdapter
  writes it ("Thesis (the answer under attack):", which the embedded model echoes), or a sentence of our signatures'
  instructions or field descriptions (read from ``signatures.py`` without importing dspy).
- ``loop``: a synthesis repeats itself: some run of ``LOOP_WORDS`` words occurs ``LOOP_TIMES`` times or more (a
  stutter "the the the ..." and a sentence said over and over both count).

The collect side stores the flags in each trace it writes (``TraceRecord.flags``); a trace without them (a v2 log,
a record built by hand) gets them from ``flags_of`` when read. The export's verdict (``curate/verdict.py``) decides
with them. This module is core (like ``checks.py``): pure, no dspy, imported by collect/ and curate/ alike.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections import Counter
from functools import cache
from importlib.resources import files
from typing import get_args

from .checks import COPY_THRESHOLD  # one threshold for the judge's copy check and this flag
from .types import QualityFlag, Round, TraceRecord

FLAGS: tuple[QualityFlag, ...] = get_args(QualityFlag)

# Word-level similarity (difflib ratio over case-folded words) at or above which a synthesis is a copy. 0.9 is the
# judge's copy threshold too (checks.COPY_THRESHOLD, there on characters): at 0.9 a 100-word answer may differ from
# the other text in about 5 words (a greeting, a reworded clause) and still count; a real rewrite keeps far fewer
# words in order. Words, not characters: any two English texts share most letters, so the cheap bounds below would
# never rule a pair out and difflib's exact ratio (quadratic) would run on every pair. difflib's own heuristic for
# long sequences (autojunk: from 200 words, a word making up over 1% of the other text is matched only next to a
# matched block) keeps the exact ratio fast on repetitive text, where it was seconds a pair ('word ' * 2000); on prose
# it moves the ratio by under 0.001 (README text, 300-1000 words, 3-8% of words replaced). A text so repetitive that
# most of its words are junk to difflib scores low here and is flagged as a loop instead.
LOOP_WORDS = 8
LOOP_TIMES = 4
_MAX_COMPARE_WORDS = 4000  # compare (and look for loops in) at most this many words of each text


def copy_similarity(text: str, other: str) -> float:
    """difflib's ratio of the two texts as case-folded word lists (1.0 = the same words in the same order).

    Pairs that cannot reach ``COPY_THRESHOLD`` get a cheap upper bound instead (the length ratio, then the shared
    word multiset), so the exact ratio runs only on likely copies."""
    return _similarity(_words(text), _words(other))


def _words(text: str) -> list[str]:
    return text.casefold().split()[:_MAX_COMPARE_WORDS]


def _similarity(a: list[str], b: list[str], counted: Counter[str] | None = None) -> float:
    """``copy_similarity`` of two word lists (``counted``: ``Counter(a)``, when the caller has it)."""
    if a == b:
        return 1.0
    total = len(a) + len(b)
    if not a or not b:
        return 0.0
    bound = 2 * min(len(a), len(b)) / total
    if bound < COPY_THRESHOLD:
        return bound
    bound = 2 * sum(((counted or Counter(a)) & Counter(b)).values()) / total
    if bound < COPY_THRESHOLD:
        return bound
    return difflib.SequenceMatcher(None, a, b).ratio()


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
    labels: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and (doc := ast.get_docstring(node)):
            texts.append(doc)
        elif isinstance(node, ast.keyword) and node.arg == "desc" and isinstance(node.value, ast.Constant):
            texts.append(str(node.value.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(node.value, ast.Call):
            found = [k.value for k in node.value.keywords if k.arg == "desc"]
            descs = [v.value for v in found if isinstance(v, ast.Constant)]
            labels |= {_field_label(node.target.id, desc) for desc in descs if isinstance(desc, str)}
        elif isinstance(node, ast.AnnAssign) and node.value and getattr(node.target, "id", "") == "CODING_INSTRUCTIONS":
            texts += [v.value for v in ast.walk(node.value) if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    sentences = {
        s.strip()
        for text in texts
        for s in re.split(r"(?<=[.:])\s+", " ".join(text.casefold().split()))
        if len(s.strip()) >= _MIN_PROMPT_SENTENCE
    }
    return (*_ADAPTER_PHRASES, *sorted(labels), *sorted(sentences))


def _field_label(name: str, desc: str) -> str:
    """A field as the WholeReplyAdapter labels it in a prompt, case-folded: 'thesis (the answer under attack)'."""
    return f"{name.replace('_', ' ')} ({desc.strip().rstrip('.')})".casefold()


@cache
def _anchors() -> frozenset[str]:
    """One inner word of each phrase (its longest): a text holding a phrase holds that word as a whole word."""
    return frozenset(max(phrase.split()[1:-1], key=len) for phrase in _prompt_phrases())


def has_leak(text: str, words: list[str] | None = None) -> bool:
    """Whether ``text`` carries adapter or prompt scaffolding (see the module docstring); ``words``: the text's
    case-folded words, when the caller has them."""
    if "[[ ##" in text and _FIELD_MARKER.search(text):
        return True
    # most texts hold no phrase's anchor word: one set intersection instead of a search per phrase
    if _anchors().isdisjoint(words if words is not None else text.casefold().split()):
        return False
    # line breaks as spaces (a leaked instruction may be wrapped), not a full whitespace normalisation: this runs on
    # every text of a v2 log an export reads
    folded = text.casefold().replace("\n", " ")
    return any(phrase in folded for phrase in _prompt_phrases())


# -- loops ---------------------------------------------------------------------------------------------------------


def has_loop(text: str) -> bool:
    """Whether some run of ``LOOP_WORDS`` words occurs ``LOOP_TIMES`` times or more in ``text``."""
    return _has_loop(text.casefold().split())


def _has_loop(words: list[str]) -> bool:
    if len(words) < LOOP_WORDS + LOOP_TIMES - 1:
        return False
    runs = list(zip(*(words[i:] for i in range(LOOP_WORDS)), strict=False))
    if len(set(runs)) > len(runs) - (LOOP_TIMES - 1):  # too few repeats for any run to occur LOOP_TIMES times
        return False
    return max(Counter(runs).values()) >= LOOP_TIMES


# -- the flags -----------------------------------------------------------------------------------------------------


def quality_flags(trace: TraceRecord) -> list[QualityFlag]:
    """Every quality flag of ``trace`` (a sub-list of ``FLAGS``, in its order); ``[]`` when none applies."""
    rounds = trace.rounds
    found: set[QualityFlag] = set()
    first_thesis = _words(rounds[0].thesis) if rounds else []
    for r in rounds:
        if "synthesis" in r.truncated:
            found.add("truncated")
        full = r.synthesis.casefold().split()
        words = full[:_MAX_COMPARE_WORDS]
        if "copy" not in found:
            counted = Counter(words)
            against = [_words(r.antithesis)]
            if r.index == 1 or r is rounds[-1]:
                against.append(first_thesis)
            if any(_similarity(words, other, counted) >= COPY_THRESHOLD for other in against):
                found.add("copy")
        if "no_critique" not in found and is_no_critique(r):
            found.add("no_critique")
        if "leak" not in found and (has_leak(r.thesis) or has_leak(r.antithesis) or has_leak(r.synthesis, full)):
            found.add("leak")
        if "loop" not in found and _has_loop(words):
            found.add("loop")
    return [flag for flag in FLAGS if flag in found]


def flags_of(trace: TraceRecord) -> list[QualityFlag]:
    """The trace's stored flags, or (a v2 trace, one built by hand) the flags computed now."""
    return trace.flags if trace.flags is not None else quality_flags(trace)


def with_flags(trace: TraceRecord) -> TraceRecord:
    """``trace`` with its quality flags computed and stored (what the collect side writes)."""
    return trace.model_copy(update={"flags": quality_flags(trace)})
