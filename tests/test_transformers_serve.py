"""The openai-compatible provider against a real server this project did not write: ``transformers serve``.

It streams chat completions with usage on the last chunk, ignores ``stream_options`` and sends no
``[DONE]``: the provider must take all of that as a complete answer. The model is the tiny counting
Llama from conftest, so the answers are known.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from api_helpers import read_run, write_suite

pytestmark = pytest.mark.slow

STARTUP_S = 90  # imports torch and transformers, then loads the model: ~5 s idle, ~20 s on a loaded 2-core box


def _serve_command() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        found = shutil.which("transformers")
        if found is None:
            pytest.skip("the `transformers` command is not installed (pip install 'transformers[serving]')")
        exe = Path(found)
    for module in ("fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            pytest.skip(f"`transformers serve` needs {module} (pip install 'transformers[serving]')")
    return [str(exe), "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def served(tiny_model_dir: Path, tmp_path: Path) -> Iterator[str]:
    """``transformers serve`` pinned to the tiny model on a free port; yields its base URL."""
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+b")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [*_serve_command(), str(tiny_model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                pytest.fail(f"transformers serve did not become healthy (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_openai_compatible_provider_against_transformers_serve(served, tiny_model_dir, invoke, tmp_path, monkeypatch) -> None:
    from conftest import tiny_tokenizer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    starts = {"c5": "five", "c6": "six", "c7": "seven"}
    answers = {"c5": "six seven eight", "c6": "seven eight", "c7": "eight"}
    models = [
        {
            "id": "served",
            "provider": "openai-compatible",
            "model": str(tiny_model_dir),  # a server pinned to a folder answers only to that name
            "base_url": f"{served}/v1",
            "concurrency": 2,
            "max_retries": 0,
            "timeout_s": 60,
        }
    ]
    cases = [{"id": cid, "n": word, "answer": answers[cid]} for cid, word in starts.items()]
    suite = write_suite(tmp_path / "suite.yaml", models, cases, prompt="count from {{ n }}", max_tokens=10)
    out = tmp_path / "results"
    result = invoke("run", suite, "--out", out)
    outcome = read_run(out, result.exit_code, result.output)

    assert outcome.exit_code == 0, outcome.output
    assert outcome.model_entry("served")["status"] == "ok"
    tokenizer = tiny_tokenizer()
    records = outcome.of("served")
    assert sorted(records) == sorted(starts)
    for case_id, rec in records.items():
        assert rec["error"] is None, rec["error"]
        assert rec["output"].strip() == answers[case_id] and rec["passed"] is True
        # The server's own counts: the templated prompt, and at least one token per word it sent.
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": f"count from {starts[case_id]}"}], tokenize=False)
        assert rec["input_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert rec["output_tokens"] >= len(answers[case_id].split())
        assert 0 < rec["ttft_s"] <= rec["latency_s"] <= rec["wall_s"]
        assert rec["attempts"] == 1 and rec["cached"] is False
        assert rec["cost_usd"] is None  # self-hosted, and no hardware given: no price
