"""`openbench rescore`: a scorer fixed after a paid run is applied to the stored answers, with no new request."""

from __future__ import annotations

import json
from pathlib import Path

from api_helpers import cases, completions, model, read_run, write_suite
from fakeserver import FakeServer

WORDS = ("alpha", "beta gamma", "delta", "epsilon zeta eta")
WRONG = r"^\d+$"  # compiles, but the answers are words: every item fails
FIXED = r"^[a-z]+( [a-z]+)*$"


def suite_with(path: Path, srv: FakeServer, pattern: str) -> Path:
    server_model = model("served", "openai-compatible", base_url=f"{srv.url}/v1", api_key_env="SERVED_KEY")
    suite = write_suite(path, [server_model], cases(*WORDS))
    spec = json.loads(suite.read_text())
    spec["tasks"][0]["scorers"] = [{"type": "regex", "pattern": pattern}]
    suite.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return suite


def overall_quality(run: Path) -> float:
    summary = (run / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    header = summary[0].split(",")
    row = next(dict(zip(header, line.split(","))) for line in summary[1:] if line.startswith("(all),"))
    return float(row["quality_mean"])


def test_fix_a_scorer_then_rescore_without_asking_again(invoke, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SERVED_KEY", "sk-local")
    with FakeServer(reply_fn=lambda body: body["messages"][-1]["content"].split("Repeat: ", 1)[1]) as srv:
        suite = suite_with(tmp_path / "suite.json", srv, WRONG)
        result = invoke("run", suite, "--out", tmp_path / "out")
        first = read_run(tmp_path / "out", result.exit_code, result.output)
        assert first.exit_code == 0, first.output
        asked = len(completions(srv))
        assert asked == len(WORDS)
        assert overall_quality(first.run_dir) == 0.0

        suite_with(suite, srv, FIXED)  # the fix changes the suite's sha256
        refused = invoke("run", "--resume", first.run_dir)
        assert refused.exit_code == 2 and "changed since this run started" in refused.output

        result = invoke("rescore", first.run_dir)
        assert result.exit_code == 0, result.output
        assert f"rescored {len(WORDS)} items" in result.output
        assert len(completions(srv)) == asked  # no model was asked again
        assert overall_quality(first.run_dir) == 1.0

        lines = (first.run_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2 * len(WORDS)  # appended, never rewritten
        assert [json.loads(line) for line in lines[: len(WORDS)]] == first.records
        rescored = [json.loads(line) for line in lines[len(WORDS):]]
        before = {r["case_id"]: r for r in first.records}
        for record in rescored:
            assert record["passed"] and record["output"] == before[record["case_id"]]["output"]
            assert record["latency_s"] == before[record["case_id"]]["latency_s"]  # the answer's timing is kept

        manifest = json.loads((first.run_dir / "manifest.json").read_text())
        from openbench.suite import load_suite

        fixed_sha = load_suite(suite).sha256
        [entry] = manifest["rescored_at"]
        assert entry["suite_sha256"] == fixed_sha and entry["previous_sha256"] == first.manifest["suite"]["sha256"]
        assert entry["items"] == len(WORDS) and manifest["suite"]["sha256"] == fixed_sha
        # The run now belongs to the fixed suite: resuming it is accepted, and has nothing to ask.
        resumed = invoke("run", "--resume", first.run_dir)
        assert resumed.exit_code == 0, resumed.output
        assert len(completions(srv)) == asked


def test_rescore_with_another_suite_file_and_items_without_answers(invoke, write_suite, tmp_path: Path):
    text = """
name: r
models: [{id: ref, provider: reference, model: gold, field: gold}]
tasks:
  - name: t
    prompt: "{{ q }}"
    data: {cases: [{id: a, q: x, gold: "12", answer: "12"}, {id: b, q: y, gold: "7", answer: "8"}]}
    scorers: [{type: exact}]
"""
    original = write_suite(text)
    result = invoke("run", original, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    with open(run / "records.jsonl", "a", encoding="utf-8") as f:  # an item whose request had failed
        f.write(json.dumps({"task": "t", "case_id": "c", "model": "ref", "error": "timeout", "error_kind": "timeout"}) + "\n")
    lenient = write_suite(text.replace("{type: exact}", "{type: numeric, tolerance: 1}"), name="lenient.yaml")
    result = invoke("rescore", run, "--suite", lenient)
    assert result.exit_code == 0, result.output
    assert "rescored 2 items with" in result.output and "lenient.yaml" in result.output
    assert "kept as they were: 1 without an answer" in result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["suite"]["path"].endswith("lenient.yaml")
    from openbench.store import RunStore

    latest = {r.case_id: r for r in RunStore(run).latest_records().values()}
    assert latest["a"].passed and latest["b"].passed  # 7 is within 1 of 8: the lenient scorer passes it
    assert latest["c"].error == "timeout"


def test_rescore_refuses_a_broken_suite(invoke, write_suite, tmp_path: Path):
    text = """
name: r
models: [{id: ref, provider: reference, model: gold, field: answer}]
tasks: [{name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: "1"}]}, scorers: [{type: exact}]}]
"""
    suite = write_suite(text)
    assert invoke("run", suite, "--out", tmp_path / "out").exit_code == 0
    run = next((tmp_path / "out").iterdir())
    before = (run / "records.jsonl").read_text()
    suite.write_text(suite.read_text().replace("{type: exact}", "{type: regex, pattern: '(x'}"))
    result = invoke("rescore", run)
    assert result.exit_code == 2 and "invalid regular expression" in result.output
    assert (run / "records.jsonl").read_text() == before
    assert invoke("rescore", tmp_path / "nowhere").exit_code == 2


def test_a_judge_grades_the_stored_answers_through_the_run_path(invoke, write_suite, tmp_path: Path):
    text = """
name: j
models:
  - {id: cand, provider: fake, model: small}
  - {id: grader, provider: fake, model: big}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: "SCORE: 5"}, {id: b, q: y, answer: "SCORE: 5"}]},
     scorers: [{type: exact, expected: "nothing like it"}]}
"""
    suite = write_suite(text)
    assert invoke("run", suite, "--out", tmp_path / "out", "--model", "cand").exit_code == 0
    run = next((tmp_path / "out").iterdir())
    assert overall_quality(run) == 0.0
    suite.write_text(suite.read_text().replace('{type: exact, expected: "nothing like it"}', "{type: judge, model: grader}"))
    result = invoke("rescore", run)
    assert result.exit_code == 0, result.output
    assert overall_quality(run) == 1.0
    latest = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()[2:]]
    assert all(r["judge"]["model"] == "grader" and r["judge"]["calls"] == 1 for r in latest)


def test_rescore_refuses_a_suite_that_asks_other_questions(invoke, write_suite, tmp_path: Path):
    text = """
name: q
models: [{id: ref, provider: reference, model: gold, field: answer}]
tasks: [{name: t, prompt: "Q: {{ q }}", data: {cases: [{id: a, q: x, answer: "1"}, {id: b, q: y, answer: "2"}]},
         scorers: [{type: exact}]}]
"""
    suite = write_suite(text)
    assert invoke("run", suite, "--out", tmp_path / "out").exit_code == 0
    run = next((tmp_path / "out").iterdir())
    assert all(json.loads(line)["prompt_sha256"] for line in (run / "records.jsonl").read_text().splitlines())
    before = (run / "records.jsonl").read_text()
    suite.write_text(suite.read_text().replace('"Q: {{ q }}"', '"Question: {{ q }}"'))
    result = invoke("rescore", run)
    assert result.exit_code == 2, result.output
    assert "asks 2 of the stored items (e.g." in result.output and "start a new run" in result.output
    assert (run / "records.jsonl").read_text() == before
    # A local model's records cannot be re-fingerprinted without its tokenizer: the manifest's task fingerprints catch it.
    records = [json.loads(line) for line in before.splitlines()]
    (run / "records.jsonl").write_text("".join(json.dumps({**r, "prompt_sha256": None}) + "\n" for r in records))
    result = invoke("rescore", run)
    assert result.exit_code == 2 and "asks task 't' differently" in result.output, result.output
