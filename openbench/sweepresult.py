"""A load sweep's result: its levels, the operating point at the latency target, and the API models against it.

``sweep.json`` is this module's ``SweepResult``, written by ``openbench sweep`` and read back strictly (by
``cost --sweep`` and ``report --sweep``). The operating point is the level with the highest throughput that meets
the latency target with no errors; there the hardware's $/h divided by the measured throughput gives $ per 1M
output tokens and $ per task, and each API model's $ per task gives the monthly volume above which self-hosting
is cheaper.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from openbench.errors import RunError

SWEEP_FILE = "sweep.json"
_CHECKED = {"extra": "forbid", "allow_inf_nan": False}  # how sweep.json is read back: no unknown keys, no NaN or inf


LoadAxis = Literal["concurrency", "batch size", "rate"]


@dataclass(frozen=True)
class SweepLevel:
    """One level's figures. ``concurrency`` is the level (closed loop), the batch size (a local model), or,
    under ``--rate``, the most requests that were in flight at once; ``rate_per_s`` is the offered rate there."""
    __pydantic_config__ = _CHECKED

    concurrency: int
    requests: int
    errors: int
    wall_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None
    e2e_p99_s: float | None
    quality: float | None
    client_cpu_share: float
    meets_target: bool
    rate_per_s: float | None = None
    arrivals_per_s: float | None = None  # the rate the measured requests really arrived at (Poisson: near rate_per_s)
    peak_in_flight: int = 0
    input_tokens_mean: float | None = None
    output_tokens_mean: float | None = None


@dataclass(frozen=True)
class OperatingPoint:
    __pydantic_config__ = _CHECKED

    concurrency: int
    requests_per_s: float
    output_tokens_per_s: float
    e2e_p95_s: float | None
    ttft_p95_s: float | None
    quality: float | None
    usd_per_hour: float | None
    usd_per_mtok_output: float | None
    usd_per_task: float | None
    rate_per_s: float | None = None
    input_tokens_mean: float | None = None
    output_tokens_mean: float | None = None
    usd_per_month: float | None = None  # the hardware rented all month
    tasks_per_month: float | None = None  # what it serves in that month at the operating point


@dataclass(frozen=True)
class ApiComparison:
    """An API model of the suite against the operating point: its $ per task on the sweep's token mix, its
    quality (from ``--against RUN``), and the monthly volume above which self-hosting is always cheaper."""
    __pydantic_config__ = _CHECKED

    model: str
    usd_per_task: float | None
    price_source: str | None
    quality: float | None
    break_even_tasks_per_month: float | None  # None: self-hosting never pays for itself against this price


@dataclass
class SweepResult:
    __pydantic_config__ = _CHECKED

    model: str
    suite: str
    slo_p95_s: float | None
    slo_ttft_p95_s: float | None
    usd_per_hour: float | None
    levels: list[SweepLevel] = field(default_factory=list)
    operating_point: OperatingPoint | None = None
    warnings: list[str] = field(default_factory=list)
    load_axis: LoadAxis = "concurrency"
    against: list[ApiComparison] = field(default_factory=list)
    interrupted: bool = False  # stopped (Ctrl-C, SIGTERM) before its last level: these are the levels measured

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> SweepResult:
        from pydantic import TypeAdapter, ValidationError

        path = folder / SWEEP_FILE if folder.is_dir() else folder
        try:
            result = TypeAdapter(cls).validate_json(path.read_bytes())
        except FileNotFoundError:
            raise RunError(f"{folder}: no {SWEEP_FILE} (expected a folder made by `openbench sweep`)") from None
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in exc.errors()[:3])
            raise RunError(f"{path}: not a sweep result ({where})") from None
        negative = next(_negatives(result), None)
        if negative is not None:
            raise RunError(f"{path}: not a sweep result ({negative} is negative)")
        return result

    def level_name(self, level: SweepLevel) -> str:
        """How a level is called in tables and charts: ``c=8``, ``batch 8`` or ``4 req/s``."""
        if self.load_axis == "rate" and level.rate_per_s is not None:
            return f"{level.rate_per_s:g} req/s"
        return f"batch {level.concurrency}" if self.load_axis == "batch size" else f"c={level.concurrency}"


def _negatives(node: Any, where: str = "") -> Any:
    """The dotted names of the negative numbers in a sweep result: every figure in it is a count, a rate, a time,
    a price or a score, none of which can be below zero."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _negatives(item, f"{where}.{i}")
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _negatives(getattr(node, name), f"{where}.{name}".lstrip("."))
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and node < 0:
        yield where


def operating_point(levels: list[SweepLevel], usd_per_hour: float | None) -> OperatingPoint | None:
    """The level with the highest throughput that meets the target with no errors, priced by the hour."""
    from openbench.pricing.hardware import HOURS_PER_MONTH

    fit = [lv for lv in levels if lv.meets_target]
    if not fit:
        return None
    best = max(fit, key=lambda lv: (lv.output_tokens_per_s, lv.requests_per_s))
    per_mtok = per_task = per_month = None
    if usd_per_hour is not None:
        per_month = usd_per_hour * HOURS_PER_MONTH
        if best.output_tokens_per_s > 0:
            per_mtok = _busy_cost(usd_per_hour, 1 / best.output_tokens_per_s) * 1e6
        if best.requests_per_s > 0:
            per_task = _busy_cost(usd_per_hour, 1 / best.requests_per_s)
    return OperatingPoint(
        concurrency=best.concurrency, requests_per_s=best.requests_per_s, output_tokens_per_s=best.output_tokens_per_s,
        e2e_p95_s=best.e2e_p95_s, ttft_p95_s=best.ttft_p95_s, quality=best.quality, usd_per_hour=usd_per_hour,
        usd_per_mtok_output=per_mtok, usd_per_task=per_task, rate_per_s=best.rate_per_s,
        input_tokens_mean=best.input_tokens_mean, output_tokens_mean=best.output_tokens_mean, usd_per_month=per_month,
        tasks_per_month=best.requests_per_s * 3600 * HOURS_PER_MONTH,
    )


def _box(usd_per_hour: float) -> Any:
    """The operating point's hardware as the pricing package sees it: one box at its measured $/h."""
    from openbench.pricing.hardware import Hardware

    return Hardware(name="operating point", accelerator="", count=1, usd_per_hour=usd_per_hour)


def _busy_cost(usd_per_hour: float, busy_s: float) -> float:
    """The box's price for ``busy_s`` seconds of it, every one of them used (utilisation is measured, not assumed)."""
    from openbench.pricing.hardware import self_hosted_cost_per_task

    return self_hosted_cost_per_task(_box(usd_per_hour), busy_s, utilisation=1.0).usage_usd


def break_even(point: OperatingPoint, api_usd_per_task: float | None) -> float | None:
    """Tasks a month above which the operating point's hardware is always cheaper than ``api_usd_per_task``."""
    from openbench.pricing.hardware import break_even_tasks_per_month

    if point.usd_per_hour is None or not api_usd_per_task or point.requests_per_s <= 0:
        return None
    return break_even_tasks_per_month(api_usd_per_task, _box(point.usd_per_hour), 1.0 / point.requests_per_s)


def compare_with_apis(point: OperatingPoint | None, apis: list[tuple[str, Any]], quality: dict[str, float | None]) -> list[ApiComparison]:
    """Every per-token model's $ per task on the operating point's token mix (same input and output token counts)."""
    from openbench.pricing import cost
    from openbench.records import Usage

    if point is None or point.input_tokens_mean is None or point.output_tokens_mean is None:
        return []
    usage = Usage(input_tokens=round(point.input_tokens_mean), output_tokens=round(point.output_tokens_mean))
    rows = []
    for model_id, price in apis:
        per_task = cost(usage, price) if price is not None else None
        rows.append(ApiComparison(model=model_id, usd_per_task=per_task, price_source=price.source if price else None,
                                  quality=quality.get(model_id), break_even_tasks_per_month=break_even(point, per_task)))
    return rows


def verdict(row: ApiComparison, point: OperatingPoint | None) -> str:
    """An API model against the operating point, in words: from what monthly volume self-hosting is cheaper."""
    if row.usd_per_task is None:
        return "no price known"
    volume, capacity = row.break_even_tasks_per_month, point.tasks_per_month if point else None
    if volume is None:
        return "self-hosting never pays for itself at this price"
    boxes = f" ({math.ceil(volume / capacity):,} boxes)" if capacity and volume > capacity else ""
    return f"self-hosting is cheaper above {volume:,.0f} tasks/month{boxes}"


def compare_with_run(result: SweepResult, rows: list[Any]) -> list[ApiComparison]:
    """Every API-priced model of a run (its summary ``rows``) against the operating point: its measured $ per task,
    its quality and the break-even volume. Empty without a priced operating point."""
    from openbench.summary import ALL_TASKS

    point = result.operating_point
    if point is None or point.usd_per_task is None:
        return []
    return [
        ApiComparison(model=row.model, usd_per_task=row.cost_per_task_usd, price_source="measured in the run",
                      quality=row.quality_mean, break_even_tasks_per_month=break_even(point, row.cost_per_task_usd))
        for row in rows
        if row.task == ALL_TASKS and row.cost_basis == "api" and row.cost_per_task_usd
    ]
