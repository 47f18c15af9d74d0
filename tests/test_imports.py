"""Heavy packages load only when used: the CLI module and --help import none of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "transformers", "openai", "anthropic", "pandas", "datasets", "numpy"]

PROBE = """
import json, runpy, sys
{body}
print("HEAVY=" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def run_probe(body: str) -> subprocess.CompletedProcess:
    code = PROBE.format(body=body, heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)


def heavy_loaded(proc: subprocess.CompletedProcess) -> list[str]:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY="))


def test_import_cli_is_light():
    proc = run_probe("import openbench.cli")
    assert proc.returncode == 0, proc.stderr
    assert heavy_loaded(proc) == []


def run_cli_probe(*args: str):
    """Run the CLI in a probe process (which then reports the heavy modules it loaded)."""
    body = f"""
sys.argv = ["openbench", *{list(args)!r}]
try:
    runpy.run_module("openbench", run_name="__main__")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    return run_probe(body)


def test_help_is_light():
    proc = run_cli_probe("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "run" in proc.stdout
    assert heavy_loaded(proc) == []


def test_python_dash_m_help_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "openbench", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "openbench run suites/quickstart.yaml" in proc.stdout


def test_validate_is_light():
    # Checking a suite that names hf, openai and anthropic models loads none of their libraries.
    proc = run_cli_probe("validate", "suites/quickstart.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "ok: suites/quickstart.yaml" in proc.stdout
    assert heavy_loaded(proc) == []


def test_a_run_and_its_summary_load_nothing_heavy(tmp_path: Path):
    # A run's table needs percentiles and means, not numpy; a run without --gate needs no gate machinery.
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: light\nmodels:\n  - {id: own, provider: fake, model: m}\n"
        "tasks:\n  - {name: t, prompt: '{{ q }}', data: {cases: [{id: a, q: x}, {id: b, q: y}]}, scorers: [{type: contains, expected: x}]}\n"
    )
    proc = run_cli_probe("run", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "own" in proc.stdout
    assert heavy_loaded(proc) == []
