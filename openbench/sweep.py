"""``openbench sweep``: a self-hosted model's throughput and latency at increasing load, and its operating point.

The suite's own items are sent to one model at each concurrency level (a closed loop: each of
``concurrency`` workers sends its next request when its previous answer is in). Per level: requests/s,
output tokens/s, TTFT and E2E p50/p95/p99, errors and the quality of the answers. The operating point
is the level with the highest throughput that meets the latency target with no errors; there the
hardware's $/h divided by the measured throughput gives $ per 1M output tokens and $ per task.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openbench.errors import OpenbenchError, RunError

SWEEP_FILE = "sweep.json"
DEFAULT_MAX_CONCURRENCY = 64
CPU_SATURATED = 0.9  # openbench's own CPU share of one core above which a level's figures may be ours, not the engine's


@dataclass(frozen=True)
class SweepLevel:
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


@dataclass(frozen=True)
class OperatingPoint:
    concurrency: int
    requests_per_s: float
    output_tokens_per_s: float
    e2e_p95_s: float | None
    ttft_p95_s: float | None
    quality: float | None
    usd_per_hour: float | None
    usd_per_mtok_output: float | None
    usd_per_task: float | None


@dataclass
class SweepResult:
    model: str
    suite: str
    slo_p95_s: float | None
    slo_ttft_p95_s: float | None
    usd_per_hour: float | None
    levels: list[SweepLevel] = field(default_factory=list)
    operating_point: OperatingPoint | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> SweepResult:
        path = folder / SWEEP_FILE if folder.is_dir() else folder
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            point = data.pop("operating_point")
            levels = [SweepLevel(**lv) for lv in data.pop("levels")]
            return cls(**data, levels=levels, operating_point=OperatingPoint(**point) if point else None)
        except FileNotFoundError:
            raise RunError(f"{folder}: no {SWEEP_FILE} (expected a folder made by `openbench sweep`)") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise RunError(f"{path}: not a sweep result ({exc})") from None


def parse_levels(text: str | None) -> list[int] | None:
    """``--concurrency 1,2,4`` as a sorted list; None means doubling until the target breaks."""
    if text is None:
        return None
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise OpenbenchError(f"--concurrency expects numbers separated by commas, e.g. 1,2,4,8; got '{text}'") from None
    if not levels or levels[0] < 1:
        raise OpenbenchError(f"--concurrency levels must be at least 1; got '{text}'")
    return levels


def operating_point(levels: list[SweepLevel], usd_per_hour: float | None) -> OperatingPoint | None:
    """The level with the highest throughput that meets the target with no errors, priced by the hour."""
    fit = [lv for lv in levels if lv.meets_target]
    if not fit:
        return None
    best = max(fit, key=lambda lv: (lv.output_tokens_per_s, lv.requests_per_s))
    per_mtok = per_task = None
    if usd_per_hour is not None:
        if best.output_tokens_per_s > 0:
            per_mtok = usd_per_hour / (best.output_tokens_per_s * 3600) * 1e6
        if best.requests_per_s > 0:
            per_task = usd_per_hour / (best.requests_per_s * 3600)
    return OperatingPoint(
        concurrency=best.concurrency, requests_per_s=best.requests_per_s, output_tokens_per_s=best.output_tokens_per_s,
        e2e_p95_s=best.e2e_p95_s, ttft_p95_s=best.ttft_p95_s, quality=best.quality, usd_per_hour=usd_per_hour,
        usd_per_mtok_output=per_mtok, usd_per_task=per_task,
    )


class Sweep:
    """One model driven at each level in turn; the engine (or weights) is started once for all levels."""

    def __init__(self, suite: Any, model_id: str, *, requests_per_level: int, warmup: int | None,
                 slo_p95_s: float | None, slo_ttft_p95_s: float | None, hardware: str | None, folder: Path, notes: Any):
        from openbench.runner import load_work

        self.suite, self.spec = suite, suite.model(model_id)
        self.requests_per_level, self.warmup = requests_per_level, warmup
        self.slo_p95_s, self.slo_ttft_p95_s = slo_p95_s, slo_ttft_p95_s
        self.folder, self.notes = folder, notes
        self.hardware = suite.spec.hardware_for(self.spec, hardware)
        self.items = [(task, scorers, case) for task, scorers, cases in load_work(suite) for case in cases]
        if not self.items:
            raise OpenbenchError("the suite has no items to send")
        self.usd_per_hour = float(self.hardware.usd_per_hour * self.hardware.count) if self.hardware else None

    async def run(self, levels: list[int] | None) -> SweepResult:
        from openbench.client import Budget, ModelClient

        client = ModelClient(self.spec, self.suite.dir, cache=None, budget=Budget(None), notes=self.notes, run_dir=self.folder)
        if client.entry.billing == "per-token":
            raise OpenbenchError(f"model '{self.spec.id}' is billed per token: a sweep measures self-hosted models")
        if not client.check() or not await client.start():
            raise OpenbenchError(f"model '{self.spec.id}' cannot run: {client.entry.reason}")
        result = SweepResult(self.spec.id, str(self.suite.path), self.slo_p95_s, self.slo_ttft_p95_s, self.usd_per_hour)
        try:
            for concurrency in levels or _doubling():
                level = await self._level(client, concurrency)
                result.levels.append(level)
                self.notes.note(
                    f"concurrency {concurrency}: {level.requests_per_s:.2f} req/s, {level.output_tokens_per_s:.1f} tok/s, "
                    f"e2e p95 {_fmt(level.e2e_p95_s)} s, errors {level.errors}"
                )
                if level.client_cpu_share > CPU_SATURATED:
                    result.warnings.append(
                        f"concurrency {concurrency}: openbench used {level.client_cpu_share:.0%} of a core; "
                        "the figures there may be openbench's own limit, not the engine's"
                    )
                if levels is None and (not level.meets_target or concurrency >= DEFAULT_MAX_CONCURRENCY):
                    break
        finally:
            await client.close()
            engine = client.entry.engine
            if engine is not None:
                (self.folder / "engine.json").write_text(engine.model_dump_json(indent=2) + "\n")
        result.operating_point = operating_point(result.levels, self.usd_per_hour)
        (self.folder / SWEEP_FILE).write_text(result.to_json())
        return result

    async def _level(self, client: Any, concurrency: int) -> SweepLevel:
        from openbench import stats
        from openbench.records import ItemResult
        from openbench.scorers.base import combine

        client.set_in_flight(concurrency)
        source = itertools.cycle(self.items)
        warmup = concurrency if self.warmup is None else self.warmup
        await self._drive(client, source, concurrency, warmup)  # excluded from the figures
        cpu0, t0 = time.process_time(), time.perf_counter()
        answers = await self._drive(client, source, concurrency, self.requests_per_level)
        wall = time.perf_counter() - t0
        cpu_share = (time.process_time() - cpu0) / wall if wall > 0 else 0.0
        records, e2e, ttft, scores = [], [], [], []
        tokens = errors = 0
        for (task, scorers, case), answer in answers:
            completion = answer.completion
            if completion is None:
                errors += 1
                records.append(ItemResult(task=task.name, case_id=case.id, model=self.spec.id, error=str(answer.error),
                                          error_kind=answer.error.kind if answer.error else None))
                continue
            timing, usage = completion.timing, completion.usage
            tokens += usage.output_tokens or 0
            e2e.append(timing.e2e_s)
            if timing.ttft_s is not None:
                ttft.append(timing.ttft_s)
            try:
                score, passed, _ = combine(scorers, completion.text, case.fields, task.pass_threshold)
                scores.append(score)
            except Exception:  # noqa: BLE001 - a scorer that needs more (a judge) leaves quality unknown here
                score = passed = None
            records.append(ItemResult(
                task=task.name, case_id=case.id, model=self.spec.id, output=completion.text, score=score, passed=passed,
                latency_s=timing.e2e_s, ttft_s=timing.ttft_s, input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens, usage_source=usage.source, attempts=answer.attempts, wall_s=answer.wall_s,
            ))
        with open(self.folder / f"level-c{concurrency}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r.to_dict()) + "\n" for r in records)
        done = len(e2e)
        p = stats.percentile
        e2e_p95, ttft_p95 = p(e2e, 95), p(ttft, 95)
        meets = errors == 0 and done > 0
        if self.slo_p95_s is not None:
            meets = meets and e2e_p95 is not None and e2e_p95 <= self.slo_p95_s
        if self.slo_ttft_p95_s is not None:
            meets = meets and ttft_p95 is not None and ttft_p95 <= self.slo_ttft_p95_s
        return SweepLevel(
            concurrency=concurrency, requests=len(answers), errors=errors, wall_s=wall,
            requests_per_s=done / wall if wall > 0 else 0.0, output_tokens_per_s=tokens / wall if wall > 0 else 0.0,
            ttft_p50_s=p(ttft, 50), ttft_p95_s=ttft_p95, ttft_p99_s=p(ttft, 99),
            e2e_p50_s=p(e2e, 50), e2e_p95_s=e2e_p95, e2e_p99_s=p(e2e, 99),
            quality=sum(scores) / len(scores) if scores else None, client_cpu_share=cpu_share, meets_target=meets,
        )

    async def _drive(self, client: Any, source: Any, concurrency: int, count: int) -> list[tuple[Any, Any]]:
        """``count`` requests with ``concurrency`` in flight (a closed loop); answers in completion order."""
        from openbench.runner import request_for

        remaining = iter(range(count))
        out: list[tuple[Any, Any]] = []

        async def worker() -> None:
            for _ in remaining:
                item = next(source)
                task, _, case = item
                answer = await client.answer(request_for(self.suite, task, case), case.fields)
                out.append((item, answer))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
        return out


def _doubling() -> Any:
    c = 1
    while True:
        yield c
        c *= 2


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def target_text(result: SweepResult) -> str:
    """The latency target in words: "e2e p95 <= 2 s, ttft p95 <= 0.5 s", or "no errors" when none was given."""
    target = []
    if result.slo_p95_s is not None:
        target.append(f"e2e p95 <= {result.slo_p95_s:g} s")
    if result.slo_ttft_p95_s is not None:
        target.append(f"ttft p95 <= {result.slo_ttft_p95_s:g} s")
    return ", ".join(target) or "no errors"


def load_axis(result: SweepResult) -> str:
    """What the levels vary: "concurrency" unless the sweep says otherwise (e.g. "batch size", "rate")."""
    return getattr(result, "load_axis", None) or "concurrency"


def level_label(result: SweepResult, level: SweepLevel | OperatingPoint) -> str:
    """A level's load as its axis counts it: 8 clients, batch 8, or 2.5 requests/s offered."""
    rate = getattr(level, "rate_per_s", None)
    return f"{rate:g}/s" if rate is not None and load_axis(result) == "rate" else str(level.concurrency)


def point_label(result: SweepResult) -> str:
    """The operating point's load in words, e.g. "concurrency 4"; empty without one."""
    point = result.operating_point
    return "" if point is None else f"{load_axis(result)} {level_label(result, point)}"


def is_operating_point(result: SweepResult, level: SweepLevel) -> bool:
    point = result.operating_point
    if point is None or level.concurrency != point.concurrency:
        return False
    rates = getattr(level, "rate_per_s", None), getattr(point, "rate_per_s", None)
    return None in rates or rates[0] == rates[1]


def level_columns(result: SweepResult) -> tuple[str, ...]:
    return (load_axis(result), "req/s", "out tok/s", "ttft p50", "ttft p95", "e2e p50", "e2e p95", "e2e p99", "errors", "quality", "meets")


def level_cells(result: SweepResult, lv: SweepLevel) -> tuple[str, ...]:
    """One level as the sweep tables show it (terminal, HTML, Markdown), under ``level_columns``."""
    mark = "<- operating point" if is_operating_point(result, lv) else ("yes" if lv.meets_target else "no")
    return (level_label(result, lv), f"{lv.requests_per_s:.2f}", f"{lv.output_tokens_per_s:.1f}", _fmt(lv.ttft_p50_s, 3),
            _fmt(lv.ttft_p95_s, 3), _fmt(lv.e2e_p50_s), _fmt(lv.e2e_p95_s), _fmt(lv.e2e_p99_s), str(lv.errors),
            _fmt(lv.quality), mark)


def render_sweep(result: SweepResult) -> None:
    from rich.table import Table

    from openbench.report.table import console_for, fmt_usd, table_box

    console = console_for()
    table = Table(title=f"sweep of {result.model} (target: {target_text(result)})", box=table_box())
    for name in level_columns(result):
        table.add_column(name, justify="right")
    for lv in result.levels:
        table.add_row(*level_cells(result, lv))
    console.print(table)
    point = result.operating_point
    if point is None:
        console.print("  no level met the target: no operating point", markup=False)
    else:
        price = (f"{fmt_usd(point.usd_per_mtok_output)} per 1M output tokens, {fmt_usd(point.usd_per_task)} per task "
                 f"at ${point.usd_per_hour:g}/h" if point.usd_per_hour is not None else "no hardware price: give --hardware PROFILE@USD_PER_HOUR")
        console.print(f"  operating point: concurrency {point.concurrency}, {point.requests_per_s:.2f} req/s, "
                      f"{point.output_tokens_per_s:.1f} output tok/s, e2e p95 {_fmt(point.e2e_p95_s)} s: {price}", markup=False)
    for warning in result.warnings:
        console.print(f"  warning: {warning}", markup=False)


@dataclass(frozen=True)
class BreakEven:
    """One API model of a run against the box at the sweep's operating point."""

    model: str
    api_usd_per_task: float
    tasks_per_month: float  # the monthly volume at which one box costs what the API does
    pays_off: bool  # False: that volume is above what one box serves, so the box never pays for itself


@dataclass(frozen=True)
class SelfHosting:
    """The operating point as a monthly bill: one box, every hour of the month, and what it can serve."""

    usd_per_task: float
    usd_per_mtok_output: float | None
    usd_per_month: float
    tasks_per_month: float
    against: list[BreakEven]


def against_apis(result: SweepResult, rows: list[Any]) -> SelfHosting | None:
    """The operating point's monthly price and capacity, and the break-even volume against every API-priced
    model among ``rows`` (a run's summary rows); None without a priced operating point."""
    from openbench.pricing.hardware import HOURS_PER_MONTH
    from openbench.summary import ALL_TASKS

    point = result.operating_point
    if point is None or point.usd_per_task is None or point.usd_per_hour is None:
        return None
    box_month = point.usd_per_hour * HOURS_PER_MONTH
    capacity = point.requests_per_s * 3600 * HOURS_PER_MONTH
    against = []
    for row in rows:
        if row.task != ALL_TASKS or row.cost_basis != "api" or not row.cost_per_task_usd:
            continue
        even = box_month / row.cost_per_task_usd
        against.append(BreakEven(row.model, row.cost_per_task_usd, even, even <= capacity))
    return SelfHosting(point.usd_per_task, point.usd_per_mtok_output, box_month, capacity, against)


def render_against_apis(result: SweepResult, rows: list[Any]) -> None:
    """``openbench cost RUN --sweep DIR``: the operating point's $ per task against every API model of the run."""
    from openbench.report.table import console_for, fmt_usd

    console = console_for()
    point, hosting = result.operating_point, against_apis(result, rows)
    if point is None or hosting is None:
        console.print(f"  sweep of {result.model}: no operating point with a price (see its sweep.json)", markup=False)
        return
    console.print(
        f"\nAt the sweep's operating point, {result.model} ({point_label(result)}, {point.requests_per_s:.2f} req/s, "
        f"e2e p95 {_fmt(point.e2e_p95_s)} s): {fmt_usd(hosting.usd_per_task)} per task, {fmt_usd(hosting.usd_per_mtok_output)} "
        f"per 1M output tokens; one box costs {fmt_usd(hosting.usd_per_month)}/month and serves up to {hosting.tasks_per_month:,.0f} tasks/month.",
        markup=False,
    )
    for row in hosting.against:
        console.print(f"  vs {row.model} at {fmt_usd(row.api_usd_per_task)}/task: {break_even_text(row)}", markup=False)


def break_even_text(row: BreakEven) -> str:
    if row.pays_off:
        return f"self-hosting is cheaper above {row.tasks_per_month:,.0f} tasks/month"
    return "one box never pays for itself at this price"
