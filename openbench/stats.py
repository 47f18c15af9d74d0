"""Small, dependency-light statistics for comparing models on the same items.

Everything here is a pure function of its inputs (the bootstrap takes an
explicit ``seed``), and results are small frozen dataclasses. Only numpy and the
standard library are used: the Student-t quantile is computed from the exact
t CDF (regularised incomplete beta, continued fraction), the normal quantile
comes from :class:`statistics.NormalDist`.

The question the CI gate asks is *non-inferiority*: is the candidate at most
``margin`` worse than the baseline on the same items? :func:`paired_diff`
estimates ``candidate - baseline`` with a two-sided ``confidence`` interval and
:func:`non_inferior` passes only if the lower bound is above ``-margin``. With
``confidence=0.95`` that is a one-sided test at level 2.5%.

Planning numbers follow the usual normal approximation (two-sided alpha,
power ``1 - beta``)::

    n   = ((z_{1-alpha/2} + z_{power}) * sd_diff / margin) ** 2
    mde = (z_{1-alpha/2} + z_{power}) * sd_diff / sqrt(n_eff)

For binary scores with no mean difference, ``sd_diff = sqrt(disagreement
rate)``: a 2-point drop needs ~980 / 1,960 / 3,920 items at 5 / 10 / 20%
disagreement.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "Estimate",
    "PairedDiff",
    "mde_for",
    "mean_ci",
    "non_inferior",
    "normal_quantile",
    "paired_diff",
    "percentile",
    "required_n",
    "t_quantile",
]

_STD_NORMAL = NormalDist()

# Bootstrap resamples are drawn in blocks of at most this many indices, so a
# 2000 x 10k bootstrap never materialises a 20M-element index matrix.
_BOOT_BLOCK_ELEMS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A mean with a two-sided confidence interval.

    ``mean``/``lo``/``hi`` are None when ``n == 0``; ``lo``/``hi`` are None
    when ``n == 1`` (no interval can be estimated from one value).
    """

    mean: float | None
    lo: float | None
    hi: float | None
    n: int


@dataclass(frozen=True)
class PairedDiff:
    """``candidate - baseline`` on the same items.

    ``method`` is ``"mcnemar"`` (all-binary scores, no clusters), ``"bootstrap"``
    (item-level percentile bootstrap) or ``"cluster-bootstrap"`` (whole
    clusters resampled). ``candidate_only``/``baseline_only`` count items that
    pass on one side only and are None unless both score vectors are binary.
    ``discordant`` counts items whose two scores differ. ``sd_diff`` is the
    sample standard deviation (ddof=1) of the per-item differences. ``mde`` is
    the minimum detectable drop at 80% power (two-sided alpha =
    ``1 - confidence``) given this run's variability and effective sample size.
    ``design_effect`` (clusters only, clamped to >= 1) is the variance
    inflation of the mean caused by clustering; ``n / design_effect`` is the
    effective number of independent items.
    """

    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    method: str
    discordant: int
    candidate_only: int | None
    baseline_only: int | None
    correlation: float | None
    sd_diff: float | None
    mde: float | None
    confidence: float = 0.95
    n_clusters: int | None = None
    design_effect: float | None = None


# ---------------------------------------------------------------------------
# Quantiles


def normal_quantile(p: float) -> float:
    """Quantile of the standard normal distribution, ``0 < p < 1``."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    return _STD_NORMAL.inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom, ``0 < p < 1``.

    Exact up to floating point (bisection on the exact CDF), so far better than
    the 3 decimals a confidence interval needs, for any ``df > 0``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    if p == 0.5:
        return 0.0
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    if df > 1e7:
        return normal_quantile(p)
    upper = p > 0.5
    target = p if upper else 1.0 - p  # solve for the upper-tail point, then mirror
    lo, hi = 0.0, max(1.0, 2.0 * normal_quantile(target))
    while _t_cdf(hi, df) < target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    t = 0.5 * (lo + hi)
    return t if upper else -t


def _z_two_sided(confidence: float) -> float:
    _check_confidence(confidence)
    return normal_quantile(1.0 - (1.0 - confidence) / 2.0)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


# ---------------------------------------------------------------------------
# Descriptive statistics


def _as_array(values: Iterable[float] | np.ndarray, name: str = "values") -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0.0) | (arr == 1.0)))


def percentile(values: Iterable[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (``0 <= q <= 100``) with linear interpolation.

    Same definition as ``numpy.percentile``'s default (Hyndman-Fan type 7):
    position ``(n - 1) * q / 100`` in the sorted values. None for no values.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    arr = np.sort(_as_array(values))
    n = arr.size
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(arr[lo] + (arr[hi] - arr[lo]) * frac)


def mean_ci(values: Iterable[float] | np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean with a two-sided interval.

    All-binary (0/1) values get the Wilson score interval (sensible at 0% and
    100%, unlike Wald); anything else gets a Student-t interval. A t interval
    over identical values has zero width.
    """
    _check_confidence(confidence)
    arr = _as_array(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(None, None, None, 0)
    mean = float(arr.mean())
    if n == 1:
        return Estimate(mean, None, None, 1)
    if _is_binary(arr):
        z = _z_two_sided(confidence)
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (mean + z2 / (2 * n)) / denom
        half = z / denom * math.sqrt(mean * (1.0 - mean) / n + z2 / (4 * n * n))
        return Estimate(mean, max(0.0, centre - half), min(1.0, centre + half), n)
    sd = float(arr.std(ddof=1))
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


# ---------------------------------------------------------------------------
# Planning


def mde_for(
    n: float,
    sd_diff: float,
    confidence: float = 0.95,
    power: float = 0.8,
    design_effect: float = 1.0,
) -> float | None:
    """Minimum detectable effect for ``n`` paired items (None if ``n <= 0``).

    ``(z_{1-alpha/2} + z_{power}) * sd_diff / sqrt(n / design_effect)``.
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if sd_diff < 0:
        raise ValueError("sd_diff must be >= 0")
    if design_effect <= 0:
        raise ValueError("design_effect must be > 0")
    if n <= 0:
        return None
    z = _z_two_sided(confidence) + normal_quantile(power)
    return z * sd_diff / math.sqrt(n / design_effect)


def required_n(
    margin: float,
    sd_diff: float,
    confidence: float = 0.95,
    power: float = 0.8,
    design_effect: float = 1.0,
) -> int:
    """Paired items needed to detect a drop of ``margin`` (two-sided alpha =
    ``1 - confidence``, i.e. the non-inferiority gate at ``power``).

    For binary scores with no true difference, ``sd_diff = sqrt(p_disagree)``.
    Multiply by a cluster design effect via ``design_effect`` (default 1).
    """
    if margin <= 0:
        raise ValueError("margin must be > 0")
    if sd_diff < 0:
        raise ValueError("sd_diff must be >= 0")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if design_effect <= 0:
        raise ValueError("design_effect must be > 0")
    z = _z_two_sided(confidence) + normal_quantile(power)
    # Round before ceil so 980.0000000001 from floating point does not become 981.
    return max(1, math.ceil(round((z * sd_diff / margin) ** 2 * design_effect, 9)))


# ---------------------------------------------------------------------------
# Paired comparison


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 2:
        return None
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    syy = float(yc @ yc)
    if sxx <= 0.0 or syy <= 0.0:
        return None
    r = float(xc @ yc) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def _bootstrap_ratio_means(
    sums: np.ndarray,
    counts: np.ndarray | None,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap distribution of ``sum(diffs) / n_items`` resampling the units.

    Units are items (``counts is None``: every unit weighs 1) or clusters
    (``sums``/``counts`` per cluster; the statistic is the item-weighted mean
    of the resampled clusters). Vectorised in blocks of resamples.
    """
    k = sums.size
    out = np.empty(n_boot, dtype=float)
    block = max(1, _BOOT_BLOCK_ELEMS // k)
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = rng.integers(0, k, size=(b, k), dtype=np.int64 if k > 2**31 - 1 else np.int32)
        s = sums[idx].sum(axis=1)
        if counts is None:
            out[start : start + b] = s / k
        else:
            out[start : start + b] = s / counts[idx].sum(axis=1)
    return out


def paired_diff(
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDiff:
    """Estimate ``mean(candidate - baseline)`` over paired items.

    * all-binary scores, no clusters: ``method="mcnemar"``, a Wald interval for
      paired proportions with the Agresti-Min (2005) adjustment (see below);
    * otherwise ``method="bootstrap"``: percentile bootstrap over items;
    * with ``clusters`` (one label per item, e.g. the source document or
      template an item came from): ``method="cluster-bootstrap"``, whole
      clusters resampled, so correlated items do not count as independent
      evidence. With few clusters (< ~20) percentile intervals undercover.

    Bootstrap intervals are deterministic for a given ``seed``. With fewer than
    two items (or two clusters) ``lo``/``hi`` are None, and so the gate fails.
    Note the bootstrap has no small-sample fix: if every item scores the same
    on both sides, its interval has zero width.
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    cand = _as_array(candidate, "candidate")
    base = _as_array(baseline, "baseline")
    if cand.size != base.size:
        raise ValueError(f"candidate and baseline differ in length ({cand.size} != {base.size})")
    n = int(cand.size)
    labels: list[Hashable] | None = None
    if clusters is not None:
        labels = list(clusters)
        if len(labels) != n:
            raise ValueError(f"clusters has {len(labels)} labels for {n} items")

    binary = _is_binary(cand) and _is_binary(base)
    method = "cluster-bootstrap" if labels is not None else ("mcnemar" if binary else "bootstrap")
    diffs = cand - base
    discordant = int(np.count_nonzero(diffs))
    cand_only = int(np.count_nonzero(diffs > 0)) if binary else None
    base_only = int(np.count_nonzero(diffs < 0)) if binary else None

    if n == 0:
        return PairedDiff(
            n=0, mean=None, lo=None, hi=None, method=method, discordant=0,
            candidate_only=cand_only, baseline_only=base_only, correlation=None,
            sd_diff=None, mde=None, confidence=confidence,
            n_clusters=0 if labels is not None else None,
        )  # fmt: skip

    mean = float(diffs.mean())
    sd_diff = float(diffs.std(ddof=1)) if n > 1 else None
    correlation = _pearson(cand, base)
    z = _z_two_sided(confidence)
    z_sum = z + normal_quantile(0.8)
    alpha = 1.0 - confidence
    lo: float | None = None
    hi: float | None = None
    mde: float | None = None
    n_clusters: int | None = None
    design_effect: float | None = None

    if method == "mcnemar":
        if n > 1:
            assert cand_only is not None and base_only is not None
            # Wald interval for paired proportions, diff = (b - c) / n with
            # se = sqrt(b + c - (b - c)^2 / n) / n, where b/c are the
            # candidate-only/baseline-only counts. Plain Wald gives a zero-width
            # interval when b = c = 0 (and is too narrow when b + c is small),
            # which would let a 20-item suite with no disagreements "prove"
            # non-inferiority. Agresti & Min (2005, Biometrics 61:515) add 1/2
            # to each of the four cells (b, c -> b + 1/2, c + 1/2; n -> n + 2);
            # the interval is then centred on (b - c) / (n + 2) with half-width
            # at least z / (n + 2), and has near-nominal coverage even for
            # small n. The point estimate ``mean`` stays the raw (b - c) / n.
            b = cand_only + 0.5
            c = base_only + 0.5
            n_adj = n + 2.0
            centre = (b - c) / n_adj
            se = math.sqrt(max(b + c - (b - c) ** 2 / n_adj, 0.0)) / n_adj
            lo = max(-1.0, centre - z * se)
            hi = min(1.0, centre + z * se)
            # MDE from the same (adjusted, never zero) standard error the
            # interval uses; equals z_sum * sd_diff / sqrt(n) up to O(1/n).
            mde = z_sum * se
    elif method == "bootstrap":
        if n > 1:
            rng = np.random.default_rng(seed)
            boot = _bootstrap_ratio_means(diffs, None, n_boot, rng)
            lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
            assert sd_diff is not None
            mde = z_sum * sd_diff / math.sqrt(n)
    else:  # cluster-bootstrap
        assert labels is not None
        codes: dict[Hashable, int] = {}
        inverse = np.fromiter((codes.setdefault(x, len(codes)) for x in labels), np.int64, n)
        k = len(codes)
        n_clusters = k
        sums = np.bincount(inverse, weights=diffs, minlength=k)
        counts = np.bincount(inverse, minlength=k).astype(float)
        if k > 1:
            rng = np.random.default_rng(seed)
            boot = _bootstrap_ratio_means(sums, counts, n_boot, rng)
            lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
            # Cluster-robust (CR1-style) variance of the item-weighted mean,
            # compared with the iid variance sd_diff^2 / n. Clamped at 1 so
            # clustering never claims more precision than independent items.
            assert sd_diff is not None
            resid = sums - counts * mean
            var_cluster = k / (k - 1) * float(resid @ resid) / (n * n)
            var_iid = sd_diff**2 / n
            design_effect = max(1.0, var_cluster / var_iid) if var_iid > 0 else 1.0
            mde = z_sum * sd_diff / math.sqrt(n / design_effect)

    return PairedDiff(
        n=n,
        mean=mean,
        lo=lo,
        hi=hi,
        method=method,
        discordant=discordant,
        candidate_only=cand_only,
        baseline_only=base_only,
        correlation=correlation,
        sd_diff=sd_diff,
        mde=mde,
        confidence=confidence,
        n_clusters=n_clusters,
        design_effect=design_effect,
    )


def non_inferior(diff: PairedDiff, margin: float) -> bool:
    """The CI gate: True only if the lower bound of ``candidate - baseline``
    is above ``-margin``. No interval (too few items) means False."""
    if margin < 0:
        raise ValueError("margin must be >= 0")
    return diff.lo is not None and diff.lo > -margin
