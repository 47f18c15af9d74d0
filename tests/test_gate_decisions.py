"""The gate's decisions hold up: errors count, tiny samples cannot pass, clusters everywhere,
baselines must match, settings are validated, and a run's status tells the truth.

Each test reproduces, through the CLI on runs of the `fake` provider, a way the gate used to
pass a worse model or mislead a reader, and checks what it does now.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _cases(n: int, **extra) -> list[dict]:
    return [{"id": f"c{i}", "q": f"q{i}", "answer": str(i), **{k: f(i) for k, f in extra.items()}} for i in range(n)]


def _suite(models: str, tasks: str, gate: str = "") -> str:
    return f"name: decisions\nmodels:\n{models}\ntasks:\n{tasks}\n{gate}"


def _task(name: str, data: str = "cases.jsonl", extra: str = "", scorers: str = "[{type: exact}]") -> str:
    return f'  - name: {name}\n    prompt: "{name} {{{{ q }}}}"\n    data: {{file: {data}}}\n    scorers: {scorers}\n{extra}'


@pytest.fixture
def run(write_suite, invoke, tmp_path: Path):
    """Run a suite through the CLI; returns (result, run folder)."""

    def go(text: str, files: dict, name: str = "suite.yaml", expect: int = 0, out: str = "out"):
        path = write_suite(text, files, name=name)
        before = set((tmp_path / out).iterdir()) if (tmp_path / out).exists() else set()
        result = invoke("run", str(path), "--out", str(tmp_path / out))
        assert result.exit_code == expect, result.output
        (folder,) = set((tmp_path / out).iterdir()) - before
        return result, folder

    return go


def _rule(run_dir: Path, rule: str, task: str) -> dict:
    decision = json.loads((run_dir / "gate.json").read_text())
    return next(r for r in decision["results"] if r["rule"] == rule and r["task"] == task)


# ---------------------------------------------------------------------------
# 1. Errors count as failures


def test_timeouts_on_items_the_baseline_passes_fail_the_gate(run, invoke) -> None:
    # 150 of 3,000 items time out and the answered ones drop ~3.2 points: an 8-point drop in all.
    models = (
        "  - {id: base, provider: fake, model: m-base, params: {accuracy: 1.0}}\n"
        "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.968, error_rate: 0.05}}"
    )
    _, folder = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(3000))})
    result = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert result.exit_code == 1, result.output
    quality = _rule(folder, "quality non-inferiority", "(all)")
    assert not quality["passed"]
    drop = float(quality["detail"].split("= ")[1].split(" points")[0])
    assert -9.5 < drop < -6.5  # errors scored 0, not left out
    assert not _rule(folder, "errors", "(all)")["passed"]  # ~5 points more errors than 2 allowed
    # The secondary view is still there, labelled: quality over the answered items only.
    shown = invoke("show", folder)
    assert "excl. errors" in shown.output and "errors count as failures" in shown.output
    summary = (folder / "summary.csv").read_text(encoding="utf-8-sig")
    assert "quality_excl_errors" in summary.splitlines()[0]


def _one_slow_task(run):
    models = (
        "  - {id: base, provider: fake, model: m-base, params: {accuracy: 1.0}}\n"
        "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 1.0, error_field: slow}}"
    )
    tasks = _task("fast") + _task("slow", data="slow.jsonl") + _task("other")
    files = {"cases.jsonl": _jsonl(_cases(300)), "slow.jsonl": _jsonl(_cases(300, slow=lambda i: i % 5 == 0))}
    return run(_suite(models, tasks), files)


def test_errors_confined_to_one_task_fail_that_task(run, invoke) -> None:
    _, folder = _one_slow_task(run)
    result = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.02")
    assert result.exit_code == 1, result.output
    assert not _rule(folder, "quality non-inferiority", "slow")["passed"]  # tested on all 300, 60 of them 0
    assert "over 300 paired items" in _rule(folder, "quality non-inferiority", "slow")["detail"]
    assert not _rule(folder, "errors", "slow")["passed"]
    assert _rule(folder, "errors", "fast")["passed"] and _rule(folder, "quality non-inferiority", "fast")["passed"]
    # The error allowance is its own option, not the quality margin.
    lenient = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.02", "--max-error-increase", "0.5")
    assert _rule(folder, "errors", "slow")["passed"] and lenient.exit_code == 1


def test_compare_counts_pass_to_error_as_flips(run, invoke) -> None:
    _, folder = _one_slow_task(run)
    result = invoke("compare", folder, "-b", "base", "-c", "cand")
    assert result.exit_code == 0, result.output
    assert "pass→error" in result.output
    assert "60/0" in result.output  # 60 flips down on the slow task, none up
    assert "errors count as failures" in result.output


def test_html_report_says_failed_requests_count_as_wrong(run, invoke) -> None:
    _, folder = _one_slow_task(run)
    assert invoke("report", folder, "--format", "html").exit_code == 0
    html = (folder / "report.html").read_text()
    assert "left out of quality" not in html
    assert "counts as a wrong answer" in html and "excluding failed requests" in html


# ---------------------------------------------------------------------------
# 2. Tiny samples cannot pass


TWINS = (
    "  - {id: base, provider: fake, model: m-base, params: {accuracy: 1.0}}\n"
    "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 1.0}}"
)
PARTIAL_CREDIT = '[{type: exact, weight: 0.7}, {type: contains, weight: 0.3, expected: "never said"}]'


def test_two_items_scoring_the_same_do_not_pass(run, invoke) -> None:
    _, folder = run(_suite(TWINS, _task("qa", scorers=PARTIAL_CREDIT)), {"cases.jsonl": _jsonl(_cases(2))})
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    assert {r["score"] for r in records} == {0.7}
    result = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert result.exit_code == 1, result.output
    assert "[+0.0, +0.0]" not in result.output  # no zero-width interval
    assert "only 2 paired items; the gate needs at least 10" in result.output


def test_two_clustered_items_and_a_single_item_do_not_pass(run, invoke) -> None:
    clustered = _task("qa", extra="    cluster_field: doc\n")
    _, folder = run(_suite(TWINS, clustered), {"cases.jsonl": _jsonl(_cases(2, doc=lambda i: f"d{i}"))})
    result = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert result.exit_code == 1 and "only 2 paired items" in result.output
    _, single = run(_suite(TWINS, _task("qa")), {"cases.jsonl": _jsonl(_cases(1))}, out="single")
    result = invoke("gate", single, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert result.exit_code == 1
    assert "only 1 paired item: no interval can be computed from one item" in result.output


# ---------------------------------------------------------------------------
# 3. Clusters everywhere


def _clustered_and_plain(run):
    tasks = _task("docs", extra="    cluster_field: doc\n") + _task("plain")
    files = {"cases.jsonl": _jsonl(_cases(200, doc=lambda i: f"d{i // 20}"))}
    models = (
        "  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}\n"
        "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.9}}"
    )
    return run(_suite(models, tasks), files)


def test_overall_row_and_overall_only_use_clusters_when_a_task_lacks_them(run, invoke) -> None:
    _, folder = _clustered_and_plain(run)
    result = invoke("gate", folder, "-b", "base", "-c", "cand", "--overall-only", "--margin", "0.05")
    detail = _rule(folder, "quality non-inferiority", "(all)")["detail"]
    assert "cluster-t" in detail and "in 210 clusters" in detail  # 10 docs + 200 unlabelled items
    assert "(cluster-t)" in result.output


def test_same_case_id_across_tasks_as_one_cluster(run, invoke) -> None:
    _, folder = _clustered_and_plain(run)
    invoke("gate", folder, "-b", "base", "-c", "cand", "--overall-only", "--cluster-by-case")
    # Case ci of "plain" joins doc d(i // 20) of "docs": 10 clusters in all.
    assert "in 10 clusters" in _rule(folder, "quality non-inferiority", "(all)")["detail"]


def test_items_needed_include_the_design_effect(run, invoke) -> None:
    import re

    # The candidate times out on every item of 1 document out of 20: failures come in a cluster.
    models = (
        "  - {id: base, provider: fake, model: m-base, params: {accuracy: 1.0}}\n"
        "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 1.0, error_field: slow}}"
    )
    files = {"cases.jsonl": _jsonl(_cases(200, doc=lambda i: f"d{i // 10}", slow=lambda i: i < 10))}
    needed = {}
    for label, extra in (("plain", ""), ("clustered", "    cluster_field: doc\n")):
        _, folder = run(_suite(models, _task("qa", extra=extra)), files, name=f"{label}.yaml", out=label)
        result = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.04")
        needed[label] = int(re.search(r"about (\d+) items are needed", result.output).group(1))
    assert "design effect" in result.output
    assert needed["clustered"] > 3 * needed["plain"]


def test_cluster_labels_come_from_the_current_suite_not_the_baseline_run(run, invoke, tmp_path) -> None:
    models = "  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}\n"
    files = {"cases.jsonl": _jsonl(_cases(200, doc=lambda i: f"d{i // 20}"))}
    _, old = run(_suite(models, _task("docs")), files, name="old.yaml", out="old")
    models += "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.9}}"
    _, new = run(_suite(models, _task("docs", extra="    cluster_field: doc\n")), files, out="new")
    result = invoke("gate", new, "--baseline-run", old, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert "cluster-t" in result.output and "in 10 clusters" in result.output


# ---------------------------------------------------------------------------
# 4. Baselines must match


def test_baseline_run_with_another_prompt_is_refused_unless_allowed(run, invoke, write_suite, tmp_path) -> None:
    models = "  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}\n"
    files = {"cases.jsonl": _jsonl(_cases(50))}
    changed = _task("qa").replace('"qa {{ q }}"', '"answer: {{ q }}"')
    _, old = run(_suite(models, changed), files, name="old.yaml", out="old")
    models += "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.9}}"
    _, new = run(_suite(models, _task("qa")), files, out="new")
    refused = invoke("gate", new, "--baseline-run", old, "-b", "base", "-c", "cand")
    assert refused.exit_code == 2, refused.output
    assert "task 'qa': prompt differ" in refused.output and "--allow-suite-change" in refused.output
    assert "Traceback" not in refused.output
    allowed = invoke("gate", new, "--baseline-run", old, "-b", "base", "-c", "cand", "--allow-suite-change")
    assert allowed.exit_code in (0, 1) and "warning: --allow-suite-change" in allowed.output
    assert "--allow-suite-change" in (new / "gate.md").read_text()
    assert any("--allow-suite-change" in w for w in json.loads((new / "gate.json").read_text())["warnings"])


def test_baseline_run_on_changed_data_is_refused(run, invoke, tmp_path) -> None:
    models = "  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}\n"
    _, old = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(50))}, out="old")
    models += "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.9}}"
    edited = _cases(50)
    edited[3]["answer"] = "something else"
    _, new = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(edited)}, out="new")
    refused = invoke("compare", new, "--baseline-run", old, "-b", "base", "-c", "cand")
    assert refused.exit_code == 2 and "data (1 of the 50 compared cases)" in refused.output


def test_allow_partial_always_warns_in_every_output(run, invoke) -> None:
    models = "  - {id: base, provider: fake, model: m-base, params: {accuracy: 0.9}}\n"
    _, old = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(40))}, out="old")
    models += "  - {id: cand, provider: fake, model: m-cand, params: {accuracy: 0.9}}"
    _, new = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(60))}, out="new")
    result = invoke("gate", new, "--baseline-run", old, "-b", "base", "-c", "cand", "--allow-partial")
    assert "warning: --allow-partial: compared only the 40 common items; left out 0 only for base, 20 only for cand" in result.output
    assert "--allow-partial" in (new / "gate.md").read_text()
    assert any("--allow-partial" in w for w in json.loads((new / "gate.json").read_text())["warnings"])


# ---------------------------------------------------------------------------
# 5. Settings that are refused


@pytest.mark.parametrize(("key", "value", "message"), [
    ("margin", 0, "gate.margin"),
    ("margin", -0.05, "gate.margin"),
    ("confidence", 1.0, "gate.confidence"),
    ("confidence", 0.6, "gate.confidence"),
])  # fmt: skip
def test_a_bad_gate_block_in_the_manifest_exits_2_without_a_traceback(run, invoke, key, value, message) -> None:
    _, folder = run(_suite(TWINS, _task("qa"), "gate: {baseline: base, candidate: cand}\n"), {"cases.jsonl": _jsonl(_cases(30))})
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["gate"][key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("gate", folder)
    assert result.exit_code == 2, result.output
    assert "manifest.json" in result.output and message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("gate", ["{confidence: 1.0}", "{margin: 0}", "{confidence: 0.5}"])
def test_a_bad_gate_block_in_the_suite_exits_2(write_suite, invoke, gate) -> None:
    path = write_suite(_suite(TWINS, _task("qa"), f"gate: {gate}\n"), {"cases.jsonl": _jsonl(_cases(3))})
    result = invoke("validate", path)
    assert result.exit_code == 2 and "gate." in result.output and "Traceback" not in result.output


def test_a_low_confidence_is_refused_and_the_verdict_states_the_one_sided_alpha(run, invoke) -> None:
    _, folder = run(_suite(TWINS, _task("qa")), {"cases.jsonl": _jsonl(_cases(300))})
    low = invoke("gate", folder, "-b", "base", "-c", "cand", "--confidence", "0.5")
    assert low.exit_code == 2
    ok = invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.05")
    assert ok.exit_code == 0, ok.output
    assert "one-sided α = 2.5%" in ok.output.splitlines()[0]
    assert "one-sided α = 5.0%" in invoke("gate", folder, "-b", "base", "-c", "cand", "--margin", "0.05", "--confidence", "0.9").output


# ---------------------------------------------------------------------------
# 6. Run status tells the truth


def test_a_model_with_many_errors_is_degraded_and_a_dead_one_failed(run, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = (
        "  - {id: flaky, provider: fake, model: m-a, params: {error_rate: 0.3}}\n"
        "  - {id: dead, provider: fake, model: m-b, params: {error_rate: 1.0}}\n"
        "  - {id: gpt, provider: openai, model: gpt-4o-mini}"
    )
    result, folder = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(40))}, expect=1)
    status = {m["id"]: m["status"] for m in json.loads((folder / "manifest.json").read_text())["models"]}
    assert status == {"flaky": "degraded", "dead": "failed", "gpt": "skipped"}
    assert "flaky (degraded)" in result.output and "dead (failed)" in result.output
    assert "failed: dead" in result.output
    assert invoke("report", folder, "--format", "json").exit_code == 0
    report = json.loads((folder / "report.json").read_text())
    assert {r["model"]: r["status"] for r in report["rows"] if r["task"] == "(all)"}["flaky"] == "degraded"


def test_a_model_skipped_for_a_missing_key_keeps_exit_0(run, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = "  - {id: ok, provider: fake, model: m-a}\n  - {id: gpt, provider: openai, model: gpt-4o-mini}"
    result, folder = run(_suite(models, _task("qa")), {"cases.jsonl": _jsonl(_cases(5))}, expect=0)
    assert "gpt: skipped" in result.output
