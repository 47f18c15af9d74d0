"""``openbench rescore``: score a run's stored answers again with the suite's current scorers.

No model is asked (a judge scorer excepted: it grades through the same path as in a run,
its answers cached as usual). Each rescored item gets a new record appended to
records.jsonl, which stays append-only; readers count the latest record of an item.
The manifest lists every rescore under ``rescored_at`` and names the suite it used, so
that a later ``run --resume`` continues with that suite.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbench.errors import RunError
from openbench.store import RunStore, utc_now

CONCURRENCY = 8  # items scored at once: blocking scorers run in threads, judges wait on their model


@dataclass(frozen=True)
class RescoreOutcome:
    rescored: int
    no_answer: int  # items whose request failed: nothing to score, kept as they were
    not_in_suite: int  # items whose task or case the suite no longer has, kept as they were
    suite_path: Path


class _AskedCheck:
    """Whether the suite still asks what the stored answers answered: a rescore changes scoring, never questions.

    Records carry the SHA-256 of what was sent; for providers that send the messages as they are, it is
    recomputed from the suite and compared. (Local models' rendered prompts need their tokenizer: not checked.)
    """

    def __init__(self, suite: Any):
        self.suite = suite
        self.providers: dict[str, Any] = {}
        self.changed: list[Any] = []

    def _provider(self, model_id: str) -> Any:
        """The model's provider, not started, when its fingerprint needs nothing loaded; else None."""
        if model_id not in self.providers:
            from openbench import registry
            from openbench.providers.base import Provider

            spec = next((m for m in self.suite.spec.models if m.id == model_id), None)
            cls = registry.resolve("provider", spec.provider) if spec is not None else None
            light = cls is not None and cls.fingerprint is Provider.fingerprint
            self.providers[model_id] = cls(spec, self.suite.dir) if light else None
        return self.providers[model_id]

    def compare(self, record: Any, request: Any) -> None:
        provider = self._provider(record.model) if record.prompt_sha256 is not None else None
        if provider is not None and provider.fingerprint(request) != record.prompt_sha256:
            self.changed.append(record)

    def refuse_changes(self, suite_path: Path, changed_tasks: list[str]) -> None:
        if self.changed or changed_tasks:
            first = self.changed[0] if self.changed else None
            where = (
                f"{len(self.changed)} of the stored items (e.g. task '{first.task}', case '{first.case_id}', "
                f"model '{first.model}')" if first else f"task {', '.join(repr(t) for t in changed_tasks)}"
            )
            raise RunError(
                f"{suite_path} asks {where} differently than when they were answered: its prompts or data changed. "
                "A rescore only changes scoring; start a new run for a suite that asks other questions."
            )


def _changed_tasks(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """Tasks whose prompt or case data differ between the run's manifest fingerprints and the suite's (any model)."""
    changed = []
    for task, old in before.items():
        new = after.get(task)
        if new is None:
            continue
        old_cases, new_cases = old.get("cases") or {}, new.get("cases") or {}
        if old.get("prompt") != new.get("prompt") or any(old_cases[c] != new_cases[c] for c in old_cases.keys() & new_cases.keys()):
            changed.append(task)
    return changed


def rescore(run_dir: Path, suite_path: Path | None = None) -> RescoreOutcome:
    from openbench.compare import suite_fingerprints
    from openbench.data import load_all
    from openbench.manifest import SuiteRef
    from openbench.progress import PlainReporter
    from openbench.runner import Runner, RunOptions, WorkItem, request_for
    from openbench.scorers.base import bind_task
    from openbench.session import print_summary
    from openbench.suite import load_suite

    store = RunStore.open(run_dir)
    manifest = store.read_manifest()
    suite_path = suite_path or (Path(manifest.suite.path) if manifest.suite else None)
    if suite_path is None:
        raise RunError(f"{run_dir}: the manifest names no suite; pass --suite SUITE")
    suite = load_suite(suite_path)
    tasks = {
        task.name: (task, bind_task(task), {case.id: case for case in cases})
        for task, cases in zip(suite.spec.tasks, load_all(suite))
    }
    todo, no_answer, not_in_suite = [], 0, 0
    asked = _AskedCheck(suite)
    for record in store.latest_records().values():
        task, scorers, cases = tasks.get(record.task, (None, None, {}))
        case = cases.get(record.case_id)
        if record.output is None:
            no_answer += 1
        elif case is None:
            not_in_suite += 1
        else:
            request = request_for(suite, task, case)
            asked.compare(record, request)
            todo.append((record, WorkItem(task, scorers, case), request))
    fingerprints = suite_fingerprints(suite)
    asked.refuse_changes(suite_path, _changed_tasks(manifest.fingerprints, fingerprints))

    runner = Runner(suite, store, RunOptions(), PlainReporter())
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(args: tuple[Any, ...]) -> None:
        async with limit:
            store.append(await runner.rescore(*args))

    async def score_all() -> None:
        try:
            await asyncio.gather(*(one(args) for args in todo))
        finally:
            await runner.close()

    try:
        asyncio.run(score_all())
    finally:
        store.close()
    manifest.rescored_at.append(
        {
            "at": utc_now(),
            "suite_path": str(suite.path),
            "suite_sha256": suite.sha256,
            "previous_sha256": manifest.suite.sha256 if manifest.suite else None,
            "items": len(todo),
            "judge_spent_usd": round(runner.spent_usd, 6),
        }
    )
    # The records now follow this suite: `run --resume` continues with it, and compare/gate match on its scorers.
    manifest.suite = SuiteRef(name=suite.spec.name, path=str(suite.path), sha256=suite.sha256)
    manifest.fingerprints = fingerprints
    print_summary(store, None, manifest)  # it also sets the counts from the records
    store.write_manifest(manifest)
    return RescoreOutcome(len(todo), no_answer, not_in_suite, suite.path)
