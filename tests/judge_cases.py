"""Hand-made judging cases shared by the checks, judge and metric tests: a median function and two flaws."""

from __future__ import annotations

from hegelion_dspy.types import Contradiction

TASK = "Write a function that returns the median of a list of numbers."
THESIS = "Sort the list and return the element in the middle: xs = sorted(xs); return xs[len(xs) // 2]."
EMPTY = Contradiction(description="It crashes on an empty list.", evidence="sorted([])[0] raises IndexError.")
EVEN = Contradiction(description="For an even number of values it returns the upper middle, not the mean of both.")
GOOD = (
    "Raise ValueError on an empty list. Sort the values; for an odd count return the middle value, for an even "
    "count return the mean of both middle values."
)
HALF = "Raise ValueError when the list is empty, then sort and return the middle element."
