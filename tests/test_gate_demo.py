"""The gate on two real trained checkpoints (suites/gate-demo.yaml): the small model must not pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gate-demo")
    result = _invoke("run", str(ROOT / "suites" / "gate-demo.yaml"), "--out", str(out))
    assert result.exit_code == 0, result.output
    return next(out.iterdir())


def test_small_model_fails_against_base_with_reasons(run_dir: Path) -> None:
    result = _invoke("gate", str(run_dir))
    assert result.exit_code == 1, result.output
    decision = json.loads((run_dir / "gate.json").read_text())
    failed = {(r["rule"], r["task"]) for r in decision["results"] if not r["passed"]}
    assert failed == {("quality non-inferiority", t) for t in ("addition", "reversal", "(all)")}
    # The drop is real and large: the whole interval is far below the margin.
    quality = [r for r in decision["results"] if r["task"] == "(all)" and r["rule"] == "quality non-inferiority"][0]
    assert "candidate − baseline = -" in quality["detail"]


def test_base_against_itself_passes_at_a_margin_40_items_can_resolve(run_dir: Path) -> None:
    # The suite's 2 s p95 latency limit is not what this test is about (a busy machine can exceed it).
    result = _invoke("gate", str(run_dir), "--candidate", "tiny-base", "--margin", "0.1", "--max-p95-latency", "60")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS")
    # 40 identical answers per task cannot rule out a 5-point drop: a model 8.8 points worse
    # would give 40 identical answers 2.5% of the time.
    strict = _invoke("gate", str(run_dir), "--candidate", "tiny-base")
    assert strict.exit_code == 1 and "[FAIL] quality non-inferiority (addition)" in strict.output


def test_a_margin_finer_than_the_suite_can_resolve_says_so(run_dir: Path) -> None:
    result = _invoke("gate", str(run_dir), "--candidate", "tiny-base", "--margin", "0.02")
    assert "too small to detect a drop of 2 points" in result.output
    assert "reflects the sample size" in result.output


def test_the_measured_quality_gap_is_real(run_dir: Path) -> None:
    rows = (run_dir / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    header = rows[0].split(",")
    overall = {r["model"]: float(r["quality_mean"]) for r in (dict(zip(header, line.split(","))) for line in rows[1:]) if r["task"] == "(all)"}
    assert overall["tiny-base"] >= 0.9 and overall["tiny-small"] <= 0.5
