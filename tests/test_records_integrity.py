"""records.jsonl never shrinks or grows silently: unreadable lines are counted and named, duplicates count once."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from openbench.records import ItemResult
from openbench.store import RunStore

FAKE = "{{id: {0}, provider: fake, model: m-{0}, params: {{accuracy: 0.9}}}}"
SUITE = f"""
name: integrity
models: [{FAKE.format("base")}, {FAKE.format("cand")}]
tasks: [{{name: add, prompt: "{{{{ q }}}}", data: {{file: cases.jsonl}}, scorers: [{{type: exact}}]}}]
gate: {{baseline: base, candidate: cand, margin: 0.5}}
"""
N = 6  # cases per model


@pytest.fixture
def run(write_suite, invoke, tmp_path: Path) -> Path:
    rows = [{"id": f"c{i}", "q": f"q{i}", "answer": str(i)} for i in range(N)]
    result = invoke("run", write_suite(SUITE, {"cases.jsonl": rows}), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    return next((tmp_path / "out").iterdir())


def lines(run: Path) -> list[str]:
    return (run / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def write(run: Path, content: list[str]) -> None:
    (run / "records.jsonl").write_text("".join(content), encoding="utf-8")


def items(run: Path) -> dict[str, int]:
    """Items per model in the overall rows of summary.csv (rewritten by `show`)."""
    with open(run / "summary.csv", encoding="utf-8-sig") as f:
        return {r["model"]: int(r["items"]) for r in csv.DictReader(f) if r["task"] == "(all)"}


def warnings_in(output: str) -> list[str]:
    """Warnings about records.jsonl (commands may warn about other things too)."""
    return [line for line in output.splitlines() if line.startswith("warning:") and "records.jsonl" in line]


def test_a_clean_run_reads_without_warning(run, invoke):
    result = invoke("show", run)
    assert result.exit_code == 0, result.output
    assert warnings_in(result.output) == []
    assert items(run) == {"base": N, "cand": N}
    assert RunStore(run).health().bad == []


def test_corrupt_and_wrong_schema_lines_are_counted_and_named(run, invoke):
    content = lines(run)
    content[2] = content[2][:40] + "#" + content[2][41:]  # a flipped byte: no longer JSON
    gone = json.loads(content[4])
    del gone["model"]
    content[4] = json.dumps(gone) + "\n"  # valid JSON, wrong schema
    write(run, content)
    for command in (["show"], ["report", "--format", "json"], ["report", "--format", "csv"], ["cost"],
                    ["compare", "--baseline", "base", "--candidate", "cand", "--allow-partial"]):
        result = invoke(*command[:1], run, *command[1:])
        assert result.exit_code == 0, (command, result.output)
        found = warnings_in(result.output)
        assert len(found) == 1, (command, result.output)  # one warning, even for readers that read twice
        assert f"2 of {2 * N} lines" in found[0]
        assert "records.jsonl:3 (invalid JSON" in found[0] and "records.jsonl:5 (no model)" in found[0]
    invoke("show", run)
    assert sum(items(run).values()) == 2 * N - 2  # left out, and said so


def test_lines_that_are_not_records_are_named_with_why(run):
    content = lines(run)
    content[0] = '["a", "list"]\n'
    content[1] = json.dumps({**json.loads(content[1]), "task": 7}) + "\n"
    content[2] = "\n"  # a blank line holds no record: not counted
    write(run, content)
    health = RunStore(run).health()
    assert [(b.line, b.problem) for b in health.bad] == [(1, "a JSON list, not a record"), (2, "task not a string")]
    assert len(list(RunStore(run).iter_raw())) == 2 * N - 3


def test_a_torn_last_line_is_tolerated_and_reported(run, invoke):
    content = lines(run)
    content[-1] = content[-1][: len(content[-1]) // 2]  # what kill -9 leaves
    write(run, content)
    result = invoke("show", run)
    assert result.exit_code == 0, result.output
    [warning] = warnings_in(result.output)
    assert f"records.jsonl:{2 * N} (torn last line" in warning
    health = RunStore(run).health()
    assert [b.line for b in health.bad] == [2 * N] and health.corrupt == []


def test_a_duplicated_line_counts_once_in_a_run_never_resumed(run, invoke):
    content = lines(run)
    assert not json.loads((run / "manifest.json").read_text()).get("resumed_at")
    write(run, content + [content[0]])
    result = invoke("show", run)
    assert result.exit_code == 0 and warnings_in(result.output) == []
    assert items(run) == {"base": N, "cand": N}


def test_the_latest_record_of_an_item_wins_whatever_its_formatting(run):
    content = lines(run)
    first = json.loads(content[0])
    # Written by hand or another tool: other key order and spacing, so found by parsing, not by its prefix.
    changed = {"model": first["model"], "score": 0.25, "case_id": first["case_id"], "task": first["task"]}
    write(run, content + [json.dumps(changed, indent=None, separators=(",", ":")) + "\n"])
    latest = RunStore(run).latest_records()
    assert len(latest) == 2 * N
    assert latest[(first["task"], first["case_id"], first["model"], 0)].score == 0.25
    raw = list(RunStore(run).iter_raw())
    assert len(raw) == 2 * N and raw[-1]["score"] == 0.25  # in file order of the latest line


def test_the_latest_record_wins_in_a_file_written_only_by_openbench(run):
    content = lines(run)
    again = {**json.loads(content[1]), "score": 0.5}  # as a resumed run or a rescore appends it
    write(run, content + [json.dumps(again, ensure_ascii=False) + "\n"])
    store = RunStore(run)
    latest = store.latest_records()
    assert len(latest) == 2 * N and latest[(again["task"], again["case_id"], again["model"], 0)].score == 0.5
    assert store.health().bad == []


def test_a_corrupt_later_line_does_not_hide_an_earlier_good_record(run):
    content = lines(run)
    torn = content[0][:30]  # the same item, torn mid-write
    write(run, content + [torn])
    latest = RunStore(run).latest_records()
    assert len(latest) == 2 * N


def test_records_start_with_their_key_then_output():
    """The store finds an item's key without parsing by relying on this order (a repeat's sample is part of the key)."""
    names = [f.name for f in dataclasses.fields(ItemResult)]
    assert names[:5] == ["task", "case_id", "model", "sample", "output"]
    line = json.dumps(ItemResult(task='t "x", "output": ', case_id="é", model="m").to_dict(), ensure_ascii=False)
    assert line.startswith('{"task": ') and line.index(', "output": ') > line.index('"model"') and '"sample"' not in line
    second = json.dumps(ItemResult(task="t", case_id="c", model="m", sample=2).to_dict())
    assert second.startswith('{"task": "t", "case_id": "c", "model": "m", "sample": 2, "output": ')


def test_gate_refuses_a_corrupt_run_unless_allowed(run, invoke):
    content = lines(run)
    content[1] = "{not json\n"
    write(run, content)
    result = invoke("gate", run)
    assert result.exit_code == 2, result.output
    assert "records.jsonl has 1 unreadable line" in result.output and "--allow-corrupt" in result.output
    assert not (run / "gate.json").exists()
    result = invoke("gate", run, "--allow-corrupt", "--allow-partial")
    assert result.exit_code in (0, 1), result.output
    assert len(warnings_in(result.output)) == 1 and (run / "gate.json").exists()


def test_gate_tolerates_only_a_torn_last_line(run, invoke):
    content = lines(run)
    write(run, content[:-1] + [content[-1][:20]])
    result = invoke("gate", run, "--allow-partial")
    assert result.exit_code in (0, 1), result.output
    assert "torn last line" in result.output
