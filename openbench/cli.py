"""The ``openbench`` command. Thin: every heavy import happens inside a command body."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from openbench import __version__
from openbench.errors import OpenbenchError

HF_OFFLINE_VARS = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1"}

app = typer.Typer(
    name="openbench",
    help=(
        "Benchmark the models you could run yourself against closed APIs, on your own tasks: "
        "quality with confidence intervals, latency (TTFT, p50/p95), tokens and $ per task.\n\n"
        "Start with:  openbench run suites/quickstart.yaml\n\n"
        "Exit codes: 0 ok, 1 a gate or threshold failed (or the run aborted itself), 2 bad usage or configuration, "
        "130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"openbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    online: bool = typer.Option(
        False, "--online", help="Allow the Hugging Face hub (models and datasets). Default: offline, nothing waits on the network."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    if not online:
        for name, value in HF_OFFLINE_VARS.items():
            os.environ.setdefault(name, value)


def fail(exc: OpenbenchError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


SuiteArg = typer.Argument(..., help="Suite YAML file.", show_default=False)


@app.command()
def validate(suite: Path = SuiteArg) -> None:
    """Check a suite (schema, data files, templates, scorers) without running anything."""
    from openbench.data import load_cases
    from openbench.suite import load_suite

    try:
        loaded = load_suite(suite)
        counts = [len(load_cases(loaded, i)) for i in range(len(loaded.spec.tasks))]
    except OpenbenchError as exc:
        raise fail(exc) from None
    spec = loaded.spec
    typer.echo(f"ok: {suite}: {len(spec.models)} models, {len(spec.tasks)} tasks, {sum(counts)} cases")
    for task, n in zip(spec.tasks, counts):
        typer.echo(f"  task {task.name}: {n} cases, scorers: {', '.join(s.name for s in task.scorers)}")


@app.command()
def schema() -> None:
    """Print the suite file's JSON Schema (for editor autocompletion)."""
    import json

    from openbench.suite import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def run(
    suite: Optional[Path] = typer.Argument(None, help="Suite YAML file (optional with --resume).", show_default=False),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Folder that receives the run folder."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Run only this model id (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N cases per task."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder: only missing or failed items run."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the response cache."),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", min=0, help="Stop sending requests once this many USD are spent."),
    max_error_rate: Optional[float] = typer.Option(
        None, "--max-error-rate", min=0, max=1, help="Abort when a model's error share exceeds this (after 20 items)."
    ),
    volume: Optional[str] = typer.Option(None, "--volume", help="Monthly volume for cost projections, e.g. 1_000_000/month or 50k/day."),
    utilisation: Optional[float] = typer.Option(
        None, "--utilisation", min=0.01, max=1, help="Busy share of rented self-hosted hardware (default 0.5)."
    ),
) -> None:
    """Run a suite: every model on every case, then print a table per task × model.

    Writes OUT/<run-id>/manifest.json, records.jsonl (one line per item, written as it finishes) and summary.csv.
    Paid APIs' answers are cached (see --no-cache); cached rows never count for latency.
    """
    from openbench.session import RunSettings, execute

    settings = RunSettings(
        suite=suite,
        out=out,
        models=model or None,
        limit=limit,
        resume=resume,
        cache=not no_cache,
        max_cost=max_cost,
        max_error_rate=max_error_rate,
        volume=volume,
        utilisation=utilisation,
    )
    try:
        code = execute(settings)
    except OpenbenchError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


@app.command()
def show(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    volume: Optional[str] = typer.Option(None, "--volume", help="Monthly volume for cost projections."),
) -> None:
    """Print a finished (or partial) run's table again."""
    from openbench.session import print_summary
    from openbench.store import RunStore

    try:
        print_summary(RunStore.open(run_dir), volume)
    except OpenbenchError as exc:
        raise fail(exc) from None


def entrypoint() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
