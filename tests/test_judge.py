"""LLM-as-judge: verdicts parsed deterministically, judge cost kept apart, position bias cancelled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeserver import FakeServer
from openbench import pricing
from openbench.records import Usage


def _records(out: Path) -> list[dict]:
    run = next(out.iterdir())
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_api_judge_through_the_sdk_keeps_its_cost_apart(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: judged
models:
  - {id: cand, provider: fake, model: small-local}
  - {id: grader, provider: openai, model: gpt-4o-mini, cache: false}
tasks:
  - name: t
    prompt: "{{ q }}"
    data: {cases: [{id: a, q: "capital of France?", answer: Paris}, {id: b, q: "2+2?", answer: "4"}]}
    scorers: [{type: judge, model: grader, scale: 5, threshold: 0.7, reference: "{{ answer }}"}]
"""
    )
    verdicts = {"capital of France?": "Looks right.\nSCORE: 5", "2+2?": "Partly.\nSCORE: 3"}

    def reply(body: dict) -> str:
        user = body["messages"][-1]["content"]
        return next(v for q, v in verdicts.items() if q in user)

    with FakeServer(reply_fn=reply) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        result = invoke("run", str(suite), "--out", str(tmp_path / "out"), "--model", "cand")
        usage = [r for r in srv.log if r.path.endswith("/chat/completions")]
    assert result.exit_code == 0, result.output
    by_id = {r["case_id"]: r for r in _records(tmp_path / "out")}
    assert by_id["a"]["score"] == 1.0 and by_id["a"]["passed"]
    assert by_id["b"]["score"] == 0.5 and not by_id["b"]["passed"]
    price = pricing.lookup_price("openai", "gpt-4o-mini")
    for record, request in zip([by_id["a"], by_id["b"]], usage):
        judge = record["judge"]
        assert judge["calls"] == 1 and judge["model"] == "grader"
        assert judge["cost_usd"] == pytest.approx(pricing.cost(Usage(judge["input_tokens"], judge["output_tokens"]), price))
        assert judge["input_tokens"] > 0 and judge["output_tokens"] > 0
        # The candidate's own numbers are untouched by the judge.
        assert record["cost_usd"] is None and record["output_tokens"] == 1
    summary = (next((tmp_path / "out").iterdir()) / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    header = summary[0].split(",")
    row = dict(zip(header, summary[-1].split(",")))
    assert row["cost_per_task_usd"] == ""  # the fake candidate has no price: unknown, not the judge's
    assert float(row["judge_cost_usd"]) == pytest.approx(sum(r["judge"]["cost_usd"] for r in by_id.values()))


def test_unparseable_verdict_is_an_item_error_not_zero(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: judged
models:
  - {id: cand, provider: fake, model: m}
  - {id: grader, provider: reference, model: r, field: verdict}
tasks:
  - name: t
    prompt: "{{ q }}"
    data: {cases: [{id: a, q: x, answer: y, verdict: "SCORE: 4"}, {id: b, q: x2, answer: y, verdict: "I cannot say"}, {id: c, q: x3, answer: y, verdict: "SCORE: 9"}]}
    scorers: [{type: judge, model: grader}]
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out"), "-m", "cand").exit_code == 0
    by_id = {r["case_id"]: r for r in _records(tmp_path / "out")}
    assert by_id["a"]["score"] == 0.75 and by_id["a"]["error"] is None
    for bad in ("b", "c"):
        assert by_id[bad]["score"] is None and by_id[bad]["error_kind"] == "scorer"
        assert by_id[bad]["judge"] is not None  # its tokens are still accounted for
    assert "outside 1..5" in by_id["c"]["error"] and "SCORE: n" in by_id["b"]["error"]


def test_pairwise_swaps_order_so_a_judge_that_always_says_A_gives_a_tie(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: pairwise
models:
  - {id: cand, provider: fake, model: m}
  - {id: grader, provider: reference, model: r, field: verdict}
tasks:
  - name: t
    prompt: "{{ q }}"
    data: {cases: [{id: a, q: x, answer: y, verdict: "VERDICT: A"}, {id: b, q: x2, answer: y, verdict: "VERDICT: TIE"}]}
    scorers: [{type: judge, model: grader, mode: pairwise, reference: "{{ answer }}"}]
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out"), "-m", "cand").exit_code == 0
    by_id = {r["case_id"]: r for r in _records(tmp_path / "out")}
    assert by_id["a"]["score"] == 0.5  # won as A, lost as B: the position bias cancels
    assert by_id["b"]["score"] == 0.5
    assert by_id["a"]["judge"]["calls"] == 2


def test_same_family_judge_warns_and_unknown_judge_is_a_suite_error(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: family
models:
  - {id: cand, provider: fake, model: gpt-4o-mini}
  - {id: grader, provider: reference, model: gpt-4o, field: answer}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: "SCORE: 5"}]}, scorers: [{type: judge, model: grader}]}
"""
    )
    result = invoke("run", str(suite), "--out", str(tmp_path / "out"), "-m", "cand")
    assert "both 'gpt' models" in result.output
    manifest = json.loads((next((tmp_path / "out").iterdir()) / "manifest.json").read_text())
    assert any("gpt" in w for w in manifest["warnings"])
    bad = write_suite(suite.read_text().replace("model: grader}", "model: grder}"), name="bad.yaml")
    result = invoke("validate", str(bad))
    assert result.exit_code == 2 and "did you mean 'grader'" in result.output


@pytest.mark.slow
def test_a_local_model_can_judge(write_suite, invoke, tiny_model_dir: Path, tmp_path: Path) -> None:
    """The judge runs through the hf provider; this tiny model cannot follow the format, so items are errors, never 0."""
    suite = write_suite(
        f"""
name: local-judge
models:
  - {{id: cand, provider: fake, model: m}}
  - {{id: grader, provider: hf, model: "{tiny_model_dir}", batch_size: 2}}
tasks:
  - name: t
    prompt: "{{{{ q }}}}"
    data: {{cases: [{{id: a, q: one two, answer: three}}, {{id: b, q: four, answer: five}}]}}
    scorers: [{{type: judge, model: grader, max_tokens: 4}}]
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out"), "-m", "cand").exit_code == 1  # every item errored
    for record in _records(tmp_path / "out"):
        assert record["error_kind"] == "scorer" and record["score"] is None
        judge = record["judge"]
        assert judge["output_tokens"] > 0 and judge["cost_usd"] is None and judge["latency_s"] > 0
