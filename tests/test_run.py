"""`openbench run` end to end with the fake and reference providers: records, manifest, skips, filters,
resume, the response cache and timing."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from openbench.records import ItemResult
from openbench.store import RunStore

REPO = Path(__file__).resolve().parent.parent

RECORD_FIELDS = {
    "task", "case_id", "model", "output", "score", "passed", "scores", "error", "latency_s", "ttft_s",
    "input_tokens", "output_tokens", "cost_usd", "cached", "attempts",
}


def suite_text(models: str, n_cases: int = 4, tasks: tuple[str, ...] = ("add", "echo")) -> str:
    cases = "\n".join(f'        - {{id: c{i}, q: "{i}+{i}", answer: "{2 * i}"}}' for i in range(n_cases))
    body = "".join(
        f"""  - name: {name}
    prompt: "{name} {{{{ q }}}}"
    data:
      cases:
{cases}
    scorers:
      - type: exact
"""
        for name in tasks
    )
    return f"name: runs\nmodels:\n{models}tasks:\n{body}"


FAKE = """\
  - id: fake-a
    provider: fake
    model: any-name
    params: {accuracy: 0.5}
"""
FAKE_B = """\
  - id: fake-b
    provider: fake
    model: other-name
"""
OPENAI = """\
  - id: gpt
    provider: openai
    model: gpt-4o-mini
"""


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def read_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def read_summary(run_dir: Path) -> list[dict]:
    with open(run_dir / "summary.csv", encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def run_once(invoke, suite: Path, out: Path, *args) -> tuple[object, Path]:
    before = set(run_dirs(out)) if out.exists() else set()
    result = invoke("run", suite, "--out", out, *args)
    (new,) = set(run_dirs(out)) - before
    return result, new


def test_records_and_manifest(write_suite, invoke, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    suite = write_suite(suite_text(FAKE + OPENAI))
    result, run_dir = run_once(invoke, suite, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output  # plain when not a terminal
    assert "Traceback" not in result.output

    records = read_records(run_dir)
    assert len(records) == 2 * 4  # tasks × cases × the one model that ran
    assert Counter((r["task"], r["case_id"], r["model"]) for r in records) == Counter(
        {(t, f"c{i}", "fake-a"): 1 for t in ("add", "echo") for i in range(4)}
    )
    for r in records:
        assert RECORD_FIELDS <= set(r)
        assert r["error"] is None and r["cached"] is False and r["attempts"] == 1
        assert r["score"] in (0.0, 1.0) and r["passed"] is (r["score"] == 1.0)
        assert r["scores"]["exact"]["value"] == r["score"]
        assert r["latency_s"] >= 0 and r["ttft_s"] is not None
        assert r["input_tokens"] > 0 and r["output_tokens"] >= 1
        assert r["cost_usd"] is None  # a self-hosted model without hardware has no price
    # accuracy 0.5: the fake gets some right and some wrong (a fixed hash of each prompt)
    assert {r["passed"] for r in records} == {True, False}

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["suite"]["sha256"] == __import__("hashlib").sha256(suite.read_bytes()).hexdigest()
    assert manifest["suite"]["path"] == str(suite.resolve())
    env = manifest["environment"]
    assert env["packages"]["openbench-harness"] == manifest["openbench_version"]
    assert env["python"] and env["hardware"]["cpu_count"] >= 1
    models = {m["id"]: m for m in manifest["models"]}
    assert models["fake-a"]["status"] == "ok" and models["fake-a"]["items"] == 8
    assert models["gpt"]["status"] == "skipped"
    assert models["gpt"]["reason"] == "OPENAI_API_KEY is not set"
    assert "gpt: skipped (OPENAI_API_KEY is not set)" in result.output

    summary = {(row["task"], row["model"]): row for row in read_summary(run_dir)}
    assert summary[("(all)", "fake-a")]["items"] == "8"
    assert summary[("(all)", "gpt")]["items"] == "0"  # a skipped model keeps its row
    passed = sum(r["passed"] for r in records)
    assert float(summary[("(all)", "fake-a")]["pass_rate"]) == pytest.approx(passed / 8)


def test_model_and_limit_filters(write_suite, invoke, tmp_path):
    suite = write_suite(suite_text(FAKE + FAKE_B))
    result, run_dir = run_once(invoke, suite, tmp_path / "out", "--model", "fake-b", "--limit", "2")
    assert result.exit_code == 0, result.output
    records = read_records(run_dir)
    assert {r["model"] for r in records} == {"fake-b"}
    assert Counter(r["task"] for r in records) == {"add": 2, "echo": 2}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [m["id"] for m in manifest["models"]] == ["fake-b"]
    assert manifest["options"]["models"] == ["fake-b"] and manifest["options"]["limit"] == 2


def test_unknown_model_filter_is_one_error(write_suite, invoke, tmp_path):
    result = invoke("run", write_suite(suite_text(FAKE)), "--out", tmp_path / "out", "--model", "fake-x")
    assert result.exit_code == 2
    assert "no model 'fake-x' (did you mean 'fake-a'?)" in result.output
    assert "Traceback" not in result.output


def test_resume_runs_only_missing_and_failed_items(write_suite, invoke, tmp_path):
    suite = write_suite(suite_text(FAKE, n_cases=5))
    result, run_dir = run_once(invoke, suite, tmp_path / "out")
    assert result.exit_code == 0, result.output
    path = run_dir / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 10
    kept = lines[:5]
    failed = json.loads(kept[0])
    failed.update(error="boom", error_kind="server", score=None, passed=None)
    kept[0] = json.dumps(failed) + "\n"
    torn = lines[5][: len(lines[5]) // 2]  # what kill -9 leaves behind
    path.write_text("".join(kept) + torn)

    result = invoke("run", "--resume", run_dir)
    assert result.exit_code == 0, result.output
    after = path.read_text().splitlines(keepends=True)
    assert after[:5] == kept  # finished records are never rewritten
    added = after[5:]
    # the 5 missing items plus the one that had failed; the torn line is gone
    assert len(added) == 6
    assert all(line.endswith("}\n") for line in after)
    added_keys = Counter((r["task"], r["case_id"]) for r in map(json.loads, added))
    missing = {(r["task"], r["case_id"]) for r in map(json.loads, lines[5:])}
    assert added_keys == Counter(missing | {(failed["task"], failed["case_id"])})

    latest = RunStore(run_dir).latest_records()
    assert len(latest) == 10 and all(r.error is None for r in latest.values())
    # The file keeps both records of the re-run item; readers see only the latest of each item,
    # so tables and reports never count it twice.
    on_disk = Counter((r["task"], r["case_id"], r["model"], r.get("sample", 0)) for r in map(json.loads, after))
    assert on_disk == Counter({**{k: 1 for k in latest}, (failed["task"], failed["case_id"], "fake-a", 0): 2})
    assert Counter(r.key for r in RunStore(run_dir).iter_records()) == Counter({k: 1 for k in latest})
    summary = (run_dir / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    overall = [dict(zip(summary[0].split(","), line.split(","))) for line in summary[1:]]
    assert all(row["items"] == "10" and row["errors"] == "0" for row in overall if row["task"] == "(all)")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["resumed_at"]) == 1

    # Resuming a complete run runs nothing.
    result = invoke("run", "--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert len(path.read_text().splitlines()) == 11


def test_resume_refuses_a_changed_suite(write_suite, invoke, tmp_path):
    suite = write_suite(suite_text(FAKE, n_cases=2))
    _, run_dir = run_once(invoke, suite, tmp_path / "out")
    suite.write_text(suite.read_text().replace("name: runs", "name: runs2"))
    result = invoke("run", "--resume", run_dir)
    assert result.exit_code == 2
    assert "changed since this run started" in result.output and "Traceback" not in result.output


def test_iter_records_skips_torn_and_corrupt_lines(tmp_path):
    store = RunStore(tmp_path)
    store.append(ItemResult(task="t", case_id="1", model="m", score=1.0))
    store.append(ItemResult(task="t", case_id="2", model="m", score=0.0))
    store.close()
    path = tmp_path / "records.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"task": "t", "case_id": "3", "mod')
    assert [r.case_id for r in store.iter_records()] == ["1", "2"]
    # Appending after a torn line cuts it first, so the new record is readable.
    store = RunStore(tmp_path)
    store.append(ItemResult(task="t", case_id="4", model="m"))
    store.close()
    assert [r.case_id for r in store.iter_records()] == ["1", "2", "4"]
    assert path.read_text().count("\n") == 3


def test_reference_provider_gives_full_marks_on_quickstart_tasks(write_suite, invoke, tmp_path):
    """The quickstart's own tasks, data and scorers, answered by a known-good `gold` field."""
    spec = yaml.safe_load((REPO / "suites" / "quickstart.yaml").read_text())
    gold = {
        "triage": lambda row: row["category"],
        "extract": lambda row: json.dumps({"order_id": row["order_id"], "email": row["email"]}),
        "faq": lambda row: row["answer"],
    }
    files = {}
    for task in spec["tasks"]:
        data = task["data"]
        if "file" in data:
            rows = [json.loads(line) for line in (REPO / "suites" / data["file"]).read_text().splitlines() if line.strip()]
            files[data["file"]] = [{**row, "gold": gold[task["name"]](row)} for row in rows]
        else:
            data["cases"] = [{**row, "gold": gold[task["name"]](row)} for row in data["cases"]]
    spec["models"] = [{"id": "ref", "provider": "reference", "model": "gold", "field": "gold"}]
    suite = write_suite(yaml.safe_dump(spec, sort_keys=False), files)
    result, run_dir = run_once(invoke, suite, tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = read_records(run_dir)
    assert len(records) == 45
    bad = [r for r in records if r["error"] is not None or r["score"] != 1.0 or not r["passed"]]
    assert bad == []


CACHED_FAKE = """\
  - id: fake-c
    provider: fake
    model: cached
    cache: true
    params: {ttft_s: 0.02}
"""


def test_cache_replays_are_marked_and_excluded_from_latency(write_suite, invoke, tmp_path, tmp_cache):
    suite = write_suite(suite_text(CACHED_FAKE, n_cases=4, tasks=("add",)))
    out = tmp_path / "out"
    result, _ = run_once(invoke, suite, out, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_cache / "responses.sqlite").is_file()  # the cache lives under OPENBENCH_CACHE_DIR

    result, run_dir = run_once(invoke, suite, out)
    assert result.exit_code == 0, result.output
    records = {r["case_id"]: r for r in read_records(run_dir)}
    for cid in ("c0", "c1", "c2"):
        r = records[cid]
        assert r["cached"] is True and r["latency_s"] is None and r["ttft_s"] is None
        assert r["output"] == str(2 * int(cid[1:])) and r["score"] == 1.0  # replays are still scored
        assert r["output_tokens"] == 1  # and keep their usage
    fresh = records["c3"]
    assert fresh["cached"] is False and fresh["latency_s"] >= 0.02
    summary = {(row["task"], row["model"]): row for row in read_summary(run_dir)}
    row = summary[("add", "fake-c")]
    assert row["cached"] == "3" and row["items"] == "4"
    # only the one fresh item counts for latency
    assert float(row["latency_p50_s"]) == pytest.approx(fresh["latency_s"])
    assert float(row["latency_p95_s"]) == pytest.approx(fresh["latency_s"])
    assert "cached rows are replays" in result.output

    result, run_dir = run_once(invoke, suite, out, "--no-cache")
    assert result.exit_code == 0, result.output
    assert all(r["cached"] is False and r["latency_s"] >= 0.02 for r in read_records(run_dir))


def test_cache_key_follows_what_changes_the_answer(write_suite, invoke, tmp_path):
    out = tmp_path / "out"
    wrong = CACHED_FAKE.replace("{ttft_s: 0.02}", "{accuracy: 0.0}")
    run_once(invoke, write_suite(suite_text(wrong, n_cases=3, tasks=("add",))), out)
    # A parameter that changes the answers is a different model: nothing is replayed.
    right = CACHED_FAKE.replace("{ttft_s: 0.02}", "{accuracy: 1.0}")
    _, run_dir = run_once(invoke, write_suite(suite_text(right, n_cases=3, tasks=("add",))), out)
    assert all(r["cached"] is False and r["passed"] for r in read_records(run_dir))
    # Timing parameters do not change the answers, and neither do concurrency or timeouts: replayed.
    timed = right.replace("{accuracy: 1.0}", "{accuracy: 1.0, ttft_s: 0.01}").replace(
        "    cache: true\n", "    cache: true\n    concurrency: 2\n    timeout_s: 5\n"
    )
    _, run_dir = run_once(invoke, write_suite(suite_text(timed, n_cases=3, tasks=("add",))), out)
    assert all(r["cached"] is True and r["passed"] for r in read_records(run_dir))
    # A change to the sampling parameters is not replayed.
    sampled = suite_text(timed, n_cases=3, tasks=("add",)).replace("name: runs\n", "name: runs\ndefaults:\n  temperature: 0.7\n")
    _, run_dir = run_once(invoke, write_suite(sampled), out)
    assert all(r["cached"] is False for r in read_records(run_dir))


def test_cache_is_off_by_default_for_self_hosted_models(write_suite, invoke, tmp_path):
    suite = write_suite(suite_text(FAKE_B, n_cases=2, tasks=("add",)))
    run_once(invoke, suite, tmp_path / "out")
    _, run_dir = run_once(invoke, suite, tmp_path / "out")
    assert all(r["cached"] is False for r in read_records(run_dir))


SLOW_FAKE = """\
  - id: fake-t
    provider: fake
    model: timed
    params: {ttft_s: 0.05, per_token_s: 0.01}
"""


def test_fake_timing_is_measured(write_suite, invoke, tmp_path):
    words = ["alpha", "alpha beta gamma", "alpha beta gamma delta epsilon zeta"]
    cases = "\n".join(f'        - {{id: w{i}, q: "x", answer: "{w}"}}' for i, w in enumerate(words))
    text = f"""\
name: timing
models:
{SLOW_FAKE}tasks:
  - name: say
    prompt: "say {{{{ q }}}}"
    data:
      cases:
{cases}
    scorers:
      - type: exact
"""
    result, run_dir = run_once(invoke, write_suite(text), tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = {r["case_id"]: r for r in read_records(run_dir)}
    # Sleeps never end early, so the lower bounds are exact; the upper ones allow for
    # event-loop delays on a busy machine (a few ms when idle).
    slack = 0.15
    for i, w in enumerate(words):
        r = records[f"w{i}"]
        n = len(w.split())
        assert r["output_tokens"] == n
        assert 0.05 <= r["ttft_s"] <= 0.05 + slack
        expected = 0.05 + 0.01 * (n - 1)
        assert expected <= r["latency_s"] <= expected + slack
        assert 0.01 * (n - 1) <= r["latency_s"] - r["ttft_s"] <= 0.01 * (n - 1) + slack
        if n > 1:
            assert r["tpot_s"] == pytest.approx((r["latency_s"] - r["ttft_s"]) / (n - 1))
        else:
            assert r["tpot_s"] is None
