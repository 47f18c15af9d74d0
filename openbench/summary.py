"""From records to one row per task × model (plus an overall row per model).

Every figure in tables, CSVs and reports comes from here, so they all agree.
An errored item (timeout, refusal by the API, a broken stream...) scores 0 and
fails: a model that answers 70% of requests is not as good as one that answers
all of them. The ``*_excl_errors`` fields are the secondary view, over scored
items only. Cached replays count for quality and cost, never for latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

from openbench.manifest import RunManifest
from openbench.records import ItemResult

ALL_TASKS = "(all)"
# A model that ran but whose errors exceed this share of its items is "degraded"; all items errored: "failed".
DEGRADED_ERROR_SHARE = 0.05


def model_status(status: str | None, items: int, errors: int) -> str | None:
    """A finished model's status, told by its records: "failed" when every item errored,
    "degraded" above DEGRADED_ERROR_SHARE, else what the run recorded."""
    if status not in ("ok", None) or not items:
        return status
    if errors == items:
        return "failed"
    if errors / items > DEGRADED_ERROR_SHARE:
        return "degraded"
    return status


@dataclass(frozen=True)
class SummaryRow:
    task: str
    model: str
    provider: str | None
    status: str | None
    items: int
    scored: int
    errors: int
    cached: int
    quality_mean: float | None
    quality_ci_low: float | None
    quality_ci_high: float | None
    pass_rate: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    output_tps_p50: float | None
    input_tokens_per_task: float | None
    output_tokens_per_task: float | None
    cost_per_task_usd: float | None
    cost_per_1k_tasks_usd: float | None
    cost_per_passed_task_usd: float | None
    cost_basis: str | None
    selfhost_usage_per_task_usd: float | None
    selfhost_dedicated_per_task_usd: float | None
    monthly_cost_usd: float | None
    judge_cost_usd: float | None  # total for this row's items, apart from the model's own cost
    tokens_counted: bool = False  # some token figures were counted by openbench: the server sent no usage
    reasoning_tokens_per_task: float | None = None  # a subset of output_tokens_per_task
    thinking_p50_s: float | None = None  # send → first reasoning delta, where the stream shows it
    endpoint: str | None = None  # where an API model's answers came from
    error_rate: float | None = None
    quality_excl_errors: float | None = None  # secondary view: errored items left out
    pass_rate_excl_errors: float | None = None
    samples_per_item: int | None = None  # `repeats`: samples per item, when more than one
    consistency: float | None = None  # share of items whose samples all pass or all fail
    pass_at_k: dict[str, float] | None = None  # k -> unbiased pass@k, when items were sampled more than once

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(SummaryRow)]


class _Group:
    __slots__ = (
        "items", "errors", "cached", "scores", "passed", "latency", "ttft", "tps", "tin", "tout", "cost", "cost_n",
        "lat_sum", "judge_cost", "judge_unknown", "reasoning", "thinking", "counted", "per_item",
    )

    def __init__(self) -> None:
        self.items = self.errors = self.cached = self.passed = self.cost_n = 0
        self.scores: list[float] = []
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.tps: list[float] = []
        self.tin: list[int] = []
        self.tout: list[int] = []
        self.cost = 0.0
        self.lat_sum = 0.0
        self.judge_cost: float | None = None
        self.judge_unknown = False
        self.counted = False
        self.reasoning: list[int] = []
        self.thinking: list[float] = []
        self.per_item: dict[tuple[str, str], list[tuple[float, bool]]] = {}  # each sample's (score, passed), errors 0

    @property
    def repeated(self) -> bool:
        return len(self.per_item) < self.items

    @property
    def counts(self) -> tuple[int, int]:
        return self.items, self.errors

    def add(self, r: ItemResult) -> None:
        self.items += 1
        graded = r.error is None and r.score is not None
        self.per_item.setdefault((r.task, r.case_id), []).append((r.score if graded else 0.0, bool(r.passed) and graded))
        judge = r.judge
        if judge is not None:
            if judge.cost_usd is None:
                self.judge_unknown = True
            self.judge_cost = (self.judge_cost or 0.0) + (judge.cost_usd or 0.0)
        if r.error is not None:
            self.errors += 1
            return
        self.cached += r.cached
        if r.score is not None:
            self.scores.append(r.score)
            self.passed += bool(r.passed)
        if not r.cached:
            if r.latency_s is not None:
                self.latency.append(r.latency_s)
                self.lat_sum += r.latency_s
            if r.ttft_s is not None:
                self.ttft.append(r.ttft_s)
            if r.output_tps is not None:
                self.tps.append(r.output_tps)
            if r.thinking_s is not None:
                self.thinking.append(r.thinking_s)
        self.counted = self.counted or r.usage_source == "counted"
        if r.input_tokens is not None:
            self.tin.append(r.input_tokens)
        if r.output_tokens is not None:
            self.tout.append(r.output_tokens)
            self.reasoning.append(r.reasoning_tokens)
        if r.cost_usd is not None:
            self.cost += r.cost_usd
            self.cost_n += 1


@dataclass(frozen=True)
class Repeats:
    """What several samples per item say: item means, how often an item's samples agree, and pass@k."""

    per_item: int  # samples of the most-sampled item
    item_means: list[float]
    pass_rate: float  # mean over items of each item's share of passing samples (= pass@1)
    consistency: float  # share of items whose samples all pass or all fail
    pass_at_k: dict[str, float]  # k -> the unbiased estimator of Chen et al. (2021), averaged over items


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn from n (c of them passing) passes: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    from math import comb

    return 1.0 - comb(n - c, k) / comb(n, k)


def repeats(g: _Group) -> Repeats:
    items = list(g.per_item.values())
    most = max(len(s) for s in items)
    shares = [sum(p for _, p in s) / len(s) for s in items]
    ks = sorted({1, most} | {k for k in (2, 5, 10) if k < most})
    return Repeats(
        per_item=most,
        item_means=[sum(v for v, _ in s) / len(s) for s in items],
        pass_rate=sum(shares) / len(shares),
        consistency=sum(1 for share in shares if share in (0.0, 1.0)) / len(shares),
        pass_at_k={str(k): sum(pass_at_k(len(s), sum(p for _, p in s), k) for s in items if len(s) >= k) / sum(1 for s in items if len(s) >= k) for k in ks},
    )


def summarise(
    records: Iterable[ItemResult],
    manifest: RunManifest | None = None,
    volume_per_month: float | None = None,
    confidence: float = 0.95,
) -> list[SummaryRow]:
    """Rows per (task, model) in suite order, then one overall row per model."""
    from openbench import pricing, stats

    models = {m.id: m for m in manifest.models} if manifest is not None else {}
    groups: dict[tuple[str, str], _Group] = {}
    overall: dict[str, _Group] = {}
    for r in records:
        groups.setdefault((r.task, r.model), _Group()).add(r)
        overall.setdefault(r.model, _Group()).add(r)
    model_lat = {m: g.lat_sum for m, g in overall.items()}

    def row(task: str, model: str, g: _Group) -> SummaryRow:
        info = models.get(model)
        graded = g.scores + [0.0] * g.errors  # an errored item scores 0 and fails
        samples = repeats(g) if g.repeated else None
        # Repeated samples of an item are one unit: its mean, so that repeats never inflate n.
        est = stats.mean_ci(samples.item_means if samples else graded, confidence) if graded else None
        ok = g.items - g.errors
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        api_cost = g.cost / g.cost_n if g.cost_n and g.cost_n == ok else None
        usage = dedicated = None
        if info is not None and info.hardware_profile and info.busy_s and model_lat.get(model):
            # A task's share of the model's busy time is its share of the summed item latencies.
            share = g.lat_sum / model_lat[model]
            busy_per_task = info.busy_s * share / max(1, len(g.latency))
            costs = pricing.self_hosted_cost_per_task(
                info.hardware_profile, busy_per_task, info.utilisation or pricing.DEFAULT_UTILISATION
            )
            usage, dedicated = costs.usage_usd, costs.dedicated_usd
        per_task, basis = (api_cost, "api") if api_cost is not None else (dedicated, "dedicated" if dedicated is not None else None)
        pass_rate = (samples.pass_rate if samples else g.passed / len(graded)) if graded else None
        return SummaryRow(
            task=task,
            model=model,
            provider=info.provider if info else None,
            status=model_status(info.status if info else None, *overall[model].counts) if model in overall else (info.status if info else None),
            items=g.items,
            scored=len(g.scores),
            errors=g.errors,
            cached=g.cached,
            quality_mean=est.mean if est else None,
            # Scores live in [0, 1]; a t-interval may overshoot on small samples.
            quality_ci_low=max(0.0, est.lo) if est and est.lo is not None else None,
            quality_ci_high=min(1.0, est.hi) if est and est.hi is not None else None,
            pass_rate=pass_rate,
            latency_p50_s=stats.percentile(g.latency, 50),
            latency_p95_s=stats.percentile(g.latency, 95),
            ttft_p50_s=stats.percentile(g.ttft, 50),
            ttft_p95_s=stats.percentile(g.ttft, 95),
            output_tps_p50=stats.percentile(g.tps, 50),
            input_tokens_per_task=mean(g.tin),
            output_tokens_per_task=mean(g.tout),
            cost_per_task_usd=per_task,
            cost_per_1k_tasks_usd=per_task * 1000 if per_task is not None else None,
            cost_per_passed_task_usd=per_task / pass_rate if per_task is not None and pass_rate else None,
            cost_basis=basis,
            selfhost_usage_per_task_usd=usage,
            selfhost_dedicated_per_task_usd=dedicated,
            monthly_cost_usd=pricing.monthly_projection(volume_per_month, per_task) if volume_per_month else None,
            judge_cost_usd=None if g.judge_unknown else g.judge_cost,
            tokens_counted=g.counted,
            reasoning_tokens_per_task=mean(g.reasoning),
            thinking_p50_s=stats.percentile(g.thinking, 50),
            endpoint=info.endpoint if info else None,
            error_rate=g.errors / g.items if g.items else None,
            quality_excl_errors=sum(g.scores) / len(g.scores) if g.scores else None,
            pass_rate_excl_errors=g.passed / len(g.scores) if g.scores else None,
            samples_per_item=samples.per_item if samples else None,
            consistency=samples.consistency if samples else None,
            pass_at_k=samples.pass_at_k if samples else None,
        )

    task_order = {t: i for i, t in enumerate(manifest.tasks if manifest is not None else [])}
    model_order = {m: i for i, m in enumerate(models)}
    keys = sorted(groups, key=lambda k: (task_order.get(k[0], 1e9), k[0], model_order.get(k[1], 1e9), k[1]))
    rows = [row(t, m, groups[(t, m)]) for t, m in keys]
    for model in sorted(overall, key=lambda m: (model_order.get(m, 1e9), m)):
        rows.append(row(ALL_TASKS, model, overall[model]))
    # Models that produced no record (skipped, failed to start) still get a row, with the reason.
    for model, info in models.items():
        if model not in overall:
            empty = row(ALL_TASKS, model, _Group())
            rows.append(empty)
    return rows
