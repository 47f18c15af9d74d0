"""A sweep in HTML: throughput against p95 latency per level, the target, the operating point and its prices.

The same section serves two pages: ``sweep.html``, written by ``openbench sweep`` next to sweep.json, and
the run report made with ``openbench report RUN --sweep DIR``, where it also sets the operating point's
$/task against each API model of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from openbench.report.html.charts import WIDTH, Chart, Scale, Shape, seconds, value_axis, x_axis, y_axis
from openbench.report.html.view import PALETTE
from openbench.report.table import fmt_num, fmt_usd
from openbench.report.sweep import is_operating_point, level_cells, level_columns, operating_load, target_text
from openbench.sweepresult import ApiComparison, OperatingPoint, SweepLevel, SweepResult, compare_with_run

SWEEP_PAGE = "sweep.html"
E2E, TTFT, MISSED = PALETTE[0], PALETTE[1], PALETTE[2]
HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 460, 80, WIDTH - 30, 30, 460 - 64
BAND = 26  # the strip above the plot where levels without any answer sit
CHAR_PX = 7.2  # the width of one character of the 13 px annotation text, for laying out its box


@dataclass(frozen=True)
class LevelRow:
    cells: tuple[str, ...]
    kind: str  # "operating", "met" or "missed": how the table row is marked


@dataclass(frozen=True)
class SweepView:
    model: str
    suite: str
    target: str
    axis: str
    chart: Chart
    columns: tuple[str, ...]
    levels: list[LevelRow]
    point: str | None  # the operating point in one sentence; None when no level met the target
    operating_point: OperatingPoint | None
    prices: list[tuple[str, str]]
    against: list[ApiComparison]
    against_note: str  # where the API models' $ per task come from
    warnings: list[str] = field(default_factory=list)


def sweep_view(result: SweepResult, rows: list[Any] | None = None, run_suite: str | None = None) -> SweepView:
    """What the sweep section shows. With ``rows`` (a run's summary rows) the operating point is set against the
    run's API models at their measured $ per task; without, against the suite's API models as the sweep priced them."""
    point = result.operating_point
    levels = []
    for lv in result.levels:
        cells = level_cells(result, lv)
        operating = is_operating_point(result, lv)
        if operating:
            cells = (*cells[:-1], "operating point")
        levels.append(LevelRow(cells, "operating" if operating else "met" if lv.meets_target else "missed"))
    sentence, prices = None, []
    if point is not None:
        sentence = (f"{operating_load(result)}, {point.requests_per_s:.2f} requests/s, "
                    f"{point.output_tokens_per_s:.1f} output tokens/s, E2E p95 {_secs(point.e2e_p95_s)}"
                    + (f", TTFT p95 {_secs(point.ttft_p95_s)}" if point.ttft_p95_s is not None else "")
                    + (f", quality {point.quality:.2f}" if point.quality is not None else "") + ".")
        prices.append(("Hardware", f"${point.usd_per_hour:,.2f} per hour" if point.usd_per_hour is not None
                       else "no price: give --hardware PROFILE@USD_PER_HOUR"))
    if point is not None and point.usd_per_task is not None:
        prices += [("Per 1M output tokens", fmt_usd(point.usd_per_mtok_output)), ("Per task", fmt_usd(point.usd_per_task))]
        if point.usd_per_month is not None and point.tasks_per_month is not None:
            prices += [("One box for a month", f"${point.usd_per_month:,.2f} (every hour of it)"),
                       ("What it serves", f"up to {point.tasks_per_month:,.0f} tasks a month at the operating point")]
    if rows is not None:
        against, note = compare_with_run(result, rows), "their cost per task as measured in this run"
    else:
        mix = ("" if point is None or point.input_tokens_mean is None or point.output_tokens_mean is None else
               f" ({point.input_tokens_mean:.0f} input + {point.output_tokens_mean:.0f} output tokens per task)")
        against, note = result.against, f"their list prices on the operating point's token mix{mix}"
    warnings = list(result.warnings)
    if result.interrupted:
        warnings.insert(0, "the sweep was stopped before its last level: these are the levels it measured")
    if run_suite is not None and result.suite != run_suite:
        warnings.append(f"the sweep sent the items of {result.suite}, the run those of {run_suite}: "
                        "their $ per task may not compare like with like")
    return SweepView(
        model=result.model, suite=result.suite, axis=result.load_axis, chart=sweep_chart(result),
        target=target_text(result) if drawn_target(result) else "none given, so any level without failed requests meets it",
        columns=level_columns(result), levels=levels, point=sentence, operating_point=point, prices=prices, against=against, against_note=note, warnings=warnings,
    )


def drawn_target(result: SweepResult) -> bool:
    return result.slo_p95_s is not None or result.slo_ttft_p95_s is not None


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{fmt_num(value)} s"


# -- the chart --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    field: str  # the SweepLevel attribute drawn
    target: float | None
    marker: str  # "circle" or "square"


def series_of(result: SweepResult) -> list[Series]:
    """E2E p95 always; TTFT p95 too when the target is a TTFT one."""
    drawn = [Series("E2E p95", E2E, "e2e_p95_s", result.slo_p95_s, "circle")]
    if result.slo_ttft_p95_s is not None:
        drawn.append(Series("TTFT p95", TTFT, "ttft_p95_s", result.slo_ttft_p95_s, "square"))
    return drawn


def throughput(result: SweepResult) -> tuple[str, list[float]]:
    """The x axis: output tokens/s, or requests/s when no level counted any output token (e.g. no usage reported)."""
    tokens = any(lv.output_tokens_per_s > 0 for lv in result.levels)
    values = [lv.output_tokens_per_s if tokens else lv.requests_per_s for lv in result.levels]
    return ("Output tokens per second" if tokens else "Requests per second"), values


def sweep_chart(result: SweepResult) -> Chart:
    title = "Throughput against response time"
    if not result.levels:
        return Chart("sweep", title, Markup("The sweep measured no level."))
    axis, drawn = result.load_axis, series_of(result)
    x_title, xs = throughput(result)
    ys = [getattr(lv, s.field) for s in drawn for lv in result.levels] + [s.target for s in drawn]
    high_y = max((v for v in ys if v is not None), default=1.0)
    silent = any(lv.e2e_p95_s is None for lv in result.levels)
    plot_top = TOP + BAND if silent else TOP
    x, xticks = value_axis(0.0, max(xs), False, LEFT + 10, RIGHT - 10, _count)
    y, yticks = value_axis(0.0, high_y, False, BOTTOM, plot_top, seconds)
    shapes = y_axis(y, yticks, LEFT, RIGHT, "95% of requests done within (seconds)")
    shapes += x_axis(x, xticks, plot_top, BOTTOM, f"{x_title} (throughput, one box)")
    if silent:
        shapes.append(Shape("text", {"x": LEFT - 8, "y": TOP + 12, "class": "tick", "text-anchor": "end"}, "no answer"))
        shapes.append(Shape("line", {"x1": LEFT, "x2": RIGHT, "y1": plot_top - 4, "y2": plot_top - 4, "class": "grid"}))
    shapes += _targets(drawn, y)
    marks: list[tuple[float, float]] = []  # where the markers sit, for placing the annotation clear of them
    for s in drawn:
        line = [(x(xs[i]), y(getattr(lv, s.field))) for i, lv in enumerate(result.levels) if getattr(lv, s.field) is not None]
        if len(line) > 1:
            points = " ".join(f"{px},{py}" for px, py in line)
            shapes.append(Shape("polyline", {"points": points, "stroke": s.colour, "class": f"series {s.marker}"}))
    for i, lv in enumerate(result.levels):
        cx = x(xs[i])
        cy = TOP + BAND / 2 if lv.e2e_p95_s is None else y(lv.e2e_p95_s)
        shapes += _marker(result, lv, drawn[0], cx, cy, xs[i])
        marks.append((cx, cy))
        for s in drawn[1:]:
            value = getattr(lv, s.field)
            if value is not None:
                shapes += _marker(result, lv, s, cx, y(value), xs[i])
                marks.append((cx, y(value)))
        shapes.append(_level_label(result, lv, cx, cy))
    operating = next((i for i, lv in enumerate(result.levels) if is_operating_point(result, lv) and lv.e2e_p95_s is not None), None)
    if operating is not None:
        at = (x(xs[operating]), y(result.levels[operating].e2e_p95_s))
        shapes += _annotation(result, drawn, at, marks, [y(s.target) for s in drawn if s.target is not None], plot_top)
    return Chart("sweep", title, _caption(result, drawn, axis, silent), HEIGHT, shapes,
                 legend=[(f"{s.name} ({s.marker}s)", s.colour) for s in drawn]
                 + ([("missed the target (hollow) or had failed requests (×)", MISSED)] if not all(lv.meets_target for lv in result.levels) else []),
                 desc=_desc(result))


def _count(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _targets(drawn: list[Series], y: Scale) -> list[Shape]:
    shapes, taken = [], []
    for s in drawn:
        if s.target is None:
            continue
        ty = y(s.target)
        shapes.append(Shape("line", {"x1": LEFT, "x2": RIGHT, "y1": ty, "y2": ty, "stroke": s.colour, "class": "target",
                                     "data-target": s.target}, tooltip=f"{s.name} target: {s.target:g} s"))
        below = any(abs(ty - other) < 16 for other in taken)  # two targets close together: one label under its line
        shapes.append(Shape("text", {"x": LEFT + 6, "y": ty + 16 if below else ty - 6, "class": "label halo"},
                            f"{s.name} target {s.target:g} s"))
        taken.append(ty)
    return shapes


def _state(lv: SweepLevel) -> str:
    if lv.e2e_p95_s is None:
        return "every request failed"
    if lv.errors:
        return f"{lv.errors} failed request{'s' if lv.errors != 1 else ''}"
    return "meets the target" if lv.meets_target else "missed the target"


def _marker(result: SweepResult, lv: SweepLevel, s: Series, cx: float, cy: float, xv: float) -> list[Shape]:
    """A level's marker: filled when it met the target, hollow when not, a diamond at the operating point,
    with a × over it when requests failed (only the × when none was answered)."""
    operating = is_operating_point(result, lv) and s.field == "e2e_p95_s"
    state = "operating" if operating else "met" if lv.meets_target else "missed"
    tip = _level_text(result, lv) + (" (the operating point)" if operating else "")
    data = {"data-series": s.name, "data-level": result.level_name(lv), "data-x": round(xv, 4), "data-state": state}
    cross = Shape("path", {"d": f"M{cx - 6},{cy - 6}l12,12m0,-12l-12,12", "stroke": MISSED, "class": "cross", **data}, tooltip=tip)
    if lv.e2e_p95_s is None:
        return [cross]
    look = {"fill": s.colour, "class": "marker"} if lv.meets_target else {"fill": "#fff", "class": "marker missed"}
    if operating:
        d = f"M{cx},{cy - 10}L{cx + 10},{cy}L{cx},{cy + 10}L{cx - 10},{cy}Z"
        shape = Shape("path", {"d": d, "fill": s.colour, "class": "marker operating", **data}, tooltip=tip)
    elif s.marker == "circle":
        shape = Shape("circle", {"cx": cx, "cy": cy, "r": 6, **look, **data}, tooltip=tip)
    else:
        shape = Shape("rect", {"x": round(cx - 5.5, 2), "y": round(cy - 5.5, 2), "width": 11, "height": 11, **look, **data}, tooltip=tip)
    return [shape, cross] if lv.errors else [shape]


def _level_label(result: SweepResult, lv: SweepLevel, cx: float, cy: float) -> Shape:
    """The level's load beside its marker, and why it missed the target, in words."""
    text = result.level_name(lv)
    if lv.e2e_p95_s is None:
        text += ": no answer"
    elif lv.errors:
        text += f": {lv.errors} failed"
    elif not lv.meets_target:
        text += ": over target"
    right = cx - LEFT < 20 + CHAR_PX * len(text)  # no room on the left, before the axis
    attrs = {"x": round(cx + 10 if right else cx - 10, 2), "y": round(cy - 9, 2), "class": "label halo", "text-anchor": "start" if right else "end"}
    return Shape("text", attrs, text)


def _operating_lines(result: SweepResult, drawn: list[Series]) -> list[str]:
    point = result.operating_point
    timing = f"{point.requests_per_s:.2f} req/s, E2E p95 {_secs(point.e2e_p95_s)}"
    if len(drawn) > 1:
        timing += f", TTFT p95 {_secs(point.ttft_p95_s)}"
    if point.usd_per_task is None:
        price = "no hardware price: $ unknown"
    else:
        price = f"{fmt_usd(point.usd_per_mtok_output)} per 1M output tokens, {fmt_usd(point.usd_per_task)} per task"
    return [f"Operating point: {operating_load(result)}", timing, price]


def _annotation(result: SweepResult, drawn: list[Series], at: tuple[float, float], marks: list[tuple[float, float]],
                target_ys: list[float], top: float) -> list[Shape]:
    """The operating point's figures in a box, in the plot's emptiest corner, with a line to its diamond."""
    lines = _operating_lines(result, drawn)
    w, h = round(max(map(len, lines)) * CHAR_PX + 20, 1), 18 * len(lines) + 12
    corners = [(LEFT + 12, top + 8), (RIGHT - w - 12, BOTTOM - h - 8), (RIGHT - w - 12, top + 8), (LEFT + 12, BOTTOM - h - 8)]
    px, py = at

    def nearest(bx: float, by: float) -> tuple[float, float]:
        return min(max(px, bx), bx + w), min(max(py, by), by + h)  # the box's edge nearest the point

    def crowding(corner: tuple[float, float]) -> tuple[int, float]:
        """Markers under the box or along its leader line, and target lines under it; then the leader's length."""
        bx, by = corner
        ex, ey = nearest(bx, by)
        covered = sum(bx - 12 <= mx <= bx + w + 12 and by - 12 <= my <= by + h + 12 for mx, my in [*marks, at])
        crossed = sum(_near_segment((mx, my), (ex, ey), at, 10) for mx, my in marks if (mx, my) != at)
        lines = sum(by - 4 <= ty <= by + h + 4 for ty in target_ys)
        return 2 * (covered + crossed) + lines, math.hypot(px - ex, py - ey)

    bx, by = min(corners, key=crowding)
    ex, ey = nearest(bx, by)
    shapes = [Shape("rect", {"x": bx, "y": by, "width": w, "height": h, "rx": 6, "class": "annotation"}),
              Shape("line", {"x1": ex, "y1": ey, "x2": px, "y2": py, "class": "leader"})]
    for k, line in enumerate(lines):
        shapes.append(Shape("text", {"x": bx + 10, "y": by + 22 + 18 * k, "class": "label" if k == 0 else "note"}, line))
    return shapes


def _near_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float], within: float) -> bool:
    """Whether point ``p`` lies within ``within`` pixels of the segment from ``a`` to ``b``."""
    (x, y), (ax, ay), (bx, by) = p, a, b
    length2 = (bx - ax) ** 2 + (by - ay) ** 2
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length2))
    return math.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay))) <= within


def _caption(result: SweepResult, drawn: list[Series], axis: str, silent: bool) -> Markup:
    levels = ", ".join(result.level_name(lv) for lv in result.levels)
    caption = Markup(
        "Each marker is one level of load by {} ({}): further right means more work done per second by one box, "
        "higher means slower answers (the time within which 95% of requests were done)."
    ).format(axis, levels)
    if axis == "rate":
        caption += " Under a rate the requests arrive at random (Poisson) at the offered rate; the throughput is what was served."
    if len(drawn) > 1:
        caption += " Circles time the whole answer (E2E), squares the first token (TTFT)."
    targets = [s for s in drawn if s.target is not None]
    if targets:
        caption += " The dashed horizontal lines are the latency targets." if len(targets) > 1 else " The dashed horizontal line is the latency target."
    else:
        caption += " No latency target was given: any level without failed requests meets it."
    if any(not lv.meets_target for lv in result.levels):
        caption += " Hollow markers missed the target; a × marks a level with failed requests."
    if silent:
        caption += " A level where every request failed has no response time: it sits in the top strip, marked “no answer”."
    if result.operating_point is not None:
        caption += (" The diamond is the operating point: the level with the most throughput that meets the target with no "
                    "failed requests; its price is the hardware's hourly price over that throughput.")
    else:
        caption += " No level met the target, so there is no operating point: this box cannot serve this load within it."
    return caption


def _level_text(result: SweepResult, lv: SweepLevel) -> str:
    return (f"{result.level_name(lv)}: {lv.requests_per_s:.2f} requests/s, {lv.output_tokens_per_s:.1f} "
            f"output tokens/s, E2E p95 {_secs(lv.e2e_p95_s)}, TTFT p95 {_secs(lv.ttft_p95_s)}, {_state(lv)}")


def _desc(result: SweepResult) -> str:
    """The chart in words (the SVG's <desc>), for a reader who cannot see it."""
    text = f"Target: {target_text(result)}. " + "; ".join(_level_text(result, lv) for lv in result.levels) + "."
    if result.operating_point is not None:
        text += f" Operating point: {operating_load(result)}."
    return text
