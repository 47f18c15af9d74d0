"""Paired comparison of two models on the same items, within a run or across two runs.

Items are matched by (task, case id). An item that errored on a side scores 0 and
fails there, like a wrong answer; items that neither errored nor got a score are
left out. Cluster labels come from the candidate's records (the current suite):
items without one are their own cluster. Across two runs, the two suites must
have sent the same prompts, data and scorers (see ``suite_differences``).
"""

from __future__ import annotations

import dataclasses
import functools

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openbench.errors import OpenbenchError, RunError
from openbench.manifest import RunManifest
from openbench.records import ItemResult
from openbench.store import RunStore
from openbench.summary import ALL_TASKS, SummaryRow, summarise

@dataclass(frozen=True)
class Side:
    """One model of a comparison: where its records come from."""

    store: RunStore
    model: str

    @property
    def label(self) -> str:
        return self.model

    @functools.cached_property
    def manifest(self) -> RunManifest:
        """The run's manifest, read once for everything the comparison asks of it."""
        return self.store.read_manifest()


def _outcome(r: ItemResult) -> str:
    return "error" if r.error is not None else ("pass" if r.passed else "fail")


@dataclass(frozen=True)
class Flip:
    task: str
    case_id: str
    direction: str  # "pass→fail", "pass→error", "fail→pass", "error→pass"
    baseline_output: str | None
    candidate_output: str | None

    @property
    def worse(self) -> bool:
        return self.direction.startswith("pass→")


@dataclass(frozen=True)
class TaskComparison:
    task: str
    diff: Any  # stats.PairedDiff of the scores, an errored item scoring 0
    baseline: SummaryRow | None
    candidate: SummaryRow | None
    baseline_errors: int
    candidate_errors: int
    flips: list[Flip] = field(default_factory=list)
    error_diff: Any = None  # stats.PairedDiff of the error indicators (candidate − baseline error rate)

    @property
    def latency_p50_delta_s(self) -> float | None:
        return _delta(self.baseline, self.candidate, "latency_p50_s")

    @property
    def latency_p95_delta_s(self) -> float | None:
        return _delta(self.baseline, self.candidate, "latency_p95_s")

    @property
    def cost_per_task_delta_usd(self) -> float | None:
        return _delta(self.baseline, self.candidate, "cost_per_task_usd")


@dataclass(frozen=True)
class Comparison:
    baseline: str
    candidate: str
    confidence: float
    tasks: list[TaskComparison]  # per task, then the overall one (task == ALL_TASKS)
    warnings: list[str] = field(default_factory=list)

    @property
    def overall(self) -> TaskComparison:
        return self.tasks[-1]


def _delta(base: SummaryRow | None, cand: SummaryRow | None, name: str) -> float | None:
    if base is None or cand is None:
        return None
    a, b = getattr(base, name), getattr(cand, name)
    return None if a is None or b is None else b - a


def _records(side: Side) -> dict[tuple[str, str], ItemResult]:
    samples: dict[tuple[str, str], list[ItemResult]] = {}
    for r in side.store.iter_records():
        if r.model == side.model:
            samples.setdefault((r.task, r.case_id), []).append(r)
    found = {key: _item_mean(rs) for key, rs in samples.items()}
    if not found:
        models = sorted({r.model for r in side.store.iter_records()})
        from openbench.registry import did_you_mean

        raise RunError(
            f"no records for model '{side.model}' in {side.store.path}{did_you_mean(side.model, models)}. "
            f"Models there: {', '.join(models) or 'none'}"
        )
    return found


def _item_mean(samples: list[ItemResult]) -> ItemResult:
    """An item sampled more than once (``repeats``) compares as one unit: its samples' mean score (errors 0)."""
    if len(samples) == 1:
        return samples[0]
    graded = [_graded(r) for r in samples]
    if any(g is None for g in graded):
        return samples[-1]  # a sample never scored: nothing to average
    mean = sum(graded) / len(graded)
    passes = sum(1 for r in samples if r.error is None and r.passed) / len(samples)
    return dataclasses.replace(samples[0], sample=0, score=mean, passed=passes >= 0.5, error=None, error_kind=None)


def _graded(r: ItemResult) -> float | None:
    """The score the comparison uses: an error is a 0; an item never scored has none."""
    return 0.0 if r.error is not None else r.score


def cluster_ids(records: list[ItemResult], by_case: bool = False) -> list[int] | None:
    """One cluster id per record, or None when no record carries a label and ``by_case`` is off.

    Items sharing a (task, label) are one cluster; with ``by_case`` so are items sharing a
    case id across tasks, and the clusters are the connected groups of both links.
    An item with neither link is its own cluster.
    """
    labels = [r.cluster for r in records]
    if not by_case and all(label is None for label in labels):
        return None
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple, int] = {}
    for i, (r, label) in enumerate(zip(records, labels)):
        keys = ([("label", r.task, label)] if label is not None else []) + ([("case", r.case_id)] if by_case else [])
        for key in keys:
            parent[root(i)] = root(first.setdefault(key, i))
    return [root(i) for i in range(len(records))]


# ---------------------------------------------------------------------------
# Do the two runs' suites ask the same things?


def _digest(value: Any, size: int = 16) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:size]


def suite_fingerprints(suite: Any) -> dict[str, dict[str, Any]]:
    """Per task, a short hash of its prompt (system + template) and of its scorers (with the
    pass threshold), and one per case of its data. Stored in the manifest, so that a later run
    can be matched on the cases both ran, whatever --limit each used."""
    from openbench.data import load_cases

    out: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(suite.spec.tasks):
        try:
            cases: dict[str, str] | None = {c.id: _digest(c.fields, 8) for c in load_cases(suite, i)}
        except OpenbenchError:
            cases = None
        out[task.name] = {
            "prompt": _digest([task.system or suite.spec.defaults.system, task.prompt]),
            "scorers": _digest([[s.model_dump() for s in task.scorers], task.pass_threshold]),
            "cases": cases,
        }
    return out


def _task_differences(task: str, a: dict[str, Any], b: dict[str, Any], case_ids: set[str]) -> str | None:
    parts = [p for p in ("prompt", "scorers") if a.get(p) != b.get(p)]
    ca, cb = a.get("cases"), b.get("cases")
    if ca is not None and cb is not None:
        changed = sum(ca.get(c) != cb.get(c) for c in case_ids if c in ca or c in cb)
        if changed:
            parts.append(f"data ({changed} of the {len(case_ids)} compared cases)")
    return f"task '{task}': {', '.join(parts)} differ" if parts else None


def _fingerprints_of(manifest: RunManifest) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """A run's task fingerprints: from its manifest, else from its suite file when that file is
    unchanged since the run. The second value says where they came from, or why there are none."""
    if manifest.fingerprints:
        return manifest.fingerprints, "manifest"
    info = manifest.suite
    path = Path(info.path) if info else None
    if path is None or not path.is_file():
        return None, f"its suite file {path} is gone" if path else "its manifest names no suite"
    from openbench.suite import load_suite

    try:
        suite = load_suite(path)
    except OpenbenchError:
        return None, f"its suite file {path} no longer loads"
    if info is not None and info.sha256 != suite.sha256:
        return None, f"its suite file {path} changed since that run"
    return suite_fingerprints(suite), "suite file"


def _scorer_names(records: dict[tuple[str, str], ItemResult]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for (task, _), r in records.items():
        names.setdefault(task, set()).update(r.scores or {})
    return names


def suite_differences(
    base_manifest: RunManifest,
    cand_manifest: RunManifest,
    base: dict[tuple[str, str], ItemResult],
    cand: dict[tuple[str, str], ItemResult],
) -> tuple[list[str], list[str]]:
    """What differs between the two runs' suites on the tasks they share, and notes on what
    could not be checked. Falls back to the records (the scorers they ran) when a suite's
    fingerprints cannot be had."""
    sha = [m.suite.sha256 if m.suite else None for m in (base_manifest, cand_manifest)]
    if sha[0] == sha[1] and not (base_manifest.fingerprints or cand_manifest.fingerprints):
        return [], []
    tasks = sorted({t for t, _ in base} & {t for t, _ in cand})
    (fb, why_b), (fc, why_c) = _fingerprints_of(base_manifest), _fingerprints_of(cand_manifest)
    diffs: list[str] = []
    if fb is not None and fc is not None:
        for task in tasks:
            if task in fb and task in fc:
                ids = {c for t, c in base if t == task} & {c for t, c in cand if t == task}
                found = _task_differences(task, fb[task], fc[task], ids)
                diffs += [found] if found else []
        return diffs, []
    names_b, names_c = _scorer_names(base), _scorer_names(cand)
    for task in tasks:
        if names_b.get(task) != names_c.get(task):
            diffs.append(
                f"task '{task}': scorers differ ({', '.join(sorted(names_b.get(task, ()))) or 'none'} "
                f"against {', '.join(sorted(names_c.get(task, ()))) or 'none'})"
            )
    why = "; ".join(f"the {side} run: {w}" for side, f, w in (("baseline", fb, why_b), ("candidate", fc, why_c)) if f is None)
    return diffs, [f"prompts and data could not be checked against the baseline run ({why}); only the scorers were"]


# ---------------------------------------------------------------------------


def compare(
    baseline: Side,
    candidate: Side,
    confidence: float = 0.95,
    allow_partial: bool = False,
    allow_suite_change: bool = False,
    cluster_by_case: bool = False,
) -> Comparison:
    from openbench import stats

    base, cand = _records(baseline), _records(candidate)
    warnings: list[str] = []
    only_base, only_cand = set(base) - set(cand), set(cand) - set(base)
    if only_base or only_cand:
        counts = f"{len(only_base)} only for {baseline.label}, {len(only_cand)} only for {candidate.label}"
        if not allow_partial:
            raise RunError(
                f"the two sides do not cover the same items: {counts} (different suites, limits or an unfinished run). "
                "Use --allow-partial to compare the common items."
            )
        warnings.append(f"--allow-partial: compared only the {len(set(base) & set(cand))} common items; left out {counts}")
    base_manifest, cand_manifest = baseline.manifest, candidate.manifest
    if baseline.store.path.resolve() != candidate.store.path.resolve():
        diffs, notes = suite_differences(base_manifest, cand_manifest, base, cand)
        warnings += notes
        if diffs and not allow_suite_change:
            raise RunError(
                f"the baseline run {baseline.store.path} used a different suite: {'; '.join(diffs)}. "
                "Paired items would not be the same questions judged the same way. Run the baseline on this suite, "
                "or pass --allow-suite-change to compare anyway."
            )
        if diffs:
            warnings.append(f"--allow-suite-change: the suites differ ({'; '.join(diffs)}); compared anyway")
    rows_b = {r.task: r for r in summarise(base.values(), base_manifest, confidence=confidence) if r.model == baseline.model}
    rows_c = {r.task: r for r in summarise(cand.values(), cand_manifest, confidence=confidence) if r.model == candidate.model}
    common = sorted(set(base) & set(cand))
    task_order = list(dict.fromkeys(t for t, _ in common))
    results = []
    for task in [*task_order, ALL_TASKS]:
        keys = [k for k in common if task in (ALL_TASKS, k[0])]
        pairs = [(base[k], cand[k]) for k in keys if _graded(base[k]) is not None and _graded(cand[k]) is not None]
        clusters = cluster_ids([c for _, c in pairs], cluster_by_case)
        diff = stats.paired_diff(
            [_graded(c) for _, c in pairs], [_graded(b) for b, _ in pairs], clusters=clusters, confidence=confidence
        )
        error_diff = stats.paired_diff(
            [float(c.error is not None) for _, c in pairs],
            [float(b.error is not None) for b, _ in pairs],
            clusters=clusters,
            confidence=confidence,
        )
        flips = [
            Flip(b.task, b.case_id, f"{_outcome(b)}→{_outcome(c)}", b.output, c.output)
            for b, c in pairs
            if (_outcome(b) == "pass") != (_outcome(c) == "pass")
        ]
        results.append(
            TaskComparison(
                task=task,
                diff=diff,
                baseline=rows_b.get(task),
                candidate=rows_c.get(task),
                baseline_errors=sum(base[k].error is not None for k in keys),
                candidate_errors=sum(cand[k].error is not None for k in keys),
                flips=flips,
                error_diff=error_diff,
            )
        )
    return Comparison(baseline.label, candidate.label, confidence, results, warnings)
