"""The report's sentences: the summary a reader sees first, in plain words.

Sentences are ``Markup`` built with ``Markup.format``, which escapes every value it is given,
so a model or suite name can never become markup.
"""

from __future__ import annotations

from typing import Iterable

from markupsafe import Markup

from openbench.report.html.view import ReportView
from openbench.report.table import fmt_num, fmt_usd
from openbench.summary import SummaryRow


def names(models: Iterable[str]) -> Markup:
    """"<strong>a</strong>, <strong>b</strong> and <strong>c</strong>"."""
    bold = [Markup("<strong>{}</strong>").format(m) for m in models]
    if len(bold) <= 1:
        return Markup("").join(bold)
    return Markup(", ").join(bold[:-1]) + Markup(" and ") + bold[-1]


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


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


def cost_quality_points(ran: list[SummaryRow]) -> dict[str, tuple[float, float]]:
    return {
        r.model: (r.cost_per_task_usd, r.quality_mean)
        for r in ran
        if r.cost_per_task_usd is not None and r.quality_mean is not None
    }


def overlaps(a: SummaryRow, b: SummaryRow) -> bool:
    if None in (a.quality_ci_low, a.quality_ci_high, b.quality_ci_low, b.quality_ci_high):
        return a.quality_mean == b.quality_mean
    return a.quality_ci_low <= b.quality_ci_high and b.quality_ci_low <= a.quality_ci_high


def summary(view: ReportView) -> list[Markup]:
    """The lead paragraph, one sentence per finding."""
    ran = view.ran
    most_items = max((r.items for r in ran), default=0)
    suite = Markup(" from the suite <strong>{}</strong>").format(view.suite_name) if view.suite_name else ""
    parts = [
        Markup("This report compares {} on {}{}, with up to {} test items per model.").format(
            count(len(ran), "model"), count(len(view.tasks), "task"), suite, f"{most_items:,}"
        )
    ]
    scored = sorted((r for r in ran if r.quality_mean is not None), key=lambda r: -r.quality_mean)
    if scored:
        best = scored[0]
        sentence = Markup("Highest quality: <strong>{}</strong> (average score {:.2f} out of 1)").format(best.model, best.quality_mean)
        close = [r for r in scored[1:] if overlaps(best, r)]
        if close:
            sentence += Markup(", though {} {} within its margin of error, so this run cannot clearly rank them").format(
                names(r.model for r in close), "is" if len(close) == 1 else "are"
            )
        parts.append(sentence + ".")
    parts += _cost_sentences(ran)
    timed = sorted((r for r in ran if r.latency_p50_s is not None), key=lambda r: r.latency_p50_s)
    if timed:
        parts.append(
            Markup("Fastest: <strong>{}</strong> (half of its answers took {} s or less).").format(
                timed[0].model, fmt_num(timed[0].latency_p50_s)
            )
        )
    points = cost_quality_points(ran)
    if len(points) > 1:
        frontier = pareto_frontier(points)
        parts.append(
            Markup("Best trade-off between quality and cost: {}; no other model is both cheaper and better than {}.").format(
                names(frontier), "these" if len(frontier) > 1 else "this one"
            )
        )
    failing = [r for r in ran if r.errors]
    if failing:
        counts = Markup(", ").join(Markup("<strong>{}</strong> {} of {}").format(r.model, f"{r.errors:,}", f"{r.items:,}") for r in failing)
        parts.append(Markup("Failed requests: {}; each counts as a wrong answer (score 0) in quality and pass rate.").format(counts))
    not_run = [r for r in view.overall if r.items == 0]
    if not_run:
        reasons = Markup("; ").join(Markup("<strong>{}</strong> ({})").format(r.model, not_run_reason(view, r)) for r in not_run)
        parts.append(Markup("Not run: {}.").format(reasons))
    return parts


def _cost_sentences(ran: list[SummaryRow]) -> list[Markup]:
    priced = sorted((r for r in ran if r.cost_per_task_usd is not None), key=lambda r: r.cost_per_task_usd)
    unpriced = [r.model for r in ran if r.cost_per_task_usd is None]
    if not priced:
        return [Markup("No model has a known price, so costs are not compared.")] if ran else []
    cheap = priced[0]
    detail = fmt_usd(cheap.cost_per_task_usd) + " per task" + (" self-hosted" if cheap.cost_basis == "dedicated" else "")
    if cheap.cost_per_1k_tasks_usd:
        detail += f", {fmt_usd(cheap.cost_per_1k_tasks_usd)} per 1,000 tasks"
    unknown = Markup("; the cost of {} is unknown").format(names(unpriced)) if unpriced else ""
    return [Markup("Lowest cost: <strong>{}</strong> ({}){}.").format(cheap.model, detail, unknown)]


def not_run_reason(view: ReportView, row: SummaryRow) -> str:
    state = view.models.get(row.model)
    return (state.reason if state else None) or row.status or "no results"


def gate_summary(view: ReportView) -> Markup | None:
    """One sentence under the verdict: which model was gated against which, and how many items flipped."""
    gate = view.gate
    if gate is None:
        return None
    failed = sum(not r.passed for r in gate.results)
    text = Markup("<strong>{}</strong> (candidate) against <strong>{}</strong> (baseline): {}.").format(
        gate.candidate, gate.baseline, f"{failed} of {count(len(gate.results), 'rule')} failed" if failed else "every rule holds"
    )
    answers = view.answers
    if answers.flipped:
        text += Markup(" {} changed outcome: the candidate passes {} that the baseline failed and fails {} that it passed.").format(
            count(answers.flipped, "item"), answers.flipped_to_pass, answers.flipped - answers.flipped_to_pass
        )
    return text
