"""Every OpenAI and Anthropic price in the genai-prices catalogue, tiered ones included, goes through
``run`` → ``cost`` → ``report`` against the loopback server, and the manifest round-trips exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import cases, model, read_run, write_suite
from fakeserver import FakeServer

from openbench import pricing
from openbench.manifest import RunManifest
from openbench.pricing.catalogue import _bundled_snapshot
from openbench.records import Usage


def catalogue_models() -> list[tuple[str, str]]:
    snapshot, _ = _bundled_snapshot()
    out = []
    for provider in snapshot.providers:
        if provider.id in pricing.CATALOGUE_PROVIDERS:
            out += [(provider.id, m.id) for m in provider.models if pricing.lookup_price(provider.id, m.id) is not None]
    return out


def test_every_catalogue_price_runs_costs_and_reports(invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    priced = catalogue_models()
    assert len(priced) > 50 and any(pricing.lookup_price(p, m).tiers for p, m in priced)  # tiered prices are among them
    # 300k prompt tokens per request: above every long-context threshold, so tiered rates are the ones billed.
    with FakeServer(reply="ok", tokens=1) as srv:
        srv.prompt_tokens = 300_000
        monkeypatch.setenv("OPENAI_API_KEY", "sk-catalogue")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-catalogue")
        models = [
            model(f"{p}-{m}", p, m, base_url=f"{srv.url}/v1" if p == "openai" else srv.url, concurrency=1, max_retries=0)
            for p, m in priced
        ]
        suite = write_suite(tmp_path / "catalogue.yaml", models, cases("ok"))
        out = tmp_path / "out"
        result = invoke("run", suite, "--out", out)
    outcome = read_run(out, result.exit_code, result.output)
    assert outcome.exit_code == 0, outcome.output
    for provider, name in priced:
        (record,) = outcome.of(f"{provider}-{name}").values()
        assert record["error"] is None, (name, record["error"])
        expected = pricing.cost(Usage(input_tokens=record["input_tokens"], output_tokens=record["output_tokens"]), pricing.lookup_price(provider, name))
        assert record["cost_usd"] == pytest.approx(expected), name
    for command in (["cost", outcome.run_dir], ["report", outcome.run_dir, "--format", "html"], ["report", outcome.run_dir, "--format", "json"]):
        done = invoke(*command)
        assert done.exit_code == 0, done.output

    text = (outcome.run_dir / "manifest.json").read_text(encoding="utf-8")
    manifest = RunManifest.from_json(text)
    assert manifest.to_json() == text  # JSON round-trips exactly
    tiered = next(m for m in manifest.models if m.price is not None and m.price.tiers)
    assert isinstance(tiered.price, pricing.Price) and isinstance(tiered.price.tiers[0], pricing.PriceTier)
    assert json.loads(text)["models"][0]["billing"] == "per-token"
