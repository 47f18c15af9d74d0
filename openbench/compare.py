"""Paired comparison of two models on the same items, within a run or across two runs.

Items are matched by (task, case id). Only items that both models scored are
paired; items that errored on either side are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openbench.errors import RunError
from openbench.records import ItemResult
from openbench.store import RunStore
from openbench.summary import ALL_TASKS, SummaryRow, summarise


@dataclass(frozen=True)
class Side:
    """One model of a comparison: where its records come from."""

    store: RunStore
    model: str

    @property
    def label(self) -> str:
        return self.model


@dataclass(frozen=True)
class Flip:
    task: str
    case_id: str
    direction: str  # "pass→fail" | "fail→pass"
    baseline_output: str | None
    candidate_output: str | None


@dataclass(frozen=True)
class TaskComparison:
    task: str
    diff: Any  # stats.PairedDiff
    baseline: SummaryRow | None
    candidate: SummaryRow | None
    baseline_errors: int
    candidate_errors: int
    flips: list[Flip] = field(default_factory=list)

    @property
    def latency_p50_delta_s(self) -> float | None:
        return _delta(self.baseline, self.candidate, "latency_p50_s")

    @property
    def latency_p95_delta_s(self) -> float | None:
        return _delta(self.baseline, self.candidate, "latency_p95_s")

    @property
    def cost_per_task_delta_usd(self) -> float | None:
        return _delta(self.baseline, self.candidate, "cost_per_task_usd")


@dataclass(frozen=True)
class Comparison:
    baseline: str
    candidate: str
    confidence: float
    tasks: list[TaskComparison]  # per task, then the overall one (task == ALL_TASKS)

    @property
    def overall(self) -> TaskComparison:
        return self.tasks[-1]


def _delta(base: SummaryRow | None, cand: SummaryRow | None, name: str) -> float | None:
    if base is None or cand is None:
        return None
    a, b = getattr(base, name), getattr(cand, name)
    return None if a is None or b is None else b - a


def _records(side: Side) -> dict[tuple[str, str], ItemResult]:
    found = {(r.task, r.case_id): r for r in side.store.iter_records() if r.model == side.model}
    if not found:
        models = sorted({r.model for r in side.store.iter_records()})
        from openbench.registry import did_you_mean

        raise RunError(
            f"no records for model '{side.model}' in {side.store.path}{did_you_mean(side.model, models)}. "
            f"Models there: {', '.join(models) or 'none'}"
        )
    return found


def compare(baseline: Side, candidate: Side, confidence: float = 0.95, allow_partial: bool = False) -> Comparison:
    from openbench import stats

    base, cand = _records(baseline), _records(candidate)
    only_base, only_cand = set(base) - set(cand), set(cand) - set(base)
    if (only_base or only_cand) and not allow_partial:
        raise RunError(
            f"the two sides do not cover the same items: {len(only_base)} only for {baseline.label}, "
            f"{len(only_cand)} only for {candidate.label} (different suites, limits or an unfinished run). "
            "Use --allow-partial to compare the common items."
        )
    rows_b = {r.task: r for r in summarise(base.values(), baseline.store.read_manifest(), confidence=confidence) if r.model == baseline.model}
    rows_c = {r.task: r for r in summarise(cand.values(), candidate.store.read_manifest(), confidence=confidence) if r.model == candidate.model}
    common = sorted(set(base) & set(cand))
    task_order = list(dict.fromkeys(t for t, _ in common))
    results = []
    for task in [*task_order, ALL_TASKS]:
        keys = [k for k in common if task in (ALL_TASKS, k[0])]
        pairs = [(base[k], cand[k]) for k in keys if base[k].score is not None and cand[k].score is not None]
        if pairs:
            clusters = None
            if all(b.cluster is not None for b, _ in pairs):
                clusters = [f"{b.task}\x00{b.cluster}" for b, _ in pairs]
            diff = stats.paired_diff(
                [c.score for _, c in pairs], [b.score for b, _ in pairs], clusters=clusters, confidence=confidence
            )
        else:  # nothing scored by both (e.g. every candidate item errored): no interval, so the gate fails
            diff = stats.PairedDiff(
                n=0, mean=None, lo=None, hi=None, method="no pairs", discordant=0, candidate_only=None,
                baseline_only=None, correlation=None, sd_diff=None, mde=None, confidence=confidence,
            )  # fmt: skip
        flips = [
            Flip(b.task, b.case_id, "pass→fail" if b.passed else "fail→pass", b.output, c.output)
            for b, c in pairs
            if bool(b.passed) != bool(c.passed)
        ]
        results.append(
            TaskComparison(
                task=task,
                diff=diff,
                baseline=rows_b.get(task),
                candidate=rows_c.get(task),
                baseline_errors=sum(base[k].error is not None for k in keys),
                candidate_errors=sum(cand[k].error is not None for k in keys),
                flips=flips,
            )
        )
    return Comparison(baseline.label, candidate.label, confidence, results)
