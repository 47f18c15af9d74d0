"""`openbench report` through the CLI: CSV for spreadsheets, JSON for programs, Markdown and HTML for people."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from openbench.report.csv import ITEM_COLUMNS
from openbench.summary import COLUMNS

SUITE = """
name: reports
models:
  - {id: good, provider: fake, model: m1, params: {accuracy: 0.9}}
  - {id: meh, provider: fake, model: m2, params: {accuracy: 0.6}}
tasks:
  - {name: add, prompt: "{{ q }}", data: {file: cases.jsonl}, scorers: [{type: exact}]}
  - {name: echo, prompt: "say {{ q }}", data: {file: cases.jsonl}, scorers: [{type: exact}]}
"""


@pytest.fixture
def run_dir(write_suite, invoke, tmp_path: Path) -> Path:
    cases = "".join(json.dumps({"id": f"c{i}", "q": f"q{i}", "answer": str(i)}) + "\n" for i in range(20))
    suite = write_suite(SUITE, {"cases.jsonl": cases})
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    return next((tmp_path / "out").iterdir())


def _read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, so Excel reads it as UTF-8"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_files_are_spreadsheet_ready(run_dir: Path, invoke, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    result = invoke("report", str(run_dir), "--format", "csv", "-o", str(out))
    assert result.exit_code == 0, result.output
    summary = _read_csv(out / "summary.csv")
    assert list(summary[0]) == COLUMNS  # no index column; units in the names
    assert {(r["task"], r["model"]) for r in summary} == {(t, m) for t in ("add", "echo", "(all)") for m in ("good", "meh")}
    overall = {r["model"]: r for r in summary if r["task"] == "(all)"}
    assert overall["good"]["items"] == "40" and float(overall["good"]["quality_mean"]) > float(overall["meh"]["quality_mean"])
    assert overall["good"]["cost_per_task_usd"] == ""  # unknown stays empty, never 0
    items = _read_csv(out / "items.csv")
    assert list(items[0]) == ITEM_COLUMNS and len(items) == 80
    datetime.fromisoformat(items[0]["started_at"])  # ISO 8601
    assert json.loads(items[0]["scores"])["exact"]["value"] in (0.0, 1.0)
    assert all(row["tool_calls"] == "" and row["notes"] == "" for row in items)  # empty, never "None" or "[]"
    (out / "notes.txt").write_text("mine")
    assert invoke("report", str(run_dir), "--format", "csv", "-o", str(out / "notes.txt")).exit_code == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_csv_output_to_a_file_puts_the_items_beside_it(run_dir: Path, invoke, tmp_path: Path) -> None:
    target = tmp_path / "share" / "leadership.csv"
    result = invoke("report", str(run_dir), "--format", "csv", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file() and list(_read_csv(target)[0]) == COLUMNS
    items = _read_csv(tmp_path / "share" / "leadership.items.csv")
    assert list(items[0]) == ITEM_COLUMNS and len(items) == 80
    assert sorted(p.name for p in target.parent.iterdir()) == ["leadership.csv", "leadership.items.csv"]
    folder = tmp_path / "folder"
    assert invoke("report", str(run_dir), "--format", "csv", "-o", f"{folder}/").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["items.csv", "summary.csv"]


def test_every_csv_column_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, re.M))
    assert set(COLUMNS) <= documented, sorted(set(COLUMNS) - documented)
    assert set(ITEM_COLUMNS) <= documented, sorted(set(ITEM_COLUMNS) - documented)


def test_json_summary_follows_its_documented_schema(run_dir: Path, invoke) -> None:
    assert invoke("report", str(run_dir), "--format", "json").exit_code == 0
    doc = json.loads((run_dir / "report.json").read_text())
    assert doc["schema_version"] == 1 and doc["gate"] is None
    assert set(doc["run"]) == {"run_id", "status", "started_at", "ended_at", "openbench_version", "suite", "tasks", "seed"}
    assert {m["id"] for m in doc["models"]} == {"good", "meh"}
    assert all(set(row) == set(COLUMNS) for row in doc["rows"])


def test_markdown_carries_the_gate_verdict_and_html_is_one_offline_file(run_dir: Path, invoke) -> None:
    invoke("gate", str(run_dir), "-b", "good", "-c", "meh", "--margin", "0.05")
    assert invoke("report", str(run_dir), "--format", "md").exit_code == 0
    markdown = (run_dir / "report.md").read_text()
    assert "| (all) | good | 40 |" in markdown and "**Gate:** FAIL" in markdown
    assert invoke("report", str(run_dir)).exit_code == 0  # html by default
    page = (run_dir / "report.html").read_text()
    assert "<script src" not in page and "Quality against cost" in page
    gate = json.loads((run_dir / "gate.json").read_text())
    assert f'<p class="verdict">{gate["verdict"]}</p>' in page and page.index('id="gate"') < page.index('id="summary"')
    assert '<article class="answer"' in page and len(page.encode()) < 2_000_000


def test_estimate_counts_a_local_model_with_its_own_tokenizer(invoke) -> None:
    from transformers import AutoTokenizer

    root = Path(__file__).resolve().parents[1]
    result = invoke("estimate", str(root / "suites" / "gate-demo.yaml"), "--model", "tiny-base")
    assert result.exit_code == 0, result.output
    assert "model tokenizer" in result.output
    tok = AutoTokenizer.from_pretrained(root / "suites" / "models" / "tiny-base")
    expected = 0
    for name, field in (("addition", "question"), ("reversal", "prompt")):
        for line in (root / "suites" / "data" / f"{name}.jsonl").read_text().splitlines():
            text = tok.apply_chat_template([{"role": "user", "content": json.loads(line)[field]}], add_generation_prompt=True, tokenize=False)
            expected += len(tok(text, add_special_tokens=False).input_ids)
    assert f"{expected:,}" in result.output


def test_items_csv_writes_nested_fields_as_json(tmp_path: Path) -> None:
    from openbench.report.csv import write_items

    record = {"task": "t", "case_id": "c", "model": "m", "tool_calls": [{"name": "f", "arguments": {"x": 1}}], "notes": ["merged turns"]}
    write_items([record], tmp_path / "items.csv")
    row = _read_csv(tmp_path / "items.csv")[0]
    assert json.loads(row["tool_calls"]) == record["tool_calls"] and json.loads(row["notes"]) == ["merged turns"]
    assert row["error"] == "" and row["cached"] == ""


def test_report_to_standard_output(run_dir: Path, invoke, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("report", run_dir, "--format", "json", "-o", "-")
    assert result.exit_code == 0 and json.loads(result.output)["schema_version"] == 1
    assert not (tmp_path / "-").exists()
