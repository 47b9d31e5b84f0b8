"""The statistics of an evaluation, pure (numpy only, no torch): paired bootstrap intervals and McNemar's exact test.

Every M-vs-M0 difference in a report is a ``Difference``: the mean of the paired per-item differences, its paired
bootstrap 95% interval (percentile method: resample items with replacement, recompute the mean difference), and for
paired 0/1 outcomes McNemar's exact (binomial) p-value. A difference is called significant only when its interval
excludes 0, it rests on at least ``MIN_ITEMS`` paired items, and, for 0/1 outcomes, McNemar's p is below the
interval's error rate too; otherwise the report says "no significant difference" (or, under ``MIN_ITEMS``, that there
are too few items to tell).

Why a minimum: a percentile bootstrap over a handful of items has as many resamples as distinct means, so two items
that both favour M give the interval [1, 1] and would read as certain; and McNemar's exact test cannot reach p < 0.05
with fewer than 6 discordant pairs. Ten items is the smallest sample this module calls a difference on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
NO_DIFFERENCE = "no significant difference"
MIN_ITEMS = 10


class IntervalEntry(TypedDict):
    """An ``Interval`` in a report (``report.json``)."""

    mean: float
    low: float
    high: float
    n: int
    level: float


class DifferenceEntry(IntervalEntry):
    """A ``Difference`` in a report; ``against`` is the null value M was compared with when there is no M0."""

    mcnemar_p: float | None
    discordant: list[int] | None
    significant: bool
    verdict: str
    against: NotRequired[float]


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval (``low`` .. ``high`` at ``level``) over ``n`` items."""

    mean: float
    low: float
    high: float
    n: int
    level: float = DEFAULT_LEVEL

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> IntervalEntry:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "level": self.level}


@dataclass(frozen=True)
class Difference:
    """M minus M0 on paired items: the interval of the mean difference, McNemar's p for 0/1 outcomes, the verdict."""

    interval: Interval
    mcnemar_p: float | None = None
    discordant: tuple[int, int] | None = None  # (M right & M0 wrong, M wrong & M0 right) for 0/1 outcomes

    @property
    def too_few(self) -> bool:
        return self.interval.n < MIN_ITEMS

    @property
    def significant(self) -> bool:
        if self.too_few or self.interval.holds(0.0):
            return False
        return self.mcnemar_p is None or self.mcnemar_p < 1.0 - self.interval.level

    @property
    def verdict(self) -> str:
        if self.too_few:
            return f"too few items to tell (n={self.interval.n}; a difference is called from {MIN_ITEMS} items)"
        if not self.significant:
            return NO_DIFFERENCE
        return "M higher" if self.interval.mean > 0 else "M lower"

    def as_dict(self) -> DifferenceEntry:
        return {
            **self.interval.as_dict(),
            "mcnemar_p": self.mcnemar_p,
            "discordant": list(self.discordant) if self.discordant else None,
            "significant": self.significant,
            "verdict": self.verdict,
        }


def _check_values(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if any(math.isnan(v) for v in out):
        raise ValueError(f"{what} holds NaN; drop or score those items before the statistics")
    return out


def bootstrap_mean(
    values: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL
) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval (empty input: NaN mean, n=0)."""
    import numpy as np

    data = np.asarray(_check_values(values, "values"), dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // data.size)  # bound memory: resample in blocks of ~2M draws
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size), level)


def paired_difference(
    m: Sequence[float],
    m0: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Difference:
    """M minus M0 on the same items, in order: the paired bootstrap interval of the mean difference; McNemar's exact
    p-value too when both are 0/1 outcomes."""
    a, b = _check_values(m, "M's values"), _check_values(m0, "M0's values")
    if len(a) != len(b):
        raise ValueError(f"paired values must have one value per item each; got {len(a)} and {len(b)}")
    interval = bootstrap_mean([x - y for x, y in zip(a, b, strict=True)], resamples=resamples, seed=seed, level=level)
    if all(v in (0.0, 1.0) for v in a + b):
        m_only = sum(1 for x, y in zip(a, b, strict=True) if x == 1.0 and y == 0.0)
        m0_only = sum(1 for x, y in zip(a, b, strict=True) if x == 0.0 and y == 1.0)
        return Difference(interval, mcnemar_exact(m_only, m0_only), (m_only, m0_only))
    return Difference(interval)


def mcnemar_exact(m_only: int, m0_only: int) -> float:
    """McNemar's exact two-sided p-value from the discordant pairs: ``m_only`` items only M got right, ``m0_only``
    items only M0 got right. Under no difference each discordant pair is a fair coin: p = 2 * P(X <= min) for
    X ~ Binomial(m_only + m0_only, 1/2), capped at 1 (1 when there is no discordant pair)."""
    if m_only < 0 or m0_only < 0:
        raise ValueError(f"discordant counts must be >= 0; got {m_only} and {m0_only}")
    n = m_only + m0_only
    if n == 0:
        return 1.0
    k = min(m_only, m0_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def tie_aware_accuracy(margins: Sequence[float], *, tol: float = 0.0) -> tuple[list[float], int]:
    """Per-item scores of "margin > 0": 1 above ``tol``, 0 below ``-tol``, 0.5 for a tie (|margin| <= tol), and the
    number of ties. A model scored against itself has every margin exactly 0: counted as half, not as wrong, so a null
    comparison reads 0.5, not a huge negative effect."""
    scores: list[float] = []
    ties = 0
    for margin in margins:
        if abs(margin) <= tol:
            scores.append(0.5)
            ties += 1
        else:
            scores.append(1.0 if margin > 0 else 0.0)
    return scores, ties
