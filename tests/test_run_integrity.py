"""Checks before side effects, options each provider understands, a budget that holds under concurrency,
and a run whose process died reads as interrupted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakeserver import FakeServer

from openbench.manifest import ProcessInfo, RunManifest
from openbench.store import RunStore

FAKE = "{id: f, provider: fake, model: m}"


_SUITE_TEXT = """
name: integrity
models:
  - {models}
tasks:
  - {{name: t, prompt: "{{{{ q }}}}", data: {data}, scorers: [{{type: contains}}]}}
"""


def _suite(write_suite, models: str = FAKE, data: str = "{cases: [{id: a, q: x, answer: ok}]}", files=None) -> Path:
    return write_suite(_SUITE_TEXT.format(models=models, data=data), files)


def _priced_suite(write_suite, *, cases: int, concurrency: int, output_per_mtok: float, max_tokens: int = 256) -> Path:
    """An openai model at $1 per input token, on cases "what is N" (3 prompt tokens, 9 characters)."""
    rows = "".join(json.dumps({"id": f"c{i}", "q": f"what is {i}", "answer": "ok"}) + "\n" for i in range(cases))
    return write_suite(
        f"""
name: budget
defaults: {{max_tokens: {max_tokens}}}
models:
  - {{id: api, provider: openai, model: gpt-4o-mini, concurrency: {concurrency}, cache: false,
     price: {{input_per_mtok: 1000000, output_per_mtok: {output_per_mtok}}}}}
tasks:
  - {{name: t, prompt: "{{{{ q }}}}", data: {{file: cases.jsonl}}, scorers: [{{type: contains}}]}}
""",
        {"cases.jsonl": rows},
    )


def test_an_option_the_provider_does_not_read_is_a_suite_error(write_suite, invoke) -> None:
    suite = _suite(write_suite, "{id: gpt, provider: openai, model: gpt-4o-mini, batch_size: 4}")
    result = invoke("validate", suite)
    assert result.exit_code == 2
    assert "suite.yaml:3" in result.output and "models[0].batch_size" in result.output
    assert "option 'batch_size' means nothing to the openai provider (it is for: hf)" in result.output


def test_json_data_is_an_array_of_cases(write_suite, invoke, tmp_path: Path) -> None:
    rows = [{"id": "a", "q": "one", "answer": "ok"}, {"id": "b", "q": "two", "answer": "ok"}]
    suite = _suite(write_suite, data="{file: cases.json}", files={"cases.json": json.dumps(rows, indent=2)})
    result = invoke("validate", suite)
    assert result.exit_code == 0, result.output
    assert "2 cases" in result.output
    (tmp_path / "cases.json").write_text('{"id": "a"}')
    result = invoke("validate", suite)
    assert result.exit_code == 2 and "one array of objects" in result.output


@pytest.mark.parametrize("args", [["--model", "nope"], ["--hardware", "f=no-such-profile"]], ids=["model", "hardware"])
def test_a_bad_option_leaves_no_run_folder(write_suite, invoke, tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "out"
    result = invoke("run", _suite(write_suite), "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert not out.exists() or not any(out.iterdir())


def test_gate_keeps_old_verdicts_of_a_folder_that_is_not_a_run(invoke, tmp_path: Path) -> None:
    (tmp_path / "gate.md").write_text("an old verdict")
    result = invoke("gate", tmp_path, "--baseline", "a", "--candidate", "b")
    assert result.exit_code == 2 and "not a run folder" in result.output
    assert (tmp_path / "gate.md").read_text() == "an old verdict"


def test_budget_holds_at_concurrency_16(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    # $1 per token both ways. "what is N" is 3 prompt tokens and the answer 1: $4 per request. Each request first
    # reserves its worst case: 9 characters / 3 + 4 = 7 input tokens and max_tokens 2 = $9.
    suite = _priced_suite(write_suite, cases=60, concurrency=16, output_per_mtok=1_000_000, max_tokens=2)
    with FakeServer(reply="ok", ttft_s=0.05) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget16")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        result = invoke("run", suite, "--out", tmp_path / "out", "--max-cost", "50")
        paid = sum(r.path.endswith("/chat/completions") for r in srv.log)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "out").iterdir()
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    spent = sum(r["cost_usd"] for r in records)
    assert all(r["cost_usd"] == pytest.approx(4.0) for r in records)
    assert paid == len(records) <= 50 // 4  # every request sent is recorded, and no more than the budget allows
    assert 50 - 9 < spent <= 50  # it stops only when the next worst case no longer fits
    manifest = RunStore.open(run).read_manifest()
    assert manifest.status == "stopped on budget" and manifest.spent_usd == pytest.approx(spent)


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path: Path, invoke) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store = RunStore.create(tmp_path, "run")
    store.write_manifest(RunManifest(run_id="run", process=ProcessInfo.current().model_copy(update={"pid": int(dead.stdout)})))
    manifest = store.read_manifest()
    assert manifest.status == "running" and manifest.effective_status == "interrupted"
    result = invoke("report", store.path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads((store.path / "report.json").read_text())["run"]["status"] == "interrupted"
    alive = RunManifest(run_id="run", process=ProcessInfo.current())
    assert alive.effective_status == "running"


def test_a_model_named_twice_runs_once(write_suite, invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", _suite(write_suite), "--out", out, "-m", "f", "-m", "f")
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    assert len((run / "records.jsonl").read_text().splitlines()) == 1


def test_the_budget_covers_a_resumed_run_as_a_whole(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    suite = _priced_suite(write_suite, cases=20, concurrency=1, output_per_mtok=0)
    with FakeServer(reply="ok") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget-resume")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        assert invoke("run", suite, "--out", tmp_path / "out", "--max-cost", "10").exit_code == 0
        (run,) = (tmp_path / "out").iterdir()
        first = RunStore.open(run).read_manifest().spent_usd
        assert invoke("run", "--resume", run, "--max-cost", "20").exit_code == 0
    spent = sum(json.loads(line)["cost_usd"] for line in (run / "records.jsonl").read_text().splitlines())
    assert first == pytest.approx(6.0) and spent <= 20  # $3 a request; the second session started from $6, not $0
    assert RunStore.open(run).read_manifest().spent_usd == pytest.approx(spent)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, invoke) -> None:
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    suite = tmp_path / "bomb.yaml"
    suite.write_text("name: bomb\n" + "\n".join(levels) + "\ntasks: *h\n")
    result = invoke("validate", suite)
    assert result.exit_code == 2 and "expands to more than" in result.output


@pytest.mark.parametrize(("args", "message"), [(["--out", "FILE"], "is a file, not a folder"), (["--volume", "1e400"], "--volume")])
def test_bad_output_places_and_volumes_are_usage_errors(write_suite, invoke, tmp_path: Path, args, message) -> None:
    (tmp_path / "FILE").write_text("not a folder")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    result = invoke("run", _suite(write_suite), *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_estimate_counts_every_repeat(write_suite, invoke) -> None:
    suite = write_suite("""
name: est
defaults: {repeats: 3}
models:
  - {id: gpt, provider: openai, model: gpt-4o-mini}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x}, {id: b, q: y}]}, scorers: [{type: contains, expected: x}]}
""")
    result = invoke("estimate", suite)
    assert result.exit_code == 0, result.output
    assert "6 requests" in result.output


@pytest.mark.parametrize(
    ("entry", "message"),
    [("{id: b, provider: openai-compatible, model: m, base_url: 'localhost:8000'}", "base_url must start with http"),
     ("{id: b, provider: fake, model: m}\ngate: {baseline: f, candidate: nobody}", "gate.candidate: no model 'nobody'")],
)  # fmt: skip
def test_configurations_that_fail_every_item_are_caught_by_validate(write_suite, invoke, entry, message) -> None:
    suite = write_suite(f"""
name: v
models:
  - {FAKE}
  - {entry}
tasks:
  - {{name: t, prompt: "{{{{ q }}}}", data: {{cases: [{{id: a, q: x}}]}}, scorers: [{{type: contains, expected: x}}]}}
""")
    result = invoke("validate", suite)
    assert result.exit_code == 2 and message in result.output


def test_the_reference_provider_costs_nothing(write_suite, invoke, tmp_path: Path) -> None:
    suite = _suite(write_suite, "{id: ref, provider: reference, field: answer}")
    assert invoke("run", suite, "--out", tmp_path / "out").exit_code == 0
    (run,) = (tmp_path / "out").iterdir()
    (record,) = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert record["cost_usd"] == 0.0


def test_yes_and_no_stay_words(write_suite, invoke, tmp_path: Path) -> None:
    """YAML 1.1 reads `no` as false; a suite's expected answers must stay what was written (true/false stay booleans)."""
    suite = write_suite("""
name: words
models:
  - {id: ref, provider: reference, field: answer, cache: false}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: no}, {id: b, q: y, answer: Yes}, {id: c, q: z, answer: off}]},
     scorers: [{type: exact}]}
""")
    assert invoke("run", suite, "--out", tmp_path / "out").exit_code == 0
    (run,) = (tmp_path / "out").iterdir()
    outputs = {r["case_id"]: r["output"] for r in map(json.loads, (run / "records.jsonl").read_text().splitlines())}
    assert outputs == {"a": "no", "b": "Yes", "c": "off"}


def test_the_progress_line_tells_a_failed_model(write_suite, invoke, tmp_path: Path) -> None:
    suite = _suite(write_suite, "{id: dead, provider: fake, model: m, params: {error_rate: 1.0}}")
    result = invoke("run", suite, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "[dead] failed 1/1 items, 1 errors" in result.output and "[dead] ok" not in result.output


def test_resuming_with_another_suite_says_so(write_suite, invoke, tmp_path: Path) -> None:
    assert invoke("run", _suite(write_suite), "--out", tmp_path / "out").exit_code == 0
    (run,) = (tmp_path / "out").iterdir()
    text = _SUITE_TEXT.format(models=FAKE, data="{cases: [{id: a, q: x, answer: ok}]}").replace("name: integrity", "name: another")
    other = write_suite(text, name="other.yaml")
    result = invoke("run", "--resume", run, other)
    assert result.exit_code == 2 and "is the suite 'another', but this run is of 'integrity'" in result.output
