"""Interrupting a real `openbench run` process (Ctrl-C, SIGTERM, kill -9) loses nothing, and resuming pays for nothing twice.

The run talks to the loopback OpenAI-format server through the official SDK; the server counts
every request, so "no API call is paid twice" is checked against the server, not against ourselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakeserver import FakeServer

from openbench.store import RunStore

N_CASES = 40


def _suite(tmp_path: Path) -> Path:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"id": f"c{i}", "q": f"question {i}", "answer": "ok"}) + "\n" for i in range(N_CASES)))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: interrupt\n"
        "models:\n"
        "  - {id: api, provider: openai, model: gpt-4o-mini, concurrency: 2, cache: false, backoff_s: 0.01}\n"
        "tasks:\n"
        "  - name: t\n"
        '    prompt: "{{ q }}"\n'
        "    data: {file: cases.jsonl}\n"
        "    scorers: [{type: contains}]\n"
    )
    return suite


def _paid(srv: FakeServer) -> int:
    """Chat completions asked of the server (the free warm-up GET /models is not one)."""
    return sum(r.path.endswith("/chat/completions") for r in srv.log)


def _lines(run_dir: Path) -> list[str]:
    path = run_dir / "records.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def _start(args: list[str], srv: FakeServer, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-interrupt",
        "OPENAI_BASE_URL": f"{srv.url}/v1",
        "OPENBENCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "openbench", "run", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_records(out: Path, at_least: int, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(out.glob("*/records.jsonl"))
        if runs and len(_lines(runs[0].parent)) >= at_least:
            return runs[0].parent
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} records after {timeout}s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "kill-9"])
def test_interrupted_run_resumes_without_repeating_a_request(tmp_path: Path, sig: signal.Signals) -> None:
    suite = _suite(tmp_path)
    out = tmp_path / "results"
    with FakeServer(ttft_s=0.05, per_token_s=0.01, reply="ok then") as srv:
        proc = _start([str(suite), "--out", str(out)], srv, tmp_path)
        run_dir = _wait_for_records(out, 6)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
        first = _lines(run_dir)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
            with open(run_dir / "records.jsonl", "a") as f:
                f.write('{"task": "t", "case_id": "torn')  # what kill -9 mid-write leaves behind
            # Its manifest still says "running", but every reader sees that its process is gone.
            manifest = RunStore.open(run_dir).read_manifest()
            assert manifest.status == "running" and manifest.effective_status == "interrupted"
        else:
            assert proc.returncode == 130, stderr
            assert f"openbench run --resume {run_dir}" in stderr
            manifest = json.loads((run_dir / "manifest.json").read_text())
            assert manifest["status"] == "interrupted"
            assert manifest["models"][0]["status"] == "interrupted" and manifest["models"][0]["busy_s"] > 0
        assert 0 < len(first) < N_CASES
        requests_before = _paid(srv)

        proc = _start(["--resume", str(run_dir)], srv, tmp_path)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        records = [json.loads(line) for line in _lines(run_dir) if line.endswith("}")]
        ids = [r["case_id"] for r in records]
        assert sorted(ids) == sorted(f"c{i}" for i in range(N_CASES)), "every item exactly once"
        assert all(r["error"] is None and r["passed"] for r in records)
        # Items finished before the interrupt were not asked again. An item in flight when the
        # process died was sent but never recorded, so it is asked again: at most `concurrency` of them.
        repeated = _paid(srv) - N_CASES
        assert 0 <= repeated <= 2, f"{repeated} requests repeated"
        assert _paid(srv) - requests_before == N_CASES - len([line for line in first if line.endswith("}")])
