"""The gate: rules over a comparison → a decision and an exit code.

Quality is a non-inferiority test: it passes only when the lower bound of the
confidence interval of (candidate − baseline) is above −margin. When the
number of items is too small to detect a drop of that size, the gate says so
instead of letting noise decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openbench.compare import Comparison, TaskComparison
from openbench.summary import ALL_TASKS

EXIT_PASS, EXIT_FAIL = 0, 1


@dataclass(frozen=True)
class GateRules:
    margin: float = 0.02
    confidence: float = 0.95
    per_task: bool = True
    max_p95_latency_s: float | None = None
    max_cost_per_task_usd: float | None = None
    min_pass_rate: float | None = None
    require_cheaper: bool = False


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
        if not failed:
            return (
                f"PASS: {self.candidate} is not worse than {self.baseline} by more than "
                f"{self.rules.margin * 100:g} points at {self.rules.confidence:.0%} confidence, and every rule holds"
            )
        return f"FAIL: {len(failed)} of {len(self.results)} rules failed for {self.candidate} against {self.baseline}"

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


def _quality(tc: TaskComparison, rules: GateRules) -> tuple[RuleResult, str | None]:
    from openbench import stats

    d = tc.diff
    ok = stats.non_inferior(d, rules.margin)
    detail = (
        f"candidate − baseline = {_pts(d.mean)} points, {rules.confidence:.0%} CI [{_pts(d.lo)}, {_pts(d.hi)}] "
        f"over {d.n} paired items ({d.method}); needs lower bound > {-rules.margin * 100:+.1f}"
    )
    warning = None
    clearly_worse = d.hi is not None and d.hi < -rules.margin
    if d.mde is not None and d.mde > rules.margin and not clearly_worse:
        need = stats.required_n(rules.margin, d.sd_diff, rules.confidence) if d.sd_diff else None
        warning = (
            f"{tc.task}: n={d.n} is too small to detect a drop of {rules.margin * 100:g} points "
            f"(minimum detectable effect at 80% power: {d.mde * 100:.1f} points); "
            + (f"about {need} items are needed. " if need else "more items are needed. ")
            + ("A pass here is weak evidence." if ok else "This verdict reflects the sample size more than the models.")
        )
    return RuleResult("quality non-inferiority", tc.task, ok, detail), warning


def _limit_rule(rule: str, label: str, value: float | None, limit: float, at_most: bool, fmt: Any) -> RuleResult:
    """A candidate figure against a limit; an unknown figure never passes."""
    ok = value is not None and (value <= limit if at_most else value >= limit)
    shown = "unknown" if value is None else fmt(value)
    return RuleResult(rule, ALL_TASKS, ok, f"candidate {label} = {shown}; {'limit' if at_most else 'minimum'} {fmt(limit)}")


def decide(comparison: Comparison, rules: GateRules) -> GateDecision:
    results: list[RuleResult] = []
    warnings: list[str] = []
    tasks = comparison.tasks if rules.per_task else [comparison.overall]
    if rules.per_task and len(comparison.tasks) == 2:
        tasks = [comparison.overall]  # one task: its row and the overall row are the same items
    for tc in tasks:
        result, warning = _quality(tc, rules)
        results.append(result)
        if warning:
            warnings.append(warning)
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
    base_rows, cand_rows = overall.baseline, overall.candidate
    if base_rows and cand_rows and base_rows.items and cand_rows.items:
        # Errored items are left out of the paired scores, so they get a rule of their own.
        extra = cand_rows.errors / cand_rows.items - base_rows.errors / base_rows.items
        results.append(
            RuleResult(
                "errors",
                ALL_TASKS,
                extra <= rules.margin,
                f"candidate {cand_rows.errors}/{cand_rows.items} items errored, baseline "
                f"{base_rows.errors}/{base_rows.items}; allowed excess {rules.margin * 100:g} points",
            )
        )
    return GateDecision(comparison.baseline, comparison.candidate, rules, results, warnings)
