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

Two refinements keep the intervals honest where the plain bootstrap is not:

- **One model's accuracy (0/1 outcomes)** gets the exact Clopper–Pearson interval, not the bootstrap: a bootstrap of
  200 zeros is [0, 0], which claims certainty; the exact interval is [0, 0.018].
- **Items that are not independent** (the preference suite's pairs: one held-out trace gives a thesis-rejected and an
  antithesis-rejected pair on the same prompt) are resampled by group (``groups``: one label per item), the cluster
  bootstrap; the minimum then counts groups, not items, and McNemar's test, which assumes independent pairs, is left
  out (``mcnemar_p`` None): the verdict rests on the cluster interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
NO_DIFFERENCE = "no significant difference"
MIN_ITEMS = 10
BOOTSTRAP, EXACT, CLUSTER = "bootstrap", "exact", "cluster bootstrap"


class IntervalEntry(TypedDict):
    """An ``Interval`` in a report (``report.json``)."""

    mean: float
    low: float
    high: float
    n: int
    level: float
    method: str
    groups: int | None


class DifferenceEntry(IntervalEntry):
    """A ``Difference`` in a report; ``against`` is the null value M was compared with when there is no M0."""

    mcnemar_p: float | None
    discordant: list[int] | None
    significant: bool
    verdict: str
    against: NotRequired[float]


@dataclass(frozen=True)
class Interval:
    """A mean with its interval (``low`` .. ``high`` at ``level``) over ``n`` items; ``method`` says how the interval
    was made (``bootstrap``, ``exact`` for Clopper–Pearson, ``cluster bootstrap`` over ``groups`` groups)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = DEFAULT_LEVEL
    method: str = BOOTSTRAP
    groups: int | None = None

    @property
    def units(self) -> int:
        """The independent units behind the interval: the groups of a cluster bootstrap, else the items."""
        return self.groups if self.groups is not None else self.n

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> IntervalEntry:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "level": self.level,
            "method": self.method,
            "groups": self.groups,
        }


@dataclass(frozen=True)
class Difference:
    """M minus M0 on paired items: the interval of the mean difference, McNemar's p for 0/1 outcomes, the verdict."""

    interval: Interval
    mcnemar_p: float | None = None
    discordant: tuple[int, int] | None = None  # (M right & M0 wrong, M wrong & M0 right) for 0/1 outcomes

    @property
    def too_few(self) -> bool:
        return self.interval.units < MIN_ITEMS

    @property
    def significant(self) -> bool:
        if self.too_few or self.interval.holds(0.0):
            return False
        return self.mcnemar_p is None or self.mcnemar_p < 1.0 - self.interval.level

    @property
    def verdict(self) -> str:
        if self.too_few:
            if self.interval.groups is not None:
                return (
                    f"too few groups to tell ({self.interval.groups} groups of {self.interval.n} items; "
                    f"a difference is called from {MIN_ITEMS})"
                )
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


def _group_index(groups: Sequence[Hashable] | None, n: int) -> list[int] | None:
    """Each item's group number, or None when there are no groups or every item is a group of its own."""
    if groups is None:
        return None
    if len(groups) != n:
        raise ValueError(f"groups must have one label per item; got {len(groups)} labels for {n} items")
    numbers: dict[Hashable, int] = {}
    index = [numbers.setdefault(label, len(numbers)) for label in groups]
    return index if len(numbers) < n else None


def bootstrap_mean(
    values: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    groups: Sequence[Hashable] | None = None,
) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval (empty input: NaN mean, n=0). With ``groups`` (a
    label per item) whole groups are resampled, and the mean of a resample is over the items of its groups."""
    import numpy as np

    data = np.asarray(_check_values(values, "values"), dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    index = _group_index(groups, int(data.size))
    rng = np.random.default_rng(seed)
    if index is None:
        sums, counts = data, np.ones_like(data)
    else:
        sums = np.bincount(index, weights=data)
        counts = np.bincount(index).astype(float)
    k = int(sums.size)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // k)  # bound memory: resample in blocks of ~2M draws
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, k, size=(stop - start, k))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    if index is None:
        return Interval(float(data.mean()), float(low), float(high), int(data.size), level)
    return Interval(float(data.mean()), float(low), float(high), int(data.size), level, CLUSTER, k)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact to float precision for the n of an eval)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _solve(f: Callable[[float], float], target: float) -> float:
    """The p in [0, 1] where the decreasing function ``f`` crosses ``target`` (bisection to 1e-12)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2.0
        if f(mid) > target:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def exact_proportion(successes: int, n: int, *, level: float = DEFAULT_LEVEL) -> Interval:
    """The Clopper–Pearson exact interval of a proportion: the p whose binomial tails at the observed count are each
    (1 − level)/2. 0 of n gives [0, 1 − ((1 − level)/2)^(1/n)]; n of n its mirror."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n; got {successes} of {n}")
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level, EXACT)
    tail = (1.0 - level) / 2.0
    low = 0.0 if successes == 0 else _solve(lambda p: _binomial_cdf(successes - 1, n, p), 1.0 - tail)
    high = 1.0 if successes == n else _solve(lambda p: _binomial_cdf(successes, n, p), tail)
    return Interval(successes / n, low, high, n, level, EXACT)


def interval_of(
    values: Sequence[float],
    *,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    groups: Sequence[Hashable] | None = None,
) -> Interval:
    """The interval a report gives one model's per-item values: exact for independent 0/1 outcomes, the cluster
    bootstrap for grouped items, the percentile bootstrap otherwise."""
    data = _check_values(values, "values")
    if data and _group_index(groups, len(data)) is None and all(v in (0.0, 1.0) for v in data):
        return exact_proportion(int(sum(data)), len(data), level=level)
    return bootstrap_mean(data, seed=seed, level=level, groups=groups)


def paired_difference(
    m: Sequence[float],
    m0: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    groups: Sequence[Hashable] | None = None,
) -> Difference:
    """M minus M0 on the same items, in order: the paired bootstrap interval of the mean difference (by group with
    ``groups``); McNemar's exact p-value too when both are 0/1 outcomes of independent items."""
    a, b = _check_values(m, "M's values"), _check_values(m0, "M0's values")
    if len(a) != len(b):
        raise ValueError(f"paired values must have one value per item each; got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    interval = bootstrap_mean(diffs, resamples=resamples, seed=seed, level=level, groups=groups)
    if interval.groups is None and all(v in (0.0, 1.0) for v in a + b):
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
