"""The sequential gate against peeking: false passes, power and items used, on simulated suites.

Each cell simulates ``--reps`` suites of ``--items`` pass/fail items where the baseline and
the candidate disagree on 5% of items when they are equally good (each side wins half of
those), and a drop of D points adds D points of items that only the baseline passes.
Three ways to decide, each after every block of ``--block`` items:

* sequential: the anytime-valid confidence sequence of ``openbench.sequential`` (pass when its
  lower bound is above −margin, fail when its upper bound is below); if the suite runs out,
  the fixed-n gate decides on every item, as ``openbench run --gate`` does;
* peeking: the fixed-n interval of ``openbench.stats.paired_diff`` (the gate's own interval),
  checked after every block with the same pass/fail rules: what "just stop when it looks
  settled" does;
* fixed-n: the gate once, on the whole suite.

False pass = a pass when the candidate is worse by exactly the margin (the gate promises at
most 5%; the sequential part spends 2.5% and the fixed-n fallback at most 2.5% more).

    python tests/benchmarks/sequential_gate.py [--reps 400] [--items 2000] [--block 20] [--margin 0.05]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from openbench import sequential, stats  # noqa: E402

DISAGREE = 0.05
BASE_PASS = 0.7  # when both sides agree, how often they both pass (does not change the differences)
CONFIDENCE = 0.95


def simulate(rng: np.random.Generator, reps: int, n: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate pass/fail scores, shape (reps, n)."""
    u = rng.random((reps, n))
    base_only, cand_only = DISAGREE / 2 + drop, DISAGREE / 2
    both = rng.random((reps, n)) < BASE_PASS
    base = np.where(u < base_only, 1.0, np.where(u < base_only + cand_only, 0.0, both))
    cand = np.where(u < base_only, 0.0, np.where(u < base_only + cand_only, 1.0, both))
    return cand, base


@functools.lru_cache(maxsize=None)
def _interval(n: int, cand_only: int, base_only: int) -> stats.PairedDiff:
    """The gate's paired interval for pass/fail items depends only on n and the two discordant counts,
    so it is computed once per (n, b, c) on an equivalent pair of score vectors."""
    cand = np.zeros(n)
    base = np.zeros(n)
    cand[:cand_only] = 1.0
    base[cand_only : cand_only + base_only] = 1.0
    return stats.paired_diff(cand, base, confidence=CONFIDENCE)


def fixed_interval(cand: np.ndarray, base: np.ndarray) -> stats.PairedDiff:
    return _interval(cand.size, int(np.sum(cand > base)), int(np.sum(base > cand)))


def fixed_gate(cand: np.ndarray, base: np.ndarray, margin: float) -> str:
    return "pass" if stats.non_inferior(fixed_interval(cand, base), margin) else "fail"


def run_sequential(cand: np.ndarray, base: np.ndarray, margin: float, block: int) -> tuple[list[str], np.ndarray]:
    reps, n = cand.shape
    passed, failed = sequential.verdicts(cand - base, margin, CONFIDENCE)
    ends = np.arange(block, n + 1, block) - 1
    settled = passed[:, ends] | failed[:, ends]
    first = np.where(settled.any(axis=1), settled.argmax(axis=1), -1)
    outcomes, used = [], np.full(reps, n)
    for r in range(reps):
        if first[r] < 0:
            outcomes.append(fixed_gate(cand[r], base[r], margin))
            continue
        end = ends[first[r]]
        outcomes.append("pass" if passed[r, end] else "fail")
        used[r] = end + 1
    return outcomes, used


def run_peeking(cand: np.ndarray, base: np.ndarray, margin: float, block: int) -> tuple[list[str], np.ndarray]:
    reps, n = cand.shape
    outcomes, used = [], np.full(reps, n)
    for r in range(reps):
        outcome = None
        for end in range(block, n + 1, block):
            d = fixed_interval(cand[r, :end], base[r, :end])
            if stats.non_inferior(d, margin):
                outcome = "pass"
            elif d.hi is not None and d.hi < -margin:
                outcome = "fail"
            if outcome:
                used[r] = end
                break
        outcomes.append(outcome or "fail")
    return outcomes, used


def run_fixed(cand: np.ndarray, base: np.ndarray, margin: float, block: int) -> tuple[list[str], np.ndarray]:
    return [fixed_gate(c, b, margin) for c, b in zip(cand, base)], np.full(cand.shape[0], cand.shape[1])


METHODS = {"sequential": run_sequential, "peeking": run_peeking, "fixed-n": run_fixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated suites per cell (at least 400)")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    drops = (("none", 0.0), ("= margin", args.margin), ("20 points", 0.20))
    print(
        f"{args.reps} simulated suites per cell, {args.items} pass/fail items, {DISAGREE:.0%} disagreement, "
        f"margin {args.margin * 100:g} points, blocks of {args.block}, {CONFIDENCE:.0%} confidence\n"
    )
    header = f"{'drop':<10} {'method':<11} {'pass':>7} {'fail':>7} {'ran out':>8} {'mean items':>11} {'median':>7} {'share of suite':>15}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for label, drop in drops:
        cand, base = simulate(rng, args.reps, args.items, drop)
        for name, method in METHODS.items():
            outcomes, used = method(cand, base, args.margin, args.block)
            passed = outcomes.count("pass") / len(outcomes)
            failed = outcomes.count("fail") / len(outcomes)
            tag = "  ← false passes" if drop == args.margin else ""
            print(
                f"{label:<10} {name:<11} {passed:>7.1%} {failed:>7.1%} {(used == args.items).mean():>8.0%} {used.mean():>11.0f} {np.median(used):>7.0f} "
                f"{used.mean() / args.items:>15.0%}{tag}"
            )
        print()
    se = (0.05 * 0.95 / args.reps) ** 0.5
    print(f"'ran out': the suite ended unsettled (the fixed-n gate decided). A 5% rate has a Monte Carlo SE of {se:.1%} here.")
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
