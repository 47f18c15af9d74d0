"""One ``openbench run``: open or resume a run folder, run the models, write the manifest and summary.

Kept apart from the CLI so that tests and scripts can run a suite in-process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbench import __version__
from openbench.errors import OpenbenchError, RunError
from openbench.manifest import ModelEntry, ProcessInfo, RunManifest, RunSettingsRecord, SuiteRef
from openbench.store import SUMMARY, RunStore, new_run_id, utc_now

EXIT_INTERRUPTED = 130


@dataclass
class RunSettings:
    suite: Path | None
    out: Path = Path("results")
    models: list[str] | None = None
    limit: int | None = None
    resume: Path | None = None
    cache: bool = True
    max_cost: float | None = None
    max_error_rate: float | None = None
    volume: str | None = None
    utilisation: float | None = None
    hardware: dict[str, str] | None = None
    wide: bool = False
    columns: list[str] | None = None
    gate: Any = None  # gaterun.GateOptions: run baseline and candidate as a sequential gate


def _checked_suite(path: Path) -> Any:
    """The suite, with the checks of `validate` (data included), before any request or run folder."""
    from openbench.data import load_all
    from openbench.suite import load_suite

    suite = load_suite(path)
    load_all(suite)
    return suite


def _open_store(settings: RunSettings) -> tuple[Any, RunStore | None, RunManifest | None]:
    """The suite, and for --resume the run's store and manifest (a new run's folder is made later, once checks pass)."""
    if settings.resume is not None:
        store = RunStore.open(settings.resume)
        manifest = store.read_manifest()
        suite_path = settings.suite or (Path(manifest.suite.path) if manifest.suite else None)
        if suite_path is None:
            raise RunError(f"{settings.resume}: the manifest names no suite; pass the suite file too")
        suite = _checked_suite(suite_path)
        other_file = manifest.suite is not None and Path(manifest.suite.path) != suite.path
        if other_file and manifest.suite.sha256 != suite.sha256 and manifest.suite.name != suite.spec.name:
            raise RunError(
                f"{suite_path} is the suite '{suite.spec.name}', but this run is of '{manifest.suite.name}' "
                f"({manifest.suite.path}); resume it with that suite, or start a new run"
            )
        if manifest.suite is not None and manifest.suite.sha256 != suite.sha256:
            raise RunError(
                f"{suite_path} changed since this run started; resuming would mix results of two suites. "
                "Start a new run instead."
            )
        settings.models = settings.models or manifest.options.models
        settings.limit = settings.limit or manifest.options.limit
        return suite, store, manifest
    if settings.suite is None:
        raise RunError("give a suite file, or --resume RUN_DIR")
    return _checked_suite(settings.suite), None, None


def execute(settings: RunSettings) -> int:
    from openbench import collector

    with collector.starting():
        return _execute(settings)


def _execute(settings: RunSettings) -> int:
    from openbench.compare import suite_fingerprints
    from openbench.progress import reporter_for
    from openbench.provenance import environment
    from openbench.runner import Runner, RunOptions
    from openbench.suitecheck import judge_warnings

    volume_per_month(settings.volume)  # a bad --volume fails before anything runs
    if settings.models:  # a model named twice runs once
        settings.models = list(dict.fromkeys(settings.models))
    suite, store, previous = _open_store(settings)
    sequence = _sequential(suite, store, settings)
    options = RunOptions(
        model_ids=settings.models,
        limit=settings.limit,
        cache=settings.cache,
        max_error_rate=settings.max_error_rate,
        max_cost_usd=settings.max_cost,
        spent_before_usd=previous.spent_usd if previous else 0.0,  # --max-cost covers the whole run, resumed or not
        utilisation=settings.utilisation,
        hardware_overrides=settings.hardware or {},
    )
    _check_hardware(suite, options.hardware_overrides)
    isolation = _sandbox_isolation(suite)
    models = [suite.model(m) for m in settings.models] if settings.models else list(suite.spec.models)
    if store is None:  # every check has passed: only now is a run folder made
        store = RunStore.create(settings.out, new_run_id(suite.spec.name))
    runner = Runner(suite, store, options, reporter=None)  # reporter set below
    gate_run = None
    if sequence is not None:
        from openbench.gaterun import SequentialGate

        gate_run = SequentialGate(suite, store, *sequence, settings.limit)
        gate_run.save()
    now = utc_now()
    manifest = RunManifest(
        run_id=store.path.name,
        status="running",
        openbench_version=__version__,
        suite=SuiteRef(name=suite.spec.name, path=str(suite.path), sha256=suite.sha256),
        tasks=[t.name for t in suite.spec.tasks],
        gate=suite.spec.gate,
        fingerprints=suite_fingerprints(suite),  # so a later run can check it asked the same things
        seed=suite.spec.defaults.seed,
        started_at=previous.started_at if previous else now,
        resumed_at=[*previous.resumed_at, now] if previous else [],
        rescored_at=previous.rescored_at if previous else [],
        options=RunSettingsRecord(models=settings.models, limit=settings.limit, cache=settings.cache, max_cost_usd=settings.max_cost),
        environment=environment(suite.dir),
        process=ProcessInfo.current(),
        models=previous.models if previous and previous.models else [ModelEntry(id=m.id, provider=m.provider, model=m.model) for m in models],
        judges=previous.judges if previous else [],
        warnings=judge_warnings(suite),
        sandbox=isolation,
    )
    store.write_manifest(manifest)
    reporter = reporter_for()
    runner.reporter = reporter
    for warning in manifest.warnings:
        reporter.note(f"warning: {warning}")
    code = 0
    sigterm_as_interrupt()
    try:
        with reporter:
            asyncio.run(runner.run() if gate_run is None else gate_run.run(runner))
        manifest.status = "stopped on budget" if runner.budget_hit else "completed"
        if gate_run is not None and gate_run.last is not None and gate_run.last.verdict != "continue":
            manifest.status = "stopped early by the gate"
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        code = EXIT_INTERRUPTED
        for entry in runner.results:
            if entry.status == "pending":
                entry.status = "interrupted"
    except OpenbenchError as exc:
        manifest.status = f"aborted: {exc}"
        code = exc.exit_code
        print(f"error: {exc}", file=sys.stderr)
    finally:
        store.close()
        manifest.ended_at = utc_now()
        manifest.spent_usd = round(runner.spent_usd, 6)  # the budget started from what earlier sessions spent
        # The models that ran, and those before an abort, with their status and counts.
        _merge_models(manifest, runner.results)
        for entry in manifest.models:
            if entry.status == "pending":  # never reached: the run stopped before it
                entry.status, entry.reason = "not run", f"the run was {manifest.status} first"
        if runner.judges:
            manifest.judges = runner.judge_entries()
        store.write_manifest(manifest)
    # Also sets counts and failed/degraded statuses.
    print_summary(store, settings.volume, manifest, settings.wide, settings.columns or suite.spec.columns)
    store.write_manifest(manifest)
    failed = [m.id for m in manifest.models if m.status == "failed"]
    if failed and code == 0:
        print(f"\nfailed: {', '.join(failed)} (see the reasons above); exit code 1", file=sys.stderr)
        code = 1
    if code == EXIT_INTERRUPTED:
        print(f"\ninterrupted: finished items are saved. Resume with:\n  openbench run --resume {store.path}", file=sys.stderr)
    elif runner.budget_hit:
        print(f"\nstopped on budget: ${runner.spent_usd:.4f} spent (--max-cost {settings.max_cost}). "
              f"Finished items are saved; resume with: openbench run --resume {store.path} --max-cost N", file=sys.stderr)
    print(f"\nresults: {store.path}", file=sys.stderr)
    if gate_run is not None and code == 0:
        code = gate_run.finish()
    return code


def _sequential(suite: Any, store: RunStore | None, settings: RunSettings) -> tuple[Any, Any] | None:
    """For ``run --gate`` (or resuming a run that was one): the sequence's settings and the gate rules."""
    if settings.gate is None and store is None:
        return None  # a new run without --gate (its module, numpy included, stays unloaded)
    from openbench.gaterun import prepare, saved_settings

    saved = saved_settings(store)
    if settings.gate is None and saved is None:
        return None
    if saved is None and store is not None:
        raise RunError(f"{store.path} was not a sequential gate run; resume it without --gate, then run `openbench gate`")
    from openbench.gaterun import GateOptions

    sequence = prepare(suite, settings.gate or GateOptions(), saved)
    settings.models = [sequence[0].baseline, sequence[0].candidate]
    return sequence


def _sandbox_isolation(suite: Any) -> str | None:
    """The isolation model-written code will run under, when a scorer of the suite runs such code."""
    from openbench import registry

    if any(getattr(registry.resolve("scorer", s.type), "sandboxed", False) for t in suite.spec.tasks for s in t.scorers):
        from openbench.sandbox import isolation

        return isolation()
    return None


def _check_hardware(suite: Any, overrides: dict[str, str]) -> None:
    for model_id, profile in overrides.items():
        model = suite.model(model_id)
        try:
            suite.spec.hardware_for(model, profile)
        except (KeyError, ValueError) as exc:
            raise OpenbenchError(f"--hardware {model_id}={profile}: {exc.args[0] if exc.args else exc}") from None


def volume_per_month(text: str | None) -> float | None:
    """The --volume option as tasks per month, or one clear error."""
    from openbench.pricing import parse_volume

    if text is None:
        return None
    try:
        return parse_volume(text)
    except ValueError as exc:
        raise OpenbenchError(f"--volume: {exc}") from None


def _merge_models(manifest: RunManifest, finished: list[ModelEntry]) -> None:
    by_id = {m.id: m for m in manifest.models}
    for entry in finished:
        old = by_id.get(entry.id)
        if old is not None and old.busy_s and entry.reason != "nothing left to run":
            # A resumed model's busy time adds to what the first session measured.
            entry.busy_s += old.busy_s
            entry.output_tokens += old.output_tokens
            entry.spent_usd += old.spent_usd
        if entry.reason == "nothing left to run" and old is not None:
            entry = old if old.status != "pending" else old.model_copy(update={"status": "ok"})
        by_id[entry.id] = entry
    manifest.models = list(by_id.values())


def _count_from_rows(manifest: RunManifest, rows: list[Any]) -> None:
    """Item counts come from the records (the latest per item), so a resumed run never counts twice;
    so does a "failed" (every item errored) or "degraded" (too many errors) status."""
    from openbench.summary import ALL_TASKS

    overall = {r.model: r for r in rows if r.task == ALL_TASKS}
    for entry in manifest.models:
        row = overall.get(entry.id)
        if row is not None:
            entry.items, entry.errors, entry.cached = row.items, row.errors, row.cached
            if row.status != entry.status:
                entry.status, entry.reason = row.status, f"{row.errors} of {row.items} items errored"


def sigterm_as_interrupt() -> None:
    """SIGTERM (e.g. a CI job being cancelled) ends the run like Ctrl-C: saved, resumable."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: signal.default_int_handler(signal.SIGINT, None))


def print_summary(
    store: RunStore,
    volume: str | None = None,
    manifest: RunManifest | None = None,
    wide: bool = False,
    columns: list[str] | None = None,
) -> list[Any]:
    from openbench.report.csv import write_summary
    from openbench.report.notes import model_notes
    from openbench.report.table import render_table
    from openbench.summary import summarise

    manifest = manifest or store.read_manifest()
    per_month = volume_per_month(volume)
    rows = summarise(store.iter_records(), manifest, per_month)
    _count_from_rows(manifest, rows)
    write_summary(rows, store.path / SUMMARY)
    title = f"{manifest.suite.name if manifest.suite else store.path.name} ({store.path.name})"
    render_table(rows, title=title, monthly=per_month is not None, wide=wide, columns=columns, notes=model_notes(manifest, rows))
    if manifest.sandbox:
        print(f"  model-written code ran under: {manifest.sandbox} isolation")
    if manifest.effective_status not in ("completed", "running"):
        print(f"  run status: {manifest.effective_status} (the figures cover the items finished so far)")
    for m in manifest.models:
        if m.status not in ("ok", "pending") or m.reason:
            print(f"  {m.id}: {m.status}" + (f" ({m.reason})" if m.reason else ""))
        if m.engine is not None:
            e = m.engine
            load = f"loaded in {e.load_s:.1f} s (not in busy time)" if e.load_s is not None else "never ready"
            print(f"  {m.id}: served by {e.engine} {e.version or ''} on {', '.join(e.accelerators)}; {load}; log: {e.log}")
    return rows
