"""`repeats: K`: each item sampled K times with its own seed, never replayed from the cache; statistics on
item means; consistency and pass@k reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fakeserver import FakeServer, last_user_text
from test_humaneval import humaneval_problems

from openbench.summary import pass_at_k


def _answer_by_seed(body: dict) -> str:
    """Item "one" always passes, "three" never, "two" on even seeds only (half of its samples)."""
    question = last_user_text(body)
    return {"one": "ok", "three": "no"}.get(question, "ok" if body.get("seed", 0) % 2 == 0 else "no")


SUITE = """
name: repeats
defaults: {{repeats: 4, seed: 0}}
models:
  - {{id: {model}, provider: openai, model: gpt-4o-mini, concurrency: 4, backoff_s: 0.01}}
tasks:
  - {{name: t, prompt: "{{{{ q }}}}", data: {{cases: [{{id: a, q: one, answer: ok}}, {{id: b, q: two, answer: ok}}, {{id: c, q: three, answer: ok}}]}}, scorers: [{{type: contains}}]}}
"""


def test_pass_at_k_estimator() -> None:
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 2, 3) == 1.0 and pass_at_k(5, 0, 5) == 0.0


def test_repeats_are_samples_not_replays(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    suite = write_suite(SUITE.format(model="gpt"))
    with FakeServer(reply_fn=_answer_by_seed) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-repeats")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        out = tmp_path / "out"
        result = invoke("run", suite, "--out", out)
        assert result.exit_code == 0, result.output
        (run_dir,) = out.iterdir()
        seeds = sorted(r.body["seed"] for r in srv.log if r.api is not None)
        assert seeds == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # every sample asked, each with its own seed
        again = invoke("run", "--resume", run_dir)  # a complete run: nothing is asked twice
        assert again.exit_code == 0 and len([r for r in srv.log if r.api is not None]) == 12
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert sorted((r["case_id"], r.get("sample", 0)) for r in records) == [(c, s) for c in "abc" for s in range(4)]
    assert not any(r["cached"] for r in records)
    rows = {(r["task"], r["model"]): r for r in csv.DictReader((run_dir / "summary.csv").open(encoding="utf-8-sig"))}
    row = rows[("t", "gpt")]
    assert row["items"] == "12" and float(row["quality_mean"]) == pytest.approx(0.5)
    assert row["samples_per_item"] == "4" and float(row["consistency"]) == pytest.approx(2 / 3)  # "two" is mixed
    assert json.loads(row["pass_at_k"]) == pytest.approx({"1": 0.5, "2": (1 + (1 - 1 / 6) + 0) / 3, "4": 2 / 3})
    # Three units, not twelve: item means 1, 0.5 and 0 give a t-interval (2 degrees of freedom) wider than [0, 1];
    # twelve samples taken as independent would have given about [0.17, 0.83].
    assert (float(row["quality_ci_low"]), float(row["quality_ci_high"])) == (0.0, 1.0)
    assert "gpt on t: 4 samples per item" in result.output and "consistency 67%" in result.output


def test_compare_pairs_item_means(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    text = SUITE.format(model="gpt").replace(
        "tasks:", "  - {id: gpt2, provider: openai, model: gpt-4o, concurrency: 4, backoff_s: 0.01}\ntasks:"
    )
    with FakeServer(reply_fn=_answer_by_seed) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-repeats")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        out = tmp_path / "out"
        assert invoke("run", write_suite(text), "--out", out).exit_code == 0
    (run_dir,) = out.iterdir()
    result = invoke("compare", run_dir, "--baseline", "gpt", "--candidate", "gpt2")
    assert result.exit_code == 0, result.output
    # Three paired units (item means), not twelve samples; the paired t-test, since the means are not pass/fail.
    assert "| t     | 3 |" in result.output and "paired-t" in result.output


def test_humaneval_reference_passes_at_every_k(write_suite, invoke, tmp_path: Path) -> None:
    problems = humaneval_problems()[:4]
    suite = write_suite(
        """
name: humaneval-repeats
defaults: {repeats: 3}
models:
  - {id: canonical, provider: reference, field: canonical_solution, concurrency: 4}
tasks:
  - name: humaneval
    prompt: "{{ prompt }}"
    data: {file: humaneval.jsonl, id_field: task_id}
    scorers: [{type: code, timeout_s: 20}]
""",
        {"humaneval.jsonl": problems},
    )
    out = tmp_path / "out"
    result = invoke("run", suite, "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    rows = {r["task"]: r for r in csv.DictReader((run_dir / "summary.csv").open(encoding="utf-8-sig"))}
    assert json.loads(rows["humaneval"]["pass_at_k"]) == {"1": 1.0, "2": 1.0, "3": 1.0}
    assert float(rows["humaneval"]["consistency"]) == 1.0


def test_the_sequential_gate_refuses_repeats(write_suite, invoke, tmp_path: Path) -> None:
    result = invoke("run", write_suite(SUITE.format(model="gpt")), "--gate", "-b", "gpt", "-c", "gpt", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "one sample per item" in result.output


def test_a_sampled_local_model_shows_consistency_and_pass_at_k(tiny_model_dir, write_suite, invoke, tmp_path: Path) -> None:
    # The tiny model counts on from the prompt's last word; at temperature 2 its choice of word wanders.
    suite = write_suite(
        f"""
name: sampled
defaults: {{repeats: 5, temperature: 2.0, max_tokens: 3, seed: 7}}
models:
  - {{id: tiny, provider: hf, model: {tiny_model_dir}, batch_size: 8}}
tasks:
  - name: count
    prompt: "{{{{ q }}}}"
    data: {{cases: [{{id: a, q: count from one, answer: two}}, {{id: b, q: please count from five, answer: six}},
                    {{id: c, q: count from one two, answer: three}}]}}
    scorers: [{{type: contains}}]
"""
    )
    out = tmp_path / "out"
    result = invoke("run", suite, "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == 15 and {r.get("sample", 0) for r in records} == set(range(5))
    row = next(r for r in csv.DictReader((run_dir / "summary.csv").open(encoding="utf-8-sig")) if r["task"] == "count")
    ks = json.loads(row["pass_at_k"])
    assert set(ks) == {"1", "2", "5"} and 0.0 <= ks["1"] <= ks["2"] <= ks["5"] <= 1.0
    assert 0.0 <= float(row["consistency"]) <= 1.0
    assert float(row["pass_rate"]) == pytest.approx(ks["1"])  # pass@1 is the mean share of passing samples
    assert "tiny on count: 5 samples per item" in result.output and "pass@5" in result.output
