"""The openai, anthropic and openai-compatible providers, run through the real CLI against a loopback
server that speaks both wire formats with known latency, usage and injected faults.

Every figure a record holds is checked against what the server did: its text, its usage and
its clock (the server's ``perf_counter`` timestamps are comparable with the client's).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic  # noqa: F401 - imported at collection, so that the per-test time limit times runs, not imports
import openai  # noqa: F401
import pytest

from api_helpers import (
    FAKE_ANTHROPIC_KEY,
    FAKE_OPENAI_KEY,
    RunOutcome,
    case_id_of,
    cases,
    completions,
    echo_reply,
    model,
    read_run,
    time_limit,
    write_suite,
)
from fakeserver import FakeServer, prompt_words, split_tokens

TTFT_S = 0.05
PER_TOKEN_S = 0.01
# Client clock minus server clock for one request on loopback: the client starts before the
# server has read the request and stops after it has read the last byte. Typically 2-5 ms; the
# bound leaves room for a loaded 2-core CI machine, while the mistakes it guards against (a retry's
# wait, an earlier attempt or the SDK's first-call imports inside TTFT) add 60 ms or more.
TOLERANCE_S = 0.05
TYPICAL_S = 0.03  # what the median item must meet
BOTH = ["openai", "anthropic"]


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    with time_limit(10):
        yield


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Fake keys in the environment; no base URL or key of the user's leaks in."""
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    return monkeypatch


@pytest.fixture
def serve(api_env: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeServer]]:
    """Start a fake server (echoing PROMPT's words) and point both vendors' base URL variables at it."""
    started: list[FakeServer] = []

    def start(**settings: Any) -> FakeServer:
        settings = {"ttft_s": TTFT_S, "per_token_s": PER_TOKEN_S, "reply_fn": echo_reply} | settings
        srv = FakeServer(**settings)
        srv.start()
        started.append(srv)
        api_env.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        api_env.setenv("ANTHROPIC_BASE_URL", srv.url)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def run(invoke: Callable[..., Any], tmp_path: Path) -> Callable[..., RunOutcome]:
    """``openbench run`` on a suite written from models and cases; returns the run folder's contents."""
    counter = itertools.count()

    def go(models: list[dict[str, Any]], case_list: list[dict[str, Any]], *args: str, **task: Any) -> RunOutcome:
        n = next(counter)
        suite = write_suite(tmp_path / f"suite{n}.yaml", models, case_list, **task)
        out = tmp_path / f"results{n}"
        result = invoke("run", suite, "--out", out, *args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return read_run(out, result.exit_code, result.output)

    return go


def assert_no_key_anywhere(outcome: RunOutcome) -> None:
    written = outcome.everything_written()
    assert FAKE_OPENAI_KEY not in written
    assert FAKE_ANTHROPIC_KEY not in written


def assert_timed_like_server(record: dict[str, Any], truth: Any) -> None:
    """The record's TTFT and E2E are the server's, plus at most the loopback and client overhead."""
    assert truth.ttft_s <= record["ttft_s"] <= truth.ttft_s + TOLERANCE_S, (record["ttft_s"], truth.ttft_s)
    assert truth.e2e_s <= record["latency_s"] <= truth.e2e_s + TOLERANCE_S, (record["latency_s"], truth.e2e_s)


# -- the happy path: text, usage and timing are the server's -------------------------------------


def test_text_usage_and_timing_match_the_server(serve, run) -> None:
    srv = serve(cached_tokens=2, cache_write_tokens=1, reasoning_tokens=3)
    words = ["alpha", "beta gamma", "one two three four", "the quick brown fox jumps"]
    outcome = run([model("gpt", "openai"), model("claude", "anthropic")], cases(*words))

    assert outcome.exit_code == 0, outcome.output
    srv.wait_idle()
    truth = {(r.api, case_id_of(r)): r for r in completions(srv)}
    assert len(truth) == 2 * len(words)  # one request per item: nothing retried, nothing cached
    errors: list[float] = []
    for model_id, api in (("gpt", "openai"), ("claude", "anthropic")):
        records = outcome.of(model_id)
        assert sorted(records) == [f"c{i}" for i in range(len(words))]
        for case_id, rec in records.items():
            server = truth[(api, case_id)]
            expected = words[int(case_id[1:])]
            assert rec["error"] is None and rec["output"] == expected and rec["passed"] is True
            assert rec["attempts"] == 1 and rec["cached"] is False
            # Every prompt token, cached or not (Anthropic's input_tokens excludes cache reads and writes).
            assert rec["input_tokens"] == prompt_words(server.body)
            assert rec["cached_input_tokens"] == 2
            # Visible tokens plus reasoning; Anthropic's from the last message_delta, not message_start's 1.
            assert rec["output_tokens"] == len(split_tokens(expected)) + 3
            assert rec["reasoning_tokens"] == 3
            if api == "anthropic":
                assert rec["cache_write_tokens"] == 1
            assert server.chunks_sent == len(split_tokens(expected))
            assert_timed_like_server(rec, server)
            errors.append(rec["ttft_s"] - server.ttft_s)
            if server.chunks_sent > 2:
                assert rec["itl_s"] == pytest.approx(PER_TOKEN_S, abs=0.005)
            assert rec["cost_usd"] is not None and rec["cost_usd"] > 0
        assert outcome.model_entry(model_id)["status"] == "ok"
    assert statistics.median(errors) <= TYPICAL_S
    assert_no_key_anywhere(outcome)


def test_requests_carry_the_suite_settings(serve, run) -> None:
    srv = serve()
    outcome = run(
        [model("gpt", "openai", params={"service_tier": "flex", "vendor_extension": 7}), model("claude", "anthropic")],
        cases("alpha"),
        max_tokens=33,
        temperature=0.5,
    )
    assert outcome.exit_code == 0, outcome.output
    bodies = {r.api: r.body for r in completions(srv)}
    assert bodies["openai"]["model"] == "gpt-4o-mini"
    assert bodies["openai"]["max_completion_tokens"] == 33 and bodies["openai"]["temperature"] == 0.5
    assert bodies["openai"]["stream"] is True and bodies["openai"]["stream_options"] == {"include_usage": True}
    # params pass through, including fields the SDK has no argument for.
    assert bodies["openai"]["service_tier"] == "flex" and bodies["openai"]["vendor_extension"] == 7
    assert bodies["anthropic"]["model"] == "claude-haiku-4-5"
    assert bodies["anthropic"]["max_tokens"] == 33 and bodies["anthropic"]["temperature"] == 0.5
    assert {r.headers.get("authorization") for r in completions(srv) if r.api == "openai"} == {f"Bearer {FAKE_OPENAI_KEY}"}
    # anthropic 2.x sends the key as a bearer token; older releases as x-api-key.
    sent = {r.headers.get("x-api-key") or r.headers["authorization"].removeprefix("Bearer ") for r in completions(srv) if r.api == "anthropic"}
    assert sent == {FAKE_ANTHROPIC_KEY}


# -- retries: counted, and never inside the timing -------------------------------------------------


@pytest.mark.parametrize("provider", BOTH)
def test_retry_after_wait_is_not_latency(serve, run, provider) -> None:
    srv = serve(faults=["429:retry-after=0.2"])
    outcome = run([model("m", provider)], cases("alpha beta"))

    rec = outcome.of("m")["c0"]
    first, second = completions(srv)
    assert first.status == 429 and second.status == 200
    assert rec["error"] is None and rec["output"] == "alpha beta" and rec["attempts"] == 2
    assert_timed_like_server(rec, second)
    # The wait Retry-After asked for is in the item's wall time only.
    assert rec["wall_s"] >= 0.2 + second.e2e_s
    assert second.received_at - first.received_at >= 0.2


TRANSIENT = ["500", "502", "503", "529", "429:no-retry-after", "refuse", "cut:after=2", "malformed-sse", "stream-error"]


@pytest.mark.parametrize("fault", TRANSIENT)
@pytest.mark.parametrize("provider", BOTH)
def test_transient_fault_then_success(serve, run, provider, fault) -> None:
    srv = serve(faults=[fault])
    outcome = run([model("m", provider)], cases("one two three four"))

    rec = outcome.of("m")["c0"]
    assert rec["error"] is None, rec["error"]
    assert rec["output"] == "one two three four" and rec["passed"] is True
    assert rec["attempts"] == 2
    first, second = completions(srv)
    assert first.fault == fault and second.fault is None
    assert_timed_like_server(rec, second)  # a cut attempt's early chunks do not count as this TTFT


# -- failures are data, and end the right things ---------------------------------------------------


@pytest.mark.parametrize("provider", BOTH)
def test_permanent_server_error_is_recorded_per_item(serve, run, provider) -> None:
    srv = serve(fail_all="500")
    outcome = run([model("m", provider, max_retries=1)], cases("a", "b", "c"))

    assert outcome.exit_code == 1, outcome.output  # every item errored: the model failed, and so does the run
    assert outcome.manifest["status"] == "completed"
    assert outcome.model_entry("m")["status"] == "failed"
    records = outcome.of("m")
    assert sorted(records) == ["c0", "c1", "c2"]
    for rec in records.values():
        assert rec["error_kind"] == "server" and "500" in rec["error"]
        assert rec["attempts"] == 2 and rec["output"] is None and rec["score"] is None
    assert len(completions(srv)) == 3 * 2
    row = next(line for line in outcome.output.splitlines() if line.startswith("| echo") and "| m " in line)
    assert row.split("|")[-3].strip() == "3"  # the errors column
    assert_no_key_anywhere(outcome)


@pytest.mark.parametrize("provider", BOTH)
def test_hanging_server_times_out_in_bounded_time(serve, run, provider) -> None:
    srv = serve(fail_all="hang")
    started = time.perf_counter()
    outcome = run([model("m", provider, timeout_s=0.5, max_retries=1)], cases("alpha"))

    assert time.perf_counter() - started < 4
    rec = outcome.of("m")["c0"]
    assert rec["error_kind"] == "timeout" and rec["attempts"] == 2
    assert rec["wall_s"] == pytest.approx(1.0, abs=0.5)
    assert [r.outcome for r in completions(srv)] == ["hung", "hung"]


@pytest.mark.parametrize("provider", BOTH)
def test_bad_key_fails_the_model_once(serve, run, provider) -> None:
    srv = serve(api_key="the-right-key")
    outcome = run([model("m", provider, concurrency=2)], cases(*[f"w{i}" for i in range(20)]))

    assert outcome.exit_code == 1, outcome.output  # a failed model fails the run (a missing key only skips it)
    entry = outcome.model_entry("m")
    assert entry["status"] == "failed" and entry["reason"].startswith("auth")
    # Only the items already in flight were sent, once each; the others were not tried.
    assert 1 <= len(completions(srv)) <= 2
    assert all(rec["error_kind"] == "auth" and rec["attempts"] == 1 for rec in outcome.records)
    assert outcome.output.count("not retrying its other items") == 1
    assert_no_key_anywhere(outcome)


def test_missing_key_skips_the_model_naming_the_variable(serve, run, api_env) -> None:
    srv = serve()
    api_env.delenv("OPENAI_API_KEY")
    api_env.delenv("ANTHROPIC_API_KEY")
    outcome = run([model("gpt", "openai"), model("claude", "anthropic", api_key_env="MY_CLAUDE_KEY")], cases("alpha"))

    assert outcome.exit_code == 0, outcome.output
    assert outcome.records == [] and srv.request_count == 0
    assert outcome.model_entry("gpt")["status"] == "skipped"
    assert "OPENAI_API_KEY" in outcome.model_entry("gpt")["reason"]
    assert outcome.model_entry("claude")["status"] == "skipped"
    assert "MY_CLAUDE_KEY" in outcome.model_entry("claude")["reason"]
    assert "OPENAI_API_KEY is not set" in outcome.output and "MY_CLAUDE_KEY is not set" in outcome.output


@pytest.mark.parametrize("provider", BOTH)
def test_empty_answer_is_scored_not_an_error(serve, run, provider) -> None:
    srv = serve(faults=["empty"], reasoning_tokens=2)
    outcome = run([model("m", provider)], cases("alpha"))

    rec = outcome.of("m")["c0"]
    assert rec["error"] is None and rec["output"] == ""
    assert rec["score"] == 0.0 and rec["passed"] is False and rec["attempts"] == 1
    assert rec["ttft_s"] is None and rec["latency_s"] is not None
    assert rec["output_tokens"] == 2 and rec["input_tokens"] == prompt_words(completions(srv)[0].body)


def test_error_rate_limit_aborts_the_run(serve, run) -> None:
    serve(fail_all="500")
    outcome = run([model("m", "openai", max_retries=0, concurrency=4)], cases(*[f"w{i}" for i in range(30)]), "--max-error-rate", "0.5")

    assert outcome.exit_code == 1, outcome.output
    assert "exceeded --max-error-rate 0.5" in outcome.output
    assert outcome.manifest["status"].startswith("aborted")
    assert outcome.model_entry("m")["status"] == "failed"
    assert 20 <= len(outcome.records) < 30  # stopped soon after the 20-item minimum


# -- where requests go -----------------------------------------------------------------------------


def test_per_model_base_url_and_key_variable(run, api_env) -> None:
    gpt_srv = FakeServer(reply_fn=echo_reply, api_key="key-for-gpt")
    claude_srv = FakeServer(reply_fn=echo_reply, api_key="key-for-claude")
    with gpt_srv, claude_srv:
        # The environment points elsewhere (nothing listens on port 9): the suite's settings must win.
        api_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        api_env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        api_env.setenv("GPT_KEY", "key-for-gpt")
        api_env.setenv("CLAUDE_KEY", "key-for-claude")
        outcome = run(
            [
                model("gpt", "openai", base_url=f"{gpt_srv.url}/v1", api_key_env="GPT_KEY"),
                model("claude", "anthropic", base_url=claude_srv.url, api_key_env="CLAUDE_KEY"),
            ],
            cases("alpha", "beta"),
        )
    assert outcome.exit_code == 0, outcome.output
    assert all(rec["error"] is None and rec["passed"] for rec in outcome.records) and len(outcome.records) == 4
    assert {r.api for r in completions(gpt_srv)} == {"openai"} and len(completions(gpt_srv)) == 2
    assert {r.api for r in completions(claude_srv)} == {"anthropic"} and len(completions(claude_srv)) == 2
    assert "key-for-gpt" not in outcome.everything_written()


def test_openai_compatible_server_without_key(serve, run, api_env) -> None:
    srv = serve()
    api_env.delenv("OPENAI_API_KEY")
    local = model("local", "openai-compatible", "my-served-model", base_url=f"{srv.url}/v1")
    local.pop("cache")  # default for a self-hosted server: re-measured on every run
    first = run([local], cases("alpha", "beta"))
    second = run([local], cases("alpha", "beta"))

    for outcome in (first, second):
        assert outcome.exit_code == 0, outcome.output
        assert all(rec["error"] is None and rec["passed"] and not rec["cached"] for rec in outcome.records)
        assert outcome.model_entry("local")["status"] == "ok"
    requests = completions(srv)
    assert len(requests) == 4
    assert {r.body["model"] for r in requests} == {"my-served-model"}
    assert all(r.body["max_tokens"] == 256 and "max_completion_tokens" not in r.body for r in requests)
    assert all(rec["cost_usd"] is None for rec in first.records)  # not billed per token


def test_paid_api_answers_are_cached_and_never_timed_again(serve, run) -> None:
    srv = serve()
    gpt = model("gpt", "openai")
    gpt.pop("cache")  # default for a paid API: cached
    first = run([gpt], cases("alpha", "beta"))
    second = run([gpt], cases("alpha", "beta"))
    uncached = run([gpt], cases("alpha", "beta"), "--no-cache")

    assert len(completions(srv)) == 4  # the first and the --no-cache run
    assert all(not rec["cached"] and rec["latency_s"] is not None for rec in first.records)
    assert all(rec["cached"] and rec["latency_s"] is None and rec["ttft_s"] is None for rec in second.records)
    assert [r["output"] for r in second.records] == [r["output"] for r in first.records]
    assert all(not rec["cached"] for rec in uncached.records)


def test_first_items_of_a_fresh_process_are_timed_truthfully(serve, tmp_path) -> None:
    """The SDK's first request imports modules and builds caches; none of that may land in the first TTFTs.

    A fresh interpreter, because in this one the SDKs are warm already.
    """
    srv = serve()
    suite = write_suite(tmp_path / "suite.yaml", [model("gpt", "openai", concurrency=4)], cases("a b", "c d", "e f", "g h"))
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "openbench", "run", str(suite), "--out", str(out)],
        capture_output=True, text=True, timeout=9, env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    outcome = read_run(out, done.returncode, done.stdout + done.stderr)
    truth = {case_id_of(r): r for r in completions(srv)}
    assert len(outcome.records) == 4
    for rec in outcome.records:
        assert_timed_like_server(rec, truth[rec["case_id"]])
