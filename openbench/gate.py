"""The gate: rules over a comparison → a decision and an exit code.

Quality is a non-inferiority test: it passes only when the lower bound of the
confidence interval of (candidate − baseline) is above −margin, an errored item
scoring 0. A two-sided ``confidence`` interval makes it a one-sided test at
α = (1 − confidence) / 2. Below ``min_items`` paired items (or ``min_clusters``
clusters) it never passes. When the number of items is too small to detect a
drop of ``margin``, the gate says so instead of letting noise decide.

Errors have a rule of their own, per task: when the candidate errors more often
than the baseline, the upper bound of the interval of (candidate − baseline)
error rate must stay within ``max_error_increase``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openbench.compare import Comparison, TaskComparison
from openbench.errors import OpenbenchError
from openbench.summary import ALL_TASKS

EXIT_PASS, EXIT_FAIL = 0, 1
# Below this a "95%" interval is a coin toss: 0.5 would be a 25% false-pass test.
MIN_CONFIDENCE = 0.8


@dataclass(frozen=True)
class GateRules:
    margin: float = 0.02
    confidence: float = 0.95
    per_task: bool = True
    max_p95_latency_s: float | None = None
    max_cost_per_task_usd: float | None = None
    min_pass_rate: float | None = None
    require_cheaper: bool = False
    max_error_increase: float = 0.02
    min_items: int = 10
    min_clusters: int = 10

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.margin <= 1:
            problems.append(f"margin must be above 0 and at most 1 (got {self.margin})")
        if not MIN_CONFIDENCE <= self.confidence < 1:
            problems.append(f"confidence must be at least {MIN_CONFIDENCE} and below 1 (got {self.confidence})")
        if not 0 <= self.max_error_increase <= 1:
            problems.append(f"max_error_increase must be between 0 and 1 (got {self.max_error_increase})")
        if problems:
            raise OpenbenchError("gate: " + "; ".join(problems))

    @property
    def alpha(self) -> float:
        """The one-sided false-pass rate the quality rule allows at a drop of exactly ``margin``."""
        return (1 - self.confidence) / 2


@dataclass(frozen=True)
class RuleResult:
    rule: str
    task: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    baseline: str
    candidate: str
    rules: GateRules
    results: list[RuleResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    @property
    def verdict(self) -> str:
        failed = [r for r in self.results if not r.passed]
        level = f"{self.rules.confidence:.0%} confidence, one-sided α = {self.rules.alpha:.1%}"
        if not failed:
            return (
                f"PASS: {self.candidate} is not worse than {self.baseline} by more than "
                f"{self.rules.margin * 100:g} points ({level}; errors count as failures), and every rule holds"
            )
        return f"FAIL: {len(failed)} of {len(self.results)} rules failed for {self.candidate} against {self.baseline} ({level})"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "rules": asdict(self.rules),
            "results": [asdict(r) for r in self.results],
            "warnings": self.warnings,
        }


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}"


def _too_few(tc: TaskComparison, rules: GateRules) -> str | None:
    """Why this task's sample is too small to pass at all, or None."""
    d = tc.diff
    if d.n == 0:
        return "no item was scored on both sides, so there is nothing to compare"
    if d.n == 1:
        return f"only 1 paired item: no interval can be computed from one item; the gate needs at least {rules.min_items}"
    if d.n < rules.min_items:
        return f"only {d.n} paired items; the gate needs at least {rules.min_items} to pass"
    if d.n_clusters is not None and d.n_clusters < rules.min_clusters:
        return f"only {d.n_clusters} clusters of related items; the gate needs at least {rules.min_clusters} to pass"
    return None


def _quality(tc: TaskComparison, rules: GateRules) -> tuple[RuleResult, str | None]:
    from openbench import stats

    d = tc.diff
    too_few = _too_few(tc, rules)
    ok = too_few is None and stats.non_inferior(d, rules.margin)
    units = f"{d.n} paired items" + (f" in {d.n_clusters} clusters" if d.n_clusters is not None else "")
    detail = (
        f"candidate − baseline = {_pts(d.mean)} points, {rules.confidence:.0%} CI [{_pts(d.lo)}, {_pts(d.hi)}] "
        f"over {units} ({d.method}); needs lower bound > {-rules.margin * 100:+.1f}"
        + (f"; {too_few}" if too_few else "")
    )
    warning = None
    clearly_worse = d.hi is not None and d.hi < -rules.margin
    if d.mde is not None and d.mde > rules.margin and not clearly_worse:
        deff = d.design_effect or 1.0
        need = stats.required_n(rules.margin, d.sd_diff, rules.confidence, design_effect=deff) if d.sd_diff else None
        warning = (
            f"{tc.task}: n={d.n} is too small to detect a drop of {rules.margin * 100:g} points "
            f"(minimum detectable effect at 80% power: {d.mde * 100:.1f} points); "
            + (f"about {need} items are needed" if need else "more items are needed")
            + (f" (design effect {deff:.2f} from clusters). " if deff > 1 else ". ")
            + ("A pass here is weak evidence." if ok else "This verdict reflects the sample size more than the models.")
        )
    elif too_few:
        warning = f"{tc.task}: {too_few}."
    return RuleResult("quality non-inferiority", tc.task, ok, detail), warning


def _errors(tc: TaskComparison, rules: GateRules) -> RuleResult:
    """Error rates, paired. Errors already count as failures in quality; this rule adds that when the
    candidate errors more often than the baseline, the upper bound of the increase stays within the allowance."""
    e = tc.error_diff
    no_excess = e is not None and (e.mean is None or e.mean <= 0)
    ok = no_excess or (e is not None and e.hi is not None and e.hi <= rules.max_error_increase)
    base_n = tc.baseline.items if tc.baseline else "?"
    cand_n = tc.candidate.items if tc.candidate else "?"
    detail = (
        f"candidate {tc.candidate_errors}/{cand_n} items errored, baseline {tc.baseline_errors}/{base_n}; "
        f"increase {_pts(e.mean if e else None)} points, {rules.confidence:.0%} CI [{_pts(e.lo if e else None)}, "
        f"{_pts(e.hi if e else None)}]; when above 0, needs upper bound ≤ {rules.max_error_increase * 100:+.1f}"
    )
    return RuleResult("errors", tc.task, ok, detail)


def _limit_rule(rule: str, label: str, value: float | None, limit: float, at_most: bool, fmt: Any) -> RuleResult:
    """A candidate figure against a limit; an unknown figure never passes."""
    ok = value is not None and (value <= limit if at_most else value >= limit)
    shown = "unknown" if value is None else fmt(value)
    return RuleResult(rule, ALL_TASKS, ok, f"candidate {label} = {shown}; {'limit' if at_most else 'minimum'} {fmt(limit)}")


def decide(comparison: Comparison, rules: GateRules) -> GateDecision:
    results: list[RuleResult] = []
    warnings: list[str] = list(comparison.warnings)
    tasks = comparison.tasks if rules.per_task else [comparison.overall]
    if rules.per_task and len(comparison.tasks) == 2:
        tasks = [comparison.overall]  # one task: its row and the overall row are the same items
    for tc in tasks:
        result, warning = _quality(tc, rules)
        results.append(result)
        if warning:
            warnings.append(warning)
    results += [_errors(tc, rules) for tc in tasks]
    overall = comparison.overall
    cand = overall.candidate
    cost = cand.cost_per_task_usd if cand else None
    limits = (
        ("p95 latency", "E2E p95", cand.latency_p95_s if cand else None, rules.max_p95_latency_s, True, lambda v: f"{v:.3f}s"),
        ("cost per task", "$ per task", cost, rules.max_cost_per_task_usd, True, lambda v: f"${v:.6f}"),
        ("pass rate", "pass rate", cand.pass_rate if cand else None, rules.min_pass_rate, False, lambda v: f"{v:.1%}"),
    )
    for rule, label, value, limit, at_most, fmt in limits:
        if limit is not None:
            results.append(_limit_rule(rule, label, value, limit, at_most, fmt))
    if rules.require_cheaper:
        base_cost = overall.baseline.cost_per_task_usd if overall.baseline else None
        known = cost is not None and base_cost is not None
        results.append(
            RuleResult(
                "cheaper than baseline",
                ALL_TASKS,
                known and cost < base_cost,
                f"candidate ${cost if cost is not None else 'unknown'} vs baseline ${base_cost if base_cost is not None else 'unknown'} per task",
            )
        )
    return GateDecision(comparison.baseline, comparison.candidate, rules, results, warnings)
