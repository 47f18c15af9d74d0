"""Small, dependency-light statistics for comparing models on the same items.

Everything here is a pure, deterministic function of its inputs, and results
are small frozen dataclasses. Only numpy (imported when first needed) and the
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



class _Numpy:
    """numpy, imported on first use: a run's summary (percentiles, means) needs none of it, and it costs ~80 ms."""

    def __getattr__(self, name: str):  # noqa: ANN204
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, name)


np = _Numpy()

__all__ = [
    "Estimate",
    "PairedDiff",
    "PairedIntervals",
    "cluster_codes",
    "mde_for",
    "mean_ci",
    "non_inferior",
    "normal_quantile",
    "paired_diff",
    "paired_intervals",
    "percentile",
    "required_n",
    "t_quantile",
]

_STD_NORMAL = NormalDist()

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

    ``method`` is ``"mcnemar"`` (all-binary scores, no clusters), ``"paired-t"``
    (t interval over items) or ``"cluster-t"`` (cluster-robust t interval over
    whole clusters). ``candidate_only``/``baseline_only`` count items that
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


def _floats(values: Iterable[float] | np.ndarray, name: str = "values") -> list[float]:
    """``_as_array`` in plain Python, for the functions a run's summary calls."""
    if getattr(values, "ndim", 1) != 1:
        raise ValueError(f"{name} must be one-dimensional")
    out = [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    if not all(map(math.isfinite, out)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def percentile(values: Iterable[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (``0 <= q <= 100``) with linear interpolation.

    Same definition as ``numpy.percentile``'s default (Hyndman-Fan type 7):
    position ``(n - 1) * q / 100`` in the sorted values. None for no values.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    arr = sorted(_floats(values))
    n = len(arr)
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
    arr = _floats(values)
    n = len(arr)
    if n == 0:
        return Estimate(None, None, None, 0)
    mean = math.fsum(arr) / n
    if n == 1:
        return Estimate(mean, None, None, 1)
    if all(v == 0.0 or v == 1.0 for v in arr):
        z = _z_two_sided(confidence)
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (mean + z2 / (2 * n)) / denom
        half = z / denom * math.sqrt(mean * (1.0 - mean) / n + z2 / (4 * n * n))
        return Estimate(mean, max(0.0, centre - half), min(1.0, centre + half), n)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in arr) / (n - 1))
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


@dataclass(frozen=True)
class PairedIntervals:
    """Intervals for a batch of datasets that share one design (same items, same clusters).

    Arrays of shape ``(B,)``; ``lo``/``hi`` are NaN where no interval exists (one item or one cluster).
    """

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    se: np.ndarray
    crit: float
    design_effect: np.ndarray | None


def cluster_codes(labels: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Integer codes 0..k-1 for cluster labels, in order of first appearance, and k."""
    codes: dict[Hashable, int] = {}
    inverse = np.fromiter((codes.setdefault(x, len(codes)) for x in labels), np.int64, len(labels))
    return inverse, len(codes)


def _score_z(up: np.ndarray, down: np.ndarray, n: int, d0: np.ndarray) -> np.ndarray:
    """Tango's (1998) score statistic for H0: p(candidate only) - p(baseline only) = d0.

    ``q`` is the restricted maximum-likelihood p(baseline only) under H0, the positive root
    of 2n q^2 + (d0 (2n - up + down) - (up + down)) q - down d0 (1 - d0) = 0.
    """
    a = 2.0 * n
    b = d0 * (2.0 * n - up + down) - (up + down)
    c = -down * d0 * (1.0 - d0)
    q = (-b + np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)
    var = np.maximum(n * (2.0 * q + d0 * (1.0 - d0)), 1e-300)
    return (up - down - n * d0) / np.sqrt(var)


def _paired_score_interval(up: np.ndarray, down: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Tango's score interval for a difference of paired proportions (vectorised bisection:
    the statistic decreases in d0, is 0 at the estimate and unbounded towards -1 and 1)."""
    est = (up - down) / n

    def solve(target: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        for _ in range(60):  # 2^-60: far below any width that matters
            mid = 0.5 * (lo + hi)
            right = _score_z(up, down, n, mid) > target
            lo, hi = np.where(right, mid, lo), np.where(right, hi, mid)
        return 0.5 * (lo + hi)

    edge = 1.0 - 1e-12
    return solve(z, np.full_like(est, -edge), est), solve(-z, est, np.full_like(est, edge))


def paired_intervals(
    diffs: np.ndarray,
    binary: bool,
    codes: np.ndarray | None = None,
    confidence: float = 0.95,
) -> PairedIntervals:
    """The gate's intervals for ``B`` datasets at once: ``diffs`` is ``(B, n)`` (candidate - baseline).

    * ``binary`` and no clusters: Tango's (1998) score interval for a difference of paired
      proportions (the McNemar setting). Wald-type intervals, even Agresti-Min's adjusted
      one, let through ~4.5% false passes at 20 items against a nominal 2.5%; the score
      interval stays at or below nominal, and never has zero width;
    * otherwise a t interval over units (items, or whole clusters when ``codes`` gives each
      item's cluster 0..k-1) with the cluster-robust CR1 variance of the item-weighted mean
      and ``k - 1`` degrees of freedom. It adds pseudo-observations (half an item at +1,
      half at -1, one at 0, as Agresti-Min add 1/2 to each cell), so no interval has zero
      width, even when every item scores the same on both sides; on hundreds of items
      the effect is small.
    Pure numpy over the batch, so simulations call exactly what the gate calls.
    """
    _check_confidence(confidence)
    diffs = np.atleast_2d(np.asarray(diffs, dtype=float))
    b, n = diffs.shape
    nan = np.full(b, np.nan)
    total = diffs.sum(axis=1)
    if binary and codes is None:
        if n < 2:
            return PairedIntervals(total / max(n, 1), nan, nan, nan, math.nan, None)
        crit = _z_two_sided(confidence)
        up = np.count_nonzero(diffs > 0, axis=1).astype(float)
        down = np.count_nonzero(diffs < 0, axis=1).astype(float)
        lo, hi = _paired_score_interval(up, down, n, crit)
        return PairedIntervals(total / n, lo, hi, (hi - lo) / (2 * crit), crit, None)
    if codes is None:
        sums, counts, units = diffs, np.ones(n), n
    else:
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        sums = np.add.reduceat(diffs[:, order], starts, axis=1)
        counts = np.diff(np.r_[starts, n]).astype(float)
        units = starts.size
    if units < 2:
        return PairedIntervals(total / max(n, 1), nan, nan, nan, math.nan, None)
    n_adj = n + 2.0
    centre = total / n_adj  # the pseudo-observations add nothing to the sum
    resid = sums - counts * centre[:, None]
    pseudo = 0.5 * (1.0 - centre) ** 2 + 0.5 * (1.0 + centre) ** 2 + centre**2
    ss = np.einsum("ij,ij->i", resid, resid) + pseudo
    se = np.sqrt(units / (units - 1) * ss) / n_adj
    crit = t_quantile(1.0 - (1.0 - confidence) / 2.0, units - 1)
    deff = None
    if codes is not None:
        # Variance inflation of the raw mean from clustering (CR1 against iid), clamped at 1
        # so that clustering never claims more precision than independent items.
        mean = total / n
        raw = sums - counts * mean[:, None]
        var_cluster = units / (units - 1) * np.einsum("ij,ij->i", raw, raw) / (n * n)
        var_iid = diffs.var(axis=1, ddof=1) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            deff = np.where(var_iid > 0, np.maximum(1.0, var_cluster / var_iid), 1.0)
    lo = np.maximum(-1.0, centre - crit * se)
    hi = np.minimum(1.0, centre + crit * se)
    return PairedIntervals(total / n, lo, hi, se, crit, deff)


def paired_diff(
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    confidence: float = 0.95,
) -> PairedDiff:
    """Estimate ``mean(candidate - baseline)`` over paired items.

    * all-binary scores, no clusters: ``method="mcnemar"``, Tango's score
      interval for paired proportions;
    * otherwise ``method="paired-t"``: a t interval over items;
    * with ``clusters`` (one label per item, e.g. the source document or
      template an item came from): ``method="cluster-t"``, a cluster-robust
      t interval over whole clusters (k - 1 degrees of freedom), so correlated
      items do not count as independent evidence.

    See :func:`paired_intervals` for the small-sample adjustment. With fewer
    than two items (or two clusters) ``lo``/``hi`` are None, and so the gate fails.
    """
    _check_confidence(confidence)
    cand = _as_array(candidate, "candidate")
    base = _as_array(baseline, "baseline")
    if cand.size != base.size:
        raise ValueError(f"candidate and baseline differ in length ({cand.size} != {base.size})")
    n = int(cand.size)
    codes: np.ndarray | None = None
    n_clusters: int | None = None
    if clusters is not None:
        labels = list(clusters)
        if len(labels) != n:
            raise ValueError(f"clusters has {len(labels)} labels for {n} items")
        codes, n_clusters = cluster_codes(labels)

    binary = _is_binary(cand) and _is_binary(base)
    method = "cluster-t" if codes is not None else ("mcnemar" if binary else "paired-t")
    diffs = cand - base
    discordant = int(np.count_nonzero(diffs))
    cand_only = int(np.count_nonzero(diffs > 0)) if binary else None
    base_only = int(np.count_nonzero(diffs < 0)) if binary else None

    if n == 0:
        return PairedDiff(
            n=0, mean=None, lo=None, hi=None, method=method, discordant=0,
            candidate_only=cand_only, baseline_only=base_only, correlation=None,
            sd_diff=None, mde=None, confidence=confidence, n_clusters=n_clusters,
        )  # fmt: skip

    sd_diff = float(diffs.std(ddof=1)) if n > 1 else None
    iv = paired_intervals(diffs[None, :], binary, codes, confidence)
    has_interval = not math.isnan(iv.lo[0])
    lo = float(iv.lo[0]) if has_interval else None
    hi = float(iv.hi[0]) if has_interval else None
    # The drop this run could detect at 80% power, from the same (adjusted, never zero)
    # standard error the interval uses.
    mde = (iv.crit + normal_quantile(0.8)) * float(iv.se[0]) if has_interval else None
    return PairedDiff(
        n=n,
        mean=float(iv.mean[0]),
        lo=lo,
        hi=hi,
        method=method,
        discordant=discordant,
        candidate_only=cand_only,
        baseline_only=base_only,
        correlation=_pearson(cand, base),
        sd_diff=sd_diff,
        mde=mde,
        confidence=confidence,
        n_clusters=n_clusters,
        design_effect=float(iv.design_effect[0]) if iv.design_effect is not None else None,
    )


def non_inferior(diff: PairedDiff, margin: float) -> bool:
    """The CI gate: True only if the lower bound of ``candidate - baseline``
    is above ``-margin``. No interval (too few items) means False."""
    if margin < 0:
        raise ValueError("margin must be >= 0")
    return diff.lo is not None and diff.lo > -margin
