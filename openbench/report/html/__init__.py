"""The one-page HTML report: one self-contained file, readable offline by someone who never saw the tool.

``view`` says what the report shows, ``narrative`` puts it in words, ``charts`` draws it as static SVG
and ``answers`` picks the items worth reading; ``sweep`` draws a load sweep, on its own page (sweep.html)
or as a section of a run's report. The page itself is ``templates/report.html.j2``, rendered
by Jinja2 with autoescape on: nothing from a suite, a manifest or a model's output reaches the page
unescaped. The provenance section shows named manifest fields only, never the environment at large.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from markupsafe import Markup

from openbench.manifest import RunManifest
from openbench.records import ItemResult
from openbench.report.html.charts import MAX_POINTS_PER_MODEL, WIDTH, charts
from openbench.report.html.narrative import gate_summary, pareto_frontier, summary
from openbench.report.html.sweep import SWEEP_PAGE, SweepView, sweep_view
from openbench.report.html.view import ReportView, build_view
from openbench.report.table import fmt_num, fmt_usd
from openbench.summary import SummaryRow
from openbench.sweepresult import SweepResult, verdict

__all__ = ["MAX_POINTS_PER_MODEL", "build_view", "pareto_frontier", "render_html", "render_sweep_page", "render_view", "write_sweep_page"]


def render_html(
    rows: list[SummaryRow], records: Iterable[ItemResult], manifest: RunManifest, gate: dict[str, Any] | None = None,
    sweep: SweepResult | None = None,
) -> str:
    """The whole report as one HTML string. ``records`` is read once. A ``sweep`` adds the self-hosting section."""
    section = sweep_view(sweep, rows, manifest.suite.path if manifest.suite else None) if sweep is not None else None
    return render_view(build_view(rows, records, manifest, gate), section)


def render_sweep_page(result: SweepResult) -> str:
    """A sweep on a page of its own: the chart, the levels and the operating point's prices."""
    return _environment().get_template("sweep.html.j2").render(sweep=sweep_view(result), width=WIDTH)


def write_sweep_page(result: SweepResult, folder: Path) -> Path:
    """sweep.html beside the sweep's sweep.json."""
    path = folder / SWEEP_PAGE
    path.write_text(render_sweep_page(result), encoding="utf-8")
    return path


def render_view(view: ReportView, sweep: SweepView | None = None) -> str:
    ran = view.ran
    best = {
        "quality": max((r.quality_mean for r in ran if r.quality_mean is not None), default=None),
        "cost": min((r.cost_per_task_usd for r in ran if r.cost_per_task_usd is not None), default=None),
        "latency": min((r.latency_p50_s for r in ran if r.latency_p50_s is not None), default=None),
    }
    return _environment().get_template("report.html.j2").render(
        view=view,
        summary=summary(view),
        gate_summary=gate_summary(view),
        charts=charts(view),
        sweep=sweep,
        best=best,
        width=WIDTH,
    )


def _mark(text: str, best: bool) -> Markup | str:
    return Markup('<span class="best">{}</span>').format(text) if best else text


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{fmt_num(value)} s"


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("openbench.report.html", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.do"],
        keep_trailing_newline=True,
    )
    env.filters.update(usd=fmt_usd, seconds=_seconds)
    env.globals.update(mark=_mark, verdict=verdict)
    return env
