"""The cost view of a run: $ per task for each model, and break-even volumes of self-hosting vs APIs."""

from __future__ import annotations

from dataclasses import dataclass

from openbench.report.table import console_for, fmt_usd, table_box
from openbench.manifest import RunManifest
from openbench.summary import ALL_TASKS, SummaryRow


@dataclass(frozen=True)
class BreakEven:
    open_model: str
    api_model: str
    api_cost_per_task: float | None
    dedicated_cost_per_task: float | None
    usage_cost_per_task: float | None
    tasks_per_month: float | None  # None: self-hosting never wins at this throughput (or a price is unknown)
    monthly_api_usd: float | None
    monthly_dedicated_usd: float | None


def break_evens(rows: list[SummaryRow], manifest: RunManifest, volume: float | None) -> list[BreakEven]:
    from openbench import pricing

    models = {m.id: m for m in manifest.models}
    overall = [r for r in rows if r.task == ALL_TASKS]
    api = [r for r in overall if r.cost_basis == "api"]
    hosted = [r for r in overall if r.model in models and models[r.model].hardware_profile and models[r.model].busy_s]
    out = []
    for own in hosted:
        info = models[own.model]
        hw = info.hardware_profile
        busy = pricing.busy_seconds_per_task(info.busy_s, max(1, info.items - info.cached - info.errors))
        for other in api:
            out.append(
                BreakEven(
                    open_model=own.model,
                    api_model=other.model,
                    api_cost_per_task=other.cost_per_task_usd,
                    dedicated_cost_per_task=own.selfhost_dedicated_per_task_usd,
                    usage_cost_per_task=own.selfhost_usage_per_task_usd,
                    tasks_per_month=pricing.break_even_tasks_per_month(other.cost_per_task_usd, hw, busy),
                    monthly_api_usd=pricing.monthly_projection(volume, other.cost_per_task_usd) if volume else None,
                    monthly_dedicated_usd=pricing.monthly_projection(volume, own.selfhost_dedicated_per_task_usd) if volume else None,
                )
            )
    return out


def render_cost(rows: list[SummaryRow], manifest: RunManifest, volume: float | None, stream=None) -> list[BreakEven]:
    from rich.table import Table

    console = console_for(stream, 160)
    per_model = Table(title="Cost per task (whole run)", box=table_box(stream))
    for name in ("model", "basis", "$/task", "$/1k tasks", "$/passed task", "self-host dedicated", "self-host usage-based") + (("$/month",) if volume else ()):
        per_model.add_column(name, justify="left" if name in ("model", "basis") else "right")
    models = {m.id: m for m in manifest.models}
    for r in rows:
        if r.task != ALL_TASKS:
            continue
        status = models[r.model].status if r.model in models else None
        basis = r.cost_basis or ("no price" if status == "ok" else status or "-")
        cells = [
            r.model,
            basis,
            fmt_usd(r.cost_per_task_usd),
            fmt_usd(r.cost_per_1k_tasks_usd),
            fmt_usd(r.cost_per_passed_task_usd),
            fmt_usd(r.selfhost_dedicated_per_task_usd) if r.cost_basis == "dedicated" else "-",
            fmt_usd(r.selfhost_usage_per_task_usd) if r.cost_basis == "dedicated" else "-",
        ]
        if volume:
            cells.append(fmt_usd(r.monthly_cost_usd))
        per_model.add_row(*cells)
    console.print(per_model)
    found = break_evens(rows, manifest, volume)
    if not found:
        console.print(
            "No break-even table: it needs a self-hosted model with `hardware:` and a measured run, "
            "and an API model with a known price.",
            markup=False,
        )
        return found
    table = Table(title="Self-hosting vs API: break-even monthly volume", box=table_box(stream))
    for name in ("self-hosted", "vs API", "API $/task", "dedicated $/task", "usage $/task", "break-even tasks/month") + (
        ("API $/month", "dedicated $/month") if volume else ()
    ):
        table.add_column(name, justify="left" if name in ("self-hosted", "vs API") else "right")
    for b in found:
        if b.tasks_per_month is None:
            verdict = "unknown price" if b.api_cost_per_task is None else "never (API is cheaper)"
        else:
            verdict = f"{b.tasks_per_month:,.0f}"
        cells = [b.open_model, b.api_model, fmt_usd(b.api_cost_per_task), fmt_usd(b.dedicated_cost_per_task), fmt_usd(b.usage_cost_per_task), verdict]
        if volume:
            cells += [fmt_usd(b.monthly_api_usd), fmt_usd(b.monthly_dedicated_usd)]
        table.add_row(*cells)
    console.print(table)
    console.print(
        "Dedicated: the box is rented whether busy or not (cost / stated utilisation). Usage-based: busy time only "
        "(the optimistic bound). Throughput is the one measured in this run.",
        markup=False,
    )
    return found
