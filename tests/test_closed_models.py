"""Closed models by their real names, against a loopback server that enforces the vendors' rules.

The server (tests/fakeserver.py, ``vendor_rejection``) answers 400 as the vendors do: OpenAI
reasoning models refuse a temperature other than 1, recent Claude models refuse temperature
with top_p, extended thinking takes only the default temperature. openbench must answer every
item anyway, price it, say what it changed once per model, and never pay a rule twice.
"""

from __future__ import annotations

import collections
from html import escape
import re
from pathlib import Path
from typing import Any, Callable

import anthropic  # noqa: F401 - imported at collection, so that the time limits time runs, not imports
import openai  # noqa: F401
import pytest

from api_helpers import RunOutcome, cases, completions, model, time_limit, write_suite
from fakeserver import EFFORT_TOKENS, THINKING_TOKENS, FakeServer, prompt_words, split_tokens, vendor_rejection
from openbench import pricing
from openbench.providers.sampling import known_rules
from openbench.providers.sse import public_endpoint
from openbench.records import Usage
from test_api_providers import api_env, run, serve  # noqa: F401 - the same fixtures: CLI runs against a fake server

WORDS = ["alpha", "beta gamma", "one two three"]
SAMPLING = {"temperature": 0, "top_p": 0.9}
# Catalogue entries that are not chat models: embeddings, speech, images, realtime, moderation,
# legacy completions, fine-tune price patterns and tool-specific endpoints.
NOT_CHAT = re.compile(
    r"embedding|tts|whisper|transcribe|image|realtime|audio|moderation|davinci|babbage|curie|^ada$|instruct|"
    r"search|computer-use|deep-research|^ft:|\.ft-|live|translate|^claude-v1$|^claude-2$"
)


def catalogue_chat_models() -> list[tuple[str, str, bool]]:
    """(provider, model, tiered) for every OpenAI and Anthropic chat model with a catalogue price."""
    from genai_prices import data_snapshot

    found = []
    for provider in data_snapshot._bundled_snapshot().providers:
        if provider.id not in ("openai", "anthropic"):
            continue
        for entry in provider.models:
            price = pricing.lookup_price(provider.id, entry.id)
            if price is None or price.model_ref != entry.id or NOT_CHAT.search(entry.id):
                continue
            found.append((provider.id, entry.id, bool(price.tiers)))
    return found


CATALOGUE = catalogue_chat_models()


def model_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def record_cost(rec: dict[str, Any], price: pricing.Price) -> float | None:
    usage = Usage(
        input_tokens=rec["input_tokens"],
        output_tokens=rec["output_tokens"],
        cached_input_tokens=rec["cached_input_tokens"],
        cache_write_tokens=rec["cache_write_tokens"],
        reasoning_tokens=rec["reasoning_tokens"],
    )
    return pricing.cost(usage, price)


def expected_adjustments(provider: str, name: str) -> list[str]:
    """What openbench must say it changed: one sentence per rule the server enforces on this suite."""
    ident = model_id(name)
    body = {"model": name, "temperature": 0, "top_p": 0.9}
    rule = vendor_rejection(provider, body)
    if rule is None:
        return []
    if rule.rule == "temperature":
        return [f"{ident}: temperature 0 not accepted, the model's default was used"]
    assert rule.rule == "temperature+top_p", rule
    return [f"{ident}: temperature and top_p are not accepted together; top_p 0.9 was not sent, temperature 0 was"]


def run_catalogue(serve: Callable[..., FakeServer], run: Callable[..., RunOutcome], entries: list[tuple[str, str, bool]]) -> None:
    srv = serve(ttft_s=0, per_token_s=0)
    models = [model(model_id(name), provider, name, concurrency=3) for provider, name, _ in entries]
    with time_limit(90):
        outcome = run(models, cases(*WORDS), defaults=SAMPLING)
    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    rejected = collections.Counter((r.body["model"], r.rule) for r in completions(srv) if r.status == 400)
    assert all(r.rule is not None for r in completions(srv) if r.status == 400)  # nothing but the vendor rules refused
    for provider, name, _ in entries:
        ident = model_id(name)
        price = pricing.lookup_price(provider, name)
        records = outcome.of(ident)
        assert sorted(records) == ["c0", "c1", "c2"], (name, outcome.output[-2000:])
        for rec in records.values():
            assert rec["error"] is None and rec["output"] == WORDS[int(rec["case_id"][1:])], (name, rec["error"])
            assert rec["attempts"] == 1  # an adapted resend is not a retry of the item
            assert rec["cost_usd"] is not None and rec["cost_usd"] > 0, name
            assert rec["cost_usd"] == pytest.approx(record_cost(rec, price), rel=1e-9)
        entry = outcome.model_entry(ident)
        expected = expected_adjustments(provider, name)
        assert entry["details"]["adjustments"] == expected, name
        for sentence in expected:
            assert outcome.output.count(f"note: {sentence}\n") == 1, sentence  # one footnote in the table
        # At most one refused request per model and rule; none at all where the rule is built in.
        refused = {rule: n for (m, rule), n in rejected.items() if m == name}
        assert all(n == 1 for n in refused.values()), (name, refused)
        if known_rules(provider, name):
            assert refused == {}, name
        else:
            assert len(refused) == len(expected), (name, refused)


def test_catalogue_lists_the_current_flagships() -> None:
    names = {name for _, name, _ in CATALOGUE}
    assert {"gpt-4o-mini", "gpt-5", "o3", "claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"} <= names
    assert not names & {"text-embedding-3-small", "whisper-1", "tts-1"}


def test_every_untiered_catalogue_chat_model_answers_a_temperature_0_top_p_suite(serve, run) -> None:
    run_catalogue(serve, run, [e for e in CATALOGUE if not e[2]])


def test_every_tiered_catalogue_chat_model_answers_a_temperature_0_top_p_suite(serve, run) -> None:
    run_catalogue(serve, run, [e for e in CATALOGUE if e[2]])


def test_a_rule_the_table_does_not_know_is_learned_from_one_400(serve, run) -> None:
    srv = serve()
    # claude-opus-4-5 refuses temperature with top_p at the server, and is not in the built-in table.
    assert not known_rules("anthropic", "claude-opus-4-5")
    outcome = run([model("opus", "anthropic", "claude-opus-4-5", concurrency=3)], cases(*WORDS, "four", "five"), defaults=SAMPLING)
    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    sent = completions(srv)
    assert [r.rule for r in sent if r.status == 400] == ["temperature+top_p"]
    accepted = [r.body for r in sent if r.status == 200]
    assert len(accepted) == 5 and all(b["temperature"] == 0 and "top_p" not in b for b in accepted)
    assert all(r["attempts"] == 1 and r["error"] is None for r in outcome.records)


def test_sampling_override_null_sends_nothing_and_says_so(serve, run) -> None:
    srv = serve()
    outcome = run([model("mini", "openai", "gpt-4o-mini", sampling={"temperature": None, "seed": 7})], cases("alpha"))
    assert outcome.exit_code == 0, outcome.output
    (body,) = [r.body for r in completions(srv)]
    assert "temperature" not in body and body["seed"] == 7
    assert outcome.model_entry("mini")["details"]["adjustments"] == [
        "mini: temperature not sent (the model's sampling override)",
        "mini: seed set to 7 (the model's sampling override)",
    ]


def test_reasoning_effort_low_records_and_prices_reasoning_tokens(serve, run) -> None:
    srv = serve()
    outcome = run([model("g5", "openai", "gpt-5-mini", reasoning_effort="low")], cases(*WORDS), defaults=SAMPLING)
    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    assert all(r.body["reasoning_effort"] == "low" and "temperature" not in r.body for r in completions(srv))
    price = pricing.lookup_price("openai", "gpt-5-mini")
    for rec in outcome.records:
        visible = len(split_tokens(WORDS[int(rec["case_id"][1:])]))
        assert rec["reasoning_tokens"] == EFFORT_TOKENS["low"]
        assert rec["output_tokens"] == visible + EFFORT_TOKENS["low"]
        assert rec["cost_usd"] == pytest.approx(record_cost(rec, price), rel=1e-9)
        assert rec["cost_usd"] > record_cost({**rec, "output_tokens": visible, "reasoning_tokens": 0}, price)
    assert f"g5: {EFFORT_TOKENS['low']:,} reasoning tokens per task, counted in tok out and billed as output" in outcome.output


def test_reasoning_effort_is_refused_for_another_provider(tmp_path: Path) -> None:
    from openbench.errors import SuiteError
    from openbench.suite import load_suite

    path = write_suite(tmp_path / "s.yaml", [model("c", "anthropic", reasoning_effort="low")], cases("a"))
    with pytest.raises(SuiteError, match="'reasoning_effort' means nothing to the anthropic provider"):
        load_suite(path)


def test_thinking_claude_records_thinking_tokens_and_when_thinking_began(serve, run) -> None:
    srv = serve()  # first text after 50 ms
    settings = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "concurrency": 1}
    outcome = run([model("claude", "anthropic", "claude-haiku-4-5", **settings)], cases(*WORDS), defaults=SAMPLING)
    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    sent = completions(srv)
    assert all(r.status == 200 for r in sent)  # the thinking rules are built in: nothing refused
    for r in sent:
        assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        # Thinking takes only the default temperature; top_p alone is then accepted.
        assert "temperature" not in r.body and r.body["top_p"] == 0.9
        assert r.body["max_tokens"] == 1024 + 256
    price = pricing.lookup_price("anthropic", "claude-haiku-4-5")
    for rec in outcome.records:
        visible = len(split_tokens(WORDS[int(rec["case_id"][1:])]))
        assert rec["output"] == WORDS[int(rec["case_id"][1:])]  # the thinking text is not the answer
        assert rec["reasoning_tokens"] == THINKING_TOKENS and rec["output_tokens"] == visible + THINKING_TOKENS
        assert rec["cost_usd"] == pytest.approx(record_cost(rec, price), rel=1e-9)
        # Thinking began at once; TTFT is the first visible token, after the server's 50 ms.
        assert rec["thinking_s"] is not None and rec["thinking_s"] < rec["ttft_s"]
        assert rec["ttft_s"] >= 0.05
    assert outcome.model_entry("claude")["details"]["adjustments"] == [
        "claude: temperature 0 not accepted, the model's default was used",
        "claude: max_tokens 256 raised to 1280 (thinking budget 1024 + 256 for the answer)",
    ]


def test_prompt_cache_marks_the_system_prompt_and_prices_reads_and_writes(serve, run) -> None:
    srv = serve()
    system = "You repeat words exactly as given, without any comment or punctuation added."
    outcome = run(
        [model("claude", "anthropic", "claude-haiku-4-5", prompt_cache=True, concurrency=1)], cases(*WORDS), system=system
    )
    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    for r in completions(srv):
        assert r.body["system"] == [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    price = pricing.lookup_price("anthropic", "claude-haiku-4-5")
    assert price.cache_read_per_mtok < price.input_per_mtok < price.cache_write_per_mtok
    size = len(system.split())
    first, *rest = sorted(outcome.records, key=lambda r: r["case_id"])
    assert first["cache_write_tokens"] == size and first["cached_input_tokens"] == 0
    for rec in rest:
        assert rec["cached_input_tokens"] == size and rec["cache_write_tokens"] == 0
    for rec in outcome.records:
        assert rec["input_tokens"] == prompt_words(next(r.body for r in completions(srv) if rec["case_id"] in str(r.body)))
        assert rec["cost_usd"] == pytest.approx(record_cost(rec, price), rel=1e-9)
        uncached = record_cost({**rec, "cached_input_tokens": 0, "cache_write_tokens": 0}, price)
        assert rec["cost_usd"] != pytest.approx(uncached)


def test_a_non_default_endpoint_is_on_record_and_in_every_report(serve, run, invoke, tmp_path: Path) -> None:
    srv = serve()
    outcome = run([model("gpt", "openai")], cases("alpha"))
    assert outcome.exit_code == 0, outcome.output
    entry = outcome.model_entry("gpt")
    assert entry["endpoint"] == f"{srv.url}/v1" and entry["details"]["endpoint_default"] is False
    note = f"gpt: answers came from {srv.url}/v1, not the vendor's default endpoint"
    assert note in outcome.output
    summary = (outcome.run_dir / "summary.csv").read_text(encoding="utf-8-sig")
    header, *lines = summary.splitlines()
    assert "endpoint" in header.split(",") and all(f"{srv.url}/v1" in line for line in lines)
    md_path = tmp_path / "r.md"
    md = invoke("report", outcome.run_dir, "--format", "md", "--output", md_path)
    assert md.exit_code == 0 and note in md_path.read_text(encoding="utf-8")
    html_path = tmp_path / "r.html"
    html = invoke("report", outcome.run_dir, "--format", "html", "--output", html_path)
    assert html.exit_code == 0 and escape(note) in html_path.read_text(encoding="utf-8")


def test_the_vendor_default_endpoint_is_not_flagged_and_nothing_secret_is_shown() -> None:
    assert public_endpoint("https://api.openai.com/v1/") == "https://api.openai.com/v1"
    shown = public_endpoint("https://user:s3cret@gateway.example:8443/openai/v1?api-key=s3cret#frag")
    assert shown == "https://gateway.example:8443/openai/v1"


def test_vendor_rate_limit_headers_hold_the_next_request(serve, run) -> None:
    srv = serve(response_headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"})
    outcome = run([model("gpt", "openai", concurrency=1)], cases("alpha", "beta"))
    assert outcome.exit_code == 0, outcome.output
    first, second = sorted(completions(srv), key=lambda r: r.received_at)
    assert second.received_at - first.done_at >= 0.29


def test_a_cached_answer_is_not_replayed_for_other_reasoning_settings(serve, run) -> None:
    srv = serve(ttft_s=0, per_token_s=0)
    for effort in ("low", "high", "low"):
        outcome = run([model("g5", "openai", "gpt-5-mini", reasoning_effort=effort, cache=True)], cases("alpha"))
        assert outcome.exit_code == 0, outcome.output
    # low and high each asked once; the second low run replays the first.
    assert [r.body["reasoning_effort"] for r in completions(srv)] == ["low", "high"]
    assert outcome.records[0]["cached"] is True


def test_a_400_that_names_no_sampling_parameter_is_an_error_not_a_resend(serve, run) -> None:
    srv = serve(faults=["400"])
    outcome = run([model("gpt", "openai", concurrency=1)], cases("alpha", "beta"))
    c0, c1 = outcome.of("gpt")["c0"], outcome.of("gpt")["c1"]
    assert c0["error_kind"] == "bad_request" and c0["attempts"] == 1
    assert c1["error"] is None
    assert len(completions(srv)) == 2 and outcome.model_entry("gpt")["details"]["adjustments"] == []


def test_rate_limit_headers_of_both_vendors() -> None:
    from datetime import datetime, timedelta, timezone

    from openbench.providers.sse import throttle_from

    assert throttle_from({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "6m0s"}) is None
    spent = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30.5s"}
    assert throttle_from(spent) == pytest.approx(90.5)
    reset = (datetime.now(timezone.utc) + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    wait = throttle_from({"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset})
    assert 18 < wait <= 20


def test_estimate_counts_the_thinking_budget_as_possible_output(tmp_path: Path) -> None:
    from openbench.estimate import estimate, suite_requests
    from openbench.suite import load_suite

    thinking = {"type": "enabled", "budget_tokens": 2048}
    models = [model("plain", "anthropic"), model("thinks", "anthropic", thinking=thinking)]
    suite = load_suite(write_suite(tmp_path / "s.yaml", models, cases("alpha", "beta"), defaults={"max_tokens": 100}))
    rows = {e.model: e for e in estimate(suite, suite_requests(suite), list(suite.spec.models))}
    assert rows["plain"].output_tokens == 2 * 100
    assert rows["thinks"].output_tokens == 2 * (2048 + 100)
    assert rows["thinks"].cost_usd > rows["plain"].cost_usd
