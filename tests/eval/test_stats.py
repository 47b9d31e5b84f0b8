"""The statistics against values worked by hand (scipy is not installed here; the binomial sums are written out)."""

from __future__ import annotations

import math

import pytest

from hegelion_dspy.eval.stats import (
    NO_DIFFERENCE,
    bootstrap_mean,
    exact_proportion,
    interval_of,
    mcnemar_exact,
    paired_difference,
    tie_aware_accuracy,
)


@pytest.mark.parametrize(
    ("m_only", "m0_only", "expected"),
    [
        (1, 6, 2 * (1 + 7) / 2**7),  # 0.125
        (0, 5, 2 * 1 / 2**5),  # 0.0625
        (2, 10, 2 * (1 + 12 + 66) / 2**12),  # 0.03857...
        (10, 2, 2 * (1 + 12 + 66) / 2**12),  # symmetric
        (3, 3, 1.0),  # 2 * 42/64 > 1: capped
        (0, 0, 1.0),  # no discordant pair
        (0, 1, 1.0),  # 2 * 1/2
    ],
)
def test_mcnemar_exact_matches_the_binomial_sums_worked_by_hand(m_only, m0_only, expected):
    assert mcnemar_exact(m_only, m0_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_bootstrap_of_a_constant_is_that_constant():
    interval = bootstrap_mean([0.25] * 40, resamples=200)
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.25, 0.25, 0.25, 40)


def test_bootstrap_of_two_items_spans_their_range():
    # Resampling [1, 0]: means 0 (p 1/4), 0.5 (1/2), 1 (1/4): the 2.5% and 97.5% quantiles are 0 and 1.
    interval = bootstrap_mean([1.0, 0.0], resamples=4000, seed=3)
    assert interval.mean == 0.5
    assert (interval.low, interval.high) == (0.0, 1.0)


def test_bootstrap_interval_is_close_to_the_normal_one_on_many_coin_flips():
    values = [1.0] * 300 + [0.0] * 700  # p = 0.3, se = sqrt(.3*.7/1000) = 0.01449
    interval = bootstrap_mean(values, resamples=4000, seed=1)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 1000)
    assert interval.low == pytest.approx(0.3 - half, abs=0.004)
    assert interval.high == pytest.approx(0.3 + half, abs=0.004)


def test_bootstrap_is_reproducible_from_its_seed_and_empty_input_is_nan():
    values = [0.1, 0.9, 0.4, 0.7, 0.2]
    assert bootstrap_mean(values, seed=5) == bootstrap_mean(values, seed=5)
    empty = bootstrap_mean([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_a_model_against_itself_has_no_significant_difference():
    outcomes = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0] * 10
    diff = paired_difference(outcomes, outcomes)
    assert diff.interval.mean == 0.0 and diff.interval.holds(0.0)
    assert diff.mcnemar_p == 1.0 and diff.discordant == (0, 0)
    assert not diff.significant and diff.verdict == NO_DIFFERENCE


def test_a_clear_paired_gain_is_significant_with_mcnemar():
    m = [1.0] * 30 + [0.0] * 10
    m0 = [0.0] * 20 + [1.0] * 10 + [0.0] * 10  # M right on 20 items M0 got wrong; never the reverse
    diff = paired_difference(m, m0, seed=2)
    assert diff.interval.mean == pytest.approx(0.5)
    assert diff.interval.low > 0 and diff.significant and diff.verdict == "M higher"
    assert diff.discordant == (20, 0)
    assert diff.mcnemar_p == pytest.approx(2 / 2**20)


def test_non_binary_differences_get_an_interval_but_no_mcnemar():
    diff = paired_difference([0.5, 0.7], [0.1, 0.2])
    assert diff.mcnemar_p is None and diff.interval.mean == pytest.approx(0.45)


def test_paired_difference_needs_one_value_per_item_each():
    with pytest.raises(ValueError, match="one value per item"):
        paired_difference([1.0, 0.0], [1.0])


def test_ties_count_as_half_and_are_counted():
    scores, ties = tie_aware_accuracy([0.0, 0.0, 2.0, -1.0, 1e-9], tol=1e-6)
    assert scores == [0.5, 0.5, 1.0, 0.0, 0.5] and ties == 3
    # A model against itself: all margins exactly 0 -> accuracy 0.5, not 0.
    scores, ties = tie_aware_accuracy([0.0] * 8)
    assert sum(scores) / len(scores) == 0.5 and ties == 8


def test_two_items_that_both_favour_m_are_too_few_to_call():
    diff = paired_difference([1.0, 1.0], [0.0, 0.0])
    assert (diff.interval.low, diff.interval.high) == (1.0, 1.0)  # the degenerate bootstrap of two items
    assert not diff.significant and diff.too_few
    assert diff.verdict.startswith("too few items to tell (n=2;")
    assert diff.as_dict()["significant"] is False


def test_an_interval_clear_of_zero_is_not_called_while_mcnemar_cannot_reject():
    m = [1.0] * 5 + [0.0] * 7
    m0 = [0.0] * 12  # five discordant pairs, all for M: the exact test's smallest p is 2 / 2**5 = 0.0625
    diff = paired_difference(m, m0, seed=1)
    assert diff.interval.low > 0 and diff.mcnemar_p == pytest.approx(0.0625)
    assert not diff.significant and diff.verdict == NO_DIFFERENCE
    six = paired_difference([1.0] * 6 + [0.0] * 6, [0.0] * 12, seed=1)
    assert six.mcnemar_p == pytest.approx(2 / 2**6) and six.significant and six.verdict == "M higher"


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [  # R: binom.test(x, n)$conf.int
        (3, 10, 0.06673951, 0.65245285),
        (500, 1000, 0.46854917, 0.53145083),
        (0, 200, 0.0, 1 - 0.025 ** (1 / 200)),  # closed form at 0: 0.01827534
        (200, 200, 0.025 ** (1 / 200), 1.0),
        (1, 1, 0.025, 1.0),
    ],
)
def test_exact_proportion_matches_clopper_pearson(successes, n, low, high):
    interval = exact_proportion(successes, n)
    assert interval.method == "exact" and interval.n == n and interval.mean == successes / n
    assert interval.low == pytest.approx(low, abs=1e-7) and interval.high == pytest.approx(high, abs=1e-7)


def test_one_models_accuracy_gets_the_exact_interval_where_the_bootstrap_claims_certainty():
    zeros = [0.0] * 200
    assert (bootstrap_mean(zeros).low, bootstrap_mean(zeros).high) == (0.0, 0.0)
    exact = interval_of(zeros)
    assert exact.method == "exact" and exact.high == pytest.approx(0.0183, abs=1e-4)
    assert interval_of([0.5, 1.0, 0.0]).method == "bootstrap"  # ties counted half: not a 0/1 outcome


def test_grouped_items_are_resampled_by_group():
    # Ten prompts, each giving five identical pairs: the evidence is ten values, not fifty.
    per_prompt = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    values = [v for v in per_prompt for _ in range(5)]
    groups = [g for g in range(10) for _ in range(5)]
    clustered = bootstrap_mean(values, groups=groups, seed=4)
    by_prompt = bootstrap_mean(per_prompt, seed=4)
    naive = bootstrap_mean(values, seed=4)
    assert clustered.method == "cluster bootstrap" and clustered.groups == 10 and clustered.n == 50
    assert clustered.mean == pytest.approx(0.7)
    assert clustered.high - clustered.low == pytest.approx(by_prompt.high - by_prompt.low, abs=0.03)
    assert naive.high - naive.low < 0.6 * (clustered.high - clustered.low)
    # every item a group of its own: the plain bootstrap
    assert bootstrap_mean(per_prompt, groups=list("abcdefghij"), seed=4) == by_prompt
    with pytest.raises(ValueError, match="one label per item"):
        bootstrap_mean(values, groups=[0, 1])


def test_grouped_differences_count_groups_for_the_minimum_and_skip_mcnemar():
    m = [1.0] * 24
    m0 = [0.0] * 24
    few = paired_difference(m, m0, groups=[g for g in range(6) for _ in range(4)])  # 24 pairs from 6 prompts
    assert few.too_few and not few.significant and few.mcnemar_p is None
    assert few.verdict.startswith("too few groups to tell (6 groups of 24 items")
    many = paired_difference(m, m0, groups=[g for g in range(12) for _ in range(2)])
    assert not many.too_few and many.significant and many.verdict == "M higher"
    assert many.as_dict()["groups"] == 12 and many.as_dict()["method"] == "cluster bootstrap"
