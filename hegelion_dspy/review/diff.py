"""A word-level diff of two texts (thesis -> synthesis) as a list of runs, for the trace page to render escaped."""

from __future__ import annotations

import difflib
import re
from typing import Literal, NamedTuple

Op = Literal["same", "del", "ins"]
MAX_DIFF_WORDS = 6000  # beyond this the diff is cut (SequenceMatcher is quadratic in the worst case)
_TOKEN = re.compile(r"\s+|[^\s]+")


class Run(NamedTuple):
    op: Op
    text: str


def word_diff(before: str, after: str, *, max_words: int = MAX_DIFF_WORDS) -> tuple[list[Run], bool]:
    """Runs that turn ``before`` into ``after`` word by word (whitespace kept), and whether the texts were cut."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    cut = len(a) > 2 * max_words or len(b) > 2 * max_words  # tokens: words and the spaces between them
    a, b = a[: 2 * max_words], b[: 2 * max_words]
    runs: list[Run] = []

    def add(op: Op, tokens: list[str]) -> None:
        if not tokens:
            return
        text = "".join(tokens)
        if runs and runs[-1].op == op:
            runs[-1] = Run(op, runs[-1].text + text)
        else:
            runs.append(Run(op, text))

    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", a[i1:i2])
        else:
            add("del", a[i1:i2])
            add("ins", b[j1:j2])
    return runs, cut


def diff_ratio(runs: list[Run]) -> float:
    """The share of characters that stayed the same (0..1), over both texts."""
    same = sum(len(r.text) for r in runs if r.op == "same")
    total = same * 2 + sum(len(r.text) for r in runs if r.op != "same")
    return 1.0 if total == 0 else 2 * same / total
