"""The report's three charts as static SVG: quality against cost, response times, quality per task.

Each chart is a list of SVG shapes with plain attributes; the template writes them out (escaping
every attribute and text), so the page needs no charting library and no script to show them.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable

from markupsafe import Markup

from openbench.report.html.narrative import count, cost_quality_points, names, pareto_frontier
from openbench.report.html.view import ReportView
from openbench.report.table import fmt_num, fmt_usd
from openbench.summary import ALL_TASKS, SummaryRow

#: Dots drawn per model in the response-time chart; beyond it, evenly spaced ones (extremes kept).
MAX_POINTS_PER_MODEL = 400
#: Below this many answers every one is drawn as a dot; above it, only the unusual ones.
ALL_DOTS_UP_TO = 200
WIDTH = 960
INK, MUTED, GRID = "#1f2933", "#52606d", "#e4e7eb"


@dataclass(frozen=True)
class Shape:
    tag: str  # an SVG element: line, rect, circle, path, polyline, text
    attrs: dict[str, Any]
    text: str = ""
    tooltip: str = ""


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: Markup
    height: int = 0
    shapes: list[Shape] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (model, colour)
    desc: str = ""  # the chart's content in words, for readers who cannot see it

    @property
    def drawn(self) -> bool:
        return bool(self.shapes)


@dataclass(frozen=True)
class Scale:
    """Data to pixels along one axis, linear or logarithmic."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        f = math.log10 if self.log else float
        t = (f(value) - f(self.lo)) / ((f(self.hi) - f(self.lo)) or 1.0)
        return round(self.start + t * (self.end - self.start), 2)


def charts(view: ReportView) -> list[Chart]:
    if not view.ran:
        return []
    return [scatter(view), latency(view), per_task(view)]


# -- axes -------------------------------------------------------------------------------------------


def linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round-number ticks (1, 2 or 5 × 10^k apart) covering [lo, hi]."""
    span = (hi - lo) or 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(i * step, 12) for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[tuple[float, int]]:
    """(value, decimals) at 1, 2 and 5 × 10^k inside [lo, hi]; only the powers of ten when that is too many."""
    ticks = [
        (m * 10.0**k, max(0, -k))
        for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo * (1 - 1e-9) <= m * 10.0**k <= hi * (1 + 1e-9)
    ]
    if len(ticks) > 9:
        ticks = [t for t in ticks if round(t[0] / 10 ** math.floor(math.log10(t[0]) + 1e-9)) == 1]
    return ticks


def x_axis(scale: Scale, ticks: list[tuple[float, str]], top: float, bottom: float, title: str) -> list[Shape]:
    shapes = []
    for value, label in ticks:
        x = scale(value)
        shapes.append(Shape("line", {"x1": x, "x2": x, "y1": top, "y2": bottom, "class": "grid"}))
        shapes.append(Shape("text", {"x": x, "y": bottom + 18, "class": "tick", "text-anchor": "middle"}, label))
    mid = (scale.start + scale.end) / 2
    shapes.append(Shape("text", {"x": mid, "y": bottom + 42, "class": "axis-title", "text-anchor": "middle"}, title))
    return shapes


def _quality_axis(scale: Scale, left: float, right: float, title: str) -> list[Shape]:
    return y_axis(scale, [(v, f"{v:.1f}") for v in (0, 0.2, 0.4, 0.6, 0.8, 1.0)], left, right, title)


def y_axis(scale: Scale, ticks: list[tuple[float, str]], left: float, right: float, title: str) -> list[Shape]:
    shapes = []
    for value, label in ticks:
        y = scale(value)
        shapes.append(Shape("line", {"x1": left, "x2": right, "y1": y, "y2": y, "class": "grid"}))
        shapes.append(Shape("text", {"x": left - 8, "y": y + 4, "class": "tick", "text-anchor": "end"}, label))
    mid = (scale.start + scale.end) / 2
    shapes.append(
        Shape("text", {"x": 18, "y": mid, "class": "axis-title", "text-anchor": "middle", "transform": f"rotate(-90 18 {mid})"}, title)
    )
    return shapes


def value_axis(low: float, high: float, log: bool, start: float, end: float, fmt: Callable[[float, int], str]) -> tuple[Scale, list[tuple[float, str]]]:
    """A padded scale over [low, high] and its labelled ticks."""
    if log:
        for pad in (2, 3, 5, 10):  # wide enough for at least three ticks
            scale = Scale(low / pad, high * pad, start, end, log=True)
            ticks = log_ticks(scale.lo, scale.hi)
            if len(ticks) >= 3:
                break
        return scale, [(v, fmt(v, d)) for v, d in ticks]
    ticks = linear_ticks(0, high * 1.08 or 1.0)
    decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]))) if len(ticks) > 1 else 2
    scale = Scale(0, max(ticks[-1], high * 1.08) or 1.0, start, end)
    return scale, [(v, fmt(v, decimals)) for v in ticks]


def _dollars(value: float, decimals: int) -> str:
    return f"${value:,.{decimals}f}"


def seconds(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f} s"


# -- quality against cost ---------------------------------------------------------------------------


def scatter(view: ReportView) -> Chart:
    ran = view.ran
    points = cost_quality_points(ran)
    unknown = [r.model for r in ran if r.cost_per_task_usd is None]
    unscored = [r.model for r in ran if r.cost_per_task_usd is not None and r.quality_mean is None]
    missing = Markup("")
    if unknown:
        missing += Markup(" Not shown because their cost is unknown: {}.").format(names(unknown))
    if unscored:
        missing += Markup(" Not shown because none of their answers could be scored: {}.").format(names(unscored))
    title = "Quality against cost"
    if not points:
        return Chart("scatter", title, Markup("No model has both a known cost and a quality score, so there is nothing to plot.") + missing)
    frontier = pareto_frontier(points) if len(points) > 1 else []
    costs = [cost for cost, _ in points.values()]
    log = min(costs) > 0
    height, left, right, top, bottom = 440, 80, WIDTH - 30, 30, 440 - 64
    x, xticks = value_axis(min(costs), max(costs), log, left + 20, right - 20, _dollars)
    y = Scale(-0.02, 1.1, bottom, top)
    shapes = _quality_axis(y, left, right, "Quality (average score, 0 to 1)")
    shapes += x_axis(x, xticks, top, bottom, "Cost per task (US$" + (", log scale)" if log else ")"))
    if frontier:
        line = " ".join(f"{x(points[m][0])},{y(points[m][1])}" for m in frontier)
        shapes.append(Shape("polyline", {"points": line, "class": "frontier"}, tooltip="Best trade-off (Pareto frontier)"))
    by_model = {r.model: r for r in ran}
    for model, (cost, quality) in points.items():
        r, colour, cx, cy = by_model[model], view.colours[model], x(cost), y(quality)
        ci = r.quality_ci_low is not None
        if ci:
            shapes.append(Shape("line", {"x1": cx, "x2": cx, "y1": y(r.quality_ci_low), "y2": y(r.quality_ci_high), "stroke": colour, "class": "ci"}))
        tip = f"{model}: quality {quality:.2f}" + (f" (95% range {r.quality_ci_low:.2f}–{r.quality_ci_high:.2f})" if ci else "")
        tip += f", cost per task {fmt_usd(cost)}"
        on = model in frontier
        marker = {"fill": colour, "class": "marker on-frontier" if on else "marker", "data-model": model, "data-cost": cost}
        if on:
            shapes.append(Shape("path", {**marker, "d": f"M{cx},{cy - 9}L{cx + 9},{cy}L{cx},{cy + 9}L{cx - 9},{cy}Z"}, tooltip=tip))
        else:
            shapes.append(Shape("circle", {**marker, "cx": cx, "cy": cy, "r": 6.5}, tooltip=tip))
        shapes.append(Shape("text", {"x": cx, "y": cy - 14, "class": "label", "text-anchor": "middle"}, model))
    caption = Markup(
        "Each marker is one model: higher means better answers, further left means cheaper. "
        "The vertical bar through a marker is its 95% range."
    )
    if frontier:
        caption += Markup(
            " The dashed line joins the best trade-offs ({}, drawn as diamonds): "
            "for any model below or right of the line, a model on it is cheaper and at least as good."
        ).format(names(frontier))
    if log:
        caption += " The cost axis is logarithmic: equal steps along it multiply the cost."
    return Chart("scatter", title, caption + missing, height, shapes)


# -- response times ---------------------------------------------------------------------------------


def _quantile(ordered: list[float], q: float) -> float:
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def thin(values: list[float], limit: int = MAX_POINTS_PER_MODEL) -> list[float]:
    """At most ``limit`` of the sorted ``values``: evenly spaced order statistics, min and max included."""
    if len(values) <= limit:
        return values
    step = (len(values) - 1) / (limit - 1)
    return [values[round(i * step)] for i in range(limit)]


@dataclass(frozen=True)
class Box:
    """A box plot's figures, from every value: quartiles, Tukey whiskers, and the dots to draw."""

    n: int
    q1: float
    median: float
    q3: float
    low: float
    high: float
    dots: list[float]
    thinned: bool

    @classmethod
    def of(cls, values: array) -> Box:
        ordered = sorted(values)
        q1, median, q3 = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
        fence = 1.5 * (q3 - q1)
        low = next(v for v in ordered if v >= q1 - fence)
        high = next(v for v in reversed(ordered) if v <= q3 + fence)
        dots = ordered if len(ordered) <= ALL_DOTS_UP_TO else [v for v in ordered if v < low or v > high]
        shown = thin(dots)
        return cls(len(ordered), q1, median, q3, low, high, shown, len(shown) < len(dots))


def latency(view: ReportView) -> Chart:
    title = "Response times"
    timed = [r for r in view.ran if view.latencies.get(r.model)]
    if not timed:
        return Chart("latency", title, Markup("No response times were measured (every answer was a cached replay or failed)."))
    boxes = {r.model: Box.of(view.latencies[r.model]) for r in timed}
    medians = [b.median for b in boxes.values() if b.median > 0]
    log = bool(medians) and max(medians) / min(medians) > 20
    band = 56
    height = 96 + band * len(timed)
    left = min(220, 24 + 8 * max(len(r.model) for r in timed))
    right, top, bottom = WIDTH - 30, 20, height - 64
    low = min(min(b.dots or [b.low]) for b in boxes.values())
    high = max(max(b.dots or [b.high]) for b in boxes.values())
    x, ticks = value_axis(max(low, 1e-6), max(high, 1e-6), log, left, right, seconds)
    shapes = x_axis(x, ticks, top, bottom, "Seconds per answer" + (" (log scale)" if log else ""))
    for i, r in enumerate(timed):
        b, colour = boxes[r.model], view.colours[r.model]
        mid = top + band * i + band / 2
        shapes.append(Shape("text", {"x": left - 10, "y": mid + 4, "class": "label", "text-anchor": "end"}, r.model))
        shapes.append(Shape("line", {"x1": x(b.low), "x2": x(b.high), "y1": mid, "y2": mid, "stroke": colour, "class": "whisker"}))
        tip = f"{r.model}: median {fmt_num(b.median)} s, middle half {fmt_num(b.q1)}–{fmt_num(b.q3)} s, {b.n:,} answers"
        shapes.append(
            Shape("rect", {"x": x(b.q1), "y": mid - 14, "width": max(1.0, x(b.q3) - x(b.q1)), "height": 28,
                           "fill": colour, "stroke": colour, "class": "box", "data-model": r.model}, tooltip=tip)
        )  # fmt: skip
        shapes.append(Shape("line", {"x1": x(b.median), "x2": x(b.median), "y1": mid - 14, "y2": mid + 14, "class": "median"}))
        for j, v in enumerate(b.dots):
            jitter = ((j * 0.618034) % 1 - 0.5) * 24
            shapes.append(Shape("circle", {"cx": x(v), "cy": round(mid + jitter, 1), "r": 2.6, "fill": colour, "class": "dot"}))
    excluded = sum(r.cached for r in timed)
    thinned = [f"{r.model} ({len(boxes[r.model].dots):,} drawn of {boxes[r.model].n:,})" for r in timed if boxes[r.model].thinned]
    caption = Markup(
        "How long each model took to return a whole answer; further left is faster. "
        "The line inside each box is the median, the box holds the middle half of the answers, "
        "the whiskers reach the usual range and dots beyond them are unusually slow or fast answers."
    )
    caption += " The time axis is logarithmic." if log else ""
    caption += " Failed requests are not shown"
    caption += f", nor {count(excluded, 'answer')} replayed from the cache, which took no real time." if excluded else "."
    if thinned:
        caption += Markup(" For readability the chart draws evenly spaced samples of the unusual answers for {}; the box uses them all.").format(
            ", ".join(thinned)
        )
    return Chart("latency", title, caption, height, shapes)


# -- quality per task -------------------------------------------------------------------------------


def per_task(view: ReportView) -> Chart:
    title = "Quality per task"
    task_rows = [r for r in view.rows if r.task != ALL_TASKS]
    tasks = list(dict.fromkeys(r.task for r in task_rows))
    if not tasks:
        return Chart("tasks", title, Markup("No per-task results."))
    cell: dict[tuple[str, str], SummaryRow] = {(r.task, r.model): r for r in task_rows}
    models = [r.model for r in view.ran]
    height, left, right, top = 430, 70, WIDTH - 30, 20
    slanted = len(tasks) > 5
    bottom = height - (110 if slanted else 64)
    y = Scale(0, 1.05, bottom, top)
    shapes = _quality_axis(y, left, right, "Quality (average score, 0 to 1)")
    group = (right - left) / len(tasks)
    bar = min(48.0, group * 0.75 / max(1, len(models)))
    for i, task in enumerate(tasks):
        centre = left + group * (i + 0.5)
        label = {"x": round(centre, 2), "y": bottom + 20, "class": "tick task", "text-anchor": "middle"}
        if slanted:
            label.update({"text-anchor": "end", "transform": f"rotate(-30 {round(centre, 2)} {bottom + 20})"})
        shapes.append(Shape("text", label, task))
        for j, model in enumerate(models):
            r = cell.get((task, model))
            if r is None or r.quality_mean is None:
                continue
            bx = round(centre - bar * len(models) / 2 + bar * j, 2)
            tip = f"{model} on {task}: quality {r.quality_mean:.2f}"
            if r.quality_ci_low is not None:
                tip += f" (95% range {r.quality_ci_low:.2f}–{r.quality_ci_high:.2f})"
            tip += f", {r.scored:,} scored items"
            top_y = y(r.quality_mean)
            shapes.append(
                Shape("rect", {"x": bx + 1, "y": top_y, "width": round(bar - 2, 2), "height": round(bottom - top_y, 2),
                               "fill": view.colours[model], "class": "bar", "data-model": model}, tooltip=tip)
            )  # fmt: skip
            if r.quality_ci_low is not None:
                cx = round(bx + bar / 2, 2)
                shapes.append(Shape("path", {"d": f"M{cx - 3},{y(r.quality_ci_low)}h6M{cx},{y(r.quality_ci_low)}V{y(r.quality_ci_high)}M{cx - 3},{y(r.quality_ci_high)}h6", "class": "ci-bar"}))
    caption = Markup(
        "Each group is one task of the suite, each bar one model's average score on it (taller is better). "
        "The thin black line on a bar is its 95% range: when two models' ranges overlap a lot, the gap between "
        "them may be chance rather than a real difference. A missing bar means no answer could be scored."
    )
    return Chart("tasks", title, caption, height, shapes, legend=[(m, view.colours[m]) for m in models])
