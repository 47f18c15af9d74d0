"""``openbench run SUITE --gate``: baseline and candidate block by block, stopping once the gate is settled.

Items (whole clusters where the task sets ``cluster_field``) run in an order fixed by the
suite's seed, in blocks. Each block goes through the runner's own workers and clients, so
records, timing, cache, budget and resume are those of any run. After each block the
anytime-valid confidence sequence (``openbench.sequential``) is updated:

* pass when every lower bound is above −margin and the other gate rules hold on the items so far;
* fail when an upper bound is below −margin;
* if the suite runs out first, the fixed-n gate decides (``gate.decide`` on ``compare``).

The settings are saved in the run folder (``sequential.json``), so that a resumed run
continues the same sequence: same order, same blocks, records already on disk count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from openbench import registry, sequential
from openbench.errors import OpenbenchError, RunError
from openbench.records import ItemResult
from openbench.runner import Runner, WorkItem, load_work
from openbench.store import RunStore
from openbench.summary import ALL_TASKS

STATE = "sequential.json"
QUALITY_RULE = "quality non-inferiority"
DEFAULT_BLOCK = 20


class SequentialSettings(BaseModel):
    """What fixes a sequence: resuming with other values would make it another sequence."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    baseline: str
    candidate: str
    margin: float
    confidence: float
    block: int
    seed: int
    per_task: bool


@dataclass(frozen=True)
class GateOptions:
    """The ``run --gate`` options; None means: from the suite's ``gate:`` block (or the saved run)."""

    baseline: str | None = None
    candidate: str | None = None
    margin: float | None = None
    confidence: float | None = None
    block: int | None = None


@dataclass(frozen=True)
class Unit:
    """One observation of the sequence: an item, or a whole cluster of a task."""

    task: str
    key: str
    items: tuple[WorkItem, ...]


@dataclass
class Step:
    """The state after a block: what the confidence sequences say, on how many items."""

    block: int
    items: int
    streams: dict[str, sequential.SequenceBounds]
    verdict: sequential.Verdict
    waiting_on: list[str] = field(default_factory=list)


def rules_for(suite_gate: Any, margin: float | None, confidence: float | None) -> Any:
    """The gate rules: the suite's gate block, with the options given on the command line over it."""
    from openbench.gate import GateRules

    known = {k: v for k, v in (suite_gate.model_dump() if suite_gate else {}).items() if k in GateRules.__dataclass_fields__ and v is not None}
    given = {k: v for k, v in (("margin", margin), ("confidence", confidence)) if v is not None}
    return GateRules(**{**known, **given})


def prepare(suite: Any, options: GateOptions, saved: SequentialSettings | None) -> tuple[SequentialSettings, Any]:
    """Settings and gate rules for a sequential run, or one clear error (before any run folder is made)."""
    repeated = [t.name for t in suite.spec.tasks if (t.repeats or suite.spec.defaults.repeats) > 1]
    if repeated:
        raise RunError(f"run --gate takes one sample per item; tasks with repeats: {', '.join(repeated)} (set repeats: 1)")
    if saved is not None:
        given = {"baseline": options.baseline, "candidate": options.candidate, "margin": options.margin,
                 "confidence": options.confidence, "block": options.block}  # fmt: skip
        clash = [f"--{'gate-block' if k == 'block' else k} {v} (the run used {getattr(saved, k)})"
                 for k, v in given.items() if v is not None and v != getattr(saved, k)]  # fmt: skip
        if clash:
            raise RunError("a resumed sequential gate continues the same sequence; drop " + ", ".join(clash))
        return saved, rules_for(suite.spec.gate, saved.margin, saved.confidence)
    gate = suite.spec.gate
    baseline = options.baseline or (gate.baseline if gate else None)
    candidate = options.candidate or (gate.candidate if gate else None)
    if not baseline or not candidate:
        raise RunError("--gate needs two models: --baseline ID --candidate ID (or the suite's gate: block)")
    if baseline == candidate:
        raise RunError(f"--gate: the baseline and the candidate are the same model ('{baseline}')")
    for side, model_id in (("baseline", baseline), ("candidate", candidate)):
        spec = suite.model(model_id)  # an unknown id fails here, with a did-you-mean
        try:
            registry.resolve("provider", spec.provider)(spec, suite.dir).check()
        except OpenbenchError as exc:  # a missing key or package: nothing to compare, so no run folder either
            raise RunError(f"--gate: the {side} '{model_id}' cannot run: {exc}") from None
    try:
        rules = rules_for(gate, options.margin, options.confidence)
    except (TypeError, ValueError) as exc:
        raise RunError(f"--gate: {exc}") from None
    settings = SequentialSettings(
        baseline=baseline, candidate=candidate, margin=rules.margin, confidence=rules.confidence,
        block=options.block or DEFAULT_BLOCK, seed=suite.spec.defaults.seed or 0, per_task=rules.per_task,
    )  # fmt: skip
    return settings, rules


def saved_settings(store: RunStore | None) -> SequentialSettings | None:
    if store is None or not (store.path / STATE).is_file():
        return None
    try:
        return SequentialSettings.model_validate_json((store.path / STATE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunError(f"{store.path / STATE}: {exc}") from None


def order(work: list[tuple[Any, list, list]], seed: int) -> list[Unit]:
    """Every item (or cluster) in a seeded random order that depends only on the seed and the names.

    Sorting by a hash, rather than shuffling a list, keeps the order the same across library
    versions, and an item's place does not depend on which other items the suite holds.
    """
    units: list[Unit] = []
    for task, scorers, cases in work:
        groups: dict[str, list[WorkItem]] = {}
        for case in cases:
            key = str(case.fields.get(task.cluster_field)) if task.cluster_field else case.id
            groups.setdefault(key, []).append(WorkItem(task, scorers, case))
        units += [Unit(task.name, key, tuple(items)) for key, items in groups.items()]

    def rank(unit: Unit) -> str:
        return hashlib.sha256(f"{seed}\x00{unit.task}\x00{unit.key}".encode()).hexdigest()

    return sorted(units, key=rank)


def blocks(units: list[Unit], size: int) -> list[list[Unit]]:
    """Consecutive units, at least ``size`` items a block (whole clusters)."""
    out: list[list[Unit]] = [[]]
    count = 0
    for unit in units:
        if count >= size:
            out.append([])
            count = 0
        out[-1].append(unit)
        count += len(unit.items)
    return [b for b in out if b]


def _score(record: ItemResult | None) -> float:
    """An item's score for the sequence: errors and missing scores count as failures."""
    if record is None or record.error is not None or record.score is None:
        return 0.0
    return min(1.0, max(0.0, float(record.score)))


class _Collect:
    """Passes the runner's reports on, keeping each record (so the sequence never re-reads the store)."""

    def __init__(self, inner: Any, records: dict[tuple[str, str, str, int], ItemResult]):
        self.inner, self.records = inner, records

    def item_done(self, model_id: str, record: ItemResult) -> None:
        self.records[record.key] = record
        self.inner.item_done(model_id, record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SequentialGate:
    def __init__(self, suite: Any, store: RunStore, settings: SequentialSettings, rules: Any, limit: int | None):
        self.suite, self.store, self.settings, self.rules = suite, store, settings, rules
        self.units = order(load_work(suite, limit), settings.seed)
        self.blocks = blocks(self.units, settings.block)
        self.total_items = sum(len(u.items) for u in self.units)
        self.records: dict[tuple[str, str, str, int], ItemResult] = {}
        self.steps: list[Step] = []
        self.stopped_by: str | None = None  # why the sequence ended before it was settled (budget, a failed model)

    def save(self) -> None:
        (self.store.path / STATE).write_text(self.settings.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @property
    def models(self) -> list[str]:
        return [self.settings.baseline, self.settings.candidate]

    @property
    def last(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    # -- running ----------------------------------------------------------------------------------

    async def run(self, runner: Runner) -> None:
        self.records = runner.store.latest_records()  # a resumed run: records on disk count, errored or not
        runner.reporter = _Collect(runner.reporter, self.records)
        clients = []
        try:
            for model_id in self.models:
                client = runner.client(self.suite.model(model_id))
                runner.results.append(client.entry)
                if not client.check() or not await client.start():
                    runner.reporter.model_finished(model_id, client.entry.status, client.entry.reason)
                    self.stopped_by = f"model '{model_id}' {client.entry.status}: {client.entry.reason}"
                    return
                clients.append(client)
                runner.reporter.model_started(model_id, self.total_items)
            for index, block in enumerate(self.blocks):
                for client in clients:
                    todo = [item for unit in block for item in unit.items if (unit.task, item.case.id, client.spec.id, 0) not in self.records]
                    await runner.run_items(client, todo)
                    if client.stop or runner.budget_hit:
                        self.stopped_by = client.entry.reason if client.stop else f"the budget (--max-cost {runner.options.max_cost_usd}) was spent"
                if self.stopped_by:
                    return
                step = self.update(index)
                runner.reporter.note(self.progress_line(step))
                if step.verdict != "continue":
                    return
        finally:
            for client in clients:
                await runner.close_client(client)
                if client.entry.status == "pending":
                    client.entry.status = "ok"
                runner.reporter.model_finished(client.spec.id, client.entry.status, client.entry.reason)
            await runner.close()

    def observations(self, upto: int) -> dict[str, list[float]]:
        """The paired differences of the units of blocks 0..upto, in order: overall and per task."""
        streams: dict[str, list[float]] = {ALL_TASKS: []}
        per_task = self.settings.per_task and len({u.task for u in self.units}) > 1
        for block in self.blocks[: upto + 1]:
            for unit in block:
                diffs = [
                    _score(self.records.get((unit.task, item.case.id, self.settings.candidate, 0)))
                    - _score(self.records.get((unit.task, item.case.id, self.settings.baseline, 0)))
                    for item in unit.items
                ]
                value = sum(diffs) / len(diffs)
                streams[ALL_TASKS].append(value)
                if per_task:
                    streams.setdefault(unit.task, []).append(value)
        return streams

    def update(self, index: int) -> Step:
        conf = self.settings.confidence
        streams = {name: sequential.bounds(values, conf) for name, values in self.observations(index).items()}
        verdict = sequential.verdict(list(streams.values()), self.settings.margin)
        items = sum(len(u.items) for b in self.blocks[: index + 1] for u in b)
        step = Step(index, items, streams, verdict)
        if verdict == "pass":
            decision, _ = self._fixed_decision(partial=True)
            step.waiting_on = [f"{r.rule} ({r.task})" for r in decision.results if r.rule != QUALITY_RULE and not r.passed]
            if step.waiting_on:
                step.verdict = "continue"
        self.steps.append(step)
        return step

    def progress_line(self, step: Step) -> str:
        overall = step.streams[ALL_TASKS]
        state = {"pass": "PASS, stopping", "fail": "FAIL, stopping", "continue": "continue"}[step.verdict]
        if step.waiting_on:
            state = "quality settled; continue for " + ", ".join(step.waiting_on)
        return (
            f"gate block {step.block + 1}/{len(self.blocks)}: {step.items} of {self.total_items} items, "
            f"candidate − baseline {_pts(overall.mean)} points, {overall.confidence:.0%} confidence sequence "
            f"[{_pts(overall.lo)}, {_pts(overall.hi)}]; needs lower bound > {-self.settings.margin * 100:+.1f}: {state}"
        )

    # -- the decision -----------------------------------------------------------------------------

    def _fixed_decision(self, partial: bool) -> tuple[Any, Any]:
        from openbench.compare import Side, compare
        from openbench.gate import decide

        comparison = compare(Side(self.store, self.settings.baseline), Side(self.store, self.settings.candidate), self.rules.confidence, partial)
        return decide(comparison, self.rules), comparison

    def decision(self) -> tuple[Any, Any, dict[str, Any]]:
        """The gate decision, the comparison it rests on, and the ``sequential`` section of gate.json."""
        from openbench.gate import GateDecision, RuleResult

        step = self.last
        settled = step is not None and step.verdict != "continue"
        fixed, comparison = self._fixed_decision(partial=True)
        if settled:
            assert step is not None
            tasks = {tc.task for tc in comparison.tasks}
            quality = [RuleResult(QUALITY_RULE, name, self._quality_ok(b), self._detail(b)) for name, b in step.streams.items()]
            decision = GateDecision(
                fixed.baseline, fixed.candidate, fixed.rules,
                quality + [r for r in fixed.results if r.rule != QUALITY_RULE],
                # The fixed-n interval's sample-size warnings do not apply to an anytime-valid decision.
                [w for w in fixed.warnings if not any(w.startswith(f"{t}: ") for t in tasks)],
            )  # fmt: skip
        else:
            decision = fixed
            if self.stopped_by:
                decision.warnings.insert(0, f"the sequence stopped before it was settled ({self.stopped_by}); the fixed-n gate decided on the items both models answered")
        return decision, comparison, self._section(settled, comparison)

    def _quality_ok(self, b: sequential.SequenceBounds) -> bool:
        return b.lo is not None and b.lo > -self.settings.margin

    def _detail(self, b: sequential.SequenceBounds) -> str:
        return (
            f"candidate − baseline = {_pts(b.mean)} points, {b.confidence:.0%} confidence sequence (anytime-valid) "
            f"[{_pts(b.lo)}, {_pts(b.hi)}] over {b.n} paired {'items or whole clusters' if self._clustered else 'items'}; "
            f"needs lower bound > {-self.settings.margin * 100:+.1f}"
        )

    @property
    def _clustered(self) -> bool:
        return any(len(u.items) > 1 for u in self.units)

    def _section(self, settled: bool, comparison: Any) -> dict[str, Any]:
        step = self.last
        used = step.items if step is not None else 0
        if not settled and not self.stopped_by:
            used = self.total_items
        saved_items = self.total_items - used
        saved_usd: float | None = 0.0
        per_model = {}
        for side, row in (("baseline", comparison.overall.baseline), ("candidate", comparison.overall.candidate)):
            cost = row.cost_per_task_usd if row is not None else None
            per_model[side] = None if cost is None else round(cost * saved_items, 6)
            saved_usd = None if cost is None or saved_usd is None else saved_usd + cost * saved_items
        return {
            "method": "betting confidence sequence (Waudby-Smith & Ramdas 2024, hedged capital, predictable plug-in bets)",
            "settled": settled,
            "decided_by": "confidence sequence" if settled else "fixed-n gate",
            "stopped_by": self.stopped_by,
            "settings": self.settings.model_dump(),
            "items_total": self.total_items,
            "items_used": used,
            "items_saved_per_model": saved_items,
            "usd_saved_estimate": None if saved_usd is None else round(saved_usd, 6),
            "usd_saved_estimate_per_model": per_model,
            "blocks": [
                {"block": s.block + 1, "items": s.items, "verdict": s.verdict, "waiting_on": s.waiting_on,
                 "streams": {k: {"n": b.n, "mean": b.mean, "lo": b.lo, "hi": b.hi} for k, b in s.streams.items()}}
                for s in self.steps
            ],  # fmt: skip
        }

    def finish(self) -> int:
        """Write gate.md, gate.xml and gate.json, print the verdict; the gate's exit code."""
        from openbench.report.junit import gate_junit
        from openbench.report.markdown import gate_markdown

        folder = self.store.path
        for stale in ("gate.md", "gate.xml", "gate.json"):
            (folder / stale).unlink(missing_ok=True)
        from openbench.parity import parity_warnings

        decision, comparison, section = self.decision()
        manifest = self.store.read_manifest()
        decision.warnings.extend(parity_warnings([e for e in map(manifest.model, self.models) if e is not None]))
        summary = savings_line(section)
        outputs = {
            folder / "gate.md": gate_markdown(decision, comparison) + f"\n**Sequential gate:** {summary}\n",
            folder / "gate.xml": gate_junit(decision),
            folder / "gate.json": json.dumps({**decision.to_dict(), "sequential": section}, indent=2) + "\n",
        }
        for path, text in outputs.items():
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise OpenbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
        print(decision.verdict)
        for r in decision.results:
            print(f"  [{'pass' if r.passed else 'FAIL'}] {r.rule} ({r.task}): {r.detail}")
        for w in decision.warnings:
            print(f"  warning: {w}")
        print(f"  sequential gate: {summary}")
        return decision.exit_code


def savings_line(section: dict[str, Any]) -> str:
    used, total = section["items_used"], section["items_total"]
    if not section["settled"]:
        return f"not settled after {used} of {total} items; the fixed-n gate decided"
    usd = section["usd_saved_estimate"]
    money = "an unknown amount (no price)" if usd is None else f"about ${usd:.4f} (from the $ per item so far)"
    return (
        f"settled after {used} of {total} items; the early stop saved {section['items_saved_per_model']} items per model "
        f"and {money}"
    )


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}"
