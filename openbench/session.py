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
    price_overrides: dict[str, dict[str, Any]] | None = None
    hardware: dict[str, str] | None = None
    wide: bool = False
    columns: list[str] | None = None


def _open_store(settings: RunSettings) -> tuple[Any, RunStore, dict[str, Any]]:
    from openbench.suite import load_suite

    if settings.resume is not None:
        store = RunStore.open(settings.resume)
        manifest = store.read_manifest()
        suite_path = settings.suite or (Path(manifest["suite"]["path"]) if manifest.get("suite") else None)
        if suite_path is None:
            raise RunError(f"{settings.resume}: the manifest names no suite; pass the suite file too")
        suite = load_suite(suite_path)
        if manifest.get("suite", {}).get("sha256") not in (None, suite.sha256):
            raise RunError(
                f"{suite_path} changed since this run started; resuming would mix results of two suites. "
                "Start a new run instead."
            )
        options = manifest.get("options", {})
        settings.models = settings.models or options.get("models")
        settings.limit = settings.limit or options.get("limit")
        return suite, store, manifest
    if settings.suite is None:
        raise RunError("give a suite file, or --resume RUN_DIR")
    suite = load_suite(settings.suite)
    store = RunStore.create(settings.out, new_run_id(suite.spec.name))
    return suite, store, {}


def execute(settings: RunSettings) -> int:
    from openbench.progress import reporter_for
    from openbench.provenance import environment
    from openbench.runner import Runner, RunOptions

    volume_per_month(settings.volume)  # a bad --volume fails before anything runs
    suite, store, previous = _open_store(settings)
    options = RunOptions(
        model_ids=settings.models,
        limit=settings.limit,
        cache=settings.cache,
        max_error_rate=settings.max_error_rate,
        max_cost_usd=settings.max_cost,
        utilisation=settings.utilisation,
        price_overrides=settings.price_overrides or {},
        hardware_overrides=settings.hardware or {},
    )
    _check_hardware(suite, options.hardware_overrides)
    runner = Runner(suite, store, options, reporter=None)  # reporter set below
    models = runner.models()
    manifest = {
        "run_id": store.path.name,
        "status": "running",
        "openbench_version": __version__,
        "suite": {"name": suite.spec.name, "path": str(suite.path), "sha256": suite.sha256},
        "tasks": [t.name for t in suite.spec.tasks],
        "gate": suite.spec.gate.model_dump() if suite.spec.gate else None,
        "seed": suite.spec.defaults.seed,
        "started_at": previous.get("started_at") or utc_now(),
        "resumed_at": [*previous.get("resumed_at", []), utc_now()] if previous else [],
        "options": {"models": settings.models, "limit": settings.limit, "cache": settings.cache, "max_cost_usd": settings.max_cost},
        "environment": environment(suite.dir),
        "models": previous.get("models") or [{"id": m.id, "provider": m.provider, "model": m.model, "status": "pending"} for m in models],
    }
    from openbench.suite import judge_warnings

    manifest["warnings"] = judge_warnings(suite)
    store.write_manifest(manifest)
    reporter = reporter_for()
    runner.reporter = reporter
    for warning in manifest["warnings"]:
        reporter.note(f"warning: {warning}")
    code = 0
    outcome: list = []
    _sigterm_as_interrupt()
    try:
        with reporter:
            outcome = asyncio.run(runner.run())
        manifest["status"] = "stopped on budget" if runner.budget_hit else "completed"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        code = EXIT_INTERRUPTED
        outcome = runner.results
        for model_run in outcome:
            if model_run.status == "pending":
                model_run.status = "interrupted"
    except OpenbenchError as exc:
        manifest["status"] = f"aborted: {exc}"
        code = exc.exit_code
        outcome = runner.results  # the aborted model's status and counts, and those of the models before it
        print(f"error: {exc}", file=sys.stderr)
    finally:
        store.close()
        manifest["ended_at"] = utc_now()
        manifest["spent_usd"] = round(runner.spent_usd, 6)
        _merge_models(manifest, [r.to_dict() for r in outcome])
        for entry in manifest["models"]:
            if entry.get("status") == "pending":  # never reached: the run stopped before it
                entry["status"], entry["reason"] = "not run", f"the run was {manifest['status']} first"
        if runner.judges:
            manifest["judges"] = [
                {"id": j.spec.id, "calls": j.run.items, "spent_usd": round(j.run.spent_usd, 6), "price": j.run.price}
                for j in runner.judges.values()
            ]
        store.write_manifest(manifest)
    rows = print_summary(store, settings.volume, manifest, settings.wide, settings.columns or suite.spec.columns)
    _count_from_rows(manifest, rows)
    store.write_manifest(manifest)
    if code == EXIT_INTERRUPTED:
        print(f"\ninterrupted: finished items are saved. Resume with:\n  openbench run --resume {store.path}", file=sys.stderr)
    elif runner.budget_hit:
        print(f"\nstopped on budget: ${runner.spent_usd:.4f} spent (--max-cost {settings.max_cost}). "
              f"Finished items are saved; resume with: openbench run --resume {store.path} --max-cost N", file=sys.stderr)
    print(f"\nresults: {store.path}", file=sys.stderr)
    return code


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


def _merge_models(manifest: dict[str, Any], finished: list[dict[str, Any]]) -> None:
    by_id = {m["id"]: m for m in manifest["models"]}
    for entry in finished:
        old = by_id.get(entry["id"], {})
        if old.get("busy_s") and entry.get("busy_s") is not None:
            # A resumed model's busy time adds to what the first session measured.
            for key in ("busy_s", "output_tokens"):
                entry[key] = (entry.get(key) or 0) + (old.get(key) or 0)
        if entry.get("reason") == "nothing left to run" and old:
            entry = {**old, "status": old.get("status", "ok")}
        by_id[entry["id"]] = entry
    manifest["models"] = list(by_id.values())


def _count_from_rows(manifest: dict[str, Any], rows: list[Any]) -> None:
    """Item counts come from the records (the latest per item), so a resumed run never counts twice."""
    from openbench.summary import ALL_TASKS

    overall = {r.model: r for r in rows if r.task == ALL_TASKS}
    for entry in manifest["models"]:
        row = overall.get(entry["id"])
        if row is not None:
            entry["items"], entry["errors"], entry["cached"] = row.items, row.errors, row.cached


def _sigterm_as_interrupt() -> None:
    """SIGTERM (e.g. a CI job being cancelled) ends the run like Ctrl-C: saved, resumable."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: signal.default_int_handler(signal.SIGINT, None))


def print_summary(
    store: RunStore,
    volume: str | None = None,
    manifest: dict[str, Any] | None = None,
    wide: bool = False,
    columns: list[str] | None = None,
) -> list[Any]:
    from openbench.report.csv import write_summary
    from openbench.report.table import render_table
    from openbench.summary import summarise

    manifest = manifest or store.read_manifest()
    per_month = volume_per_month(volume)
    rows = summarise(store.iter_records(), manifest, per_month)
    write_summary(rows, store.path / SUMMARY)
    title = f"{manifest.get('suite', {}).get('name', store.path.name)} ({store.path.name})"
    render_table(rows, title=title, monthly=per_month is not None, wide=wide, columns=columns)
    for m in manifest.get("models", []):
        if m.get("status") not in ("ok", None) or m.get("reason"):
            print(f"  {m['id']}: {m.get('status')}" + (f" ({m['reason']})" if m.get("reason") else ""))
    return rows
