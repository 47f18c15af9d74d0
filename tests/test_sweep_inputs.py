"""``openbench sweep`` given what it cannot measure, and its sweep.json edited by hand: one clear error each, exit 2,
no traceback, and no sweep folder left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_helpers import write_suite
from fakeserver import FakeServer

from openbench.sweepresult import SweepResult

TOKENS = 4


def _suite(srv: FakeServer, path: Path, name: str = "api", task: str = "echo") -> Path:
    models = [{"id": "engine", "provider": "openai-compatible", "model": "m", "base_url": f"{srv.url}/v1",
               "max_retries": 0, "hardware": {"name": "h100", "count": 1, "usd_per_hour": 3.6}}]
    cases = [{"id": f"c{i}", "q": f"question {i}", "answer": " ".join(f"tok{k}" for k in range(TOKENS))} for i in range(4)]
    suite = write_suite(path, models, cases, prompt="{{ q }}")
    spec = json.loads(suite.read_text())
    spec["name"], spec["tasks"][0]["name"] = name, task
    suite.write_text(json.dumps(spec))
    return suite


def _refused(result, out: Path, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert all(word in result.output for word in words), result.output
    assert not out.exists() or not any(out.iterdir()), "a refused sweep left a folder behind"


@pytest.mark.parametrize(("args", "words"), [
    (("-c", "1,8", "-n", "4"), ("--concurrency 8", "--requests-per-level 4")),
    (("--rate", "0.0001", "-n", "2"), ("--rate 0.0001", "8.3 h")),
    (("--slo-p95", "0"), ("--slo-p95",)),
    (("--slo-ttft-p95", "inf"), ("--slo-ttft-p95",)),
])
def test_a_sweep_that_cannot_be_measured_as_asked_is_refused_before_it_starts(
        tmp_path: Path, invoke, monkeypatch, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(tokens=TOKENS) as srv:
        suite = _suite(srv, tmp_path / "suite.yaml")
        result = invoke("sweep", suite, "-m", "engine", *args, "--out", tmp_path / "out")
        sent = sum(r.path.endswith("/chat/completions") for r in srv.log)
    _refused(result, tmp_path / "out", *words)
    assert sent == 0


def test_an_out_that_is_a_file_is_one_error(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with FakeServer(tokens=TOKENS) as srv:
        suite = _suite(srv, tmp_path / "suite.yaml")
        for out in (taken, taken / "sub"):
            _refused(invoke("sweep", suite, "-m", "engine", "-c", "1", "-n", "2", "--out", out), tmp_path / "none",
                     f"--out {out}")
    assert taken.read_text() == "not a folder"


def test_default_doubling_stops_where_a_level_would_exceed_its_requests(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(tokens=TOKENS) as srv:
        result = invoke("sweep", _suite(srv, tmp_path / "suite.yaml"), "-m", "engine", "-n", "3", "--warmup", "0",
                        "--out", tmp_path / "out")
        peak = srv.peak_in_flight
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    # Every level meets the target (no errors): 1, 2, and not 4, which 3 requests could never reach.
    assert [lv.concurrency for lv in SweepResult.read(folder).levels] == [1, 2] and peak <= 2


def _sweep_and_run(srv: FakeServer, tmp_path: Path, invoke) -> tuple[Path, Path, Path]:
    suite = _suite(srv, tmp_path / "suite.yaml")
    ran = invoke("run", suite, "--out", tmp_path / "runs")
    swept = invoke("sweep", suite, "-m", "engine", "-c", "1", "-n", "2", "--out", tmp_path / "sweeps")
    assert ran.exit_code == 0 and swept.exit_code == 0, ran.output + swept.output
    (run_dir,), (folder,) = (tmp_path / "runs").iterdir(), (tmp_path / "sweeps").iterdir()
    return suite, run_dir, folder


def test_against_a_run_of_another_suite_is_refused(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(tokens=TOKENS) as srv:
        other = _suite(srv, tmp_path / "other.yaml", name="other", task="summaries")
        assert invoke("run", other, "--out", tmp_path / "runs").exit_code == 0
        (run_dir,) = (tmp_path / "runs").iterdir()
        suite = _suite(srv, tmp_path / "suite.yaml")
        result = invoke("sweep", suite, "-m", "engine", "-c", "1", "-n", "2", "--against", run_dir, "--out", tmp_path / "out")
    _refused(result, tmp_path / "out", "suite 'other'", "summaries", "not a run of")


@pytest.mark.parametrize(("edit", "words"), [
    (lambda s: s["levels"][0].update(requests_per_s="fast"), ("levels.0.requests_per_s",)),
    (lambda s: s["levels"][0].update(e2e_p95_s=float("nan")), ("levels.0.e2e_p95_s", "finite")),
    (lambda s: s.update(slo_p95_s=float("inf")), ("slo_p95_s", "finite")),
    (lambda s: s.update(usd_per_hour=-3.6), ("usd_per_hour is negative",)),
    (lambda s: s["operating_point"].update(speed=1), ("operating_point.speed",)),
    (lambda s: s.update(load_axis="banana"), ("load_axis",)),
    (lambda s: s.update(warnings="none"), ("warnings",)),
])
def test_a_hand_edited_sweep_json_is_one_clear_error(tmp_path: Path, invoke, monkeypatch, edit, words) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(tokens=TOKENS) as srv:
        _, run_dir, folder = _sweep_and_run(srv, tmp_path, invoke)
    assert invoke("cost", run_dir, "--sweep", folder).exit_code == 0  # as written, it reads back
    data = json.loads((folder / "sweep.json").read_text())
    edit(data)
    (folder / "sweep.json").write_text(json.dumps(data))
    for args in (("cost", run_dir, "--sweep", folder),
                 ("report", run_dir, "--format", "html", "--sweep", folder, "-o", tmp_path / "r.html")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "not a sweep result" in result.output and "Traceback" not in result.output
        assert all(word in result.output for word in words), result.output
    assert not (tmp_path / "r.html").exists()


def test_a_level_where_every_request_failed_is_not_flagged_for_openbench_cpu(tmp_path: Path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(tokens=TOKENS, fail_all="500") as srv:
        result = invoke("sweep", _suite(srv, tmp_path / "suite.yaml"), "-m", "engine", "-c", "1", "-n", "4",
                        "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert sweep.levels[0].errors == 4 and sweep.operating_point is None and sweep.warnings == []


def _hf_suite(model_dir: Path, path: Path) -> Path:
    from test_hf_provider import PROMPTS, hf_suite

    path.write_text(hf_suite(model_dir, PROMPTS, batch_size=1), encoding="utf-8")
    return path


def test_a_local_model_that_cannot_load_leaves_no_sweep_folder(tiny_model_dir: Path, tmp_path: Path, invoke) -> None:
    import shutil

    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_text("not weights")
    result = invoke("sweep", _hf_suite(broken, tmp_path / "suite.yaml"), "-m", "tiny", "-c", "1", "-n", "2",
                    "--out", tmp_path / "out")
    _refused(result, tmp_path / "out", "cannot run")


def test_a_sweep_interrupted_while_its_model_loads_says_so(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGINT before the first level (the weights still loading): exit 130, and a sweep.json with no levels."""
    import os
    import signal
    import subprocess
    import sys

    suite = _hf_suite(tiny_model_dir, tmp_path / "suite.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "openbench", "sweep", str(suite), "-m", "tiny", "-c", "1", "-n", "4",
                             "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OPENBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.stderr is not None
    assert "loading" in proc.stderr.readline()  # said just before the weights load (torch's import alone takes longer)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert sweep.interrupted and sweep.levels == [] and "interrupted: the levels measured so far" in err
