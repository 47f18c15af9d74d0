"""The sequential gate: the confidence sequence's guarantees, and `run --gate` against the loopback API server.

The server answers per model: the baseline and an equally good candidate each miss a different
2% of items, a worse candidate misses 40%. Items are paid for, so the early stop saves money.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from api_helpers import FAKE_OPENAI_KEY, case_id_of, completions, echo_reply, model, write_suite
from fakeserver import FakeServer

from openbench import sequential
from openbench.gaterun import blocks, order
from openbench.runner import load_work
from openbench.suite import load_suite

N_CASES = 600


# -- the statistics --------------------------------------------------------------------------------


def test_the_sequence_covers_the_mean_at_every_step_at_once() -> None:
    """Over 300 sequences of 400 paired differences, the running intersection misses the true mean
    at *some* step in at most about 5% of them (a fixed-n interval checked as often misses far more)."""
    rng = np.random.default_rng(7)
    p_minus, p_plus = 0.10, 0.04  # true mean −0.06
    missed = 0
    for _ in range(300):
        u = rng.random(400)
        d = np.where(u < p_minus, -1.0, np.where(u < p_minus + p_plus, 1.0, 0.0))
        passed, failed = sequential.verdicts(d, margin=0.06 - 1e-9, confidence=0.95)  # −margin = the true mean
        missed += bool(passed[-1] or failed[-1])
    assert missed / 300 <= 0.05 + 3 * (0.05 * 0.95 / 300) ** 0.5


def test_bounds_agree_with_the_one_pass_verdicts_and_narrow_with_n() -> None:
    rng = np.random.default_rng(3)
    d = np.where(rng.random(1500) < 0.04, -1.0, 0.0) + np.where(rng.random(1500) < 0.04, 1.0, 0.0)
    widths = []
    for n in (100, 400, 1500):
        b = sequential.bounds(d[:n])
        assert b.lo <= b.mean <= b.hi
        widths.append(b.hi - b.lo)
        for margin in (0.01, 0.03, 0.08):
            passed, failed = sequential.verdicts(d[:n], margin, 0.95)
            assert bool(passed[-1]) == (b.lo > -margin) and bool(failed[-1]) == (b.hi < -margin)
    assert widths[0] > widths[1] > widths[2]
    assert sequential.bounds([]).lo is None


def test_the_order_is_seeded_keeps_clusters_whole_and_blocks_hold_whole_clusters(write_suite) -> None:
    cases = [{"id": f"c{i}", "q": "x", "answer": "x", "doc": f"d{i // 3}"} for i in range(30)]
    suite = load_suite(write_suite(
        "name: s\nmodels: [{id: m, provider: fake, model: m}]\n"
        "tasks: [{name: t, prompt: '{{ q }}', data: {file: c.jsonl}, scorers: [{type: exact}], cluster_field: doc}]\n",
        {"c.jsonl": cases},
    ))  # fmt: skip
    units = order(load_work(suite), seed=0)
    assert len(units) == 10 and all(len(u.items) == 3 for u in units)
    assert [u.key for u in units] == [u.key for u in order(load_work(suite), seed=0)]
    assert [u.key for u in units] != [u.key for u in order(load_work(suite), seed=1)]
    assert [u.key for u in units] != sorted(u.key for u in units)
    assert [sum(len(u.items) for u in b) for b in blocks(units, 5)] == [6] * 5


# -- through the CLI, against the loopback server --------------------------------------------------


def _miss(case_id: str, lo: float, hi: float) -> bool:
    h = int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) / 2**32
    return lo <= h < hi


def per_model_reply(body: dict[str, Any]) -> str:
    """Right or wrong by model: the baseline misses 2% of items, the twin another 2%, the worse one 40%."""
    misses = {"gpt-4o-mini": (0.0, 0.02), "gpt-4.1-mini": (0.02, 0.04), "gpt-4.1": (0.0, 0.40)}
    case_id = body["messages"][-1]["content"].split("]", 1)[0].lstrip("[")
    return "wrong" if _miss(case_id, *misses[body["model"]]) else echo_reply(body)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    with FakeServer(reply_fn=per_model_reply) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        yield srv


def _suite(tmp_path: Path, **gate: Any) -> Path:
    models = [
        model("base", "openai", "gpt-4o-mini", concurrency=8),
        model("twin", "openai", "gpt-4.1-mini", concurrency=8),
        model("worse", "openai", "gpt-4.1", concurrency=8),
    ]
    cases = [{"id": f"c{i}", "words": f"w{i}", "answer": f"w{i}"} for i in range(N_CASES)]
    path = write_suite(tmp_path / "suite.yaml", models, cases)
    spec = json.loads(path.read_text())
    spec["gate"] = {"baseline": "base", "margin": 0.05, **gate}
    path.write_text(json.dumps(spec))
    return path


def _gate_json(out: Path) -> dict[str, Any]:
    (run_dir,) = list(out.iterdir())
    return json.loads((run_dir / "gate.json").read_text())


def _asked(srv: FakeServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in completions(srv):
        counts[r.body["model"]] = counts.get(r.body["model"], 0) + 1
    return counts


def test_an_equal_candidate_passes_early_and_the_saving_is_reported(server: FakeServer, invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", _suite(tmp_path, candidate="twin"), "--gate", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.count("gate block ") >= 2 and "PASS, stopping" in result.output
    assert "[pass] quality non-inferiority ((all))" in result.output and "confidence sequence" in result.output
    seq = _gate_json(out)["sequential"]
    assert seq["settled"] and seq["decided_by"] == "confidence sequence"
    used = seq["items_used"]
    assert used < N_CASES and seq["items_saved_per_model"] == N_CASES - used
    # The server was asked for the items used and nothing more: two models, one request each.
    assert _asked(server) == {"gpt-4o-mini": used, "gpt-4.1-mini": used}
    # Dollars saved: each model's $ per item so far, times the items it did not run.
    records = [json.loads(x) for x in next(out.iterdir()).joinpath("records.jsonl").read_text().splitlines()]
    per_item = sum(r["cost_usd"] for r in records) / used
    assert seq["usd_saved_estimate"] == pytest.approx(per_item * (N_CASES - used), rel=1e-3)
    assert f"saved {N_CASES - used} items per model" in result.output
    assert "Sequential gate" in (next(out.iterdir()) / "gate.md").read_text()
    # A resumed sequential run continues the same sequence: other settings are refused (exit 2), not silently used.
    again = invoke("run", "--resume", next(out.iterdir()), "--gate", "--margin", "0.1")
    assert again.exit_code == 2 and "--margin 0.1 (the run used 0.05)" in again.output


def test_a_worse_candidate_fails_early_with_exit_1(server: FakeServer, invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", _suite(tmp_path, candidate="worse"), "--gate", "--out", out)
    assert result.exit_code == 1, result.output
    assert "FAIL, stopping" in result.output and result.output.count("FAIL: ") == 1
    decision = _gate_json(out)
    assert decision["passed"] is False and decision["sequential"]["items_used"] <= 100
    quality = [r for r in decision["results"] if r["rule"] == "quality non-inferiority"]
    assert quality and not quality[0]["passed"]
    assert sum(_asked(server).values()) == 2 * decision["sequential"]["items_used"]


def test_the_suite_running_out_leaves_the_decision_to_the_fixed_n_gate(server: FakeServer, invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", _suite(tmp_path, candidate="twin"), "--gate", "--limit", "40", "--out", out)
    seq = _gate_json(out)["sequential"]
    assert not seq["settled"] and seq["decided_by"] == "fixed-n gate" and seq["items_used"] == 40
    assert "too small to detect" in result.output  # the fixed-n gate's MDE warning
    assert result.exit_code in (0, 1)


@pytest.mark.parametrize("args", [["--gate", "--candidate", "nope"], ["--margin", "0.1"], ["--gate", "--candidate", "base"]])
def test_bad_gate_options_exit_2(server: FakeServer, invoke, tmp_path: Path, args: list[str]) -> None:
    result = invoke("run", _suite(tmp_path), *args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def _start(args: list[str], srv: FakeServer, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_OPENAI_KEY, "OPENAI_BASE_URL": f"{srv.url}/v1", "OPENBENCH_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-m", "openbench", "run", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_and_resume_continue_to_the_same_decision(invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _suite(tmp_path, candidate="twin")
    with FakeServer(reply_fn=per_model_reply) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        reference = invoke("run", suite, "--gate", "--out", tmp_path / "ref")
        assert reference.exit_code == 0, reference.output
        expected = _gate_json(tmp_path / "ref")

    with FakeServer(reply_fn=per_model_reply, ttft_s=0.02) as srv:
        out = tmp_path / "killed"
        proc = _start([str(suite), "--gate", "--out", str(out)], srv, tmp_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = [p.read_text().count("\n") for p in out.glob("*/records.jsonl")]
            if lines and lines[0] >= 70:  # past the first blocks, well before the decision
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        (run_dir,) = list(out.iterdir())
        assert not (run_dir / "gate.json").exists()
        before = len(completions(srv))
        proc = _start(["--resume", str(run_dir), "--gate"], srv, tmp_path)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "PASS" in stdout
        resumed = json.loads((run_dir / "gate.json").read_text())
    for key in ("items_used", "items_saved_per_model", "blocks", "settled"):
        assert resumed["sequential"][key] == expected["sequential"][key], key
    assert resumed["verdict"] == expected["verdict"]
    # Each item used was asked once per model; an item is asked again only if it was in flight when the process died.
    asked = [(r.body["model"], case_id_of(r)) for r in completions(srv)]
    assert len(set(asked)) == 2 * expected["sequential"]["items_used"]
    assert len(asked) - len(set(asked)) <= 2 * 8 and before >= 70


def test_per_task_rules_each_get_a_sequence_of_their_own(write_suite, invoke, tmp_path: Path) -> None:
    """Two tasks: a pass needs every task's lower bound above −margin and the overall one; a worse candidate fails."""
    cases = "".join(json.dumps({"id": f"c{i}", "q": f"q{i}", "answer": str(i)}) + "\n" for i in range(400))
    suite = write_suite(
        "name: two\n"
        "models:\n"
        "  - {id: base, provider: fake, model: m, params: {accuracy: 0.9}}\n"
        "  - {id: worse, provider: fake, model: m2, params: {accuracy: 0.5}}\n"
        "tasks:\n"
        "  - {name: a, prompt: '{{ q }}', data: {file: c.jsonl}, scorers: [{type: exact}]}\n"
        "  - {name: b, prompt: 'say {{ q }}', data: {file: c.jsonl}, scorers: [{type: exact}]}\n"
        "gate: {baseline: base, candidate: worse, margin: 0.05}\n",
        {"c.jsonl": cases},
    )
    result = invoke("run", suite, "--gate", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    decision = _gate_json(tmp_path / "out")
    quality = {r["task"]: r["passed"] for r in decision["results"] if r["rule"] == "quality non-inferiority"}
    assert set(quality) == {"a", "b", "(all)"} and not any(quality.values())
    assert set(decision["sequential"]["blocks"][-1]["streams"]) == {"a", "b", "(all)"}
    assert decision["sequential"]["items_used"] < 800


def test_clusters_are_one_observation_each_and_run_whole(write_suite, invoke, tmp_path: Path) -> None:
    cases = "".join(json.dumps({"id": f"c{i}", "q": f"q{i}", "answer": str(i), "doc": f"d{i // 4}"}) + "\n" for i in range(800))
    suite = write_suite(
        "name: clustered\n"
        "models:\n"
        "  - {id: base, provider: fake, model: m, params: {accuracy: 0.9}}\n"
        "  - {id: worse, provider: fake, model: m2, params: {accuracy: 0.4}}\n"
        "tasks:\n"
        "  - {name: a, prompt: '{{ q }}', data: {file: c.jsonl}, scorers: [{type: exact}], cluster_field: doc}\n"
        "gate: {baseline: base, candidate: worse, margin: 0.05}\n",
        {"c.jsonl": cases},
    )
    result = invoke("run", suite, "--gate", "--gate-block", "10", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    seq = _gate_json(tmp_path / "out")["sequential"]
    used = seq["items_used"]
    assert used % 4 == 0 and used < 800
    assert seq["blocks"][-1]["streams"]["(all)"]["n"] == used // 4  # one observation per cluster
    records = [json.loads(x) for x in next((tmp_path / "out").iterdir()).joinpath("records.jsonl").read_text().splitlines()]
    docs = {}
    for r in records:
        docs.setdefault(r["cluster"], set()).add(r["case_id"])
    assert all(len(ids) == 4 for ids in docs.values())  # every cluster ran whole


def test_a_side_that_cannot_run_is_refused_before_any_folder(write_suite, invoke, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    suite = write_suite("""
name: skipped-side
models:
  - {id: gpt, provider: openai, model: gpt-4o-mini}
  - {id: f, provider: fake, model: m}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: x}]}, scorers: [{type: contains}]}
""")
    out = tmp_path / "out"
    result = invoke("run", suite, "--gate", "-b", "gpt", "-c", "f", "--out", out)
    assert result.exit_code == 2 and "the baseline 'gpt' cannot run: OPENAI_API_KEY is not set" in result.output
    assert not out.exists()
