"""A report's metric entries: M's value with its interval, M0's beside it, and the paired difference M − M0 (or
M against a fixed null value, e.g. 0.5 for a preference accuracy whose base, scored against itself, ties on every
item). Suites build their summaries from these; ``report.py`` renders them."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..types import JSONObject
from .stats import interval_of, paired_difference


def metric(
    name: str,
    m: Sequence[float],
    m0: Sequence[float] | None = None,
    *,
    seed: int = 0,
    null: float | None = None,
    about: str = "",
    groups: Sequence[Hashable] | None = None,
) -> JSONObject:
    """One metric entry: ``m`` (and ``m0``) are per-item values on the same items; with ``null`` and no ``m0`` the
    difference is M − null. ``groups`` labels items that are not independent (resampled together). Entries with no
    items have ``n`` 0 and no interval."""
    entry: dict[str, Any] = {"metric": name, "about": about, "m": interval_of(m, seed=seed, groups=groups).as_dict()}
    entry["m0"] = interval_of(m0, seed=seed, groups=groups).as_dict() if m0 is not None else None
    if not m:
        entry["diff"] = None
    elif m0 is not None:
        entry["diff"] = paired_difference(m, m0, seed=seed, groups=groups).as_dict()
    elif null is not None:
        entry["diff"] = paired_difference(m, [null] * len(m), seed=seed, groups=groups).as_dict()
        entry["diff"]["against"] = null
    else:
        entry["diff"] = None
    return entry


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
