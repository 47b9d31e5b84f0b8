"""A report's metric entries: M's value with its interval, M0's beside it, and the paired difference M − M0 (or
M against a fixed null value, e.g. 0.5 for a preference accuracy whose base, scored against itself, ties on every
item). Suites build their summaries from these; ``report.py`` renders them."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypedDict

from .stats import DifferenceEntry, IntervalEntry, interval_of, paired_difference


class MetricEntry(TypedDict):
    """One metric of a suite in the report: M's mean and interval, M0's, and the difference (None without items)."""

    metric: str
    about: str
    m: IntervalEntry
    m0: IntervalEntry | None
    diff: DifferenceEntry | None


class Summary(TypedDict):
    """A suite's part of the report: its metrics and its counts (items, refusals, ties, ...)."""

    metrics: list[MetricEntry]
    counts: dict[str, int | float]


def metric(
    name: str,
    m: Sequence[float],
    m0: Sequence[float] | None = None,
    *,
    seed: int = 0,
    null: float | None = None,
    about: str = "",
    groups: Sequence[Hashable] | None = None,
) -> MetricEntry:
    """One metric entry: ``m`` (and ``m0``) are per-item values on the same items; with ``null`` and no ``m0`` the
    difference is M − null. ``groups`` labels items that are not independent (resampled together). Entries with no
    items have ``n`` 0 and no interval."""
    diff: DifferenceEntry | None = None
    if m and m0 is not None:
        diff = paired_difference(m, m0, seed=seed, groups=groups).as_dict()
    elif m and null is not None:
        diff = paired_difference(m, [null] * len(m), seed=seed, groups=groups).as_dict()
        diff["against"] = null
    m0_entry = interval_of(m0, seed=seed, groups=groups).as_dict() if m0 is not None else None
    m_entry = interval_of(m, seed=seed, groups=groups).as_dict()
    return {"metric": name, "about": about, "m": m_entry, "m0": m0_entry, "diff": diff}


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
