"""An anytime-valid confidence sequence for the mean paired difference, and the sequential gate's decision.

The sequential gate looks at the data after every block of items and stops as soon
as the verdict is settled. A fixed-n interval checked that way ("peeking") passes
worse candidates far more often than its level says. A confidence sequence is a
sequence of intervals that hold *simultaneously at every n* with the stated
probability, so it may be checked after every item.

This module implements the hedged-capital betting confidence sequence of
Waudby-Smith & Ramdas (2024, JRSS-B 86(1), "Estimating means of bounded random
variables by betting"), with predictable plug-in bets. Paired differences
``d = candidate − baseline`` lie in [−1, 1]; they are mapped to ``x = (d + 1) / 2``
in [0, 1] and, for a candidate mean ``m`` of ``x``::

    μ̂_t  = (1/2 + Σ_{i≤t} x_i) / (t + 1)                  regularised mean
    σ̂²_t = (1/4 + Σ_{i≤t} (x_i − μ̂_i)²) / (t + 1)         regularised variance
    λ_t  = sqrt(2 log(2/α) / (σ̂²_{t−1} t log(1 + t)))      bet, known before x_t
    K⁺_t(m) = Π (1 + min(λ_i, c/m) (x_i − m))              wins when the mean is above m
    K⁻_t(m) = Π (1 − min(λ_i, c/(1 − m)) (x_i − m))        wins when the mean is below m

with ``c = 1/2``. Under mean ``m`` both are nonnegative martingales (supermartingales
for a mean on the other side), so by Ville's inequality ``K⁺`` ever reaching ``2/α``
has probability at most ``α/2``: the set ``{m : K⁺_t(m) < 2/α and K⁻_t(m) < 2/α}``
(the hedged process ``max(K⁺, K⁻)/2 < 1/α``) covers the mean at every ``t`` at once
with probability ``1 − α``. ``K⁺`` is nonincreasing in ``m`` and ``K⁻`` nondecreasing,
so the set is an interval; this module reports its running intersection over all
``t`` (still valid), found by bisection on the running maximum of the log capital.

Errors count as failures (score 0), as in the gate. With clusters, one cluster's
mean difference is one observation (clusters are ordered whole), so items that move
together are not counted as independent evidence.

Everything is vectorised with numpy over leading axes, so that a benchmark can run
hundreds of simulated suites at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: How much of the capital a bet may risk against a mean at the edge (Waudby-Smith & Ramdas use 1/2).
TRUNCATION = 0.5
_BISECTION_STEPS = 50

Verdict = Literal["pass", "fail", "continue"]


@dataclass(frozen=True)
class SequenceBounds:
    """The confidence sequence of ``candidate − baseline`` after ``n`` observations (items or clusters)."""

    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    confidence: float


def _threshold(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return math.log(2.0 / (1.0 - confidence))


def bets(x: np.ndarray, confidence: float) -> np.ndarray:
    """Predictable plug-in bets λ_t for observations ``x`` in [0, 1] along the last axis (λ_t uses x_1..x_{t−1})."""
    x = np.asarray(x, dtype=float)
    t = np.arange(1, x.shape[-1] + 1, dtype=float)
    mean = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    var = (0.25 + np.cumsum((x - mean) ** 2, axis=-1)) / (t + 1)
    prior = np.full(x.shape[:-1] + (1,), 0.25)
    var_before = np.concatenate([prior, var[..., :-1]], axis=-1)
    return np.sqrt(2.0 * _threshold(confidence) / (var_before * t * np.log1p(t)))


def log_capital(x: np.ndarray, m: float | np.ndarray, lam: np.ndarray, side: int) -> np.ndarray:
    """Running maximum over time of log K⁺ (``side=+1``) or log K⁻ (``side=−1``) at mean ``m`` of x.

    ``m`` broadcasts against the leading axes of ``x`` (a float, or one value per row).
    """
    m = np.asarray(m, dtype=float)[..., None] if np.ndim(m) else np.asarray(m, dtype=float)
    edge = m if side > 0 else 1.0 - m
    with np.errstate(divide="ignore"):
        cap = np.minimum(lam, TRUNCATION / edge)
    return np.maximum.accumulate(np.cumsum(np.log1p(side * cap * (x - m)), axis=-1), axis=-1)


def to_unit(diffs: np.ndarray) -> np.ndarray:
    """Paired differences in [−1, 1] → observations in [0, 1]."""
    return (np.clip(np.asarray(diffs, dtype=float), -1.0, 1.0) + 1.0) / 2.0


def verdicts(diffs: np.ndarray, margin: float, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """For each time t (last axis): whether the sequence has shown, by t, lower bound > −margin, and upper < −margin.

    Equivalent to the running-intersection bounds of :func:`bounds` crossing −margin, but in one pass.
    """
    x = to_unit(diffs)
    lam = bets(x, confidence)
    m0 = (1.0 - margin) / 2.0
    thr = _threshold(confidence)
    return log_capital(x, m0, lam, +1) >= thr, log_capital(x, m0, lam, -1) >= thr


def bounds(diffs: np.ndarray | list[float], confidence: float = 0.95) -> SequenceBounds:
    """The running-intersection confidence sequence of the mean of ``diffs`` (one dimension) after all of them."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1:
        raise ValueError("diffs must be one-dimensional")
    n = int(d.size)
    if n == 0:
        return SequenceBounds(0, None, None, None, confidence)
    x = to_unit(d)
    lam = bets(x, confidence)
    thr = _threshold(confidence)

    def rejected(m: float, side: int) -> bool:
        return bool(log_capital(x, m, lam, side)[-1] >= thr)

    # K⁺ falls as m rises: the lower bound is where it stops rejecting; K⁻ mirrors it.
    lo_x, hi_x = _edge(lambda m: rejected(m, +1), rising=False), _edge(lambda m: rejected(m, -1), rising=True)
    return SequenceBounds(n, float(d.mean()), 2.0 * lo_x - 1.0, 2.0 * hi_x - 1.0, confidence)


def _edge(rejects: Callable[[float], bool], rising: bool) -> float:
    """The point in [0, 1] where a monotone reject/accept test flips (``rising``: rejects above it)."""
    a, b = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = (a + b) / 2.0
        if rejects(mid) != rising:
            a = mid
        else:
            b = mid
    return b if rising else a


def verdict(streams: list[SequenceBounds], margin: float) -> Verdict:
    """Pass when every stream's lower bound is above −margin; fail when any upper bound is below it."""
    if any(s.hi is not None and s.hi < -margin for s in streams):
        return "fail"
    if streams and all(s.lo is not None and s.lo > -margin for s in streams):
        return "pass"
    return "continue"
