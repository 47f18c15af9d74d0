"""What the HTML report shows, as one typed object.

``build_view`` (with its helpers below) is the only place in the report that reads the manifest and
the gate decision; the narrative, the charts and the template read the view.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from openbench.manifest import ModelEntry, RunManifest
from openbench.records import ItemResult
from openbench.report.html.answers import AnswerCollector, AnswersView
from openbench.report.notes import model_notes
from openbench.report.table import fmt_usd
from openbench.summary import ALL_TASKS, SummaryRow

#: Tableau 10: distinct, print-safe, and readable by most colour-blind readers.
PALETTE = ["#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC"]

#: How a stored run status reads at the top of the report ("completed" says nothing).
STATUS_WORDS = {
    "running": "Running: the figures cover the items finished so far",
    "interrupted": "Interrupted: the figures cover the items finished before it stopped",
    "stopped on budget": "Stopped on budget: the spending limit was reached before every item ran",
}


@dataclass(frozen=True)
class ModelState:
    """A model's entry in the run: what it is, whether it ran, and why not."""

    id: str
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    reason: str | None = None
    items: int | None = None
    errors: int | None = None
    details: str | None = None
    price: str | None = None
    price_source: str | None = None
    price_as_of: str | None = None


@dataclass(frozen=True)
class RuleLine:
    rule: str
    task: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateView:
    verdict: str
    passed: bool
    baseline: str
    candidate: str
    thresholds: list[tuple[str, str]]
    results: list[RuleLine]
    warnings: list[str]


@dataclass(frozen=True)
class ReportView:
    title: str
    run_id: str | None
    started: str | None
    status: str | None  # the run's status, e.g. "completed", "interrupted"
    status_note: str | None  # what that status means for the figures; None when the run completed
    version: str | None
    suite_name: str | None
    tasks: list[str]
    rows: list[SummaryRow]  # every row: per task and overall
    overall: list[SummaryRow]
    ran: list[SummaryRow]
    colours: dict[str, str]
    models: dict[str, ModelState]
    latencies: dict[str, array]
    gate: GateView | None
    answers: AnswersView
    notes: list[str] = field(default_factory=list)  # what openbench changed or noticed about the models (report.notes)
    provenance: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)


def build_view(
    rows: list[SummaryRow], records: Iterable[ItemResult], manifest: RunManifest, gate: dict[str, Any] | None = None
) -> ReportView:
    """The report's content. ``records`` is read once; only latencies and a capped set of answers are kept."""
    overall = [r for r in rows if r.task == ALL_TASKS]
    ran = [r for r in overall if r.items > 0]
    suite_name = manifest.suite.name if manifest.suite else None
    tasks = list(manifest.tasks) or list(dict.fromkeys(r.task for r in rows if r.task != ALL_TASKS))
    expected: dict[str, list[str]] = {}
    for r in rows:
        if r.task != ALL_TASKS and r.items:
            expected.setdefault(r.task, []).append(r.model)
    pair = (gate["baseline"], gate["candidate"]) if gate else None
    answers = AnswerCollector(tasks, expected, pair)
    latencies: dict[str, array] = {}
    for r in records:
        answers.add(r)
        if r.error is None and not r.cached and r.latency_s is not None:
            latencies.setdefault(r.model, array("d")).append(r.latency_s)
    status = manifest.effective_status
    return ReportView(
        title=f"Model benchmark: {suite_name or manifest.run_id or 'run'}",
        run_id=manifest.run_id,
        started=when(manifest.started_at),
        status=status,
        status_note=None if status in (None, "completed") else STATUS_WORDS.get(status, status.capitalize()),
        version=manifest.openbench_version,
        suite_name=suite_name,
        tasks=tasks,
        rows=rows,
        overall=overall,
        ran=ran,
        colours={r.model: PALETTE[i % len(PALETTE)] for i, r in enumerate(overall)},
        models={m.id: _model_state(m) for m in manifest.models},
        latencies=latencies,
        gate=_gate_view(gate) if gate else None,
        answers=answers.finish(),
        notes=model_notes(manifest, rows),
        provenance=_provenance(manifest, status),
    )


def _model_state(m: ModelEntry) -> ModelState:
    details = ", ".join(f"{k} {m.details[k]}" for k in ("device", "dtype") if m.details.get(k))
    if m.details.get("parameters"):
        details += (", " if details else "") + f"{m.details['parameters'] / 1e6:,.0f}M parameters"
    price, source, as_of = _price_cells(m)
    return ModelState(
        id=m.id,
        provider=m.provider,
        model=m.model,
        status=m.status,
        reason=m.reason,
        items=m.items,
        errors=m.errors,
        details=details or None,
        price=price,
        price_source=source,
        price_as_of=as_of,
    )


def _price_cells(model: ModelEntry) -> tuple[str, str | None, str | None]:
    from openbench.pricing import DEFAULT_UTILISATION

    price, hw = model.price, model.hardware_profile
    if price:
        text = f"{_rate(price.input_per_mtok)} / {_rate(price.output_per_mtok)} per 1M tokens"
        if price.cache_read_per_mtok is not None:
            text += f"; cached input {_rate(price.cache_read_per_mtok)}"
        if price.batch_discount:
            text += f"; batch {price.batch_discount:.0%} off"
        source = price.catalogue_version or price.source or ""
        if price.model_ref:
            source += f" (as {price.model_ref})"
        return text, source or None, price.as_of or "undated"
    if hw:
        utilisation = model.utilisation or DEFAULT_UTILISATION
        text = f"self-hosted on {hw.count}× {hw.accelerator or hw.name} at {_rate(hw.usd_per_hour)}/hour, {utilisation:.0%} busy"
        return text, _reader_text(hw.source), hw.as_of or "undated"
    if model.status not in (None, "ok"):
        return "none needed (not run)", None, None
    return "unknown: no price on record, so its cost is shown as unknown", None, None


def _reader_text(text: str | None) -> str | None:
    """Stored text without pointers into the code, e.g. "(see HARDWARE_NOTE)" in older manifests."""
    return re.sub(r"\s*\(see [A-Z][A-Z0-9_]+\)", "", text) if text else text


def _rate(usd: float) -> str:
    """A list price as written on a price sheet: $0.60, $0.075, $2.00."""
    return f"${usd:,.2f}" if round(usd, 2) == usd else f"${usd:g}"


def _gate_view(gate: dict[str, Any]) -> GateView:
    rules = gate.get("rules") or {}
    thresholds = [("Largest accepted quality drop", f"{rules.get('margin', 0) * 100:g} points")]
    if rules.get("confidence") is not None:
        thresholds.append(("Confidence", f"{rules['confidence']:.0%}"))
    thresholds.append(("Quality checked", "per task and overall" if rules.get("per_task", True) else "overall only"))
    if rules.get("max_p95_latency_s") is not None:
        thresholds.append(("Slowest 5% of answers at most", f"{rules['max_p95_latency_s']:g} s"))
    if rules.get("max_cost_per_task_usd") is not None:
        thresholds.append(("Cost per task at most", fmt_usd(rules["max_cost_per_task_usd"])))
    if rules.get("min_pass_rate") is not None:
        thresholds.append(("Pass rate at least", f"{rules['min_pass_rate']:.0%}"))
    if rules.get("require_cheaper"):
        thresholds.append(("Cheaper than the baseline", "required"))
    return GateView(
        verdict=gate.get("verdict") or "",
        passed=bool(gate.get("passed")),
        baseline=gate.get("baseline") or "",
        candidate=gate.get("candidate") or "",
        thresholds=thresholds,
        results=[RuleLine(r["rule"], r["task"], bool(r["passed"]), r["detail"]) for r in gate.get("results") or []],
        warnings=list(gate.get("warnings") or []),
    )


#: Run options as a reader would name them; options not listed here are not shown.
_OPTION_LABELS = {
    "models": "Models chosen",
    "limit": "Items per task at most",
    "cache": "Response cache",
    "max_cost_usd": "Spending limit (USD)",
}

_HARDWARE_LABELS = {
    "machine": "Architecture",
    "cpu": "CPU",
    "cpu_count": "CPU cores",
    "memory_gib": "Memory (GiB)",
    "platform": "Operating system",
    "gpus": "GPUs",
}


def _option_value(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "on" if value is True else "off" if value is False else value


def _provenance(manifest: RunManifest, status: str | None) -> dict[str, list[tuple[str, Any]]]:
    env = manifest.environment
    run = [
        ("Run id", manifest.run_id),
        ("Status", status),
        ("Started", when(manifest.started_at)),
        ("Ended", when(manifest.ended_at)),
        ("Resumed", ", ".join(when(t) or "" for t in manifest.resumed_at) or None),
        ("Seed", manifest.seed),
        ("Spent on APIs", fmt_usd(manifest.spent_usd) if manifest.spent_usd else None),
        ("Model-written code isolated by", manifest.sandbox),
    ]
    options = manifest.options.model_dump()
    run += [(label, _option_value(options[k])) for k, label in _OPTION_LABELS.items() if options.get(k) is not None]
    hardware = [
        (_HARDWARE_LABELS.get(k, k.replace("_", " ").capitalize()), ", ".join(map(str, v)) if isinstance(v, list) else v)
        for k, v in (env.get("hardware") or {}).items()
    ]
    if "hf_offline" in env:
        hardware.append(("Hugging Face offline", "yes" if env["hf_offline"] else "no"))
    software = [("openbench", manifest.openbench_version), ("Python", env.get("python")), ("Git commit", env.get("git_sha"))]
    software += [(name, ver) for name, ver in (env.get("packages") or {}).items() if ver]
    suite = manifest.suite
    sections = {
        "Suite": [
            ("Name", suite.name if suite else None),
            ("File", suite.path if suite else None),
            ("SHA-256", suite.sha256 if suite else None),
            ("Tasks", ", ".join(manifest.tasks) or None),
        ],
        "Run": run,
        "Software": software,
        "Machine": hardware,
    }
    return {title: [(k, v) for k, v in pairs if v not in (None, "")] for title, pairs in sections.items()}


def when(stamp: str | None) -> str | None:
    """An ISO timestamp as a reader writes it: 2026-11-25 12:00 UTC."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    offset = moment.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else moment.strftime(" UTC%z")
    return moment.strftime("%Y-%m-%d %H:%M") + zone
