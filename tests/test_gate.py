"""compare and gate through the CLI, on runs of the deterministic `fake` provider."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

SUITE = """
name: gate
models:
  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}
  - {id: worse, provider: fake, model: m-worse, params: {accuracy: 0.5}}
  - {id: twin, provider: fake, model: m-base, params: {accuracy: 0.9}}
tasks:
  - name: add
    prompt: "{{ q }}"
    data: {file: cases.jsonl}
    scorers: [{type: exact}]
  - name: echo
    prompt: "say {{ q }}"
    data: {file: cases.jsonl}
    scorers: [{type: exact}]
gate: {baseline: base, candidate: worse, margin: 0.05}
"""


def _cases(n: int) -> str:
    return "".join(json.dumps({"id": f"c{i}", "q": f"q{i}", "answer": str(i)}) + "\n" for i in range(n))


@pytest.fixture
def run_dir(write_suite, invoke, tmp_path: Path):
    def make(n: int = 300, suite: str = SUITE) -> Path:
        path = write_suite(suite, {"cases.jsonl": _cases(n)})
        out = tmp_path / f"out{n}"
        result = invoke("run", str(path), "--out", str(out))
        assert result.exit_code == 0, result.output
        return next(out.iterdir())

    return make


def test_gate_fails_a_worse_candidate_with_reasons_and_writes_reports(run_dir, invoke) -> None:
    run = run_dir()
    result = invoke("gate", str(run))  # baseline/candidate/margin from the suite's gate: block
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL")
    assert "[FAIL] quality non-inferiority (add)" in result.output
    assert "[FAIL] quality non-inferiority ((all))" in result.output
    decision = json.loads((run / "gate.json").read_text())
    assert decision["passed"] is False
    assert {r["task"] for r in decision["results"] if r["rule"] == "quality non-inferiority"} == {"add", "echo", "(all)"}
    junit = ET.parse(run / "gate.xml").getroot()
    suite = junit.find("testsuite")
    assert int(suite.get("failures")) >= 3 and int(suite.get("tests")) == len(decision["results"])
    assert "FAIL" in (run / "gate.md").read_text()


def test_a_model_against_its_twin_passes(run_dir, invoke) -> None:
    result = invoke("gate", str(run_dir()), "--candidate", "twin", "--margin", "0.02")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS")
    assert "warning" not in result.output.lower()  # identical answers: no doubt left at n=300


def test_too_few_items_warns_with_the_minimum_detectable_effect(run_dir, invoke) -> None:
    run = run_dir(12)
    result = invoke("gate", str(run), "--candidate", "twin", "--margin", "0.02")
    assert "too small to detect a drop of 2 points" in result.output
    assert "minimum detectable effect" in result.output


def test_latency_cost_and_pass_rate_rules(run_dir, invoke) -> None:
    run = run_dir()
    result = invoke(
        "gate", str(run), "--candidate", "twin", "--margin", "0.02",
        "--max-p95-latency", "10", "--min-pass-rate", "0.99", "--max-cost-per-task", "1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "[pass] p95 latency" in result.output
    assert "[FAIL] pass rate" in result.output
    assert "[FAIL] cost per task" in result.output and "unknown" in result.output  # unknown cost never passes


def test_compare_shows_paired_difference_and_flips(run_dir, invoke) -> None:
    run = run_dir()
    result = invoke("compare", str(run), "-b", "base", "-c", "worse", "--flips", "3")
    assert result.exit_code == 0, result.output
    assert "mcnemar" in result.output
    assert "pass→fail" in result.output and "baseline:" in result.output and "candidate:" in result.output


def test_compare_across_runs_and_mismatched_suites(run_dir, invoke) -> None:
    small, big = run_dir(20), run_dir(300)
    mismatch = invoke("compare", str(big), "--baseline-run", str(small), "-b", "base", "-c", "worse")
    assert mismatch.exit_code == 2 and "do not cover the same items" in mismatch.output
    partial = invoke("compare", str(big), "--baseline-run", str(small), "-b", "base", "-c", "worse", "--allow-partial")
    assert partial.exit_code == 0, partial.output
    assert "(all)" in partial.output and " 20 " in partial.output  # the 20 common items


def test_gate_usage_errors_exit_2(run_dir, invoke, tmp_path: Path) -> None:
    run = run_dir(20)
    unknown = invoke("gate", str(run), "-b", "base", "-c", "wrose")
    assert unknown.exit_code == 2 and "did you mean 'worse'" in unknown.output
    missing = invoke("gate", str(tmp_path))
    assert missing.exit_code == 2 and "not a run folder" in missing.output


def test_declared_clusters_switch_to_the_cluster_interval(write_suite, invoke, tmp_path: Path) -> None:
    cases = "".join(json.dumps({"id": f"c{i}", "q": f"q{i}", "answer": str(i), "doc": f"d{i // 5}"}) + "\n" for i in range(100))
    suite = SUITE.split("tasks:")[0] + """tasks:
  - name: add
    prompt: "{{ q }}"
    data: {file: cases.jsonl}
    cluster_field: doc
    scorers: [{type: exact}]
"""
    path = write_suite(suite, {"cases.jsonl": cases})
    assert invoke("run", str(path), "--out", str(tmp_path / "out")).exit_code == 0
    run = next((tmp_path / "out").iterdir())
    result = invoke("compare", str(run), "-b", "base", "-c", "worse")
    assert result.exit_code == 0, result.output
    assert "cluster-t" in result.output
    record = json.loads((run / "records.jsonl").read_text().splitlines()[7])
    assert record["cluster"] == "d1"
