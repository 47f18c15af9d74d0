"""Conversations, tools and structured output: suite checks, the vendors' wire formats on the loopback
server (what arrives, what streams back), the tool scorers, and the examples on the reference provider."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from api_helpers import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, completions, read_run, time_limit
from fakeserver import FakeServer, last_user_text

EXAMPLES = Path(__file__).resolve().parent.parent / "suites" / "examples"

LOOKUP_TOOL = {
    "name": "lookup_order",
    "description": "Look up an order by number.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}
CLAIM_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "issue": {"type": "string", "enum": ["damaged", "lost"]}},
    "required": ["order_id", "issue"],
    "additionalProperties": False,
}
CONVERSATION = [
    {"role": "system", "content": "You are Parcelly's support assistant."},
    {"role": "user", "content": "My parcel {{ id }} is late."},
    {"role": "assistant", "content": "Sorry! Which day was it due?"},
    {"role": "user", "content": "Repeat: {{ words }}"},
]


def _suite(models: list[dict[str, Any]]) -> dict[str, Any]:
    cases = [{"id": f"{n}", "words": w, "answer": w} for n, w in ((48213, "on Monday"), (77105, "yesterday morning"))]
    return {
        "name": "workloads",
        "models": models,
        "tasks": [
            {"name": "chat", "messages": CONVERSATION, "data": {"cases": cases}, "scorers": [{"type": "exact"}]},
            {
                "name": "lookup",
                "system": "Use the tools.",
                "prompt": "Where is order {{ id }}?",
                "tools": [LOOKUP_TOOL],
                "tool_choice": "auto",
                "data": {"cases": cases},
                "scorers": [
                    {"type": "tool_call", "name": "lookup_order", "arguments": {"order_id": "{{ id }}"}},
                    {"type": "json_fields", "target": "tool_arguments", "fields": {"order_id": "{{ id }}"}},
                ],
            },
            {
                "name": "claim",
                "prompt": "Ticket: order {{ id }} arrived damaged.",
                "response_format": {"name": "claim", "json_schema": CLAIM_SCHEMA},
                "data": {"cases": cases},
                "scorers": [{"type": "json_schema", "schema": CLAIM_SCHEMA}, {"type": "json_fields", "fields": {"order_id": "{{ id }}"}}],
            },
        ],
    }


def _order_id(body: dict[str, Any]) -> str:
    return re.search(r"\d{5}", last_user_text(body)).group(0)


def _reply(body: dict[str, Any]) -> str:
    if "response_format" in body:
        return json.dumps({"order_id": _order_id(body), "issue": "damaged"})
    return last_user_text(body).split("Repeat: ", 1)[-1]


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    if not body.get("tools"):
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("name") == "claim":  # Anthropic's forced answer tool
        return [{"name": "claim", "arguments": {"order_id": _order_id(body), "issue": "damaged"}}]
    return [{"name": "lookup_order", "arguments": {"order_id": _order_id(body)}}]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    with FakeServer(ttft_s=0.03, per_token_s=0.005, reply_fn=_reply, tool_calls_fn=_tool_calls) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{srv.url}/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        with time_limit(20):
            yield srv


def _run(invoke: Callable[..., Any], tmp_path: Path, spec: dict[str, Any], name: str = "suite") -> Any:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    out = tmp_path / f"out-{name}"
    result = invoke("run", path, "--out", out)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return read_run(out, result.exit_code, result.output)


def _api_models(srv: FakeServer) -> list[dict[str, Any]]:
    common = {"backoff_s": 0.01, "cache": False, "concurrency": 2}
    return [
        {"id": "gpt", "provider": "openai", "model": "gpt-4o-mini", **common},
        {"id": "claude", "provider": "anthropic", "model": "claude-haiku-4-5", **common},
        {"id": "served", "provider": "openai-compatible", "model": "served-model", "base_url": f"{srv.url}/v1", **common},
    ]


def test_conversation_tools_and_schema_on_every_api(server: FakeServer, invoke, tmp_path: Path) -> None:
    outcome = _run(invoke, tmp_path, _suite(_api_models(server)))
    assert outcome.exit_code == 0, outcome.output
    server.wait_idle()
    sent = completions(server)
    assert len(sent) == 3 * 3 * 2  # models × tasks × cases, nothing retried

    for rec in outcome.records:
        assert rec["error"] is None, rec
        assert rec["passed"] is True, rec
        assert rec["ttft_s"] is not None and 0.03 <= rec["ttft_s"] <= rec["latency_s"]
        if rec["model"] != "served":
            assert rec["cost_usd"] and rec["cost_usd"] > 0  # tool calls and schema answers are priced like text
        if rec["task"] == "lookup":
            assert rec["tool_calls"][0]["name"] == "lookup_order"
            assert rec["tool_calls"][0]["arguments"] == {"order_id": rec["case_id"]}
            assert rec["tool_calls"][0]["invalid_json"] is False
            assert rec["scores"]["tool_call"]["value"] == 1.0
            assert rec["finish_reason"] in ("tool_calls", "tool_use")
        elif rec["task"] == "claim":
            assert json.loads(rec["output"]) == {"order_id": rec["case_id"], "issue": "damaged"}
            assert rec["tool_calls"] is None  # Anthropic's forced answer tool is the answer, not a call

    openai_bodies = [r.body for r in sent if r.api == "openai"]
    anthropic_bodies = [r.body for r in sent if r.api == "anthropic"]
    # Every turn arrives, in each vendor's format.
    chat = [b for b in openai_bodies if len(b["messages"]) == 4]
    assert len(chat) == 4
    assert [m["role"] for m in chat[0]["messages"]] == ["system", "user", "assistant", "user"]
    assert chat[0]["messages"][2]["content"] == "Sorry! Which day was it due?"
    a_chat = [b for b in anthropic_bodies if len(b["messages"]) == 3]
    assert len(a_chat) == 2
    assert a_chat[0]["system"] == "You are Parcelly's support assistant."
    assert [m["role"] for m in a_chat[0]["messages"]] == ["user", "assistant", "user"]
    # Tools: OpenAI functions; Anthropic input_schema.
    o_tools = [b for b in openai_bodies if "tools" in b]
    assert len(o_tools) == 4
    assert o_tools[0]["tools"] == [{"type": "function", "function": LOOKUP_TOOL}]
    assert o_tools[0]["tool_choice"] == "auto"
    a_tools = [b for b in anthropic_bodies if any(t["name"] == "lookup_order" for t in b.get("tools", []))]
    assert a_tools[0]["tools"] == [
        {"name": "lookup_order", "description": LOOKUP_TOOL["description"], "input_schema": LOOKUP_TOOL["parameters"]}
    ]
    assert a_tools[0]["tool_choice"] == {"type": "auto"}
    # Structured output: a strict json_schema for OpenAI and compatible servers; a forced tool for Anthropic.
    o_schema = [b for b in openai_bodies if "response_format" in b]
    assert len(o_schema) == 4
    assert o_schema[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "claim", "schema": CLAIM_SCHEMA, "strict": True},
    }
    a_schema = [b for b in anthropic_bodies if b.get("tool_choice", {}).get("type") == "tool"]  # Anthropic's is always a dict
    assert len(a_schema) == 2
    assert a_schema[0]["tools"][0]["input_schema"] == CLAIM_SCHEMA and a_schema[0]["tool_choice"]["name"] == "claim"

    modes = {m: outcome.model_entry(m)["structured_output"]["claim"] for m in ("gpt", "claude", "served")}
    assert modes == {
        "gpt": {"mode": "json_schema_strict", "enforced": True},
        "claude": {"mode": "forced_tool", "enforced": True},
        "served": {"mode": "response_format", "enforced": False},
    }
    assert {r["structured_output"] for r in outcome.records if r["task"] == "claim"} == {
        "json_schema_strict",
        "forced_tool",
        "response_format",
    }


def test_tool_call_ttft_is_the_first_tool_delta(server: FakeServer, invoke, tmp_path: Path) -> None:
    """A reply that is only a tool call still has a TTFT: the first tool-call delta, timed like text."""
    server.ttft_s, server.per_token_s = 0.08, 0.02
    spec = _suite(_api_models(server)[:2])
    spec["tasks"] = spec["tasks"][1:2]
    outcome = _run(invoke, tmp_path, spec)
    assert outcome.exit_code == 0, outcome.output
    server.wait_idle()
    for rec in outcome.records:
        # The server sends the first tool-call piece at 80 ms and the rest 20 ms apart.
        assert 0.08 <= rec["ttft_s"] < 0.08 + 0.05, rec["ttft_s"]
        assert rec["latency_s"] >= rec["ttft_s"] + 0.02


def test_invalid_tool_arguments_are_kept_raw_and_marked(server: FakeServer, invoke, tmp_path: Path) -> None:
    server.tool_calls_fn = lambda body: [{"name": "lookup_order", "arguments": '{"order_id": 48213'}] if body.get("tools") else None
    spec = _suite(_api_models(server)[:2])
    spec["tasks"] = spec["tasks"][1:2]
    outcome = _run(invoke, tmp_path, spec)
    for rec in outcome.records:
        call = rec["tool_calls"][0]
        assert call == {"name": "lookup_order", "arguments": '{"order_id": 48213', "invalid_json": True, "id": call["id"]}
        assert rec["scores"]["tool_call"]["value"] == 0.0
        assert "not a JSON object" in rec["scores"]["tool_call"]["explanation"]
        assert rec["passed"] is False and rec["error"] is None


def test_history_with_tool_results_and_merged_turns(server: FakeServer, invoke, tmp_path: Path) -> None:
    """A logged conversation with a tool call and its result, and two user turns in a row."""
    history = [
        {"role": "user", "content": "Where is order 48213?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "48213"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "in transit"}'},
        {"role": "assistant", "content": "It is in transit."},
        {"role": "user", "content": "Thanks."},
        {"role": "user", "content": "Repeat: ok then"},
    ]
    spec = {
        "name": "logs",
        "models": _api_models(server)[:2],
        "tasks": [
            {
                "name": "replay",
                "messages_field": "conversation",
                "tools": [LOOKUP_TOOL],
                "data": {"cases": [{"id": "1", "conversation": history, "answer": "ok then"}]},
                "scorers": [{"type": "no_tool_call"}],
            }
        ],
    }
    server.tool_calls_fn = None
    outcome = _run(invoke, tmp_path, spec)
    assert outcome.exit_code == 0, outcome.output
    server.wait_idle()
    (o_body,) = [r.body for r in completions(server) if r.api == "openai"]
    (a_body,) = [r.body for r in completions(server) if r.api == "anthropic"]
    assert [m["role"] for m in o_body["messages"]] == ["user", "assistant", "tool", "assistant", "user", "user"]
    assert o_body["messages"][1]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": '{"order_id": "48213"}'}
    assert o_body["messages"][2]["tool_call_id"] == "call_1"
    assert [m["role"] for m in a_body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert a_body["messages"][1]["content"] == [{"type": "tool_use", "id": "call_1", "name": "lookup_order", "input": {"order_id": "48213"}}]
    assert a_body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": '{"status": "in transit"}'}]
    assert a_body["messages"][4]["content"] == "Thanks.\n\nRepeat: ok then"  # merged, and said so
    claude = outcome.of("claude")["1"]
    assert claude["notes"] == ["1 adjacent same-role turn(s) merged for Anthropic's alternating turns"]
    assert outcome.of("gpt")["1"]["notes"] is None
    assert all(r["passed"] for r in outcome.records)


def test_cache_key_includes_tools_and_response_format() -> None:
    from openbench.cache import cache_key
    from openbench.records import ChatRequest, Message, ResponseFormat, Sampling, Tool

    base = ChatRequest((Message("user", "hi"),), Sampling())
    tool = Tool("lookup_order", None, LOOKUP_TOOL["parameters"])
    keys = {
        cache_key({}, base),
        cache_key({}, ChatRequest(base.messages, base.sampling, (tool,))),
        cache_key({}, ChatRequest(base.messages, base.sampling, (tool,), "required")),
        cache_key({}, ChatRequest(base.messages, base.sampling, response_format=ResponseFormat(CLAIM_SCHEMA))),
    }
    assert len(keys) == 4


# -- the examples, offline ------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["support-conversation", "order-lookup", "extraction"])
def test_examples_get_full_marks_on_the_reference_provider(example: str, invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", EXAMPLES / f"{example}.yaml", "--model", "reference", "--out", out)
    assert result.exit_code == 0, result.output
    outcome = read_run(out, 0, result.output)
    assert outcome.records and all(r["passed"] and r["score"] == 1.0 for r in outcome.records)
    if example == "order-lookup":
        assert any(r["tool_calls"] for r in outcome.records)


# -- suite checks: bad input exits 2 with file:line ---------------------------------------------


BAD = {
    "unknown role": (
        "    messages:\n      - {role: user, content: hi}\n      - {role: assistnt, content: x}\n      - {role: user, content: q}\n",
        9,
        "unknown role 'assistnt' (did you mean 'assistant'?)",
    ),
    "ends with assistant": (
        "    messages:\n      - {role: user, content: hi}\n      - {role: assistant, content: x}\n",
        9,
        "must end with a user turn",
    ),
    "system not first": (
        "    messages:\n      - {role: user, content: hi}\n      - {role: system, content: x}\n      - {role: user, content: q}\n",
        9,
        "a system turn may only come first",
    ),
    "prompt and messages": (
        "    prompt: hi\n    messages:\n      - {role: user, content: hi}\n",
        4,
        "give exactly one of prompt, messages or messages_field",
    ),
    "tool without parameters": (
        "    prompt: hi\n    tools:\n      - {name: lookup_order, description: find an order}\n",
        9,
        "tasks[0].tools[0].parameters: required field is missing",
    ),
    "tool parameters not a schema": (
        "    prompt: hi\n    tools:\n      - {name: f, parameters: {type: object, properties: {a: {type: strng}}}}\n",
        9,
        "not a valid JSON Schema",
    ),
    "response format not a schema": (
        "    prompt: hi\n    response_format:\n      json_schema: {type: object, required: yes}\n",
        9,
        "not a valid JSON Schema",
    ),
    "tool_choice names no tool": (
        "    prompt: hi\n    tools:\n      - {name: lookup_order, parameters: {type: object}}\n    tool_choice: {name: lookup_ordr}\n",
        4,
        "did you mean 'lookup_order'",
    ),
}


@pytest.mark.parametrize("problem", sorted(BAD))
def test_bad_conversations_tools_and_schemas_exit_2_with_file_line(problem: str, write_suite, invoke) -> None:
    body, line, message = BAD[problem]
    path = write_suite(
        "name: s\nmodels: [{id: r, provider: reference, model: r, field: a}]\ntasks:\n  - name: t\n"
        "    data: {cases: [{id: '1', a: x}]}\n    scorers: [{type: contains, expected: x}]\n" + body
    )
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}" in result.output, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_bad_logged_conversation_names_its_file_and_line(write_suite, invoke) -> None:
    rows = [
        {"id": "1", "chat": [{"role": "user", "content": "hi"}]},
        {"id": "2", "chat": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}, {"role": "user", "content": "q"}]},
    ]
    path = write_suite(
        "name: s\nmodels: [{id: r, provider: reference, model: r, field: id}]\ntasks:\n"
        "  - {name: t, messages_field: chat, data: {file: chats.jsonl}, scorers: [{type: contains, expected: x}]}\n",
        files={"chats.jsonl": rows},
    )
    result = invoke("run", path, "--out", path.parent / "out")
    assert result.exit_code == 2, result.output
    assert "chats.jsonl:2" in result.output and "turn 1: unknown role 'robot'" in result.output, result.output


# -- the scorers -----------------------------------------------------------------------------------


def _calls(*pairs: tuple[str, Any]) -> list[dict[str, Any]]:
    return [{"name": n, "arguments": a, "invalid_json": isinstance(a, str), "id": None} for n, a in pairs]


def test_tool_call_scorer_typed_comparison_and_partial_credit() -> None:
    from openbench.scorers.tools import no_tool_call, tool_call

    want = {"order_id": "48213", "quantity": "2", "express": "true", "note": "Leave at door"}
    got = {"order_id": "48213", "quantity": 2, "express": True, "note": "  leave at door ", "extra": 1}
    result = tool_call("", {}, name="lookup_order", arguments=want, tool_calls=_calls(("lookup_order", got)))
    assert (result.value, result.passed) == (1.0, True)  # "2" matches 2, "true" matches true; extra keys are ignored

    half = tool_call("", {}, name="lookup_order", arguments=want, tool_calls=_calls(("lookup_order", {**got, "quantity": 3, "express": False})))
    assert (half.value, half.passed) == (0.5, False)
    assert "quantity=3" in half.explanation and "express=False" in half.explanation

    best = tool_call("", {}, name="f", arguments={"a": "1"}, tool_calls=_calls(("f", {"a": 2}), ("f", {"a": 1})))
    assert best.passed  # the best of several calls to the name counts
    assert tool_call("", {}, name="f", arguments={"a": "1"}, tool_calls=_calls(("g", {"a": 1}))).value == 0.0
    assert tool_call("", {}, name="f", tool_calls=_calls(("f", {}))).passed
    assert not tool_call("", {}, name="f", arguments={"a": "x"}, tool_calls=[]).passed
    assert tool_call("", {}, name="f", arguments={"n": "1.50"}, tool_calls=_calls(("f", {"n": 1.5}))).passed
    assert not tool_call("", {}, name="f", arguments={"n": "1"}, tool_calls=_calls(("f", {"n": True}))).passed  # true is not 1

    assert no_tool_call("hello", {}, tool_calls=[]).passed
    assert not no_tool_call("", {}, tool_calls=_calls(("f", {}))).passed


# -- the examples against the loopback server -----------------------------------------------------

ISSUES = {"arrived": "not_delivered", "damaged": "damaged", "cancel": "cancel", "billed": "billing"}


def _example_answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """The claim a careful model would extract from the ticket in a request of extraction.yaml."""
    text = last_user_text(body)
    if "Ticket:" not in text:
        return None
    issue = next((v for k, v in ISSUES.items() if k in text), "other")
    return {"order_id": re.search(r"\d{5}", text).group(0), "email": re.search(r"[\w.]+@[\w.]+\w", text).group(0), "issue": issue}


def _example_reply(body: dict[str, Any]) -> str:
    claim = _example_answer(body)
    if claim is not None:
        return json.dumps(claim)
    return "It usually takes 3 days; you can track it, and we will open a claim: the change is free, or a refund."


def _example_tool_calls(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    names = [t.get("name") or t.get("function", {}).get("name") for t in body.get("tools") or ()]
    if "claim" in names:  # Anthropic's forced answer tool
        return [{"name": "claim", "arguments": _example_answer(body)}]
    found = re.search(r"\d{5}", last_user_text(body))
    return [{"name": "lookup_order", "arguments": {"order_id": found.group(0)}}] if names and found else None


@pytest.mark.parametrize("example", ["support-conversation", "order-lookup", "extraction"])
def test_examples_run_on_both_apis_against_the_loopback_server(example: str, server: FakeServer, invoke, tmp_path: Path) -> None:
    server.reply_fn, server.tool_calls_fn = _example_reply, _example_tool_calls
    out = tmp_path / "out"
    result = invoke("run", EXAMPLES / f"{example}.yaml", "--model", "gpt-4o-mini", "--model", "claude-haiku-4-5", "--out", out, "--no-cache")
    assert result.exit_code == 0, result.output
    outcome = read_run(out, 0, result.output)
    assert len(outcome.records) == 2 * len({(r["task"], r["case_id"]) for r in outcome.records})
    for rec in outcome.records:
        assert rec["error"] is None and rec["passed"] is True, rec
        assert rec["ttft_s"] is not None and rec["cost_usd"] > 0
    server.wait_idle()
    sent = completions(server)
    if example == "support-conversation":
        longest = max((r.body for r in sent if r.api == "openai"), key=lambda b: len(b["messages"]))
        assert [m["role"] for m in longest["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    elif example == "order-lookup":
        assert sum(1 for r in outcome.records if r["tool_calls"]) == 2 * 4
    else:
        modes = {m["id"]: m["structured_output"]["claim"]["mode"] for m in outcome.manifest["models"]}
        assert modes == {"gpt-4o-mini": "json_schema_strict", "claude-haiku-4-5": "forced_tool"}


def test_estimates_count_tool_definitions_and_schemas(invoke) -> None:
    """Vendors bill tool definitions and response schemas as input: the estimate counts them."""
    from openbench.estimate import estimate, suite_requests
    from openbench.suite import load_suite

    suite = load_suite(EXAMPLES / "order-lookup.yaml")
    requests = suite_requests(suite)
    text_only = sum(len(m.content) for _, r in requests for m in r.messages)
    tools = sum(r.extra_chars for _, r in requests)
    assert tools > text_only  # two tool schemas outweigh these short tickets
    (gpt,) = [e for e in estimate(suite, requests, [suite.model("gpt-4o-mini")])]
    assert gpt.input_tokens >= (text_only + tools) // 4
