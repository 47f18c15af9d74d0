"""Edge cases where a number could drift from the truth or a user could get a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from fakeserver import FakeServer
from openbench.store import RunStore


def _run_dir(out: Path) -> Path:
    return next(out.iterdir())


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (_run_dir(out) / "records.jsonl").read_text().splitlines()]


def test_budget_stops_later_models_from_starting(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    priced = "provider: openai, model: gpt-4o-mini, concurrency: 1, cache: false, price: {input_per_mtok: 1000000, output_per_mtok: 0}"
    suite = write_suite(
        f"""
name: budget
models:
  - {{id: a, {priced}}}
  - {{id: b, {priced}}}
tasks:
  - {{name: t, prompt: "{{{{ q }}}}", data: {{cases: [{{id: "1", q: x y z, answer: ok}}, {{id: "2", q: x y z, answer: ok}}, {{id: "3", q: x y z, answer: ok}}]}}, scorers: [{{type: contains}}]}}
"""
    )
    with FakeServer(reply="ok") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget2")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        result = invoke("run", str(suite), "--out", str(tmp_path / "out"), "--max-cost", "5")
        paid = sum(r.path.endswith("/chat/completions") for r in srv.log)
    assert result.exit_code == 0, result.output
    # $3 each, and each first reserves its worst case ("x y z": 1 + 4 tokens = $5): after the first, $3 spent + $5
    # would pass $5, so nothing more is sent, and the budget holds.
    assert paid == 1
    models = {m["id"]: m for m in json.loads((_run_dir(tmp_path / "out") / "manifest.json").read_text())["models"]}
    assert models["b"]["status"] == "not run" and "budget" in models["b"]["reason"]


def test_self_hosted_busy_time_excludes_scoring(write_suite, invoke, tmp_path: Path) -> None:
    scorer = tmp_path / "slow.py"
    scorer.write_text("import time\ndef score(output, case):\n    time.sleep(0.3)\n    return True\n")
    suite = write_suite(
        """
name: busy
models:
  - {id: own, provider: fake, model: m, concurrency: 1, hardware: h100, params: {ttft_s: 0.02}}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: ok}, {id: b, q: y, answer: ok}, {id: c, q: z, answer: ok}]},
     scorers: [{type: python, path: "slow.py:score"}]}
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    own = json.loads((_run_dir(tmp_path / "out") / "manifest.json").read_text())["models"][0]
    latency = sum(r["latency_s"] for r in _records(tmp_path / "out"))
    # Busy time spans the answers (~3 × 0.02 s plus the two scoring gaps between them), never the last scoring.
    assert own["busy_s"] < latency + 2 * 0.3 + 0.25


def test_gate_output_that_cannot_be_written_is_a_usage_error_before_any_verdict(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: g
models:
  - {id: a, provider: fake, model: m}
  - {id: b, provider: fake, model: m}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: "1", q: x, answer: x}]}, scorers: [{type: exact}]}
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    run = _run_dir(tmp_path / "out")
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = invoke("gate", str(run), "-b", "a", "-c", "b", "--margin", "0.5", "--markdown", str(blocked / "x.md"))
    assert result.exit_code == 2 and "cannot write" in result.output
    assert "PASS" not in result.output and "Traceback" not in result.output
    assert invoke("gate", str(run), "-b", "a", "-c", "b", "--margin", "0").exit_code == 2


def test_a_candidate_with_only_errors_fails_the_gate_instead_of_crashing(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: g
models:
  - {id: base, provider: fake, model: m}
  - {id: broken, provider: reference, model: r, field: boom}
tasks:
  - name: t
    prompt: "{{ q }}"
    data: {cases: [{id: "1", q: x, answer: x, boom: boom}, {id: "2", q: y, answer: y, boom: boom}]}
    scorers: [{type: python, path: "check.py:same"}]
""",
        # The broken model's every answer makes the scorer fail: its items are all errors.
        {"check.py": "def same(output, case):\n    if output == 'boom':\n        raise ValueError(output)\n    return output == case['answer']\n"},
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 1  # 'broken' failed every item
    result = invoke("gate", str(_run_dir(tmp_path / "out")), "-b", "base", "-c", "broken", "--margin", "0.1")
    assert result.exit_code == 1, result.output
    assert "[FAIL] quality non-inferiority" in result.output and "[FAIL] errors" in result.output


def test_defaults_system_template_is_checked(write_suite, invoke) -> None:
    base = """
name: s
defaults: {system: "You are {{ persona }}"}
models: [{id: a, provider: fake, model: m}]
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: "1", q: x, answer: x}]}, scorers: [{type: exact}]}
"""
    missing = invoke("validate", str(write_suite(base)))
    assert missing.exit_code == 2 and "persona" in missing.output
    broken = invoke("validate", str(write_suite(base.replace("{{ persona }}", "{% if %}"), name="b.yaml")))
    assert broken.exit_code == 2 and "defaults.system" in broken.output


def test_cache_never_shares_answers_between_cases_for_case_reading_providers(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: c
models: [{id: ref, provider: reference, model: r, field: answer, cache: true}]
tasks:
  - {name: t, prompt: "same prompt", data: {cases: [{id: "1", answer: one}, {id: "2", answer: two}]}, scorers: [{type: exact}]}
"""
    )
    for out in ("o1", "o2"):
        assert invoke("run", str(suite), "--out", str(tmp_path / out)).exit_code == 0
    second = {r["case_id"]: r for r in _records(tmp_path / "o2")}
    assert second["1"]["output"] == "one" and second["2"]["output"] == "two"
    assert all(r["cached"] for r in second.values())


def test_a_folder_given_as_suite_says_so(invoke, tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 2 and "expected a suite YAML file, got a folder" in result.output


def test_interrupted_markdown_report_says_the_run_is_partial(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: p
models: [{id: a, provider: fake, model: m}]
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: "1", q: x, answer: x}]}, scorers: [{type: exact}]}
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    run = _run_dir(tmp_path / "out")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert invoke("report", str(run), "-f", "md").exit_code == 0
    assert "Run status: **interrupted**" in (run / "report.md").read_text()


def test_python_scorer_may_return_numpy_values(write_suite, invoke, tmp_path: Path) -> None:
    (tmp_path / "np_scorer.py").write_text(
        "import numpy as np\ndef score(output, case):\n    return np.float64(0.9) > 0.5\n"
    )
    suite = write_suite(
        """
name: np
models: [{id: a, provider: fake, model: m}]
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: "1", q: x, answer: x}]}, scorers: [{type: python, path: "np_scorer.py:score"}]}
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    (record,) = _records(tmp_path / "out")
    assert record["error"] is None and record["passed"] is True and record["score"] == 1.0


def test_resume_rescores_answers_whose_scoring_failed_without_asking_again(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    (tmp_path / "flaky.py").write_text(
        "from pathlib import Path\n"
        f"FLAG = Path({str(flag)!r})\n"
        "def score(output, case):\n"
        "    if FLAG.exists():\n"
        "        raise RuntimeError('scorer down')\n"
        "    return 'ok' in output\n"
    )
    suite = write_suite(
        """
name: rescore
models: [{id: api, provider: openai, model: gpt-4o-mini, cache: false}]
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: "1", q: x, answer: ok}, {id: "2", q: y, answer: ok}]}, scorers: [{type: python, path: "flaky.py:score"}]}
"""
    )
    with FakeServer(reply="ok then") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-rescore")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 1  # every scoring failed
        run = _run_dir(tmp_path / "out")
        first = [r for r in _records(tmp_path / "out")]
        assert all(r["error_kind"] == "scorer" and r["output"] == "ok then" for r in first)
        flag.unlink()
        assert invoke("run", "--resume", str(run)).exit_code == 0
        paid = sum(r.path.endswith("/chat/completions") for r in srv.log)
    assert paid == 2  # the answers were asked once; the resumed run only scored them
    latest = {r.case_id: r for r in RunStore(run).iter_records()}
    assert all(r.passed and r.error is None for r in latest.values())
    # The measured latency of the original answer is kept, not replaced by a replay's.
    assert {k: r.latency_s for k, r in latest.items()} == {r["case_id"]: r["latency_s"] for r in first}
