"""The end-of-run table in the terminal.

On a terminal the table fits its width: columns are left out by priority (the least needed first)
and names may wrap, but a number is never cut. ``--wide`` shows every column, and a suite's
``columns:`` (or ``--columns``) picks them. Output that is not a terminal gets every column, in
plain ASCII; it and ``NO_COLOR`` output carry no escape codes at all.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from openbench.errors import OpenbenchError
from openbench.summary import ALL_TASKS, SummaryRow

#: Width for output that is not a terminal (files, pipes, CI logs): wide enough for every column.
PLAIN_WIDTH = 400


def plain(stream: TextIO | None = None) -> bool:
    """True when output must carry no escape codes: not a terminal, or NO_COLOR set (https://no-color.org)."""
    return not (stream or sys.stdout).isatty() or bool(os.environ.get("NO_COLOR"))


def console_for(stream: TextIO | None = None, width: int = PLAIN_WIDTH) -> Any:
    """A rich console: styles and box drawing on a terminal, plain ASCII otherwise, no codes under NO_COLOR."""
    from rich.console import Console

    stream = stream or sys.stdout
    tty = stream.isatty()
    return Console(
        file=stream,
        color_system=None if plain(stream) else "auto",
        highlight=False,
        emoji=False,
        width=None if tty else width,
    )


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


@dataclass(frozen=True)
class Column:
    key: str  # its name in a suite's `columns:` and in --columns
    header: str
    cell: Callable[[SummaryRow], str]
    priority: int  # 1: always shown; 2: from about 80 columns; 3: from about 120; 4: --wide only

    @property
    def is_name(self) -> bool:
        return self.key in ("task", "model")


#: Every column in display order. On a narrow terminal the highest priority number goes first,
#: and within a priority the rightmost. "excl" appears only when some item errored, "$/month" with --volume.
COLUMNS: list[Column] = [
    Column("task", "task", lambda r: r.task, 1),
    Column("model", "model", fmt_model, 1),
    Column("n", "n", lambda r: str(r.items), 2),
    Column("quality", "quality [95% CI]", fmt_quality, 1),
    Column("excl", "excl. errors", fmt_excl_errors, 3),
    Column("pass", "pass", lambda r: "-" if r.pass_rate is None else f"{r.pass_rate:.0%}", 2),
    Column("p50", "e2e p50 s", lambda r: fmt_num(r.latency_p50_s), 4),
    Column("p95", "e2e p95 s", lambda r: fmt_num(r.latency_p95_s), 2),
    Column("ttft", "ttft p50 s", lambda r: fmt_num(r.ttft_p50_s, 3), 3),
    Column("tok/s", "tok/s", lambda r: fmt_num(r.output_tps_p50, 1), 3),
    Column(
        "tokens",
        "tok in/out",
        lambda r: f"{fmt_num(r.input_tokens_per_task, 0)}/{fmt_num(r.output_tokens_per_task, 0)}{COUNTED_MARK if r.tokens_counted else ''}",
        3,
    ),
    Column("$/task", "$/task", _cost_cell, 2),
    Column("$/passed", "$/passed", lambda r: "none passed" if r.pass_rate == 0 else fmt_usd(r.cost_per_passed_task_usd), 4),
    Column("errors", "errors", lambda r: str(r.errors), 2),
    Column("cached", "cached", lambda r: str(r.cached), 4),
    Column("$/month", "$/month", lambda r: fmt_usd(r.monthly_cost_usd), 4),
]
COLUMN_KEYS = [c.key for c in COLUMNS]
#: The narrowest a name column gets before a number column is left out instead.
NAME_MIN = 8
#: Between two columns: one padding space on each side of a one-space divider, collapsed to two.
GAP = 2


def column_error(keys: list[str]) -> str | None:
    """What is wrong with a list of column keys (from a suite's `columns:` or --columns), or None."""
    from openbench.registry import did_you_mean

    for key in keys:
        if key not in COLUMN_KEYS:
            return f"unknown table column '{key}'{did_you_mean(key, COLUMN_KEYS)}; columns: {', '.join(COLUMN_KEYS)}"
    return None


def _widths(rows: list[SummaryRow], columns: list[Column]) -> dict[str, int]:
    """Each column's width with nothing wrapped: its header or its longest cell."""
    return {c.key: max([len(c.header), *(len(c.cell(r)) for r in rows)]) for c in columns}


def fit_columns(rows: list[SummaryRow], width: int, columns: list[Column]) -> list[Column]:
    """The columns that fit ``width`` characters without cutting a number, dropping by priority.

    Columns above priority 2 go before a name wraps; those of priority 2 go only when the names,
    wrapped down to NAME_MIN characters, still leave too little room.
    """
    need = _widths(rows, columns)

    def fits(chosen: list[Column], wrap_names: bool) -> bool:
        cells = sum(min(need[c.key], NAME_MIN) if c.is_name and wrap_names else need[c.key] for c in chosen)
        return cells + GAP * (len(chosen) - 1) <= width

    chosen = list(columns)
    for c in sorted((c for c in columns if c.priority > 1), key=lambda c: (-c.priority, -columns.index(c))):
        if fits(chosen, wrap_names=c.priority <= 2):
            break
        chosen.remove(c)
    return chosen


def render_table(
    rows: list[SummaryRow],
    stream: TextIO | None = None,
    title: str | None = None,
    monthly: bool = False,
    wide: bool = False,
    columns: list[str] | None = None,
    notes: list[str] = (),
) -> None:
    from rich.table import Table

    stream = stream or sys.stdout
    console = console_for(stream)
    errored = any(r.errors for r in rows)
    offered = [c for c in COLUMNS if (c.key != "$/month" or monthly) and (c.key != "excl" or errored)]
    if columns:
        problem = column_error(columns)
        if problem:
            raise OpenbenchError(problem)
        shown = [next(c for c in COLUMNS if c.key == key) for key in columns]
    else:
        shown = offered
        if stream.isatty() and not wide:
            shown = fit_columns(rows, console.width, shown)
    need = _widths(rows, shown)
    if stream.isatty() and (wide or columns):  # wider than the terminal when asked to: lines wrap, numbers stay whole
        console.width = max(console.width, sum(need.values()) + GAP * (len(shown) - 1))
    compact = {"collapse_padding": True, "pad_edge": False, "show_edge": False} if stream.isatty() else {}
    table = Table(title=title, box=table_box(stream), **compact)
    for c in shown:
        table.add_column(
            c.header,
            justify="left" if c.is_name else "right",
            no_wrap=not c.is_name,
            overflow="fold",
            min_width=None if c.is_name else need[c.key],
        )
    last_task = None
    for row in rows:
        if last_task is not None and row.task != last_task and row.task == ALL_TASKS:
            table.add_section()
        last_task = row.task
        table.add_row(*(c.cell(row) for c in shown))
    console.print(table)
    left_out = [c.header for c in offered if c not in shown]
    footnotes = [ERRORS_NOTE] if errored and any(c.key in ("quality", "excl") for c in shown) else []
    if left_out and not columns:
        footnotes.append(f"  left out to fit {console.width} columns: {', '.join(left_out)} (--wide shows them)")
    if any(r.cost_basis == "dedicated" for r in rows) and any(c.key == "$/task" for c in shown):
        footnotes.append(
            "  * self-hosted: dedicated hardware at the stated utilisation, from the throughput measured here; "
            "`openbench cost RUN` adds the usage-based bound and break-even volumes."
        )
    if any(r.tokens_counted for r in rows) and any(c.key == "tokens" for c in shown):
        footnotes.append(f"  {COUNTED_MARK} token figures marked so were counted by openbench, not reported by the server.")
    if any(r.cached for r in rows if r.task == ALL_TASKS):
        footnotes.append("  cached rows are replays: they count for quality and cost, not for latency.")
    footnotes += [f"  note: {n}" for n in notes]
    for note in footnotes:
        console.print(note, markup=False)
