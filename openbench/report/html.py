"""The one-page HTML report: one self-contained file, readable offline by someone who never saw the tool.

Plotly's JavaScript is inlined once and the charts are drawn from JSON embedded in the page,
so the file needs no network. Every string that comes from a suite or a manifest is escaped,
and the provenance section shows named manifest fields only, never the environment at large.
"""

from __future__ import annotations

import html
import json
import math
from array import array
from datetime import datetime
from typing import Any, Iterable

from openbench.manifest import RunManifest
from openbench.records import ItemResult
from openbench.report.notes import model_notes
from openbench.report.table import fmt_num, fmt_usd
from openbench.summary import ALL_TASKS, SummaryRow

#: Latencies drawn per model. Above this the chart shows evenly spaced quantiles of all of them
#: (the same box, a lighter page); the table's percentiles always use every item.
MAX_POINTS_PER_MODEL = 5000

#: Tableau 10: distinct, print-safe, and readable by most colour-blind readers.
PALETTE = ["#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC"]

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif'


def render_html(rows: list[SummaryRow], records: Iterable[ItemResult], manifest: RunManifest) -> str:
    """The whole report as one HTML string. ``records`` is read once, keeping only latencies."""
    notes = model_notes(manifest, rows)
    manifest = _manifest_view(manifest)
    from plotly.offline import get_plotlyjs

    overall = [r for r in rows if r.task == ALL_TASKS]
    ran = [r for r in overall if r.items > 0]
    colours = {r.model: PALETTE[i % len(PALETTE)] for i, r in enumerate(overall)}
    latencies = _latencies(records)
    suite = manifest.get("suite") or {}
    title = f"Model benchmark: {suite.get('name') or manifest.get('run_id') or 'run'}"

    charts: dict[str, Any] = {}
    sections = [_summary_section(overall, ran, manifest), _table_section(overall, manifest, colours)]
    if notes:
        sections.append('<section id="notes"><h2>Notes</h2><ul>' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></section>")
    if ran:
        scatter, scatter_caption = _scatter(ran, colours)
        sections.append(_chart_section("Quality against cost", "chart-scatter", scatter_caption, scatter is not None))
        if scatter is not None:
            charts["chart-scatter"] = scatter
        latency, latency_caption = _latency(ran, latencies, colours)
        sections.append(_chart_section("Response times", "chart-latency", latency_caption, latency is not None))
        if latency is not None:
            charts["chart-latency"] = latency
        tasks, tasks_caption = _per_task(rows, ran, colours)
        sections.append(_chart_section("Quality per task", "chart-tasks", tasks_caption, tasks is not None))
        if tasks is not None:
            charts["chart-tasks"] = tasks
    sections.append(_provenance_section(manifest))

    return _PAGE.format(
        title=_e(title),
        subtitle=_subtitle(manifest),
        css=_CSS,
        error_hook=_ERROR_HOOK,
        plotlyjs=get_plotlyjs(),
        body="\n".join(sections),
        figures=_script_json(charts),
        draw=_DRAW,
        version=_e(manifest.get("openbench_version")),
    )


# -- data -------------------------------------------------------------------------------------------


def _latencies(records: Iterable[ItemResult]) -> dict[str, array]:
    """E2E latency per model in one pass, as packed floats; errors and cached replays left out."""
    out: dict[str, array] = {}
    for r in records:
        if r.error is None and not r.cached and r.latency_s is not None:
            out.setdefault(r.model, array("d")).append(r.latency_s)
    return out


def _thin(values: array, limit: int = MAX_POINTS_PER_MODEL) -> list[float]:
    """At most ``limit`` values: evenly spaced order statistics, min and max included (deterministic)."""
    if len(values) <= limit:
        return list(values)
    ordered = sorted(values)
    step = (len(ordered) - 1) / (limit - 1)
    return [ordered[round(i * step)] for i in range(limit)]


def pareto_frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the (cost, quality) points that no other point beats on both, cheapest first.

    A point is beaten when another costs no more and scores no less, and is strictly better on one.
    """
    frontier = [
        name
        for name, (cost, quality) in points.items()
        if not any(
            c <= cost and q >= quality and (c < cost or q > quality) for other, (c, q) in points.items() if other != name
        )
    ]
    return sorted(frontier, key=lambda n: (points[n][0], -points[n][1], n))


# -- sections ---------------------------------------------------------------------------------------


def _summary_section(overall: list[SummaryRow], ran: list[SummaryRow], manifest: dict[str, Any]) -> str:
    tasks = list(manifest.get("tasks") or []) or sorted({r.task for r in overall} - {ALL_TASKS})
    suite = (manifest.get("suite") or {}).get("name")
    most_items = max((r.items for r in ran), default=0)
    parts = [
        f"This report compares {_count(len(ran), 'model')} on {_count(len(tasks), 'task')}"
        + (f" from the suite <strong>{_e(suite)}</strong>" if suite else "")
        + f", with up to {most_items:,} test items per model."
    ]
    scored = sorted((r for r in ran if r.quality_mean is not None), key=lambda r: -r.quality_mean)
    if scored:
        best = scored[0]
        sentence = f"Highest quality: <strong>{_e(best.model)}</strong> (average score {best.quality_mean:.2f} out of 1)"
        close = [r for r in scored[1:] if _overlaps(best, r)]
        if close:
            sentence += (
                f", though {_names(r.model for r in close)} {'is' if len(close) == 1 else 'are'} within its margin of error,"
                " so this run cannot clearly rank them"
            )
        parts.append(sentence + ".")
    priced = sorted((r for r in ran if r.cost_per_task_usd is not None), key=lambda r: r.cost_per_task_usd)
    unpriced = [r for r in ran if r.cost_per_task_usd is None]
    if priced:
        cheap = priced[0]
        parts.append(
            f"Lowest cost: <strong>{_e(cheap.model)}</strong> ({fmt_usd(cheap.cost_per_task_usd)} per task"
            + (" self-hosted" if cheap.cost_basis == "dedicated" else "")
            + (f", {fmt_usd(cheap.cost_per_1k_tasks_usd)} per 1,000 tasks" if cheap.cost_per_1k_tasks_usd else "")
            + ")"
            + (f"; the cost of {_names(r.model for r in unpriced)} is unknown" if unpriced else "")
            + "."
        )
    elif ran:
        parts.append("No model has a known price, so costs are not compared.")
    timed = sorted((r for r in ran if r.latency_p50_s is not None), key=lambda r: r.latency_p50_s)
    if timed:
        fast = timed[0]
        parts.append(
            f"Fastest: <strong>{_e(fast.model)}</strong> (half of its answers took {fmt_num(fast.latency_p50_s)} s or less)."
        )
    points = _cost_quality_points(ran)
    if len(points) > 1:
        frontier = pareto_frontier(points)
        parts.append(
            f"Best trade-off between quality and cost: {_names(frontier)}; "
            f"no other model is both cheaper and better than {'these' if len(frontier) > 1 else 'this one'}."
        )
    failing = [r for r in ran if r.errors]
    if failing:
        parts.append(
            "Failed requests: "
            + ", ".join(f"<strong>{_e(r.model)}</strong> {r.errors:,} of {r.items:,}" for r in failing)
            + "; each counts as a wrong answer (score 0) in quality and pass rate."
        )
    not_run = [r for r in overall if r.items == 0]
    if not_run:
        info = _model_info(manifest)
        reasons = (info.get(r.model, {}).get("reason") or r.status or "no results" for r in not_run)
        parts.append("Not run: " + "; ".join(f"<strong>{_e(r.model)}</strong> ({_e(why)})" for r, why in zip(not_run, reasons)) + ".")
    return f'<section id="summary"><h2>Summary</h2><p class="lead">{" ".join(parts)}</p></section>'


def _table_section(overall: list[SummaryRow], manifest: dict[str, Any], colours: dict[str, str]) -> str:
    info = _model_info(manifest)
    ran = [r for r in overall if r.items > 0]
    best_quality = max((r.quality_mean for r in ran if r.quality_mean is not None), default=None)
    best_cost = min((r.cost_per_task_usd for r in ran if r.cost_per_task_usd is not None), default=None)
    best_latency = min((r.latency_p50_s for r in ran if r.latency_p50_s is not None), default=None)
    head = (
        "<tr><th>Model</th><th class=num>Quality<br><small>average, 95% range</small></th>"
        "<th class=num>Pass<br>rate</th><th class=num>Response time<br><small>median</small></th>"
        "<th class=num>Response time<br><small>95% under</small></th>"
        "<th class=num>First words<br><small>median</small></th>"
        "<th class=num>Cost<br>per task</th><th class=num>Failed<br>requests</th><th class=num>Test<br>items</th></tr>"
    )
    body = []
    for r in overall:
        model = f'<td class="model"><span class="swatch" style="background:{colours[r.model]}"></span>{_e(r.model)}'
        status = r.status or info.get(r.model, {}).get("status")
        if r.items == 0:
            reason = info.get(r.model, {}).get("reason") or "no results recorded"
            why = f"Not run ({_e(status or 'no results')}): {_e(reason)}"
            body.append(f'<tr class="not-run">{model}</td><td colspan=8>{why}</td></tr>')
            continue
        if status and status != "ok":
            model += f'<small class="status">{_e(status)}</small>'
        quality = "-"
        if r.quality_mean is not None:
            quality = _mark(f"{r.quality_mean:.2f}", r.quality_mean == best_quality)
            if r.quality_ci_low is not None:
                quality += f'<small class="ci">{r.quality_ci_low:.2f} – {r.quality_ci_high:.2f}</small>'
            if r.errors and r.quality_excl_errors is not None:
                quality += f'<small class="ci">excluding failed requests: {r.quality_excl_errors:.2f}</small>'
        if r.cost_per_task_usd is None:
            cost = '<span class="unknown" title="No price is known for this model">unknown</span>'
        else:
            cost = _mark(fmt_usd(r.cost_per_task_usd), r.cost_per_task_usd == best_cost)
            per_1k = f"{fmt_usd(r.cost_per_1k_tasks_usd)} per 1,000" if r.cost_per_1k_tasks_usd else ""
            note = " · ".join(n for n in ("self-hosted" if r.cost_basis == "dedicated" else "", per_1k) if n)
            cost += f'<small class="ci">{note}</small>' if note else ""
        cells = [
            quality,
            "-" if r.pass_rate is None else f"{r.pass_rate:.0%}",
            _mark(_seconds(r.latency_p50_s), r.latency_p50_s is not None and r.latency_p50_s == best_latency),
            _seconds(r.latency_p95_s),
            _seconds(r.ttft_p50_s),
            cost,
            f"{r.errors:,}" + (f'<small class="ci">{r.errors / r.items:.0%}</small>' if r.errors else ""),
            f"{r.items:,}" + (f'<small class="ci">{r.cached:,} replayed</small>' if r.cached else ""),
        ]
        body.append(f"<tr>{model}</td>" + "".join(f"<td class=num>{c}</td>" for c in cells) + "</tr>")
    glossary = (
        "<dl class=glossary>"
        "<dt>Quality</dt><dd>the average score on the test items, from 0 (all wrong) to 1 (all right). "
        "The small range under it is the 95% confidence interval: with more test items the true average "
        "would very likely land inside it.</dd>"
        "<dt>Pass rate</dt><dd>share of items whose score met the task's pass mark.</dd>"
        "<dt>Response time</dt><dd>seconds from sending a request to receiving the whole answer. "
        "Half of the answers came faster than the median, and 95% faster than the second figure.</dd>"
        "<dt>First words</dt><dd>seconds until the first part of the answer arrived (streaming models only).</dd>"
        "<dt>Cost per task</dt><dd>for API models, the tokens used times the vendor's list price. "
        "For self-hosted models, the hourly price of a dedicated machine spread over the tasks it can serve. "
        "“unknown” means no price is on record, not that it is free.</dd>"
        "<dt>Failed requests</dt><dd>requests that returned an error (after retries); "
        "each counts as a wrong answer, scoring 0, in quality and pass rate. "
        "“Excluding failed requests” under the quality is the average over the answered items only. "
        "A model with more than 5% failed requests is marked “degraded”, and one that failed every request “failed”.</dd>"
        "</dl>"
    )
    return (
        '<section id="headline"><h2>Results at a glance</h2>'
        f'<div class="scroll"><table class="headline"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'
        '<p class="caption">One row per model, over all tasks. The best figure in each of quality, cost and '
        "median response time is in <b class=best>green</b>.</p>"
        f"{glossary}</section>"
    )


def _chart_section(title: str, chart_id: str, caption: str, drawn: bool) -> str:
    chart = f'<div class="chart" id="{chart_id}"></div>' if drawn else ""
    section = chart_id.removeprefix("chart-")
    return f'<section id="{section}"><h2>{_e(title)}</h2>{chart}<p class="caption">{caption}</p></section>'


def _provenance_section(manifest: dict[str, Any]) -> str:
    from openbench.pricing import DEFAULT_UTILISATION

    suite = manifest.get("suite") or {}
    env = manifest.get("environment") or {}
    run = [
        ("Run id", manifest.get("run_id")),
        ("Status", manifest.get("status")),
        ("Started", _when(manifest.get("started_at"))),
        ("Ended", _when(manifest.get("ended_at"))),
        ("Resumed", ", ".join(_when(t) for t in manifest.get("resumed_at") or []) or None),
        ("Seed", manifest.get("seed")),
        ("Spent on APIs", fmt_usd(manifest["spent_usd"]) if manifest.get("spent_usd") is not None else None),
    ]
    run += [(f"Option: {k}", v) for k, v in (manifest.get("options") or {}).items() if v is not None]
    suite_kv = [
        ("Name", suite.get("name")),
        ("File", suite.get("path")),
        ("SHA-256", suite.get("sha256")),
        ("Tasks", ", ".join(manifest.get("tasks") or []) or None),
    ]
    software = [
        ("openbench", manifest.get("openbench_version")),
        ("Python", env.get("python")),
        ("Git commit", env.get("git_sha")),
    ]
    software += [(name, ver) for name, ver in (env.get("packages") or {}).items() if ver]
    hardware = [
        (_HARDWARE_LABELS.get(k, k.replace("_", " ").capitalize()), ", ".join(map(str, v)) if isinstance(v, list) else v)
        for k, v in (env.get("hardware") or {}).items()
    ]
    if "hf_offline" in env:
        hardware.append(("Hugging Face offline", "yes" if env["hf_offline"] else "no"))

    models = []
    prices = []
    for m in manifest.get("models", []):
        extra = ", ".join(f"{k} {m[k]}" for k in ("device", "dtype") if m.get(k))
        if m.get("parameters"):
            extra += (", " if extra else "") + f"{m['parameters'] / 1e6:,.0f}M parameters"
        fields = ("id", "provider", "model", "status", "reason", "items", "errors")
        models.append([m.get(k) for k in fields] + [extra or None])
        prices.append([m.get("id"), *_price_cells(m, DEFAULT_UTILISATION)])

    def kv(title: str, pairs: list[tuple[str, Any]]) -> str:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs if v not in (None, ""))
        return f'<div><h3>{_e(title)}</h3><table class="kv">{rows}</table></div>'

    def grid(headers: list[str], cells: list[list[Any]]) -> str:
        head = "".join(f"<th>{_e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in cells)
        return f'<div class="scroll"><table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'

    return (
        '<section id="provenance"><h2>How this was measured</h2>'
        '<p class="caption">Everything needed to reproduce or audit the figures above: the exact suite file, '
        "the software and machine the run used, and the prices (with their dates) that the costs rest on.</p>"
        f'<div class="kv-grid">{kv("Suite", suite_kv)}{kv("Run", run)}{kv("Software", software)}{kv("Machine", hardware)}</div>'
        f'<h3>Models</h3>{grid(["Model", "Provider", "Model name", "Status", "Reason", "Items", "Failed", "Details"], models)}'
        f'<h3>Prices</h3>{grid(["Model", "Price", "Source", "Valid as of"], prices)}'
        '<p class="caption">API prices are US$ per million tokens (input / output). Self-hosted costs use the '
        "machine's hourly price; a dedicated machine is assumed busy for the stated share of its hours.</p>"
        "</section>"
    )


def _price_cells(model: dict[str, Any], default_utilisation: float) -> list[Any]:
    price, hw = model.get("price"), model.get("hardware_profile")
    if price:
        text = f"{_rate(price['input_per_mtok'])} / {_rate(price['output_per_mtok'])} per 1M tokens"
        if price.get("cache_read_per_mtok") is not None:
            text += f"; cached input {_rate(price['cache_read_per_mtok'])}"
        if price.get("batch_discount"):
            text += f"; batch {price['batch_discount']:.0%} off"
        source = price.get("catalogue_version") or price.get("source") or ""
        if price.get("model_ref"):
            source += f" (as {price['model_ref']})"
        return [text, source or None, price.get("as_of") or "undated"]
    if hw:
        utilisation = model.get("utilisation") or default_utilisation
        machine = f"{hw.get('count', 1)}× {hw.get('accelerator') or hw.get('name')}"
        text = f"self-hosted on {machine} at {_rate(hw['usd_per_hour'])}/hour, {utilisation:.0%} busy"
        return [text, hw.get("source"), hw.get("as_of") or "undated"]
    if model.get("status") not in (None, "ok"):
        return ["none needed (not run)", None, None]
    return ["unknown: no price on record, so its cost is shown as unknown", None, None]


def _rate(usd: float) -> str:
    """A list price as written on a price sheet: $0.60, $0.075, $2.00."""
    return f"${usd:,.2f}" if round(usd, 2) == usd else f"${usd:g}"


# -- charts -----------------------------------------------------------------------------------------


def _scatter(ran: list[SummaryRow], colours: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    import plotly.graph_objects as go

    points = _cost_quality_points(ran)
    unknown = [r.model for r in ran if r.cost_per_task_usd is None]
    unscored = [r.model for r in ran if r.cost_per_task_usd is not None and r.quality_mean is None]
    missing = ""
    if unknown:
        missing += f" Not shown because their cost is unknown: {_names(unknown)}."
    if unscored:
        missing += f" Not shown because none of their answers could be scored: {_names(unscored)}."
    if not points:
        return None, "No model has both a known cost and a quality score, so there is nothing to plot." + missing
    frontier = pareto_frontier(points) if len(points) > 1 else []
    costs = [cost for cost, _ in points.values()]
    log = min(costs) > 0
    by_model = {r.model: r for r in ran}
    fig = go.Figure()
    if frontier:
        fig.add_trace(
            go.Scatter(
                x=[points[m][0] for m in frontier],
                y=[points[m][1] for m in frontier],
                mode="lines",
                line={"color": "#52606d", "width": 2, "dash": "dash"},
                name="Best trade-off (Pareto frontier)",
                hoverinfo="skip",
            )
        )
    for model, (cost, quality) in points.items():
        r = by_model[model]
        on = model in frontier
        ci = r.quality_ci_low is not None
        fig.add_trace(
            go.Scatter(
                x=[cost],
                y=[quality],
                mode="markers+text",
                text=[_plot_text(model)],
                textposition="top center",
                textfont={"size": 13, "color": "#1f2933"},
                marker={
                    "size": 15 if on else 11,
                    "color": colours[model],
                    "symbol": "diamond" if on else "circle",
                    "line": {"color": "#1f2933" if on else "#ffffff", "width": 1.5},
                },
                error_y={
                    "type": "data",
                    "array": [r.quality_ci_high - quality] if ci else [0],
                    "arrayminus": [quality - r.quality_ci_low] if ci else [0],
                    "visible": ci,
                    "color": colours[model],
                    "thickness": 1.5,
                    "width": 4,
                },
                showlegend=False,
                hovertemplate=(
                    f"<b>{_plot_text(model)}</b><br>Quality {quality:.2f}"
                    + (f" (95% range {r.quality_ci_low:.2f}–{r.quality_ci_high:.2f})" if ci else "")
                    + f"<br>Cost per task {fmt_usd(cost)}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        **_layout(460),
        xaxis={
            "title": {"text": "Cost per task (US$" + (", log scale)" if log else ")")},
            "gridcolor": "#e4e7eb",
            **(_log_dollar_axis(min(costs), max(costs)) if log else {"tickprefix": "$", "rangemode": "tozero"}),
        },
        yaxis={
            "title": {"text": "Quality (average score, 0 to 1)"},
            "range": [-0.02, 1.1],
            "tickvals": [0, 0.2, 0.4, 0.6, 0.8, 1],
            "gridcolor": "#e4e7eb",
        },
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    caption = (
        "Each marker is one model: higher means better answers, further left means cheaper. "
        "The vertical bar through a marker is its 95% range."
        + (
            f" The dashed line joins the best trade-offs ({_names(frontier)}, drawn as diamonds): "
            "for any model below or right of the line, a model on it is cheaper and at least as good."
            if frontier
            else ""
        )
        + (" The cost axis is logarithmic: equal steps along it multiply the cost." if log else "")
        + missing
    )
    return _figure_json(fig), caption


def _latency(
    ran: list[SummaryRow], latencies: dict[str, array], colours: dict[str, str]
) -> tuple[dict[str, Any] | None, str]:
    import plotly.graph_objects as go

    timed = [r for r in ran if latencies.get(r.model)]
    if not timed:
        return None, "No response times were measured (every answer was a cached replay or failed)."
    fig = go.Figure()
    thinned = []
    for r in timed:
        values = latencies[r.model]
        shown = _thin(values)
        if len(shown) < len(values):
            thinned.append(f"{_e(r.model)} ({len(shown):,} of {len(values):,})")
        fig.add_trace(
            go.Box(
                x=shown,
                name=_plot_text(r.model),
                orientation="h",
                marker={"color": colours[r.model], "size": 6, "opacity": 0.7},
                line={"color": colours[r.model]},
                fillcolor=_tint(colours[r.model]),
                boxpoints="all" if len(shown) <= 200 else "outliers",
                jitter=0.4,
                pointpos=0,
                showlegend=False,
                hoverinfo="x",
            )
        )
    medians = [r.latency_p50_s for r in timed if r.latency_p50_s]
    log = bool(medians) and max(medians) / min(medians) > 20
    fig.update_layout(
        **_layout(140 + 70 * len(timed)),
        xaxis={
            "title": {"text": "Seconds per answer" + (" (log scale)" if log else "")},
            "type": "log" if log else "linear",
            "rangemode": "tozero",
            "gridcolor": "#e4e7eb",
            "zeroline": False,
        },
        yaxis={"autorange": "reversed", "automargin": True},
    )
    excluded = sum(r.cached for r in timed)
    caption = (
        "How long each model took to return a whole answer; further left is faster. "
        "The line inside each box is the median, the box holds the middle half of the answers, "
        "the whiskers reach the usual range and dots beyond them are unusually slow or fast answers."
        + (" The time axis is logarithmic." if log else "")
        + " Failed requests are not shown"
        + (f", nor {_count(excluded, 'answer')} replayed from the cache, which took no real time." if excluded else ".")
        + (
            f" For readability the chart draws evenly spaced samples of the answers for {', '.join(thinned)};"
            " the table uses them all."
            if thinned
            else ""
        )
    )
    return _figure_json(fig), caption


def _per_task(rows: list[SummaryRow], ran: list[SummaryRow], colours: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    import plotly.graph_objects as go

    task_rows = [r for r in rows if r.task != ALL_TASKS]
    tasks = list(dict.fromkeys(r.task for r in task_rows))
    cell = {(r.task, r.model): r for r in task_rows}
    if not tasks:
        return None, "No per-task results."
    fig = go.Figure()
    for model in (r.model for r in ran):
        found = [cell.get((t, model)) for t in tasks]
        y = [r.quality_mean if r else None for r in found]
        with_ci = [r if r and r.quality_ci_low is not None else None for r in found]
        fig.add_trace(
            go.Bar(
                x=[_plot_text(t) for t in tasks],
                y=y,
                name=_plot_text(model),
                marker={"color": colours[model]},
                error_y={
                    "type": "data",
                    "array": [r.quality_ci_high - r.quality_mean if r else 0 for r in with_ci],
                    "arrayminus": [r.quality_mean - r.quality_ci_low if r else 0 for r in with_ci],
                    "color": "#323f4b",
                    "thickness": 1.2,
                    "width": 3,
                },
                customdata=[
                    [f"{c.quality_ci_low:.2f}–{c.quality_ci_high:.2f}" if c else "n/a", r.scored if r else 0]
                    for r, c in zip(found, with_ci)
                ],
                hovertemplate=(
                    f"<b>{_plot_text(model)}</b> on %{{x}}<br>Quality %{{y:.2f}} (95% range %{{customdata[0]}})"
                    "<br>%{customdata[1]} scored items<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        **_layout(430),
        barmode="group",
        bargap=0.25,
        xaxis={"type": "category", "automargin": True},
        yaxis={"title": {"text": "Quality (average score, 0 to 1)"}, "range": [0, 1.05], "gridcolor": "#e4e7eb"},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    caption = (
        "Each group is one task of the suite, each bar one model's average score on it (taller is better). "
        "The thin black line on a bar is its 95% range: when two models' ranges overlap a lot, the gap between "
        "them may be chance rather than a real difference. A missing bar means no answer could be scored."
    )
    return _figure_json(fig), caption


def _log_dollar_axis(low: float, high: float) -> dict[str, Any]:
    """A log axis padded around [low, high] with plain dollar ticks at 1, 2 and 5 × 10^k."""
    low, high = math.log10(low) - 0.3, math.log10(high) + 0.3
    ticks = [
        (m * 10.0**k, f"${m * 10.0**k:.{max(0, -k)}f}")
        for k in range(math.floor(low), math.ceil(high) + 1)
        for m in (1, 2, 5)
        if low <= math.log10(m * 10.0**k) <= high
    ]
    if len(ticks) > 9:
        ticks = [t for t in ticks if t[1].rstrip("0").rstrip(".")[-1] == "1"]
    return {"type": "log", "range": [low, high], "tickvals": [v for v, _ in ticks], "ticktext": [t for _, t in ticks]}


def _layout(height: int) -> dict[str, Any]:
    return {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 40, "b": 60},
        "font": {"family": FONT, "size": 13, "color": "#323f4b"},
        "hoverlabel": {"font": {"family": FONT}},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
    }


def _figure_json(fig: Any) -> dict[str, Any]:
    return json.loads(fig.to_json())


# -- small helpers ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text for HTML; None reads as a dash."""
    return "—" if value is None else html.escape(str(value))


def _plot_text(text: str) -> str:
    """Text for a Plotly label: Plotly reads a few HTML tags and decodes entities, so escape < > &."""
    return html.escape(str(text), quote=False)


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can close the tag or open a comment."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _names(models: Iterable[str]) -> str:
    names = [f"<strong>{_e(m)}</strong>" for m in models]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _overlaps(a: SummaryRow, b: SummaryRow) -> bool:
    if None in (a.quality_ci_low, a.quality_ci_high, b.quality_ci_low, b.quality_ci_high):
        return a.quality_mean == b.quality_mean
    return a.quality_ci_low <= b.quality_ci_high and b.quality_ci_low <= a.quality_ci_high


def _cost_quality_points(ran: list[SummaryRow]) -> dict[str, tuple[float, float]]:
    return {
        r.model: (r.cost_per_task_usd, r.quality_mean)
        for r in ran
        if r.cost_per_task_usd is not None and r.quality_mean is not None
    }


def _model_info(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in manifest.get("models", []) if "id" in m}


def _tint(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.25)"


def _mark(text: str, best: bool) -> str:
    return f'<span class="best">{text}</span>' if best else text


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{fmt_num(value)} s"


def _when(stamp: str | None) -> str | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    offset = moment.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else moment.strftime(" UTC%z")
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def _subtitle(manifest: dict[str, Any]) -> str:
    parts = []
    if manifest.get("started_at"):
        parts.append(f"Run on {_e(_when(manifest['started_at']))}")
    if manifest.get("run_id"):
        parts.append(f"run id <code>{_e(manifest['run_id'])}</code>")
    if manifest.get("status") and manifest["status"] != "completed":
        parts.append(f"status: {_e(manifest['status'])}")
    return " · ".join(parts)


_HARDWARE_LABELS = {
    "machine": "Architecture",
    "cpu": "CPU",
    "cpu_count": "CPU cores",
    "memory_gib": "Memory (GiB)",
    "platform": "Operating system",
    "gpus": "GPUs",
}

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --best:#1b7a43; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 32px 24px 48px; }
header h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 22px 26px; margin: 20px 0; }
h2 { font-size: 19px; margin: 0 0 14px; }
h3 { font-size: 14px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); margin: 18px 0 8px; }
p.lead { font-size: 16px; margin: 0; }
.caption { color: var(--muted); font-size: 13.5px; margin: 10px 0 0; max-width: 900px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12.5px; padding: 8px 8px;
  border-bottom: 2px solid var(--line); vertical-align: bottom; }
th small { font-weight: 400; }
td { padding: 9px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.model { font-weight: 600; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 8px; }
small.ci, small.status { display: block; color: var(--muted); font-size: 12px; font-weight: 400; }
.best { color: var(--best); font-weight: 700; }
.unknown { color: var(--muted); font-style: italic; }
tr.not-run td { color: var(--muted); }
dl.glossary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; font-size: 13px;
  color: var(--muted); margin: 16px 0 0; padding-top: 12px; border-top: 1px dashed var(--line); }
dl.glossary dt { font-weight: 600; color: var(--ink); }
dl.glossary dd { margin: 0; }
.chart { width: 100%; min-height: 200px; }
.kv-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 40px; }
table.kv th { width: 34%; font-size: 13px; border-bottom: 1px solid var(--line); vertical-align: top; }
table.kv td, table.plain td { font-size: 13px; overflow-wrap: break-word; }
table.kv td { overflow-wrap: anywhere; }
#render-errors { background: #fdecea; border: 1px solid #f5c2c0; color: #8a1c1c; padding: 12px 16px;
  border-radius: 8px; white-space: pre-wrap; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; margin-top: 24px; }
@media print { body { background: #fff; } section { border: none; break-inside: avoid; padding: 8px 0; } }
"""

# Errors while drawing are shown to the reader (and read by the browser test) instead of leaving blank charts.
_ERROR_HOOK = """
(function () {
  var seen = [];
  function show() {
    var box = document.getElementById("render-errors");
    if (!box || !seen.length) return;
    box.hidden = false;
    box.textContent = "Some charts could not be drawn in this browser:\\n" + seen.join("\\n");
  }
  window.reportRenderError = function (message) { seen.push(String(message)); show(); };
  window.addEventListener("error", function (e) { window.reportRenderError(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) { window.reportRenderError(e.reason); });
  var original = console.error;
  console.error = function () {
    window.reportRenderError(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", show);
})();
"""

_DRAW = """
(function () {
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var config = { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    toImageButtonOptions: { format: "png", scale: 2 } };
  Object.keys(figures).forEach(function (id) {
    var div = document.getElementById(id);
    try {
      Plotly.newPlot(div, figures[id].data, figures[id].layout, config).then(
        function () { div.setAttribute("data-rendered", "true"); },
        function (err) { window.reportRenderError(id + ": " + err); });
    } catch (err) {
      window.reportRenderError(id + ": " + err);
    }
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="openbench {version}">
<title>{title}</title>
<style>{css}</style>
<script>{error_hook}</script>
<script>{plotlyjs}</script>
</head>
<body>
<main>
<header><h1>{title}</h1><p>{subtitle}</p></header>
<div id="render-errors" role="alert" hidden></div>
{body}
<footer>Made with openbench {version}. This file is self-contained: it works offline and can be shared as is.</footer>
</main>
<script type="application/json" id="figures">{figures}</script>
<script>{draw}</script>
</body>
</html>
"""


def _manifest_view(manifest: RunManifest) -> dict[str, Any]:
    """The manifest as the sections below read it: plain values, each model's provider facts beside its own."""
    data = manifest.model_dump(mode="json")
    data["status"] = manifest.effective_status
    for model in data["models"]:
        model.update(model.pop("details") or {})
    return data
