"""The fake server must be faithful: the official SDKs parse it, faults surface as their exceptions,
and the latency it injects is what a client observes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from fakeserver import FakeServer, FakeServerProcess, last_user_text, parse_fault, split_tokens

MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]
PROMPT_WORDS = 8  # "Be brief." + "What is the capital of France?"


@pytest.fixture
def srv() -> Iterator[FakeServer]:
    with FakeServer(reply="Paris is the capital.") as server:
        yield server


def oai(server: FakeServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0, **kwargs)


def ant(server: FakeServer, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0, **kwargs)


def oai_stream(client: openai.OpenAI, **kwargs: Any) -> tuple[str, Any, list[Any]]:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks[-1].usage, chunks


def ant_create(client: anthropic.Anthropic, max_tokens: int = 256, **kwargs: Any) -> Any:
    return client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=max_tokens,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        **kwargs,
    )


def raw_sse(server: FakeServer, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[str]:
    with httpx2.Client() as client:
        response = client.post(f"{server.url}{path}", json=body, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return response.text.split("\n\n")[:-1]


# --------------------------------------------------------------------------- OpenAI


def test_openai_stream_text_and_usage() -> None:
    with FakeServer(reply="Paris is the capital.", cached_tokens=3, reasoning_tokens=2) as server:
        text, usage, chunks = oai_stream(oai(server))
    assert text == "Paris is the capital."
    assert chunks[-1].choices == []  # the usage chunk
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert usage.prompt_tokens == PROMPT_WORDS
    assert usage.completion_tokens == 4 + 2  # content chunks + reasoning tokens
    assert usage.total_tokens == PROMPT_WORDS + 6
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 2


def test_openai_stream_without_include_usage_has_no_usage(srv: FakeServer) -> None:
    chunks = list(oai(srv).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris is the capital."


def test_openai_wire_format(srv: FakeServer) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    events = raw_sse(srv, "/v1/chat/completions", body, {"authorization": "Bearer sk-test"})
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:5]] == ["Paris", " is", " the", " capital."]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_openai_non_streaming_and_max_tokens(srv: FakeServer) -> None:
    client = oai(srv)
    full = client.chat.completions.create(model="m", messages=MESSAGES)
    assert full.choices[0].message.content == "Paris is the capital."
    assert full.choices[0].finish_reason == "stop"
    assert (full.usage.prompt_tokens, full.usage.completion_tokens) == (PROMPT_WORDS, 4)
    cut = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=2)
    assert cut.choices[0].message.content == "Paris is"
    assert cut.choices[0].finish_reason == "length"


def test_reply_fn_and_token_count() -> None:
    with FakeServer(reply_fn=lambda body: f"echo: {last_user_text(body)}") as server:
        text, usage, _ = oai_stream(oai(server))
        assert text == "echo: What is the capital of France?"
        assert usage.completion_tokens == 7
        server.reply_fn, server.tokens = None, 3
        assert oai_stream(oai(server))[0] == "tok0 tok1 tok2"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_stream_helper_text_and_usage() -> None:
    with FakeServer(reply="Paris is the capital.", cached_tokens=5) as server:
        client = ant(server)
        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=256,
            system="Be brief.",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "Paris is the capital."
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == PROMPT_WORDS - 5  # excludes cache reads
    assert final.usage.cache_read_input_tokens == 5
    assert final.usage.output_tokens == 4


def test_anthropic_create_stream_events(srv: FakeServer) -> None:
    events = list(ant_create(ant(srv), stream=True))
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].message.usage.input_tokens == PROMPT_WORDS
    assert events[0].message.usage.output_tokens == 1
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Paris is the capital."
    assert events[-2].usage.output_tokens == 4  # cumulative: not 1 + 4
    assert events[-2].delta.stop_reason == "end_turn"


def test_anthropic_wire_format_has_named_events_and_ping(srv: FakeServer) -> None:
    body = {"model": "c", "max_tokens": 64, "messages": MESSAGES[1:], "stream": True}
    events = raw_sse(srv, "/v1/messages", body, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for event in events:
        name, data = event.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")


def test_anthropic_non_streaming_and_max_tokens(srv: FakeServer) -> None:
    client = ant(srv)
    message = ant_create(client)
    assert message.content[0].text == "Paris is the capital."
    assert (message.usage.input_tokens, message.usage.output_tokens) == (PROMPT_WORDS, 4)
    short = ant_create(client, max_tokens=1)
    assert short.content[0].text == "Paris" and short.stop_reason == "max_tokens"


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("502", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("401", openai.AuthenticationError),
        ("403", openai.PermissionDeniedError),
    ],
)
def test_openai_status_faults(srv: FakeServer, fault: str, error: type[Exception]) -> None:
    srv.faults.append(fault)
    with pytest.raises(error) as info:
        oai_stream(oai(srv))
    assert info.value.status_code == int(fault)  # type: ignore[attr-defined]
    assert srv.log[-1].fault == fault and srv.log[-1].outcome == "error"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", anthropic.RateLimitError),
        ("500", anthropic.InternalServerError),
        ("503", anthropic.ServiceUnavailableError),
        ("529", anthropic.OverloadedError),
        ("401", anthropic.AuthenticationError),
    ],
)
def test_anthropic_status_faults(srv: FakeServer, fault: str, error: type[Exception]) -> None:
    srv.faults.append(fault)
    with pytest.raises(error) as info:
        ant_create(ant(srv), stream=True)
    assert info.value.status_code == int(fault)  # type: ignore[attr-defined]


def test_error_bodies_have_vendor_shapes(srv: FakeServer) -> None:
    srv.faults += ["429", "529"]
    with pytest.raises(openai.RateLimitError) as oai_info:
        oai_stream(oai(srv))
    assert oai_info.value.body == {  # the SDK keeps the inner "error" object
        "message": oai_info.value.body["message"],  # type: ignore[index]
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(anthropic.OverloadedError) as ant_info:
        ant_create(ant(srv))
    body = ant_info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert ant_info.value.request_id == body["request_id"]  # type: ignore[index]


def test_retry_after_is_exposed_on_the_exception(srv: FakeServer) -> None:
    srv.faults += ["429:retry-after=0.3", "429:no-retry-after", "429"]
    client = oai(srv)
    with pytest.raises(openai.RateLimitError) as info:
        oai_stream(client)
    assert info.value.response.headers["retry-after"] == "0.3"
    with pytest.raises(openai.RateLimitError) as info:
        oai_stream(client)
    assert "retry-after" not in info.value.response.headers
    with pytest.raises(anthropic.RateLimitError) as ant_info:
        ant_create(ant(srv))
    assert ant_info.value.response.headers["retry-after"] == "1"


def test_sdk_retry_waits_for_retry_after_and_is_logged_per_attempt(srv: FakeServer) -> None:
    srv.faults.append("429:retry-after=0.2")
    text, _, _ = oai_stream(oai(srv).with_options(max_retries=1))
    assert text == "Paris is the capital."
    first, second = srv.log
    assert first.fault == "429:retry-after=0.2" and second.fault is None
    assert second.received_at - first.received_at >= 0.2
    assert [r.headers["x-stainless-retry-count"] for r in srv.log] == ["0", "1"]


def test_refuse_is_a_connection_error(srv: FakeServer) -> None:
    srv.faults += ["refuse", "refuse"]
    with pytest.raises(openai.APIConnectionError):
        oai_stream(oai(srv))
    with pytest.raises(anthropic.APIConnectionError):
        ant_create(ant(srv), stream=True)
    assert [r.outcome for r in srv.log] == ["refused", "refused"]
    assert srv.log[0].status is None


def test_hang_times_out_and_does_not_block_shutdown() -> None:
    server = FakeServer(faults=["hang", "hang"])
    server.start()
    client = oai(server)
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.1).chat.completions.create(model="m", messages=MESSAGES)
    errors: list[Exception] = []

    def call_forever() -> None:
        try:
            client.with_options(timeout=30).chat.completions.create(model="m", messages=MESSAGES)
        except Exception as exc:
            errors.append(exc)

    caller = threading.Thread(target=call_forever)
    caller.start()
    while server.in_flight < 1 or len(server.log) < 2:
        time.sleep(0.005)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 1.0
    caller.join(2)
    assert not caller.is_alive()
    assert isinstance(errors[0], openai.APIConnectionError)
    assert [r.outcome for r in server.log] == ["hung", "hung"] and server.log[0].done_at is None


def test_cut_aborts_mid_stream(srv: FakeServer) -> None:
    srv.faults += ["cut", "cut:after=3"]
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai(srv).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            assert chunk.usage is None
            received += [c.delta.content or "" for c in chunk.choices]
    assert "".join(received) == "Paris is"
    # anthropic 2.x does not wrap transport errors raised while iterating a stream.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(ant_create(ant(srv), stream=True))
    assert [(r.outcome, r.chunks_sent, r.done_at) for r in srv.log] == [("cut", 2, None), ("cut", 3, None)]


def test_malformed_payloads_break_the_sdks(srv: FakeServer) -> None:
    srv.faults += ["malformed-sse", "malformed-json", "malformed-sse"]
    # Neither SDK wraps a JSON decoding error in its own exception classes.
    with pytest.raises(json.JSONDecodeError):
        oai_stream(oai(srv))
    with pytest.raises(json.JSONDecodeError):
        oai(srv).chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        list(ant_create(ant(srv), stream=True))


def test_empty_reply_has_usage_but_no_content(srv: FakeServer) -> None:
    srv.faults += ["empty", "empty"]
    text, usage, _ = oai_stream(oai(srv))
    assert text == "" and usage.completion_tokens == 0 and usage.prompt_tokens == PROMPT_WORDS
    message = ant_create(ant(srv))
    assert message.content == [] and message.usage.output_tokens == 0
    assert srv.log[0].first_content_at is None and srv.log[0].done_at is not None


def test_stream_error_event(srv: FakeServer) -> None:
    srv.faults += ["stream-error", "stream-error"]
    with pytest.raises(openai.APIError) as info:
        oai_stream(oai(srv))
    assert not isinstance(info.value, openai.APIStatusError)
    # Anthropic raises the status error of the HTTP response, which was a 200.
    with pytest.raises(anthropic.APIStatusError) as ant_info:
        list(ant_create(ant(srv), stream=True))
    assert ant_info.value.type == "overloaded_error"


def test_fail_all_and_queue_order(srv: FakeServer) -> None:
    srv.fail_all = "500"
    srv.faults.append("429")
    client = oai(srv)
    with pytest.raises(openai.RateLimitError):
        oai_stream(client)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai_stream(client)
    srv.fail_all = None
    assert oai_stream(client)[0] == "Paris is the capital."
    assert srv.request_count == 5


def test_fault_specs_are_validated(srv: FakeServer) -> None:
    assert parse_fault("429:retry-after=0.3").params == {"retry-after": "0.3"}
    assert parse_fault("cut:after=3").count("after", 2) == 3
    with pytest.raises(ValueError):
        srv.add_faults("explode")
    with pytest.raises(ValueError):
        srv.add_faults("200")
    srv.faults.append("bogus")  # unvalidated: answered with a 500 that names the problem
    with pytest.raises(openai.InternalServerError, match="bogus"):
        oai_stream(oai(srv))


# --------------------------------------------------------------------------- truth and timing


def test_request_log_records_what_the_client_sent(srv: FakeServer) -> None:
    sent_at = time.perf_counter()
    oai_stream(oai(srv))
    ant_create(ant(srv))
    openai_record, anthropic_record = srv.log
    assert openai_record.path == "/v1/chat/completions" and openai_record.api == "openai"
    assert openai_record.headers["authorization"] == "Bearer sk-test"
    assert openai_record.body["stream_options"] == {"include_usage": True}
    assert openai_record.stream and openai_record.status == 200 and openai_record.outcome == "ok"
    # anthropic 2.x sends its api_key as a bearer token, not as x-api-key.
    assert anthropic_record.headers["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in anthropic_record.headers
    assert anthropic_record.body["max_tokens"] == 256 and not anthropic_record.stream
    for record in srv.log:
        assert sent_at < record.received_at < record.first_content_at <= record.done_at  # type: ignore[operator]
    assert openai_record.as_dict()["ttft_s"] == openai_record.ttft_s


def test_api_key_is_enforced_when_set() -> None:
    with FakeServer(api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError):
            oai_stream(oai(server))
        with pytest.raises(anthropic.AuthenticationError):
            ant_create(ant(server))
        good = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-right", max_retries=0)
        assert oai_stream(good)[0]


def test_injected_ttft_and_pacing_are_observed_by_the_client() -> None:
    ttft, per_token = 0.05, 0.01
    with FakeServer(ttft_s=ttft, per_token_s=per_token, tokens=5) as server:
        client = oai(server)
        oai_stream(client)  # warm the connection and the SDK's lazy imports
        for _ in range(3):
            start = time.perf_counter()
            stream = client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            first = None
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
            end = time.perf_counter()
            record = server.log[-1]
            assert first is not None and record.ttft_s is not None and record.e2e_s is not None
            # Generous upper bounds: the client shares this process (and its GIL) with the server.
            assert ttft <= record.ttft_s < ttft + 0.015  # server truth
            assert ttft <= first - start < ttft + 0.04  # what the client sees
            assert ttft + 4 * per_token <= record.e2e_s < ttft + 4 * per_token + 0.02
            assert record.done_at < end  # type: ignore[operator]
            assert 0 <= first - record.first_content_at < 0.03  # type: ignore[operator]


def test_headers_and_role_chunk_arrive_before_the_first_token() -> None:
    """A client that times response headers or the empty role chunk as TTFT must be caught out."""
    with FakeServer(ttft_s=0.2, reply="late") as server:
        client = oai(server)
        oai_stream(client)  # warm up
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        headers_at = time.perf_counter()
        chunks = iter(stream)
        role_chunk = next(chunks)
        role_at = time.perf_counter()
        content = next(chunks)
        first_content_at = server.log[-1].first_content_at
    assert role_chunk.choices[0].delta.content == "" and content.choices[0].delta.content == "late"
    assert first_content_at is not None and headers_at < role_at < first_content_at


def test_serves_64_concurrent_streams() -> None:
    async def run(url: str) -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)

        async def one() -> str:
            parts = []
            async for chunk in await client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                parts += [c.delta.content or "" for c in chunk.choices]
            return "".join(parts)

        try:
            return await asyncio.gather(*(one() for _ in range(64)))
        finally:
            await client.close()

    with FakeServer(ttft_s=0.2, per_token_s=0.005, tokens=5) as server:
        texts = asyncio.run(run(server.url))
    assert texts == ["tok0 tok1 tok2 tok3 tok4"] * 64
    assert server.peak_in_flight == 64
    assert all(r.outcome == "ok" for r in server.log)


def test_script_mode_serves_other_processes() -> None:
    with FakeServerProcess("--tokens", "3", "--ttft", "0.01") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
        assert oai_stream(client)[0] == "tok0 tok1 tok2"
        stats = server.stats()
    assert stats["request_count"] == 1
    assert stats["records"][0]["ttft_s"] >= 0.01


def test_split_tokens_round_trips() -> None:
    for text in ["Paris is the capital.", "  lead and trail  ", "one", "", "a\n\nb\tc "]:
        assert "".join(split_tokens(text)) == text
    assert split_tokens("Paris is  here") == ["Paris", " is", "  here"]


# -- tool calls, as the SDKs' own stream accumulators read them -------------------------------------

TOOL_CALLS = [{"name": "lookup_order", "arguments": {"order_id": "48213", "verbose": True}}, {"name": "ping", "arguments": {}}]


def test_openai_tool_call_deltas_accumulate_in_the_sdk() -> None:
    with FakeServer(tool_calls_fn=lambda body: TOOL_CALLS) as server:
        client = oai(server)
        tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
        with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}], tools=tools) as stream:
            final = stream.get_final_completion()
        whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    for message, finish in ((final.choices[0].message, final.choices[0].finish_reason), (whole.choices[0].message, whole.choices[0].finish_reason)):
        assert finish == "tool_calls"
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
        assert calls == [(c["name"], c["arguments"]) for c in TOOL_CALLS]
        assert all(c.id.startswith("call_") for c in message.tool_calls)


def test_anthropic_tool_use_blocks_accumulate_in_the_sdk() -> None:
    with FakeServer(tool_calls_fn=lambda body: TOOL_CALLS) as server:
        client = ant(server)
        with client.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
        whole = ant_create(client)
    assert "input_json" in kinds  # the SDK's name for an input_json_delta
    for message in (final, whole):
        assert message.stop_reason == "tool_use"
        assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", c["name"], c["arguments"]) for c in TOOL_CALLS]
