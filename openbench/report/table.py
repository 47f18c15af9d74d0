"""The end-of-run table in the terminal (plain ASCII, no colour, when not a terminal)."""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from openbench.summary import ALL_TASKS, SummaryRow


def console_for(stream: TextIO | None = None, width: int = 200) -> Any:
    """A rich console: colour and box drawing on a terminal, plain ASCII otherwise."""
    from rich.console import Console

    stream = stream or sys.stdout
    tty = stream.isatty()
    return Console(file=stream, no_color=not tty, highlight=False, width=None if tty else width)


def table_box(stream: TextIO | None = None) -> Any:
    from rich import box

    return box.SIMPLE_HEAD if (stream or sys.stdout).isatty() else box.ASCII


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 0.01:
        return f"${value:,.4f}"
    # Two significant digits, never scientific notation: $0.000027, not $2.7e-05.
    digits = 1 - math.floor(math.log10(value))
    return f"${value:.{digits}f}"


def fmt_quality(row: SummaryRow) -> str:
    if row.quality_mean is None:
        return "-"
    if row.quality_ci_low is None:
        return f"{row.quality_mean:.2f}"
    return f"{row.quality_mean:.2f} [{row.quality_ci_low:.2f}, {row.quality_ci_high:.2f}]"


def fmt_model(row: SummaryRow) -> str:
    """The model's id, with its status when that status is a warning."""
    return f"{row.model} ({row.status})" if row.status in ("failed", "degraded") else row.model


def fmt_excl_errors(row: SummaryRow) -> str:
    """The secondary view: quality over the items that did not error."""
    return "-" if row.quality_excl_errors is None or not row.errors else f"{row.quality_excl_errors:.2f}"


ERRORS_NOTE = "  errors count as failures (score 0); 'excl. errors' is quality over the items that did not error."


def _cost_cell(row: SummaryRow) -> str:
    if row.cost_basis == "dedicated":
        return f"{fmt_usd(row.selfhost_dedicated_per_task_usd)}*"
    return fmt_usd(row.cost_per_task_usd)


COUNTED_MARK = "^"  # ASCII, like the rest of the table off a terminal

COLUMNS: list[tuple[str, Any]] = [
    ("task", lambda r: r.task),
    ("model", fmt_model),
    ("n", lambda r: str(r.items)),
    ("quality [95% CI]", fmt_quality),
    ("pass", lambda r: "-" if r.pass_rate is None else f"{r.pass_rate:.0%}"),
    ("e2e p50 s", lambda r: fmt_num(r.latency_p50_s)),
    ("e2e p95 s", lambda r: fmt_num(r.latency_p95_s)),
    ("ttft p50 s", lambda r: fmt_num(r.ttft_p50_s, 3)),
    ("tok/s", lambda r: fmt_num(r.output_tps_p50, 1)),
    ("tok in/out", lambda r: f"{fmt_num(r.input_tokens_per_task, 0)}/{fmt_num(r.output_tokens_per_task, 0)}{COUNTED_MARK if r.tokens_counted else ''}"),
    ("$/task", _cost_cell),
    ("$/passed", lambda r: "none passed" if r.pass_rate == 0 else fmt_usd(r.cost_per_passed_task_usd)),
    ("errors", lambda r: str(r.errors)),
    ("cached", lambda r: str(r.cached)),
]


def render_table(
    rows: list[SummaryRow], stream: TextIO | None = None, title: str | None = None, monthly: bool = False, notes: list[str] = ()
) -> None:
    from rich.table import Table

    console = console_for(stream)
    table = Table(title=title, box=table_box(stream), show_lines=False)
    errored = any(r.errors for r in rows)
    columns = list(COLUMNS)
    if errored:
        columns.insert(4, ("excl. errors", fmt_excl_errors))
    columns += [("$/month", lambda r: fmt_usd(r.monthly_cost_usd))] if monthly else []
    for name, _ in columns:
        table.add_column(name, no_wrap=name in ("task", "model"), justify="left" if name in ("task", "model") else "right")
    last_task = None
    for row in rows:
        if last_task is not None and row.task != last_task and row.task == ALL_TASKS:
            table.add_section()
        last_task = row.task
        table.add_row(*(fn(row) for _, fn in columns))
    console.print(table)
    footnotes = [ERRORS_NOTE] if errored else []
    if any(r.cost_basis == "dedicated" for r in rows):
        footnotes.append(
            "  * self-hosted: dedicated hardware at the stated utilisation, from the throughput measured here; "
            "`openbench cost RUN` adds the usage-based bound and break-even volumes."
        )
    if any(r.tokens_counted for r in rows):
        notes.append(f"  {COUNTED_MARK} tokens counted by openbench (the server sent no usage): its tokenize endpoint or the model's tokenizer.")
    if any(r.cached for r in rows if r.task == ALL_TASKS):
        footnotes.append("  cached rows are replays: they count for quality and cost, not for latency.")
    footnotes += [f"  note: {n}" for n in notes]
    for note in footnotes:
        console.print(note, markup=False)
