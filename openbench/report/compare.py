"""The terminal view of a paired comparison."""

from __future__ import annotations

from openbench.report.table import console_for, fmt_usd, table_box


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


def render_comparison(result, max_flips: int = 10, stream=None) -> None:
    from rich.table import Table

    console = console_for(stream, 160)
    table = Table(
        title=f"{result.candidate} − {result.baseline} (paired, {result.confidence:.0%} CI; quality in points)",
        box=table_box(stream),
    )
    for name in ("task", "n", "Δ quality", "CI", "method", "corr", "MDE", "Δ p50 s", "Δ p95 s", "Δ $/task", "flips ↓/↑", "errors b/c"):
        table.add_column(name, justify="left" if name == "task" else "right")
    for tc in result.tasks:
        d = tc.diff
        down = sum(f.worse for f in tc.flips)
        cost = tc.cost_per_task_delta_usd
        table.add_row(
            tc.task,
            str(d.n),
            _pts(d.mean),
            f"[{_pts(d.lo)}, {_pts(d.hi)}]",
            d.method,
            "-" if d.correlation is None else f"{d.correlation:.2f}",
            "-" if d.mde is None else f"{d.mde * 100:.1f}",
            _secs(tc.latency_p50_delta_s),
            _secs(tc.latency_p95_delta_s),
            "unknown" if cost is None else ("-" if cost == 0 else ("+" if cost > 0 else "-") + fmt_usd(abs(cost))),
            f"{down}/{len(tc.flips) - down}",
            f"{tc.baseline_errors}/{tc.candidate_errors}",
        )
    console.print(table)
    console.print("errors count as failures (score 0); an item that went from pass to error is a flip.", markup=False)
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False)
    flips = [f for tc in result.tasks[:-1] for f in tc.flips]
    if flips:
        console.print(f"\nItems that changed outcome ({len(flips)}; showing {min(len(flips), max_flips)}):", markup=False)
        for f in flips[:max_flips]:
            console.print(
                f"  {f.direction}  {f.task}/{f.case_id}\n    baseline:  {(f.baseline_output or '')[:100]!r}\n"
                f"    candidate: {(f.candidate_output or '')[:100]!r}",
                markup=False,
            )
