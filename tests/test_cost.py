"""Cost through the CLI: the dry-run estimate, --max-cost, and the break-even table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeserver import FakeServer
from openbench import pricing
from openbench.records import Usage
from openbench.report.table import fmt_usd


def _cases(n: int) -> str:
    return "".join(json.dumps({"id": f"c{i}", "q": f"what is {i}", "answer": "ok"}) + "\n" for i in range(n))


def test_estimate_needs_no_key_and_no_network(write_suite, invoke, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # would refuse, were it called
    suite = write_suite(
        """
name: est
defaults: {max_tokens: 100}
models:
  - {id: mini, provider: openai, model: gpt-4o-mini}
  - {id: haiku, provider: anthropic, model: claude-haiku-4-5, price: {input_per_mtok: 2.0}}
tasks:
  - {name: t, prompt: "{{ q }}", data: {file: cases.jsonl}, scorers: [{type: contains}]}
""",
        {"cases.jsonl": _cases(10)},
    )
    result = invoke("estimate", str(suite), "--output-ratio", "0.5")
    assert result.exit_code == 0, result.output
    assert "approximation (4 characters per token)" in result.output
    # 10 prompts "what is N" (9 characters → 3 tokens each) and 10 × 100 × 0.5 output tokens
    expected_mini = pricing.cost(Usage(input_tokens=30, output_tokens=500), pricing.lookup_price("openai", "gpt-4o-mini"))
    assert fmt_usd(expected_mini) in result.output
    haiku = pricing.resolve_price("anthropic", "claude-haiku-4-5", {"input_per_mtok": 2.0})
    assert haiku.input_per_mtok == 2.0 and haiku.source == "suite"


def test_max_cost_stops_spending_and_says_so(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: budget
models:
  - {id: api, provider: openai, model: gpt-4o-mini, concurrency: 1, cache: false,
     price: {input_per_mtok: 1000000, output_per_mtok: 0}}
tasks:
  - {name: t, prompt: "{{ q }}", data: {file: cases.jsonl}, scorers: [{type: contains}]}
""",
        {"cases.jsonl": _cases(30)},
    )
    with FakeServer(reply="ok") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        result = invoke("run", str(suite), "--out", str(tmp_path / "out"), "--max-cost", "10")
        paid = sum(r.path.endswith("/chat/completions") for r in srv.log)
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    # Each request costs 3 prompt tokens × $1 = $3, and first reserves its worst case ("what is N": 9 characters
    # → 3 + 4 tokens = $7). A third reservation would take $6 spent + $7 past $10, so it is never sent.
    assert all(r["cost_usd"] == pytest.approx(3.0) for r in records)
    assert len(records) == paid == 2
    assert sum(r["cost_usd"] for r in records) <= 10
    assert "stopped on budget" in result.output
    assert json.loads((run / "manifest.json").read_text())["status"] == "stopped on budget"


def test_cost_command_prints_break_even(write_suite, invoke, monkeypatch, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: breakeven
models:
  - {id: own, provider: fake, model: local, hardware: h100, params: {ttft_s: 0.02}}
  - {id: api, provider: openai, model: gpt-4o-mini, cache: false}
tasks:
  - {name: t, prompt: "{{ q }}", data: {file: cases.jsonl}, scorers: [{type: contains}]}
""",
        {"cases.jsonl": _cases(10)},
    )
    with FakeServer(reply="ok") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cost")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    run = next((tmp_path / "out").iterdir())
    result = invoke("cost", str(run), "--volume", "1_000_000/month")
    assert result.exit_code == 0, result.output
    assert "break-even" in result.output
    manifest = json.loads((run / "manifest.json").read_text())
    own = next(m for m in manifest["models"] if m["id"] == "own")
    api_cost = sum(json.loads(line)["cost_usd"] for line in (run / "records.jsonl").read_text().splitlines() if '"api"' in line) / 10
    busy = pricing.busy_seconds_per_task(own["busy_s"], 10)
    expected = pricing.break_even_tasks_per_month(api_cost, pricing.BUILTIN_HARDWARE["h100"], busy)
    cell = "never (API is cheaper)" if expected is None else f"{expected:,.0f}"
    assert cell in result.output
    assert "$/month" in result.output


def test_hardware_override_on_the_cli_reprices_at_the_measured_throughput(write_suite, invoke, tmp_path: Path) -> None:
    suite = write_suite(
        """
name: hw
models:
  - {id: own, provider: fake, model: local, hardware: l4, params: {ttft_s: 0.01}}
tasks:
  - {name: t, prompt: "{{ q }}", data: {file: cases.jsonl}, scorers: [{type: contains}]}
""",
        {"cases.jsonl": _cases(5)},
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out"), "--hardware", "own=h100@2.5").exit_code == 0
    run = next((tmp_path / "out").iterdir())
    own = json.loads((run / "manifest.json").read_text())["models"][0]
    assert own["hardware_profile"]["usd_per_hour"] == 2.5 and own["hardware_profile"]["source"] == "cli"
    usage = pricing.self_hosted_cost_per_task(pricing.Hardware(**own["hardware_profile"]), own["busy_s"] / 5, 0.5)
    assert fmt_usd(usage.dedicated_usd) in invoke("show", str(run)).output
    # `cost` re-prices the same measured busy time on other hardware: $/h scales the cost exactly.
    doubled = invoke("cost", str(run), "--hardware", "own=h100@5.0").output
    assert fmt_usd(2 * usage.dedicated_usd) in doubled
    bad = invoke("cost", str(run), "--hardware", "onw=h100")
    assert bad.exit_code == 2 and "did you mean 'own'" in bad.output
    assert invoke("run", str(suite), "--hardware", "own=zz").exit_code == 2
