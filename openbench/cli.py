"""The ``openbench`` command. Thin: every heavy import happens inside a command body."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from openbench import __version__
from openbench.errors import OpenbenchError

HF_OFFLINE_VARS = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1"}

class _Commands(typer.core.TyperGroup):
    """Lists commands in the order a new user needs them."""

    ORDER = ("run", "estimate", "validate", "show", "compare", "gate", "cost", "sweep", "report", "rescore", "schema")

    def list_commands(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else len(self.ORDER))


app = typer.Typer(
    cls=_Commands,
    name="openbench",
    help=(
        "Benchmark the models you could run yourself against closed APIs, on your own tasks: "
        "quality with confidence intervals, latency (TTFT, p50/p95), tokens and $ per task.\n\n"
        "Start with:  openbench run suites/quickstart.yaml\n\n"
        "Exit codes: 0 ok, 1 a gate failed or a model of the run failed (every item errored, it could not start, or "
        "--max-error-rate stopped it; a model skipped for a missing API key does not count), 2 bad usage or configuration, "
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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show libraries' progress bars and warnings too."),
) -> None:
    from openbench.quiet import silence_libraries

    if not online:
        for name, value in HF_OFFLINE_VARS.items():
            os.environ.setdefault(name, value)
    if not verbose:
        silence_libraries()


def fail(exc: OpenbenchError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _open_run(run_dir: Path, volume: Optional[str] = None):
    """A run folder, its manifest, and the monthly volume (parsed), or one clear error."""
    from openbench.session import volume_per_month
    from openbench.store import RunStore

    try:
        store = RunStore.open(run_dir)
        manifest = store.read_manifest()
        per_month = volume_per_month(volume)
    except OpenbenchError as exc:
        raise fail(exc) from None
    return store, manifest, per_month


def _hardware_options(values: Optional[List[str]]) -> dict[str, str]:
    """--hardware ID=PROFILE[@USD_PER_HOUR], repeatable."""
    out = {}
    for value in values or []:
        model_id, sep, profile = value.partition("=")
        if not sep or not model_id.strip() or not profile.strip():
            raise fail(OpenbenchError(f"--hardware expects MODEL_ID=PROFILE[@USD_PER_HOUR], e.g. qwen=h100@2.40; got '{value}'"))
        out[model_id.strip()] = profile.strip()
    return out


HardwareOpt = typer.Option(
    None,
    "--hardware",
    help="Self-hosted hardware for a model's cost: MODEL_ID=PROFILE[@USD_PER_HOUR] (e.g. qwen=h100@2.40; repeatable). "
    "Profiles: cpu-2core, l4, a100-80gb, h100, or the suite's.",
)


RunDirArg = typer.Argument(..., help="A run folder (results/<run-id>).", show_default=False)
VolumeOpt = typer.Option(None, "--volume", help="Monthly volume for cost projections, e.g. 1_000_000/month or 50k/day.")
SuiteArg = typer.Argument(..., help="Suite YAML file.", show_default=False)
WideOpt = typer.Option(False, "--wide", help="Show every column of the table, however wide the terminal.")
ColumnsOpt = typer.Option(
    None, "--columns", help="The table's columns, in order, e.g. task,model,quality,p95,$/task (see README, 'The run table')."
)


def _columns(value: Optional[str]) -> Optional[list[str]]:
    """--columns a,b,c as a list, checked (exit 2 on an unknown name)."""
    from openbench.report.table import column_error

    if value is None:
        return None
    keys = [key.strip() for key in value.split(",") if key.strip()]
    problem = column_error(keys)
    if problem:
        raise fail(OpenbenchError(f"--columns: {problem}"))
    return keys


@app.command()
def validate(suite: Path = SuiteArg) -> None:
    """Check a suite without running anything: what `run` checks before its first request.

    Schema and duplicate keys, templates, scorers and their parameters (regexes compile, python scorers import
    and fit), judges, data files and dataset splits, and every case field the suite reads (id_field, a model's field).
    """
    from openbench.data import load_all
    from openbench.suite import load_suite

    try:
        loaded = load_suite(suite)
        counts = [len(cases) for cases in load_all(loaded)]
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
    hardware: Optional[List[str]] = HardwareOpt,
    wide: bool = WideOpt,
    columns: Optional[str] = ColumnsOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show libraries' progress bars and warnings too."),
    gate: bool = typer.Option(
        False, "--gate", help="Sequential gate: run baseline and candidate block by block and stop once the gate is settled."
    ),
    gate_block: Optional[int] = typer.Option(None, "--gate-block", min=1, help="Items per block of --gate (default 20)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="--gate: baseline model id (default: the suite's gate block)."),
    candidate: Optional[str] = typer.Option(None, "--candidate", "-c", help="--gate: candidate model id."),
    margin: Optional[float] = typer.Option(None, min=0.0001, max=1, help="--gate: largest acceptable quality drop (0.02 = 2 points)."),
    confidence: Optional[float] = typer.Option(None, min=0.5, max=0.999, help="--gate: confidence level (default 0.95)."),
) -> None:
    """Run a suite: every model on every case, then print a table per task × model.

    Writes OUT/<run-id>/manifest.json, records.jsonl (one line per item, written as it finishes) and summary.csv.
    An errored item counts as a failure (score 0). A model with more than 5% errored items is "degraded"; one whose
    items all errored is "failed", and the run then exits 1.
    Paid APIs' answers are cached (see --no-cache); cached rows never count for latency.

    \b
    Examples:
      openbench run suites/quickstart.yaml
      openbench run my-suite.yaml --model gpt-4o-mini --limit 20      # a cheap first look
      openbench run my-suite.yaml --max-cost 5 --volume 1_000_000/month
      openbench run --resume results/20261125-101500-my-suite          # after Ctrl-C or a crash
      openbench run my-suite.yaml --gate -b gpt-4o-mini -c qwen-7b --margin 0.02   # stop once settled

    With --gate, exit codes are those of `openbench gate` (0 pass, 1 fail) and gate.md/.xml/.json are written.
    """
    from openbench.quiet import restore_libraries
    from openbench.session import RunSettings, execute

    if verbose:
        restore_libraries()
    sequential = None
    if gate or any(v is not None for v in (gate_block, baseline, candidate, margin, confidence)):
        if not gate and resume is None:
            raise fail(OpenbenchError("--gate-block, --baseline, --candidate, --margin and --confidence go with --gate"))
        from openbench.gaterun import GateOptions

        sequential = GateOptions(baseline=baseline, candidate=candidate, margin=margin, confidence=confidence, block=gate_block)

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
        hardware=_hardware_options(hardware),
        wide=wide,
        columns=_columns(columns),
        gate=sequential,
    )
    try:
        code = execute(settings)
    except OpenbenchError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


@app.command()
def rescore(
    run_dir: Path = RunDirArg,
    suite: Optional[Path] = typer.Option(
        None, "--suite", "-s", help="The suite whose scorers to use (default: the one the run names in its manifest)."
    ),
) -> None:
    """Score a run's stored answers again with the suite's current scorers, asking no model (judges excepted).

    For a scorer that was wrong: fix it in the suite, then rescore; nobody pays for the answers twice. New records
    are appended (the latest record of an item counts) and the manifest lists the rescore under rescored_at. The run
    then belongs to the suite used here (its sha256 goes into the manifest), so `run --resume` accepts it.
    The suite must still ask the same questions (change scorers, weights, labels or pass_threshold, not prompts or
    data): a stored answer whose prompt fingerprint no longer matches is refused.

    \b
    Examples:
      openbench rescore results/20261125-101500-my-suite
      openbench rescore results/20261125-101500-my-suite --suite my-suite-fixed.yaml
    """
    from openbench.rescore import rescore as run_rescore

    try:
        outcome = run_rescore(run_dir, suite)
    except OpenbenchError as exc:
        raise fail(exc) from None
    kept = [f"{n} {why}" for n, why in ((outcome.no_answer, "without an answer"), (outcome.not_in_suite, "not in the suite")) if n]
    typer.echo(
        f"rescored {outcome.rescored} items with {outcome.suite_path}" + (f"; kept as they were: {', '.join(kept)}" if kept else ""),
        err=True,
    )


@app.command()
def show(
    run_dir: Path = RunDirArg, volume: Optional[str] = VolumeOpt, wide: bool = WideOpt, columns: Optional[str] = ColumnsOpt
) -> None:
    """Print a finished (or partial) run's table again."""
    from openbench.session import print_summary

    chosen = _columns(columns)
    store, manifest, _ = _open_run(run_dir, volume)
    try:
        print_summary(store, volume, manifest, wide, chosen)
    except OpenbenchError as exc:
        raise fail(exc) from None


def entrypoint() -> None:
    from openbench.collector import exiting

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        exiting()


def _parity(base: Any, cand: Any) -> list[str]:
    """Prompt-parity warnings for the two sides of a comparison (what one model saw and the other did not)."""
    from openbench.parity import parity_warnings

    entries = [side.manifest.model(side.model) for side in (base, cand)]
    return parity_warnings([e for e in entries if e is not None]) if None not in entries else []


AllowPartialOpt = typer.Option(
    False, "--allow-partial", help="Compare the common items when the sides cover different items (always warns)."
)
AllowSuiteChangeOpt = typer.Option(
    False, "--allow-suite-change", help="With --baseline-run: compare even though the suites' prompts, data or scorers differ."
)
ClusterByCaseOpt = typer.Option(
    False, "--cluster-by-case", help="Treat the same case id across tasks as one cluster of related items."
)


def _sides(run_dir: Path, baseline: Optional[str], candidate: Optional[str], baseline_run: Optional[Path]):
    from openbench.compare import Side
    from openbench.errors import RunError
    from openbench.store import RunStore

    cand_store = RunStore.open(run_dir)
    base_store = RunStore.open(baseline_run) if baseline_run else cand_store
    gate = cand_store.read_manifest().gate
    baseline = baseline or (gate.baseline if gate else None)
    candidate = candidate or (gate.candidate if gate else None)
    if baseline is None and baseline_run is not None:
        models = [m.id for m in base_store.read_manifest().models if m.status == "ok"]
        baseline = models[0] if len(models) == 1 else None
    if not baseline or not candidate:
        raise RunError("name the two models: --baseline ID --candidate ID (or set them in the suite's gate: block)")
    return Side(base_store, baseline), Side(cand_store, candidate), gate


@app.command()
def compare(
    run_dir: Path = typer.Argument(..., help="Run folder holding the candidate (and the baseline, unless --baseline-run)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="Baseline model id."),
    candidate: Optional[str] = typer.Option(None, "--candidate", "-c", help="Candidate model id."),
    baseline_run: Optional[Path] = typer.Option(None, "--baseline-run", help="A stored run holding the baseline."),
    confidence: float = typer.Option(0.95, min=0.8, max=0.999, help="Confidence level of the intervals."),
    allow_partial: bool = AllowPartialOpt,
    allow_suite_change: bool = AllowSuiteChangeOpt,
    cluster_by_case: bool = ClusterByCaseOpt,
    flips: int = typer.Option(10, help="How many changed items to show."),
) -> None:
    """Paired comparison of two models on the same items: quality difference with CI, MDE, latency, cost, flips."""
    from openbench.compare import compare as run_compare
    from openbench.report.compare import render_comparison

    try:
        base, cand, _ = _sides(run_dir, baseline, candidate, baseline_run)
        result = run_compare(base, cand, confidence, allow_partial, allow_suite_change, cluster_by_case)
    except OpenbenchError as exc:
        raise fail(exc) from None
    render_comparison(result, max_flips=flips)
    for warning in _parity(base, cand):
        typer.echo(f"warning: {warning}")


@app.command()
def gate(
    run_dir: Path = typer.Argument(..., help="Run folder holding the candidate (and the baseline, unless --baseline-run)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="Baseline model id."),
    candidate: Optional[str] = typer.Option(None, "--candidate", "-c", help="Candidate model id."),
    baseline_run: Optional[Path] = typer.Option(None, "--baseline-run", help="A stored run holding the baseline."),
    margin: Optional[float] = typer.Option(
        None, min=0.0001, max=1, help="Largest acceptable quality drop, as a fraction (0.02 = 2 points); above 0."
    ),
    confidence: Optional[float] = typer.Option(
        None, min=0.8, max=0.999, help="Two-sided confidence level (default 0.95: a one-sided test at α = 2.5%)."
    ),
    max_error_increase: Optional[float] = typer.Option(
        None, "--max-error-increase", min=0, max=1,
        help="Largest acceptable rise in the error rate per task, as a fraction (default 0.02): when the candidate errors "
        "more often, the upper bound of the increase must stay within it.",
    ),
    max_p95_latency: Optional[float] = typer.Option(None, "--max-p95-latency", help="Candidate E2E p95 limit, seconds."),
    max_cost_per_task: Optional[float] = typer.Option(None, "--max-cost-per-task", help="Candidate $ per task limit."),
    min_pass_rate: Optional[float] = typer.Option(None, "--min-pass-rate", min=0, max=1, help="Candidate pass-rate floor."),
    require_cheaper: bool = typer.Option(False, "--require-cheaper", help="Candidate must cost less per task than the baseline."),
    overall_only: bool = typer.Option(False, "--overall-only", help="Apply the quality rule overall only, not per task."),
    allow_partial: bool = AllowPartialOpt,
    allow_suite_change: bool = AllowSuiteChangeOpt,
    cluster_by_case: bool = ClusterByCaseOpt,
    allow_corrupt: bool = typer.Option(
        False, "--allow-corrupt", help="Decide even when records.jsonl has unreadable lines (they are left out)."
    ),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the PR-comment Markdown here (default RUN/gate.md)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (default RUN/gate.xml)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the decision as JSON here (default RUN/gate.json)."),
) -> None:
    """Decide a model switch: exit 0 if the candidate is not worse than the baseline by more than --margin
    (lower 95% bound of candidate − baseline above −margin, an errored item scoring 0), its error rate rose by
    no more than --max-error-increase, and every latency/cost rule holds; 1 if not; 2 on bad usage.
    Fewer than 10 paired items (or 10 clusters) per task never pass.

    Rules can also live in the suite's gate: block; options given here win.

    \b
    Examples:
      openbench gate results/RUN --baseline gpt-4o-mini --candidate qwen-7b --margin 0.02
      openbench gate results/RUN --baseline-run baselines/main -b gpt-4o-mini -c qwen-7b --max-p95-latency 2
    """
    import json

    from openbench.compare import compare as run_compare
    from openbench.gate import GateRules, decide
    from openbench.report.junit import gate_junit
    from openbench.report.markdown import gate_markdown

    try:
        base, cand, suite_gate = _sides(run_dir, baseline, candidate, baseline_run)
    except OpenbenchError as exc:
        raise fail(exc) from None
    for stale in ("gate.md", "gate.xml", "gate.json"):  # an old verdict must not outlive a failed gate call
        (cand.store.path / stale).unlink(missing_ok=True)
    try:
        given = {
            "margin": margin,
            "confidence": confidence,
            "max_p95_latency_s": max_p95_latency,
            "max_cost_per_task_usd": max_cost_per_task,
            "min_pass_rate": min_pass_rate,
            "max_error_increase": max_error_increase,
        }
        known = {k: v for k, v in (suite_gate.model_dump() if suite_gate else {}).items() if k in GateRules.__dataclass_fields__ and v is not None}
        rules = GateRules(**{**known, **{k: v for k, v in given.items() if v is not None}})
        if require_cheaper:
            rules = GateRules(**{**rules.__dict__, "require_cheaper": True})
        if overall_only:
            rules = GateRules(**{**rules.__dict__, "per_task": False})
        if not allow_corrupt:
            _refuse_corrupt(base.store, cand.store)
        comparison = run_compare(base, cand, rules.confidence, allow_partial, allow_suite_change, cluster_by_case)
    except OpenbenchError as exc:
        raise fail(exc) from None
    decision = decide(comparison, rules)
    decision.warnings.extend(_parity(base, cand))
    folder = cand.store.path
    outputs = {
        markdown or folder / "gate.md": gate_markdown(decision, comparison),
        junit or folder / "gate.xml": gate_junit(decision),
        json_out or folder / "gate.json": json.dumps(decision.to_dict(), indent=2) + "\n",
    }
    _write_all(outputs)
    typer.echo(decision.verdict)
    for r in decision.results:
        typer.echo(f"  [{'pass' if r.passed else 'FAIL'}] {r.rule} ({r.task}): {r.detail}")
    for w in decision.warnings:
        typer.echo(f"  warning: {w}")
    raise typer.Exit(decision.exit_code)


def _refuse_corrupt(*stores) -> None:  # noqa: ANN002 - RunStore, imported lazily
    """A gate decides on every record or not at all: a corrupt line could hide a failure."""
    from openbench.errors import RunError

    for store in dict.fromkeys(stores):
        corrupt = store.health().corrupt
        if corrupt:
            raise RunError(
                f"{store.path / 'records.jsonl'} has {len(corrupt)} unreadable line{'s' * (len(corrupt) > 1)} "
                f"(first: line {corrupt[0].line}, {corrupt[0].problem}); the gate will not decide on a partial record. "
                "Repair or re-run those items, or pass --allow-corrupt to decide without them."
            )


def _write_all(outputs: dict[Path, str]) -> None:
    """Write report files (parent folders created), or fail with exit 2 before any verdict is printed."""
    for path, text in outputs.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(OpenbenchError(f"cannot write {path}: {exc.strerror or exc}")) from None


@app.command()
def estimate(
    suite: Path = SuiteArg,
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Only this model id (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N cases per task."),
    output_ratio: float = typer.Option(1.0, "--output-ratio", min=0, max=1, help="Projected output = max_tokens × this."),
) -> None:
    """Dry run: projected tokens and $ per model, without calling any API (no keys needed)."""
    from rich.table import Table

    from openbench.estimate import estimate as run_estimate
    from openbench.estimate import suite_requests
    from openbench.report.table import console_for, fmt_usd, table_box
    from openbench.suite import load_suite

    try:
        loaded = load_suite(suite)
        models = [loaded.model(m) for m in model] if model else list(loaded.spec.models)
        requests = suite_requests(loaded, limit)
        rows = run_estimate(loaded, requests, models, output_ratio)
    except OpenbenchError as exc:
        raise fail(exc) from None
    table = Table(title=f"Estimate for {loaded.spec.name}: {len(requests)} requests per model", box=table_box())
    for name in ("model", "input tokens", "output tokens (max)" if output_ratio == 1 else "output tokens", "$ projected", "token count"):
        table.add_column(name)
    total = 0.0
    unknown = False
    for r in rows:
        table.add_row(r.model, f"{r.input_tokens:,}", f"{r.output_tokens:,}", fmt_usd(r.cost_usd) if r.note is None else "-", r.method)
        total += r.cost_usd or 0
        unknown |= r.cost_usd is None and r.note is None
    console_for(width=120).print(table)
    if any(r.note is None for r in rows):
        typer.echo(f"total for priced API models: {fmt_usd(total)}" + (" (some prices unknown)" if unknown else ""))
    for r in rows:
        if r.note:
            typer.echo(f"  {r.model}: {r.note}")


@app.command()
def cost(
    run_dir: Path = RunDirArg,
    volume: Optional[str] = VolumeOpt,
    hardware: Optional[List[str]] = HardwareOpt,
    utilisation: Optional[float] = typer.Option(None, "--utilisation", min=0.01, max=1, help="Busy share of rented hardware."),
    sweep_dir: Optional[Path] = typer.Option(None, "--sweep", help="A sweep folder: price its model at the measured operating point, not an assumed utilisation."),
) -> None:
    """$ per task for every model of a run, and the monthly volume above which self-hosting beats each API.

    --hardware re-prices a self-hosted model on other hardware at the throughput measured in this run
    (so measure on the hardware you price).
    """
    from openbench import pricing
    from openbench.report.cost import render_cost
    from openbench.summary import summarise

    from openbench.registry import did_you_mean

    store, manifest, per_month = _open_run(run_dir, volume)
    chosen = _hardware_options(hardware)
    ids = [m.id for m in manifest.models]
    for name in sorted(set(chosen) - set(ids)):
        raise fail(OpenbenchError(f"--hardware: no model '{name}' in this run{did_you_mean(name, ids)}; models: {', '.join(ids)}"))
    for entry in manifest.models:
        if entry.id in chosen:
            try:
                entry.hardware_profile = pricing.hardware_from_cli(chosen[entry.id])
            except (KeyError, ValueError) as exc:
                raise fail(OpenbenchError(f"--hardware {entry.id}: {exc.args[0] if exc.args else exc}")) from None
        if utilisation and entry.hardware_profile:
            entry.utilisation = utilisation
    rows = summarise(store.iter_records(), manifest, per_month)
    render_cost(rows, manifest, per_month)
    if sweep_dir is not None:
        from openbench.report.sweep import render_against_apis
        from openbench.sweepresult import SweepResult

        try:
            render_against_apis(SweepResult.read(sweep_dir), rows)
        except OpenbenchError as exc:
            raise fail(exc) from None


@app.command()
def sweep(
    suite: Path = SuiteArg,
    model: str = typer.Option(..., "--model", "-m", help="The self-hosted model to load (openai-compatible, with or without launch:, or hf)."),
    concurrency: Optional[str] = typer.Option(None, "--concurrency", "-c", help="Levels, e.g. 1,2,4,8,16: requests in flight (a server) or the batch size (hf). Default: doubling until the target breaks, at most 64."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Levels as arrival rates in requests/s, e.g. 0.5,1,2,4: an open loop with Poisson arrivals (servers only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the items' order and of the Poisson arrivals under --rate."),
    requests_per_level: int = typer.Option(64, "--requests-per-level", "-n", min=1, help="Measured requests per level (the suite's items, cycled)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Requests sent before each level's clock starts (default: the level's concurrency; under --rate, one second's arrivals)."),
    slo_p95: Optional[float] = typer.Option(None, "--slo-p95", min=0, help="Latency target: E2E p95 in seconds."),
    slo_ttft_p95: Optional[float] = typer.Option(None, "--slo-ttft-p95", min=0, help="Latency target: TTFT p95 in seconds."),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="Price the operating point on PROFILE[@USD_PER_HOUR] (default: the model's hardware:)."),
    against: Optional[Path] = typer.Option(None, "--against", help="A run of this suite: the API models' quality beside their $ per task."),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Folder that receives the sweep folder."),
) -> None:
    """Throughput and latency of one self-hosted model at increasing load, its operating point at your latency
    target, and its $ per 1M output tokens and per task there, against the suite's API models on the same token
    mix (sweep.json in the sweep folder).

    \b
    openbench sweep suite.yaml -m qwen-vllm --slo-p95 2             # doubling concurrency until p95 > 2 s
    openbench sweep suite.yaml -m qwen-vllm --rate 1,2,4,8 --slo-p95 2   # Poisson arrivals at each rate
    openbench sweep suite.yaml -m smol-local -c 1,2,4,8,16          # a local hf model over batch sizes"""
    import asyncio

    from openbench.progress import PlainReporter
    from openbench.report.html import write_sweep_page
    from openbench.store import new_run_id
    from openbench.suite import load_suite
    from openbench.session import EXIT_INTERRUPTED, sigterm_as_interrupt
    from openbench.report.sweep import render_sweep
    from openbench.sweep import Sweep, parse_levels, parse_rates

    runner: Sweep | None = None
    try:
        if rate is not None and concurrency is not None:
            raise OpenbenchError("give --concurrency or --rate, not both")
        loaded = load_suite(suite)
        levels = parse_levels(concurrency)
        rates = parse_rates(rate) if rate is not None else None
        quality = _run_quality(against, loaded) if against is not None else None
        folder = out / f"sweep-{new_run_id(model)}"
        try:
            runner = Sweep(loaded, model, requests_per_level=requests_per_level, warmup=warmup, slo_p95_s=slo_p95,
                           slo_ttft_p95_s=slo_ttft_p95, hardware=hardware, folder=folder, notes=PlainReporter(sys.stderr),
                           seed=seed)
        except (KeyError, ValueError) as exc:
            raise OpenbenchError(f"--hardware {hardware}: {exc.args[0] if exc.args else exc}") from None
        sigterm_as_interrupt()
        result = asyncio.run(runner.run(levels, rates, quality))
    except OpenbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        partial = runner.result if runner is not None else None
        if partial is not None and partial.interrupted:  # written to sweep.json as it stopped
            render_sweep(partial)
            write_sweep_page(partial, folder)
            typer.echo(f"\ninterrupted: the levels measured so far are in {folder}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    render_sweep(result)
    write_sweep_page(result, folder)
    typer.echo(f"\nsweep: {folder}", err=True)


def _run_quality(run_dir: Path, suite) -> dict[str, float | None]:
    """Each model's quality over all tasks in a finished run of ``suite`` (``sweep --against``)."""
    from openbench.summary import ALL_TASKS, summarise

    store, manifest, per_month = _open_run(run_dir, None)
    rows = summarise(store.iter_records(), manifest, per_month)
    ran, ours = {row.task for row in rows if row.task != ALL_TASKS}, {task.name for task in suite.spec.tasks}
    if not ran:
        raise OpenbenchError(f"--against {run_dir}: the run has no answers yet")
    if not ran <= ours:
        of = f" of suite '{manifest.suite.name}'" if manifest.suite else ""
        raise OpenbenchError(f"--against {run_dir}: a run{of} with tasks {', '.join(sorted(ran))}, "
                             f"not a run of {suite.path} (tasks {', '.join(sorted(ours))})")
    return {row.model: row.quality_mean for row in rows if row.task == ALL_TASKS}


def _csv_paths(output: Path) -> tuple[Path, Path]:
    """Where the summary and the items go: ``x.csv`` and ``x.items.csv`` beside it, or summary.csv and items.csv in a folder."""
    if output.suffix.lower() == ".csv" and not output.is_dir():
        return output, output.with_name(output.stem + ".items.csv")
    if output.exists() and not output.is_dir():
        raise fail(OpenbenchError(f"--output for csv is a .csv file or a folder; {output} is another kind of file"))
    return output / "summary.csv", output / "items.csv"


@app.command()
def report(
    run_dir: Path = RunDirArg,
    fmt: str = typer.Option("html", "--format", "-f", help="csv (summary.csv + items.csv), html, md or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write, or - for standard output (html, md, json). csv: x.csv (items go to x.items.csv) or a folder (summary.csv, items.csv). Default: the run folder."),
    volume: Optional[str] = VolumeOpt,
    sweep_dir: Optional[Path] = typer.Option(None, "--sweep", help="A sweep folder (html, md): add its chart and the self-hosted $/task at its operating point against the run's API models."),
) -> None:
    """Export a run for people and programs: CSV for spreadsheets, one self-contained HTML page, Markdown, JSON."""
    import json

    from openbench.registry import did_you_mean
    from openbench.summary import summarise
    from openbench.sweepresult import SweepResult

    formats = ("csv", "html", "md", "json")
    if fmt not in formats:
        raise fail(OpenbenchError(f"unknown format '{fmt}'{did_you_mean(fmt, formats)}; choose one of {', '.join(formats)}"))
    if sweep_dir is not None and fmt not in ("html", "md"):
        raise fail(OpenbenchError(f"--sweep adds a section to the html and md reports, not to {fmt}"))
    try:
        swept = SweepResult.read(sweep_dir) if sweep_dir is not None else None
    except OpenbenchError as exc:
        raise fail(exc) from None
    store, manifest, per_month = _open_run(run_dir, volume)
    rows = summarise(store.iter_records(), manifest, per_month)
    gate_path = store.path / "gate.json"
    gate_doc = json.loads(gate_path.read_text(encoding="utf-8")) if gate_path.exists() else None
    if fmt == "csv":
        from openbench.report.csv import write_items, write_summary

        summary_path, items_path = _csv_paths(output or store.path)
        try:
            summary_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(OpenbenchError(f"cannot create {summary_path.parent}: {exc.strerror or exc}")) from None
        write_summary(rows, summary_path)
        n = write_items(store.iter_raw(), items_path)
        typer.echo(f"wrote {summary_path} ({len(rows)} rows) and {items_path} ({n} rows)")
        return
    if fmt == "html":
        from openbench.report.html import render_html

        text = render_html(rows, store.iter_records(), manifest, gate_doc, swept)
    elif fmt == "md":
        from openbench.report.markdown import notes_markdown, summary_table
        from openbench.report.notes import model_notes

        title = manifest.suite.name if manifest.suite else store.path.name
        text = f"## openbench: {title}\n\n"
        if not manifest.finished:
            text += f"> Run status: **{manifest.effective_status}**: the figures cover the items finished so far.\n\n"
        text += summary_table(rows) + "\n"
        text += notes_markdown(model_notes(manifest, rows)) + "\n"
        if gate_doc:
            text += f"\n**Gate:** {gate_doc['verdict']}\n"
        if swept is not None:
            from openbench.report.markdown import sweep_markdown

            text += "\n" + sweep_markdown(swept, rows)
    else:
        from openbench.report.json import summary_json

        text = summary_json(rows, manifest, gate_doc)
    if output is not None and str(output) == "-":  # standard output, for pipes
        sys.stdout.write(text)
        return
    path = output or store.path / f"report.{fmt}"
    if output is not None and output.is_dir():
        path = output / f"report.{fmt}"  # an existing folder: the report goes inside it
    _write_all({path: text})
    typer.echo(f"wrote {path}")
