"""How often the gate's quality rule passes a worse model, and how often it passes an equal one.

For each cell (pass/fail or continuous scores, clustered or not, n items, an error rate
injected on the candidate), it simulates ``--reps`` datasets where the candidate is worse
by exactly the margin (false-pass rate: should stay at or below the one-sided α of 2.5%,
and never above 5%) and as many where it is as good as the baseline (power), then applies
the quality rule exactly as the gate does: errored items score 0, the interval comes from
``stats.paired_intervals`` (what ``paired_diff`` uses), and the minimum numbers of items and
clusters come from ``GateRules``. For clustered cells it also shows what ignoring the
clusters would do.

    python tests/benchmarks/gate_calibration.py [--reps 2000] [--seed 0]

The error rule (``--max-error-increase``) is not applied: it only ever fails more datasets.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from openbench import stats  # noqa: E402
from openbench.gate import GateRules  # noqa: E402

MARGIN_FOR_N = {20: 0.10, 300: 0.05, 2000: 0.03}  # a margin each size can hope to resolve
CLUSTER_SIZE = 10
BASE_PASS = 0.6  # pass/fail: the baseline passes 60% of items
DISAGREE = 0.10  # pass/fail: the two models disagree on 10% of items, plus the drop
CLUSTER_SHIFT = 0.15  # clustered cells: each cluster's drop is the mean drop ± this (either sign)


@dataclass(frozen=True)
class Cell:
    kind: str  # "pass/fail" | "continuous"
    clustered: bool
    n: int
    error_rate: float

    @property
    def margin(self) -> float:
        return MARGIN_FOR_N.get(self.n, 0.05)


def _cluster_shift(rng: np.random.Generator, reps: int, cell: Cell, size: float) -> np.ndarray:
    """(reps, n) per-item shift shared by a cluster's items, mean exactly 0 over the signs."""
    if not cell.clustered:
        return np.zeros((reps, cell.n))
    k = cell.n // CLUSTER_SIZE
    signs = rng.choice([-1.0, 1.0], size=(reps, k))
    return np.repeat(signs * size, CLUSTER_SIZE, axis=1)


def simulate(rng: np.random.Generator, cell: Cell, drop: float, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and baseline scores, (reps, n) each; the candidate's expected quality, errors
    counted as 0, is the baseline's minus ``drop``."""
    n, e = cell.n, cell.error_rate
    errors = rng.random((reps, n)) < e
    if cell.kind == "pass/fail":
        answered_drop = BASE_PASS - (BASE_PASS - drop) / (1 - e)  # the drop on items that did not error
        delta = answered_drop + _cluster_shift(rng, reps, cell, CLUSTER_SHIFT)
        both = DISAGREE + np.abs(delta)
        base_only, cand_only = (both + delta) / 2, (both - delta) / 2
        assert (base_only <= BASE_PASS).all() and (cand_only <= 1 - BASE_PASS).all(), cell
        base = (rng.random((reps, n)) < BASE_PASS).astype(float)
        u = rng.random((reps, n))
        cand = np.where(base == 1, u >= base_only / BASE_PASS, u < cand_only / (1 - BASE_PASS)).astype(float)
    else:
        # Rubric-like scores: baseline ~ Beta(2, 2) (mean 0.5); the candidate keeps 40% of the
        # baseline's score and mixes in 60% of its own Beta draw with mean m (per cluster).
        target = (0.5 - drop) / (1 - e)
        m = (target - 0.2) / 0.6 + _cluster_shift(rng, reps, cell, CLUSTER_SHIFT / 0.6)
        assert ((m > 0) & (m < 1)).all(), cell
        base = rng.beta(2.0, 2.0, (reps, n))
        cand = 0.4 * base + 0.6 * rng.beta(4.0 * m, 4.0 * (1 - m))
    cand[errors] = 0.0
    return cand, base


def pass_rate(cand: np.ndarray, base: np.ndarray, cell: Cell, rules: GateRules, use_clusters: bool) -> float:
    """Share of datasets on which the quality rule passes, as the gate applies it."""
    codes = np.arange(cell.n) // CLUSTER_SIZE if use_clusters else None
    binary = cell.kind == "pass/fail"
    iv = stats.paired_intervals(cand - base, binary, codes, rules.confidence)
    enough = cell.n >= rules.min_items and (codes is None or cell.n // CLUSTER_SIZE >= rules.min_clusters)
    passed = enough & (iv.lo > -cell.margin)  # NaN (no interval) compares False
    return float(passed.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000, help="Simulated datasets per cell and scenario (at least 400).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.reps < 400:
        parser.error("--reps must be at least 400")
    rng = np.random.default_rng(args.seed)
    rules = GateRules()
    start = time.perf_counter()
    print(
        f"Quality rule at {rules.confidence:.0%} confidence (one-sided α = {rules.alpha:.1%}), "
        f"min {rules.min_items} items / {rules.min_clusters} clusters; {args.reps} datasets per figure; "
        f"clusters of {CLUSTER_SIZE}; errors injected on the candidate and scored 0.\n"
    )
    head = "| scores | clusters | n | errors | margin | false pass at drop = margin | power at drop = 0 | false pass, clusters ignored |"
    print(head)
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for kind in ("pass/fail", "continuous"):
        for clustered in (False, True):
            for n in MARGIN_FOR_N:
                for e in (0.0, 0.05, 0.20):
                    cell = Cell(kind, clustered, n, e)
                    bad_c, bad_b = simulate(rng, cell, cell.margin, args.reps)
                    good_c, good_b = simulate(rng, cell, 0.0, args.reps)
                    false_pass = pass_rate(bad_c, bad_b, cell, rules, clustered)
                    power = pass_rate(good_c, good_b, cell, rules, clustered)
                    worst = max(worst, false_pass)
                    naive = f"{pass_rate(bad_c, bad_b, cell, rules, False):.1%}" if clustered else ""
                    print(
                        f"| {kind} | {'yes' if clustered else 'no'} | {n:,} | {e:.0%} | {cell.margin:.2f} | "
                        f"{false_pass:.1%} | {power:.1%} | {naive} |"
                    )
    se = (rules.alpha * (1 - rules.alpha) / args.reps) ** 0.5
    print(
        f"\nworst false-pass rate: {worst:.1%} (limit 5%; Monte-Carlo sd at the nominal {rules.alpha:.1%}: "
        f"{se:.1%}); {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
