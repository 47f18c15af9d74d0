"""Tests for openbench.stats: hand-computed cases, FACTS.md planning numbers,
and simulations of the non-inferiority gate's error rates (seeded)."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from openbench.stats import (
    Estimate,
    PairedDiff,
    mde_for,
    mean_ci,
    non_inferior,
    normal_quantile,
    paired_diff,
    paired_intervals,
    percentile,
    required_n,
    t_quantile,
)

Z975 = 1.959963984540054  # standard normal 97.5% point
Z80 = 0.8416212335729143  # standard normal 80% point


# ---------------------------------------------------------------------------
# percentile


def test_percentile_linear_interpolation_by_hand() -> None:
    v = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4; position = 3 * q / 100
    assert percentile(v, 0) == 1.0
    assert percentile(v, 100) == 4.0
    assert percentile(v, 50) == pytest.approx(2.5)  # pos 1.5
    assert percentile(v, 25) == pytest.approx(1.75)  # pos 0.75
    assert percentile(v, 90) == pytest.approx(3.7)  # pos 2.7
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_percentile_matches_numpy_default() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(size=37)
    for q in (1, 5, 33.3, 50, 95, 99):
        assert percentile(x, q) == pytest.approx(float(np.percentile(x, q)), rel=1e-12)


def test_percentile_rejects_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


# ---------------------------------------------------------------------------
# quantiles


@pytest.mark.parametrize(
    ("df", "expected"),
    # Two-sided 95% points from standard t tables.
    [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445), (5, 2.570582),
     (10, 2.228139), (30, 2.042272), (100, 1.983972)],
)  # fmt: skip
def test_t_quantile_table(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-6)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-6)


@pytest.mark.parametrize(("p", "df"), [(0.975, 2.5), (0.995, 3), (0.9, 7), (0.975, 17)])
def test_t_quantile_against_numerical_integration(p: float, df: float) -> None:
    """Independent check: integrate the t density up to the returned quantile."""
    t = t_quantile(p, df)
    x = np.linspace(0.0, t, 200_001)
    const = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    pdf = const * (1 + x**2 / df) ** (-(df + 1) / 2)
    h = x[1] - x[0]
    integral = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    assert 0.5 + integral == pytest.approx(p, abs=1e-9)


def test_t_quantile_large_df_tends_to_normal() -> None:
    assert t_quantile(0.975, 1e6) == pytest.approx(Z975, abs=1e-5)
    assert normal_quantile(0.975) == pytest.approx(Z975, abs=1e-12)
    assert t_quantile(0.5, 3) == 0.0


# ---------------------------------------------------------------------------
# mean_ci


def test_wilson_interval_for_8_of_10_by_hand() -> None:
    # p = 0.8, z^2 = 3.841459, denom = 1 + z^2/10 = 1.3841459
    # centre = (0.8 + z^2/20) / denom = 0.716744
    # half = z / denom * sqrt(0.8 * 0.2 / 10 + z^2 / 400) = 0.226578
    est = mean_ci([1] * 8 + [0] * 2)
    assert est == Estimate(mean=0.8, lo=pytest.approx(0.490162, abs=1e-6),
                           hi=pytest.approx(0.943318, abs=1e-6), n=10)  # fmt: skip


def test_wilson_interval_at_extremes_has_width() -> None:
    est = mean_ci([1] * 20)
    assert est.mean == 1.0 and est.hi == pytest.approx(1.0)
    # Wilson lower bound for 20/20: 20 / (20 + z^2)
    assert est.lo == pytest.approx(20 / (20 + Z975**2), abs=1e-9)
    est0 = mean_ci([False] * 20)  # bools count as binary
    assert est0.lo == pytest.approx(0.0) and est0.hi == pytest.approx(Z975**2 / (20 + Z975**2))


def test_t_interval_by_hand() -> None:
    # mean 3, sd = sqrt(2.5), se = sqrt(0.5) = 0.707107, t(0.975, 4) = 2.776445
    est = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert est.mean == 3.0 and est.n == 5
    assert est.lo == pytest.approx(3 - 2.776445 * math.sqrt(0.5), abs=1e-5)
    assert est.hi == pytest.approx(3 + 1.963243, abs=1e-5)
    est90 = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], confidence=0.9)  # t(0.95, 4) = 2.131847
    assert est90.hi == pytest.approx(3 + 2.131847 * math.sqrt(0.5), abs=1e-5)


def test_mean_ci_small_n() -> None:
    assert mean_ci([]) == Estimate(None, None, None, 0)
    assert mean_ci([0.7]) == Estimate(0.7, None, None, 1)
    assert mean_ci([1]) == Estimate(1.0, None, None, 1)
    with pytest.raises(ValueError):
        mean_ci([1.0, float("nan")])


# ---------------------------------------------------------------------------
# planning numbers (FACTS.md "Prices and statistics")


@pytest.mark.parametrize(("disagree", "facts_n"), [(0.05, 980), (0.10, 1960), (0.20, 3920)])
def test_required_n_matches_facts(disagree: float, facts_n: int) -> None:
    n = required_n(0.02, math.sqrt(disagree))
    assert n == math.ceil((Z975 + Z80) ** 2 * disagree / 0.02**2)  # 982 / 1963 / 3925
    assert abs(n - facts_n) / facts_n < 0.005


def test_mde_for_200_items_matches_facts() -> None:
    # "A 200-item suite can only detect drops of ~4.4-8.9 points."
    assert mde_for(200, math.sqrt(0.05)) == pytest.approx(0.0443, abs=5e-4)
    assert mde_for(200, math.sqrt(0.20)) == pytest.approx(0.0886, abs=5e-4)
    assert mde_for(0, 0.3) is None


def test_required_n_and_mde_are_inverse() -> None:
    n = required_n(0.03, 0.25, confidence=0.9, power=0.9)
    assert mde_for(n, 0.25, confidence=0.9, power=0.9) <= 0.03 < mde_for(n - 1, 0.25, 0.9, 0.9)
    assert required_n(0.02, math.sqrt(0.1), design_effect=2.0) == pytest.approx(2 * 1962.2, abs=1)
    with pytest.raises(ValueError):
        required_n(0.0, 0.3)


# ---------------------------------------------------------------------------
# paired_diff: McNemar path


def _binary_pairs(both: int, cand_only: int, base_only: int, neither: int) -> tuple[list, list]:
    cand = [1] * both + [1] * cand_only + [0] * base_only + [0] * neither
    base = [1] * both + [0] * cand_only + [1] * base_only + [0] * neither
    return cand, base


def _tango_z(b: int, c: int, n: int, d0: float) -> float:
    """Tango's score statistic by hand, with the restricted MLE found by brute force."""
    grid = np.linspace(max(0.0, -d0) + 1e-9, (1 - d0) / 2 - 1e-9, 200_001)  # q = p(baseline only)
    loglik = b * np.log(grid + d0) + c * np.log(grid) + (n - b - c) * np.log(1 - 2 * grid - d0)
    q = grid[loglik.argmax()]
    return (b - c - n * d0) / math.sqrt(n * (2 * q + d0 * (1 - d0)))


def test_mcnemar_hand_example() -> None:
    # n = 100, b = 5 candidate-only, c = 15 baseline-only: raw diff -0.10.
    cand, base = _binary_pairs(60, 5, 15, 20)
    d = paired_diff(cand, base)
    assert d.method == "mcnemar"
    assert (d.n, d.discordant, d.candidate_only, d.baseline_only) == (100, 20, 5, 15)
    assert d.mean == pytest.approx(-0.10)
    # The score interval's ends are where the score statistic crosses -/+ z.
    assert _tango_z(5, 15, 100, d.lo) == pytest.approx(Z975, abs=1e-3)
    assert _tango_z(5, 15, 100, d.hi) == pytest.approx(-Z975, abs=1e-3)
    assert d.lo == pytest.approx(-0.19240, abs=1e-4) and d.hi == pytest.approx(-0.01345, abs=1e-4)
    # (Agresti-Min would give [-0.1840, -0.0121], plain Wald [-0.1854, -0.0146].)
    # sd of diffs (values +1 x5, -1 x15, 0 x80): sqrt((20 - 100*0.01) / 99)
    assert d.sd_diff == pytest.approx(math.sqrt(19 / 99))
    # Pearson by hand: cand mean 0.65, base mean 0.75, cov = (60/100 - 0.65*0.75)
    r = (0.60 - 0.65 * 0.75) / math.sqrt(0.65 * 0.35 * 0.75 * 0.25)
    assert d.correlation == pytest.approx(r)
    assert d.mde == pytest.approx((Z975 + Z80) * (d.hi - d.lo) / (2 * Z975))
    assert non_inferior(d, 0.20) and not non_inferior(d, 0.19)


def test_mcnemar_zero_discordance_is_not_zero_width() -> None:
    d = paired_diff([1] * 15 + [0] * 5, [1] * 15 + [0] * 5)
    assert d.mean == 0.0 and d.discordant == 0 and d.sd_diff == 0.0
    # With b = c = 0 the score statistic is sqrt(n |d0| / (1 - |d0|)): the ends are -/+ z^2 / (n + z^2).
    assert d.lo == pytest.approx(-(Z975**2) / (20 + Z975**2)) and d.hi == pytest.approx(Z975**2 / (20 + Z975**2))
    assert d.mde is not None and d.mde > 0
    assert not non_inferior(d, 0.10)  # 20 identical items prove nothing about a 10-point drop
    assert non_inferior(d, 0.17)


def test_paired_diff_degenerate_inputs() -> None:
    empty = paired_diff([], [])
    assert empty.n == 0 and empty.mean is None and empty.lo is None
    assert not non_inferior(empty, 0.5)
    one = paired_diff([1], [0])
    assert one.mean == 1.0 and one.lo is None and one.hi is None and one.sd_diff is None
    assert not non_inferior(one, 0.5)
    const = paired_diff([1, 1, 0], [1, 1, 1])
    assert const.correlation is None  # baseline has zero variance
    with pytest.raises(ValueError):
        paired_diff([1, 0], [1])
    with pytest.raises(ValueError):
        paired_diff([1, 0], [1, 0], clusters=["a"])
    with pytest.raises(ValueError):
        paired_diff([0.5, float("nan")], [0.5, 0.5])


def test_non_inferior_is_strict() -> None:
    d = PairedDiff(n=10, mean=0.0, lo=-0.05, hi=0.05, method="paired-t", discordant=3,
                   candidate_only=None, baseline_only=None, correlation=None,
                   sd_diff=0.1, mde=0.1)  # fmt: skip
    assert not non_inferior(d, 0.05)
    assert non_inferior(dataclasses.replace(d, lo=-0.0499), 0.05)
    assert not non_inferior(dataclasses.replace(d, lo=None), 0.05)


# ---------------------------------------------------------------------------
# paired_diff: t intervals


def test_paired_t_is_deterministic_and_matches_normal_theory() -> None:
    rng = np.random.default_rng(11)
    base = rng.beta(5, 2, 2000)
    cand = base - 0.01 + rng.normal(0, 0.1, 2000)
    d1 = paired_diff(cand, base)
    assert d1 == paired_diff(cand, base)
    assert d1.method == "paired-t" and d1.candidate_only is None and d1.discordant == 2000
    se = d1.sd_diff / math.sqrt(2000)
    # The pseudo-observations add 1 to a sum of squares of 2000 * 0.01 here: about 2.5% on the width.
    assert d1.lo == pytest.approx(d1.mean - Z975 * se, abs=0.04 * Z975 * se)
    assert d1.hi == pytest.approx(d1.mean + Z975 * se, abs=0.04 * Z975 * se)
    assert d1.lo < d1.mean - Z975 * se  # and only ever wider
    assert d1.mde == pytest.approx(mde_for(2000, d1.sd_diff), rel=0.04)
    # var(base) = 10 / (49 * 8) = 0.0255, noise var 0.01: r = sqrt(0.0255 / 0.0355) = 0.847
    assert d1.correlation == pytest.approx(0.847, abs=0.03)


def test_identical_scores_on_few_items_give_a_wide_interval_not_a_zero_width_one() -> None:
    two = paired_diff([0.7, 0.7], [0.7, 0.7])
    assert two.method == "paired-t" and two.lo < -0.5 and two.hi > 0.5
    assert not non_inferior(two, 0.05)
    clustered = paired_diff([1, 1], [1, 1], clusters=["a", "b"])
    assert clustered.method == "cluster-t" and clustered.lo < -0.5
    # The width shrinks as 1/n: 200 identical items leave a narrow but non-zero interval.
    many = paired_diff([0.7] * 200, [0.7] * 200)
    assert 0 < many.hi - many.lo < 0.03


def test_paired_intervals_batch_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    diffs = rng.normal(-0.02, 0.2, (5, 50))
    codes = np.repeat(np.arange(10), 5)
    batch = paired_intervals(diffs, binary=False, codes=codes)
    for i in range(5):
        one = paired_diff(diffs[i], np.zeros(50), clusters=codes)
        assert batch.lo[i] == pytest.approx(one.lo) and batch.hi[i] == pytest.approx(one.hi)
        assert batch.design_effect[i] == pytest.approx(one.design_effect)


def test_paired_t_speed_on_a_million_items() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(1_000_000)
    cand = base + rng.normal(0, 0.1, 1_000_000)
    start = time.perf_counter()
    d = paired_diff(cand, base, clusters=np.arange(1_000_000) // 10)
    elapsed = time.perf_counter() - start
    assert d.lo is not None and d.n_clusters == 100_000
    assert elapsed < 3.0, f"paired_diff took {elapsed:.2f}s"


def _clustered_diffs(
    rng: np.random.Generator, k: int, m: int, sd_cluster: float, sd_item: float, drop: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = rng.beta(5, 2, k * m)
    shared = np.repeat(rng.normal(0.0, sd_cluster, k), m)
    cand = base - drop + shared + rng.normal(0.0, sd_item, k * m)
    return cand, base, np.repeat(np.arange(k), m)


def test_cluster_t_widens_when_items_are_correlated() -> None:
    rng = np.random.default_rng(21)
    # ICC of the differences = 0.01 / (0.01 + 0.0225) ~ 0.31, m = 10: deff ~ 3.8
    cand, base, labels = _clustered_diffs(rng, k=60, m=10, sd_cluster=0.1, sd_item=0.15)
    naive = paired_diff(cand, base)
    clustered = paired_diff(cand, base, clusters=[f"doc{c}" for c in labels])
    assert clustered.method == "cluster-t" and clustered.n_clusters == 60
    assert clustered.mean == naive.mean
    ratio = (clustered.hi - clustered.lo) / (naive.hi - naive.lo)
    assert ratio > 1.5  # ~ sqrt(3.8) = 1.95
    assert 2.0 < clustered.design_effect < 6.0
    assert clustered.mde == pytest.approx(naive.mde * math.sqrt(clustered.design_effect), rel=0.05)


def test_cluster_t_with_independent_items_is_not_wider() -> None:
    rng = np.random.default_rng(22)
    cand, base, labels = _clustered_diffs(rng, k=100, m=10, sd_cluster=0.0, sd_item=0.15)
    naive = paired_diff(cand, base)
    clustered = paired_diff(cand, base, clusters=labels)
    ratio = (clustered.hi - clustered.lo) / (naive.hi - naive.lo)
    assert 0.8 < ratio < 1.25
    assert clustered.design_effect < 1.3


def test_binary_with_clusters_uses_cluster_t() -> None:
    cand, base = _binary_pairs(60, 5, 15, 20)
    d = paired_diff(cand, base, clusters=[i // 5 for i in range(100)])
    assert d.method == "cluster-t" and d.candidate_only == 5 and d.baseline_only == 15
    single = paired_diff(cand, base, clusters=["all"] * 100)
    assert single.n_clusters == 1 and single.lo is None and not non_inferior(single, 1.0)


# ---------------------------------------------------------------------------
# Simulations of the gate decision


MARGIN = 0.05


def _gate_pass_rate_binary(
    n: int, true_drop: float, disagree: float, reps: int, seed: int
) -> float:
    """Baseline pass rate 0.8; the models disagree on `disagree` of items and the
    candidate is truly `true_drop` worse."""
    rng = np.random.default_rng(seed)
    cand_only = (disagree - true_drop) / 2
    base_only = (disagree + true_drop) / 2
    both = 0.8 - base_only
    probs = [both, cand_only, base_only, 1.0 - both - cand_only - base_only]
    cell = rng.choice(4, size=(reps, n), p=probs)
    cand = ((cell == 0) | (cell == 1)).astype(float)
    base = ((cell == 0) | (cell == 2)).astype(float)
    batch = paired_intervals(cand - base, binary=True)  # what paired_diff computes, for all reps at once
    one = paired_diff(cand[0], base[0])
    assert one.method == "mcnemar" and one.lo == pytest.approx(batch.lo[0])
    return float((batch.lo > -MARGIN).mean())


def _gate_pass_rate_continuous(n: int, true_drop: float, reps: int, seed: int) -> float:
    """Rubric-like scores; the per-item difference is skewed (shifted exponential,
    sd 0.2) with mean -true_drop."""
    rng = np.random.default_rng(seed)
    passes = 0
    for _ in range(reps):
        base = rng.beta(5, 2, n)
        cand = base - true_drop + rng.exponential(0.2, n) - 0.2
        d = paired_diff(cand, base)
        assert d.method == "paired-t"
        passes += non_inferior(d, MARGIN)
    return passes / reps


def test_binary_gate_false_pass_rate_at_the_margin() -> None:
    n = required_n(MARGIN, math.sqrt(0.10))  # 314: the n a team would plan
    rate = _gate_pass_rate_binary(n, true_drop=MARGIN, disagree=0.10, reps=400, seed=1)
    assert rate <= 0.05  # nominal 2.5% (one-sided lower bound of a 95% CI)
    small = _gate_pass_rate_binary(100, true_drop=MARGIN, disagree=0.10, reps=400, seed=2)
    assert small <= 0.05


def test_binary_gate_power_when_no_true_drop() -> None:
    ample = required_n(MARGIN, math.sqrt(0.10), power=0.9)  # 421
    assert _gate_pass_rate_binary(ample, 0.0, 0.10, reps=400, seed=3) >= 0.80
    # At exactly required_n(power=0.8) the true power is ~80%, so 400 reps land
    # within Monte-Carlo error (sd 0.02) of 0.8, not reliably above it.
    planned = required_n(MARGIN, math.sqrt(0.10))
    assert 0.74 <= _gate_pass_rate_binary(planned, 0.0, 0.10, reps=400, seed=4) <= 0.86


def test_continuous_gate_false_pass_rate_at_the_margin() -> None:
    n = required_n(MARGIN, 0.2)  # 126
    assert _gate_pass_rate_continuous(n, MARGIN, reps=200, seed=5) <= 0.05


def test_continuous_gate_power_when_no_true_drop() -> None:
    ample = required_n(MARGIN, 0.2, power=0.9)  # 169
    assert _gate_pass_rate_continuous(ample, 0.0, reps=200, seed=6) >= 0.80


def test_cluster_gate_controls_false_passes_that_item_level_intervals_miss() -> None:
    rng = np.random.default_rng(7)
    reps = 200
    clustered_passes = naive_passes = 0
    for _ in range(reps):
        cand, base, labels = _clustered_diffs(rng, k=40, m=10, sd_cluster=0.1, sd_item=0.15,
                                              drop=MARGIN)  # fmt: skip
        clustered = paired_diff(cand, base, labels)
        naive = paired_diff(cand, base)
        clustered_passes += non_inferior(clustered, MARGIN)
        naive_passes += non_inferior(naive, MARGIN)
    assert clustered_passes / reps <= 0.06  # ~3% over 2000 reps; few clusters undercover a bit
    assert naive_passes / reps >= 0.10  # ignoring clusters: ~16%


def test_the_calibration_benchmark_simulates_the_drop_it_claims() -> None:
    """tests/benchmarks/gate_calibration.py: the candidate (errors scored 0) is worse by exactly the drop."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parent / "benchmarks" / "gate_calibration.py"
    spec = importlib.util.spec_from_file_location("gate_calibration", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    for kind in ("pass/fail", "continuous"):
        for clustered in (False, True):
            cell = bench.Cell(kind, clustered, 2000, 0.2)
            cand, base = bench.simulate(rng, cell, 0.03, 200)
            assert (cand - base).mean() == pytest.approx(-0.03, abs=0.004)
            zeros = float((cand == 0).mean())
            # Continuous scores are 0 only where an error was injected; pass/fail ones also on a wrong answer.
            assert zeros == pytest.approx(0.2, abs=0.01) if kind == "continuous" else zeros > 0.2
