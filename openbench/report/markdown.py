"""Markdown: the headline table (and the gate verdict), sized for a pull-request comment."""

from __future__ import annotations

from typing import Any

from openbench.report.table import ERRORS_NOTE, fmt_excl_errors, fmt_model, fmt_num, fmt_quality, fmt_usd
from openbench.summary import SummaryRow


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_table(rows: list[SummaryRow]) -> str:
    errored = any(r.errors for r in rows)
    excl = " excl. errors |" if errored else ""
    head = f"| task | model | n | quality [95% CI] |{excl} pass | E2E p50 s | E2E p95 s | TTFT p50 s | $/task | errors |"
    lines = [head, "|---|---|---:|---|" + ("---:|" if errored else "") + "---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {_escape(r.task)} | {_escape(fmt_model(r))} | {r.items} | {fmt_quality(r)} | "
            + (f"{fmt_excl_errors(r)} | " if errored else "")
            + f"{'-' if r.pass_rate is None else f'{r.pass_rate:.0%}'} | {fmt_num(r.latency_p50_s)} | "
            f"{fmt_num(r.latency_p95_s)} | {fmt_num(r.ttft_p50_s, 3)} | {fmt_usd(r.cost_per_task_usd)} | {r.errors} |"
        )
    if errored:
        lines += ["", "_" + ERRORS_NOTE.strip() + "_"]
    return "\n".join(lines)


def notes_markdown(notes: list[str]) -> str:
    """Footnotes under a table (see report/notes.py); empty when there are none."""
    return "".join(f"\n> {_escape(n)}" for n in notes)


def gate_markdown(decision: Any, comparison: Any, max_flips: int = 10) -> str:
    icon = "✅" if decision.passed else "❌"
    out = [f"### {icon} {decision.verdict}", ""]
    out.append("| rule | task | result | detail |")
    out.append("|---|---|---|---|")
    for r in decision.results:
        out.append(f"| {r.rule} | {_escape(r.task)} | {'pass' if r.passed else '**FAIL**'} | {_escape(r.detail)} |")
    if decision.warnings:
        out += ["", *[f"> ⚠️ {_escape(w)}" for w in decision.warnings]]
    rows = [row for tc in comparison.tasks for row in (tc.baseline, tc.candidate) if row is not None]
    out += ["", "<details><summary>Per-task figures</summary>", "", summary_table(rows), "", "</details>"]
    flips = [f for tc in comparison.tasks[:-1] for f in tc.flips] if len(comparison.tasks) > 1 else comparison.overall.flips
    if flips:
        out += ["", f"<details><summary>{len(flips)} items changed outcome</summary>", ""]
        out += ["| task | case | change | baseline output | candidate output |", "|---|---|---|---|---|"]
        for f in flips[:max_flips]:
            out.append(
                f"| {_escape(f.task)} | {_escape(f.case_id)} | {f.direction} | "
                f"{_escape((f.baseline_output or '')[:80])} | {_escape((f.candidate_output or '')[:80])} |"
            )
        if len(flips) > max_flips:
            out.append(f"\n…and {len(flips) - max_flips} more (see the JSON output).")
        out.append("\n</details>")
    return "\n".join(out) + "\n"


def sweep_markdown(result: Any, rows: list[SummaryRow]) -> str:
    """``report --sweep``: the sweep's levels, its operating point's prices and the break-even against each API model."""
    from openbench.report.sweep import level_cells, level_columns, operating_load, target_text
    from openbench.sweepresult import compare_with_run, verdict

    columns = level_columns(result)
    out = [f"### Self-hosting at the latency target: {_escape(result.model)}", "",
           f"Latency target: {target_text(result)}. Levels (seconds):", "",
           "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    out += ["| " + " | ".join(_escape(c) for c in level_cells(result, lv)) + " |" for lv in result.levels]
    point = result.operating_point
    if point is None:
        return "\n".join([*out, "", "No level met the target: no operating point."]) + "\n"
    out += ["", f"Operating point: {operating_load(result)}, {point.requests_per_s:.2f} req/s, "
            f"{point.output_tokens_per_s:.1f} output tok/s, E2E p95 {fmt_num(point.e2e_p95_s)} s."]
    if point.usd_per_task is None:
        return "\n".join([*out, "No hardware price: give `--hardware PROFILE@USD_PER_HOUR` to the sweep."]) + "\n"
    out[-1] += f" {fmt_usd(point.usd_per_mtok_output)} per 1M output tokens, {fmt_usd(point.usd_per_task)} per task."
    against = compare_with_run(result, rows)
    if against:
        out += ["", "| API model | $/task | quality | break-even tasks/month | verdict |", "|---|---:|---:|---:|---|"]
        out += [f"| {_escape(b.model)} | {fmt_usd(b.usd_per_task)} | {fmt_num(b.quality)} | "
                f"{'-' if b.break_even_tasks_per_month is None else f'{b.break_even_tasks_per_month:,.0f}'} | {verdict(b, point)} |"
                for b in against]
    return "\n".join(out) + "\n"
