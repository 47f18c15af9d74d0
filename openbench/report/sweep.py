"""The terminal's view of a load sweep: its levels' table, the operating point, and the API models against it.

The level columns and cells are shared with the HTML page and the Markdown report.
"""

from __future__ import annotations

from typing import Any

from openbench.report.table import fmt_num
from openbench.sweepresult import SweepLevel, SweepResult, compare_with_run, verdict


def target_text(result: SweepResult) -> str:
    """The latency target in words: "e2e p95 <= 2 s, ttft p95 <= 0.5 s", or "no errors" when none was given."""
    target = []
    if result.slo_p95_s is not None:
        target.append(f"e2e p95 <= {result.slo_p95_s:g} s")
    if result.slo_ttft_p95_s is not None:
        target.append(f"ttft p95 <= {result.slo_ttft_p95_s:g} s")
    return ", ".join(target) or "no errors"


def is_operating_point(result: SweepResult, level: SweepLevel) -> bool:
    point = result.operating_point
    return point is not None and (level.concurrency, level.rate_per_s) == (point.concurrency, point.rate_per_s)


def operating_load(result: SweepResult) -> str:
    """Where the operating point is, in words: "concurrency 4", "batch size 8" or "2 req/s offered"; empty without one."""
    point = result.operating_point
    if point is None:
        return ""
    return f"{point.rate_per_s:g} req/s offered" if point.rate_per_s is not None else f"{result.load_axis} {point.concurrency}"


def level_columns(result: SweepResult) -> tuple[str, ...]:
    load = ("offered req/s", "peak in flight") if result.load_axis == "rate" else (result.load_axis,)
    return (*load, "req/s", "out tok/s", "ttft p50", "ttft p95", "e2e p50", "e2e p95", "e2e p99", "errors", "quality", "meets")


def level_cells(result: SweepResult, lv: SweepLevel) -> tuple[str, ...]:
    """One level as the sweep tables show it (terminal, HTML, Markdown), under ``level_columns``."""
    mark = "<- operating point" if is_operating_point(result, lv) else ("yes" if lv.meets_target else "no")
    load = (f"{lv.rate_per_s:g}", str(lv.peak_in_flight)) if result.load_axis == "rate" else (str(lv.concurrency),)
    return (*load, f"{lv.requests_per_s:.2f}", f"{lv.output_tokens_per_s:.1f}", fmt_num(lv.ttft_p50_s, 3),
            fmt_num(lv.ttft_p95_s, 3), fmt_num(lv.e2e_p50_s), fmt_num(lv.e2e_p95_s), fmt_num(lv.e2e_p99_s), str(lv.errors),
            fmt_num(lv.quality), mark)


def _tasks(count: float | None) -> str:
    return "-" if count is None else f"{count:,.0f}"


def render_sweep(result: SweepResult) -> None:
    from rich.table import Table

    from openbench.report.table import console_for, fmt_usd, table_box

    console = console_for()
    table = Table(title=f"sweep of {result.model} by {result.load_axis} (target: {target_text(result)})", box=table_box())
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
        console.print(f"  operating point: {operating_load(result)}, {point.requests_per_s:.2f} req/s, "
                      f"{point.output_tokens_per_s:.1f} output tok/s, e2e p95 {fmt_num(point.e2e_p95_s)} s: {price}", markup=False)
        if result.against:
            mix = f"{point.input_tokens_mean:.0f} input + {point.output_tokens_mean:.0f} output tokens per task"
            console.print(f"  against the suite's API models on the same token mix ({mix}):", markup=False)
        for row in result.against:
            quality = f", quality {fmt_num(row.quality)} against {fmt_num(point.quality)} here" if row.quality is not None else ""
            console.print(f"    {row.model}: {fmt_usd(row.usd_per_task)}/task{quality}; {verdict(row, point)}", markup=False)
    for warning in result.warnings:
        console.print(f"  warning: {warning}", markup=False)


def render_against_apis(result: SweepResult, rows: list[Any]) -> None:
    """``openbench cost RUN --sweep DIR``: the operating point's $ per task against every API model of the run."""
    from openbench.report.table import console_for, fmt_usd

    console = console_for()
    point = result.operating_point
    if point is None or point.usd_per_task is None:
        console.print(f"  sweep of {result.model}: no operating point with a price (see its sweep.json)", markup=False)
        return
    console.print(
        f"\nAt the sweep's operating point, {result.model} ({operating_load(result)}, {point.requests_per_s:.2f} req/s, "
        f"e2e p95 {fmt_num(point.e2e_p95_s)} s): {fmt_usd(point.usd_per_task)} per task, {fmt_usd(point.usd_per_mtok_output)} "
        f"per 1M output tokens; one box costs {fmt_usd(point.usd_per_month)}/month and serves up to {_tasks(point.tasks_per_month)} tasks/month.",
        markup=False,
    )
    for row in compare_with_run(result, rows):
        console.print(f"  vs {row.model} at {fmt_usd(row.usd_per_task)}/task: {verdict(row, point)}", markup=False)
