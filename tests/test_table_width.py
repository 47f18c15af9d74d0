"""The run table in a real pseudo-terminal at 80, 120 and 200 columns: it fits, and no number is ever cut.

Each case runs ``python -m openbench show`` on a pty whose window size is set with TIOCSWINSZ,
as a terminal emulator does, so rich measures the terminal the way it does for a user.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from openbench.report.table import COLUMNS
from openbench.store import RunStore
from openbench.summary import summarise

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

SUITE = """
name: widths
models:
  - id: smollm2-135m
    provider: fake
    model: m1
    params: {accuracy: 0.7, ttft_s: 0.002, per_token_s: 0.001}
    hardware: {name: cpu-2core, usd_per_hour: 400}
  - {id: claude-haiku-4-5, provider: fake, model: m2, params: {accuracy: 0.9, ttft_s: 0.001}}
tasks:
  - {name: triage, prompt: "{{ q }} please answer", data: {file: cases.jsonl}, scorers: [{type: exact}]}
  - {name: extract, prompt: "say {{ q }}", data: {file: cases.jsonl}, scorers: [{type: exact}]}
"""
HEADERS = {c.key: c.header for c in COLUMNS}
AT_80 = ["task", "model", "n", "quality", "pass", "p95", "$/task", "errors"]
AT_120 = [c.key for c in COLUMNS if c.key in AT_80 + ["ttft", "tok/s", "tokens"]]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from openbench.cli import app

    folder = tmp_path_factory.mktemp("widths")
    (folder / "cases.jsonl").write_text("".join(f'{{"id": "c{i}", "q": "q{i}", "answer": "answer {i}"}}\n' for i in range(30)))
    (folder / "suite.yaml").write_text(SUITE)
    result = CliRunner().invoke(app, ["run", str(folder / "suite.yaml"), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return next((folder / "out").iterdir())


def in_pty(columns: int, *args: str, env: dict[str, str] | None = None) -> str:
    """The CLI's output on a pseudo-terminal ``columns`` wide (escape codes kept, line ends normalised)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    environ = {**base, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "openbench", *args], stdin=slave, stdout=slave, stderr=slave, env=environ, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode().replace("\r\n", "\n")


def header_keys(text: str) -> list[str]:
    """Which columns the table shows, read from its header line."""
    head = next(line for line in text.splitlines() if re.search(r"(?<![\w-])model(?![\w-])", line))
    return [c.key for c in COLUMNS if re.search(rf"(?<![\w/$]){re.escape(c.header)}(?![\w/])", head)]


def cells(run_dir: Path) -> dict[str, set[str]]:
    """Every cell of every column, computed from the run, to find whole in the output."""
    store = RunStore.open(run_dir)
    rows = summarise(store.iter_records(), store.read_manifest())
    return {c.key: {c.cell(r) for r in rows} for c in COLUMNS}


@pytest.mark.parametrize(("width", "expected"), [(80, AT_80), (120, AT_120), (200, [c.key for c in COLUMNS if c.key not in ("$/month", "excl")])])
def test_table_fits_the_terminal_and_never_cuts_a_number(run_dir: Path, width: int, expected: list[str]) -> None:
    raw = in_pty(width, "show", str(run_dir))
    text = ANSI.sub("", raw)
    assert "…" not in text
    table = [line for line in text.splitlines() if line.strip() and not line.startswith("  ")]
    assert max(len(line) for line in table) <= width, text
    assert header_keys(text) == expected, text
    for key in expected:
        if key not in ("task", "model"):
            for cell in cells(run_dir)[key]:
                assert cell in text, (key, cell)
    left_out = [HEADERS[k] for k in HEADERS if k not in expected and k not in ("$/month", "excl")]  # no errors here
    if left_out:
        assert f"left out to fit {width} columns: {', '.join(left_out)} (--wide shows them)" in " ".join(text.split())


def test_wide_and_a_columns_choice(run_dir: Path, write_suite, invoke) -> None:
    text = ANSI.sub("", in_pty(80, "show", str(run_dir), "--wide"))
    assert header_keys(text) == [c.key for c in COLUMNS if c.key not in ("$/month", "excl")] and "…" not in text
    for cell in cells(run_dir)["$/passed"]:
        assert cell in text
    text = ANSI.sub("", in_pty(80, "show", str(run_dir), "--columns", "model,quality,tok/s,cached"))
    assert header_keys(text) == ["model", "quality", "tok/s", "cached"]
    bad = invoke("show", str(run_dir), "--columns", "model,qualty")
    assert bad.exit_code == 2 and "unknown table column 'qualty' (did you mean 'quality'?)" in bad.output
    cases = "".join(f'{{"id": "c{i}", "q": "q{i}", "answer": "a"}}\n' for i in range(3))
    suite = write_suite(SUITE.replace("tasks:", "columns: [model, p95, tok/s]\ntasks:"), {"cases.jsonl": cases})
    result = invoke("run", str(suite), "--out", str(suite.parent / "out"))
    assert result.exit_code == 0 and header_keys(result.output) == ["model", "p95", "tok/s"]
    typo = write_suite(SUITE.replace("tasks:", "columns: [model, p59]\ntasks:"), name="typo.yaml")
    result = invoke("validate", str(typo))
    assert result.exit_code == 2 and "typo.yaml:9: columns:" in result.output and "'p59' (did you mean 'p95'" in result.output


def test_no_color_and_plain_output_carry_no_escape_codes(run_dir: Path, invoke) -> None:
    coloured = in_pty(120, "show", str(run_dir))
    assert "\x1b[" in coloured  # a terminal gets styles...
    assert "\x1b" not in in_pty(120, "show", str(run_dir), env={"NO_COLOR": "1"})  # ...unless NO_COLOR says no
    plain = invoke("show", str(run_dir))  # not a terminal: every column, no codes
    assert plain.exit_code == 0 and "\x1b" not in plain.output
    assert header_keys(plain.output) == [c.key for c in COLUMNS if c.key not in ("$/month", "excl")]
