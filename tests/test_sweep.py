"""``openbench sweep`` against a server with a fixed number of slots: it finds what queueing theory predicts.

A closed loop of ``c`` clients on ``s`` slots, each request taking ``T`` seconds: throughput is
``min(c, s) / T`` requests/s, and once ``c > s`` every request waits for ``c / s - 1`` others, so
E2E (and its p95) is ``T * c / s``. The operating point at a target between ``T`` and ``2T`` is ``c = s``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_helpers import write_suite
from fakeserver import FakeServer, FakeServerProcess

from openbench.sweepresult import SweepResult

SLOTS, TTFT, PER_TOKEN, TOKENS = 4, 0.15, 0.03, 6
T = TTFT + (TOKENS - 1) * PER_TOKEN  # one request's service time: 0.3 s
PER_LEVEL = 24  # more than the largest level, so that it reaches its steady state
LEVELS = (2, 4, 8, 16)


def _suite(srv: FakeServer | FakeServerProcess, tmp_path: Path) -> Path:
    models = [{"id": "engine", "provider": "openai-compatible", "model": "m", "base_url": f"{srv.url}/v1",
               "max_retries": 0, "hardware": {"name": "h100", "count": 1, "usd_per_hour": 3.6}}]
    cases = [{"id": f"c{i}", "q": f"question {i}", "answer": " ".join(f"tok{k}" for k in range(TOKENS))} for i in range(8)]
    return write_suite(tmp_path / "suite.yaml", models, cases, prompt="{{ q }}")


def test_sweep_finds_the_queueing_theory_operating_point(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # The server in a process of its own, so that its timing does not share the client's interpreter.
    args = ("--ttft", str(TTFT), "--per-token", str(PER_TOKEN), "--tokens", str(TOKENS), "--slots", str(SLOTS))
    with FakeServerProcess(*args) as srv:
        suite = _suite(srv, tmp_path)
        result = invoke("sweep", suite, "--model", "engine", "--concurrency", ",".join(map(str, LEVELS)),
                        "--requests-per-level", str(PER_LEVEL), "--slo-p95", str(1.5 * T), "--out", tmp_path / "out")
        peak = srv.stats()["peak_in_flight"]
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert [lv.concurrency for lv in sweep.levels] == list(LEVELS) and peak >= 16
    # The request time as the client sees it: the server's T plus the client's own constant share
    # (a few ms on a quiet machine, tens on a busy one), measured where nothing queues.
    request_s = sweep.levels[0].e2e_p50_s
    assert T <= request_s < T * 1.5
    for lv in sweep.levels:
        assert lv.errors == 0 and lv.requests == PER_LEVEL
        expected_rps = min(lv.concurrency, SLOTS) / request_s
        expected_p95 = request_s * max(1.0, lv.concurrency / SLOTS)
        assert lv.requests_per_s == pytest.approx(expected_rps, rel=0.15), lv
        assert lv.e2e_p95_s == pytest.approx(expected_p95, rel=0.15), lv
        assert lv.output_tokens_per_s == pytest.approx(lv.requests_per_s * TOKENS, rel=0.01)
        assert lv.quality == 1.0
    point = sweep.operating_point
    assert point is not None and point.concurrency == SLOTS
    # $3.60/h at the measured throughput: $/task = 3.6 / (req/s * 3600), $/1M output tokens likewise.
    assert point.usd_per_task == pytest.approx(3.6 / (point.requests_per_s * 3600))
    assert point.usd_per_mtok_output == pytest.approx(3.6 / (point.output_tokens_per_s * 3600) * 1e6)
    raw = json.loads((folder / "sweep.json").read_text())
    for key in ("concurrency", "requests_per_s", "output_tokens_per_s", "e2e_p95_s", "ttft_p95_s", "usd_per_mtok_output", "usd_per_task"):
        assert raw["operating_point"][key] is not None
    assert len((folder / "level-c8.jsonl").read_text().splitlines()) == PER_LEVEL
    assert "operating point: concurrency 4" in result.output


def test_default_levels_double_until_the_target_breaks(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(ttft_s=TTFT, per_token_s=PER_TOKEN, tokens=TOKENS) as srv:
        srv.slots = 2
        result = invoke("sweep", _suite(srv, tmp_path), "--model", "engine", "--requests-per-level", "8",
                        "--slo-p95", str(1.5 * T), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    # 1 and 2 fit in the 2 slots; 4 queues (p95 = 2T, above the target) and ends the sweep.
    assert [lv.concurrency for lv in sweep.levels] == [1, 2, 4]
    assert sweep.operating_point.concurrency == 2


def test_sweep_refuses_a_per_token_api_model(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    suite = write_suite(tmp_path / "suite.yaml", [{"id": "api", "provider": "openai", "model": "gpt-4o-mini"}],
                        [{"id": "a", "q": "x", "answer": "y"}], prompt="{{ q }}")
    result = invoke("sweep", suite, "--model", "api", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "billed per token" in result.output


def test_cost_prices_a_run_at_the_sweeps_operating_point(tmp_path: Path, invoke, monkeypatch) -> None:
    from openbench.pricing.hardware import HOURS_PER_MONTH

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeServer(ttft_s=0.01, per_token_s=0.001, tokens=TOKENS) as srv:
        srv.slots = 2
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        suite = _suite(srv, tmp_path)
        spec = json.loads(suite.read_text())
        spec["models"].append({"id": "gpt-4o-mini", "provider": "openai", "model": "gpt-4o-mini", "cache": False})
        suite.write_text(json.dumps(spec))
        swept = invoke("sweep", suite, "--model", "engine", "--concurrency", "1,2", "--requests-per-level", "4", "--out", tmp_path / "sweeps")
        ran = invoke("run", suite, "--out", tmp_path / "runs")
    assert swept.exit_code == 0 and ran.exit_code == 0, swept.output + ran.output
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    (run_dir,) = (tmp_path / "runs").iterdir()
    point = SweepResult.read(sweep_dir).operating_point
    result = invoke("cost", run_dir, "--sweep", sweep_dir)
    assert result.exit_code == 0, result.output
    api_per_task = next(json.loads(line)["cost_usd"] for line in (run_dir / "records.jsonl").read_text().splitlines()
                        if '"gpt-4o-mini"' in line)
    even = 3.6 * HOURS_PER_MONTH / api_per_task
    capacity = point.requests_per_s * 3600 * HOURS_PER_MONTH
    assert f"concurrency {point.concurrency}" in result.output and "vs gpt-4o-mini" in result.output
    expected = f"cheaper above {even:,.0f} tasks/month" if even <= capacity else "never pays for itself"
    assert expected in result.output
    assert invoke("cost", run_dir, "--sweep", tmp_path).exit_code == 2  # not a sweep folder


def test_rate_sweep_follows_poisson_arrivals_up_to_the_servers_capacity(tmp_path: Path, invoke, monkeypatch) -> None:
    """Open loop on ``s`` slots of ``T`` seconds: below capacity the server keeps up (throughput = arrivals,
    p95 near T); above it, throughput plateaus at s / T and the queue, so p95, grows with every arrival."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ("--ttft", str(TTFT), "--per-token", str(PER_TOKEN), "--tokens", str(TOKENS), "--slots", str(SLOTS))
    capacity = SLOTS / T  # 13.3 requests/s
    with FakeServerProcess(*args) as srv:
        result = invoke("sweep", _suite(srv, tmp_path), "--model", "engine", "--rate", "8,30", "--requests-per-level", "24",
                        "--warmup", "4", "--slo-p95", str(2 * T), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert sweep.load_axis == "rate" and [lv.rate_per_s for lv in sweep.levels] == [8, 30]
    under, over = sweep.levels
    for lv in sweep.levels:
        assert lv.errors == 0 and lv.requests == 24 and lv.arrivals_per_s == pytest.approx(lv.rate_per_s, rel=0.5)
    # Below capacity: every arrival is served as it comes, in about T.
    assert under.requests_per_s == pytest.approx(under.arrivals_per_s, rel=0.15)
    assert T <= under.e2e_p50_s < 1.5 * T and under.e2e_p95_s < 2 * T
    # Above it: the server's own rate, and a queue that only grows.
    assert over.requests_per_s == pytest.approx(capacity, rel=0.15)
    assert over.e2e_p95_s > 3 * T and over.peak_in_flight > 2 * SLOTS
    assert sweep.operating_point is not None and sweep.operating_point.rate_per_s == 8
    assert "offered req/s" in result.output and (folder / "level-r30.jsonl").exists()


def test_rate_and_concurrency_are_exclusive_and_rates_must_be_positive(tmp_path: Path, invoke) -> None:
    suite = write_suite(tmp_path / "suite.yaml", [{"id": "engine", "provider": "openai-compatible", "model": "m",
                                                   "base_url": "http://127.0.0.1:9/v1"}], [{"id": "a", "q": "x", "answer": "y"}],
                        prompt="{{ q }}")
    both = invoke("sweep", suite, "-m", "engine", "--rate", "1", "--concurrency", "1", "--out", tmp_path / "o")
    assert both.exit_code == 2 and "not both" in both.output
    for bad in ("0", "-1,2", "fast"):
        result = invoke("sweep", suite, "-m", "engine", "--rate", bad, "--out", tmp_path / "o")
        assert result.exit_code == 2 and "--rate" in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_sweep_prices_the_suites_api_models_on_the_same_token_mix(tmp_path: Path, invoke, monkeypatch) -> None:
    from openbench.pricing import cost, resolve_price
    from openbench.records import Usage
    from openbench.sweepresult import break_even

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeServer(ttft_s=0.01, per_token_s=0.001, tokens=TOKENS) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        suite = _suite(srv, tmp_path)
        spec = json.loads(suite.read_text())
        spec["models"] += [{"id": "mini", "provider": "openai", "model": "gpt-4o-mini", "cache": False},
                           {"id": "haiku", "provider": "anthropic", "model": "claude-haiku-4-5"}]
        suite.write_text(json.dumps(spec))
        ran = invoke("run", suite, "--model", "mini", "--out", tmp_path / "runs")
        (run_dir,) = (tmp_path / "runs").iterdir()
        swept = invoke("sweep", suite, "-m", "engine", "-c", "2", "-n", "8", "--against", run_dir, "--out", tmp_path / "sweeps")
    assert ran.exit_code == 0 and swept.exit_code == 0, ran.output + swept.output
    (folder,) = (tmp_path / "sweeps").iterdir()
    sweep = SweepResult.read(folder)
    point = sweep.operating_point
    assert point.output_tokens_mean == TOKENS and point.input_tokens_mean > 0
    rows = {row.model: row for row in sweep.against}
    assert set(rows) == {"mini", "haiku"}
    mix = Usage(input_tokens=round(point.input_tokens_mean), output_tokens=TOKENS)
    for model_id, provider, name in (("mini", "openai", "gpt-4o-mini"), ("haiku", "anthropic", "claude-haiku-4-5")):
        expected = cost(mix, resolve_price(provider, name))
        assert rows[model_id].usd_per_task == pytest.approx(expected) and expected > 0
        assert rows[model_id].break_even_tasks_per_month == break_even(point, expected)
    assert rows["mini"].quality == 1.0 and rows["haiku"].quality is None  # only mini ran
    assert "mini:" in swept.output and "haiku:" in swept.output and "same token mix" in swept.output


def test_an_interrupted_sweep_keeps_the_levels_it_measured(tmp_path: Path) -> None:
    """SIGTERM (a cancelled CI job) during the second level: exit 130, and sweep.json holds the first level."""
    import os
    import signal
    import subprocess
    import sys
    import time

    with FakeServer(ttft_s=0.02, per_token_s=0.002, tokens=TOKENS) as srv:
        suite = _suite(srv, tmp_path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "openbench", "sweep", str(suite), "-m", "engine", "-c", "1,2", "-n", "100",
             "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OPENBENCH_CACHE_DIR": str(tmp_path / "cache")},
        )
        # The first level (a warm-up request and 100 measured) takes about 101 * 0.03 s; interrupt in the second.
        deadline = time.monotonic() + 120
        while sum(r.path.endswith("/chat/completions") for r in srv.log) < 110 and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert sweep.interrupted and [lv.concurrency for lv in sweep.levels] == [1] and sweep.levels[0].requests == 100
    assert "interrupted: the levels measured so far" in err and "c=1" in err
    assert "stopped before its last level" in (folder / "sweep.html").read_text(encoding="utf-8")
