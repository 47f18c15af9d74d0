"""A loopback stand-in for the OpenAI Chat Completions and Anthropic Messages APIs.

It speaks the real wire formats (JSON and SSE over HTTP/1.1 chunked transfer, with usage),
so the official SDKs, raw HTTP clients and openbench's providers can be tested and
benchmarked against it with known latency and injected faults.

    with FakeServer(ttft_s=0.05, per_token_s=0.01, reply="Hello there") as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="sk-test")
        ...
        srv.log[-1].ttft_s      # server-side truth, comparable with the client's perf_counter()

Timing model (deliberately strict, so that clients timing the wrong event are caught):
  * response headers are sent as soon as the request is read;
  * OpenAI: the first chunk (role "assistant", content "") is sent at once, like vLLM does
    (``early_role_chunk=False`` sends it together with the first content instead);
  * Anthropic: message_start, content_block_start and ping are sent at once;
  * content chunk i (0-based) is due at ``started_at + ttft_s + i * per_token_s``, where ``started_at``
    is ``received_at`` unless ``slots`` is set: then a completion waits for one of that many slots, like
    an engine with a fixed batch, and its TTFT and E2E include the wait;
  * a non-streaming reply is sent whole when the last chunk would have been due.

Vendor rules (``vendor_rules=True``, the default), enforced with the vendors' 400 bodies:
  * OpenAI reasoning models (o-series, gpt-5 and later, codex-mini) refuse a temperature other
    than 1 and ``max_tokens``; other models refuse ``reasoning_effort``. Reasoning models report
    reasoning tokens by effort (EFFORT_TOKENS) unless ``reasoning_tokens`` is set;
  * recent Claude models (4.1 Opus, 4.5 and later, 5.x) refuse ``temperature`` with ``top_p``;
  * Anthropic extended thinking needs budget_tokens >= 1024 and below max_tokens, and only the
    default temperature; its reply streams a thinking block before the text.
  A rejected request's ``RequestRecord.rule`` names the rule. Anthropic ``cache_control`` on the
  system prompt is simulated: the first request with a system text writes it, later ones read it.
  ``response_headers`` are added to every successful response (e.g. ``x-ratelimit-*``).

Faults: ``srv.faults`` is a FIFO of specs, one consumed per completion request; ``srv.fail_all``
applies to every request while that queue is empty. A spec is ``kind[:param=value]...``:
  * an HTTP status 400-599 ("429", "500", "502", "503", "529", "401", "403", ...): the vendor's
    JSON error body (502/504: a gateway's HTML page); 429 carries ``retry-after: 1`` unless
    ``retry-after=S``, ``retry-after-ms=MS`` or ``no-retry-after`` says otherwise;
  * "refuse": close the connection without a response; "hang": never answer (until the client
    hangs up or the server stops); "cut[:after=N]": abort the connection before content chunk N
    (default 2); "stream-error[:after=N]": an in-stream error event before chunk N (default 1);
  * "malformed-sse" / "malformed-json" (aliases that fit the request): a non-JSON data line after
    the first content chunk, or a truncated JSON body; "empty": no content, valid usage;
  * "ok": no fault, for per-request overrides. Any spec accepts ``delay=S`` (wait before acting),
    ``ttft=S`` and ``per-token=S`` (override the timing of this one reply).

Run as a script to serve other processes (benchmarks):

    python tests/fakeserver.py --port 0 --ttft 0.1 --per-token 0.01 --tokens 10

It prints ``fakeserver listening on http://127.0.0.1:PORT`` and serves until killed.
``GET /health`` answers 200 and ``GET /_fakeserver/stats`` returns the counters and log as JSON;
neither is logged. time.perf_counter() is CLOCK_MONOTONIC on Linux, so the timestamps in that
log are comparable with a client's perf_counter() in another process on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import http
import json
import random
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "FakeServer",
    "FakeServerProcess",
    "Fault",
    "RequestRecord",
    "FAULT_KINDS",
    "last_user_text",
    "parse_fault",
    "vendor_rejection",
    "prompt_words",
    "split_tokens",
]

Api = Literal["openai", "anthropic"]

DEFAULT_REPLY = "Hello! How can I help you today?"
OPENAI_ROUTE = "/v1/chat/completions"
ANTHROPIC_ROUTE = "/v1/messages"
UNLOGGED_PREFIXES = ("/health", "/_fakeserver/")
_ROUTES: dict[str, Api] = {OPENAI_ROUTE: "openai", ANTHROPIC_ROUTE: "anthropic"}
_MODELS = {
    "object": "list",
    "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fakeserver"}],
}

# Named faults; any HTTP status from 400 to 599 ("429", "500", "529", ...) is a fault too.
FAULT_KINDS = frozenset(
    {"ok", "refuse", "hang", "cut", "malformed-sse", "malformed-json", "empty", "stream-error"}
)
_MAX_HEADER_BYTES = 1 << 20
_WRITE_HIGH_WATER = 1 << 16
_B62 = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- public helpers


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec such as ``"429:retry-after=0.3"`` or ``"cut:after=3"``."""

    spec: str
    kind: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None

    def seconds(self, name: str) -> float | None:
        value = self.params.get(name)
        return None if value is None else float(value)

    def count(self, name: str, default: int) -> int:
        value = self.params.get(name)
        return default if value is None else int(value)


def parse_fault(spec: str) -> Fault:
    """Parse ``kind[:key=value][:flag]...``; raise ValueError for anything unknown."""
    kind, *parts = spec.strip().lower().split(":")
    params: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        params[key.strip()] = value.strip() if sep else "1"
    if kind.isdigit():
        if not 400 <= int(kind) <= 599:
            raise ValueError(f"fault status must be 400-599: {spec!r}")
    elif kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {spec!r}; known: {sorted(FAULT_KINDS)} or an HTTP status")
    known = {"retry-after", "retry-after-ms", "no-retry-after", "delay", "after", "ttft", "per-token"}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown fault parameter(s) {sorted(unknown)} in {spec!r}")
    return Fault(spec=spec, kind=kind, params=params)


def split_tokens(text: str) -> list[str]:
    """One chunk per word, each carrying its leading whitespace; the chunks join back to ``text``."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[sum(map(len, tokens)) :]
    if tail:
        if tokens:
            tokens[-1] += tail
        else:
            tokens = [tail]
    return tokens


def _texts(node: Any) -> list[str]:
    """Every text string inside a message ``content`` (a string or a list of content blocks)."""
    if isinstance(node, str):
        return [node]
    out: list[str] = []
    if isinstance(node, list):
        for item in node:
            out += _texts(item)
    elif isinstance(node, dict):
        if isinstance(node.get("text"), str):
            out.append(node["text"])
        if "content" in node:
            out += _texts(node["content"])
    return out


def prompt_words(body: dict[str, Any]) -> int:
    """The deterministic prompt token count: whitespace words in the system prompt and all messages."""
    texts = _texts(body.get("system")) + _texts(body.get("messages"))
    return sum(len(t.split()) for t in texts)


def _cache_marked_system(body: dict[str, Any]) -> str | None:
    """The system prompt's text when a block of it carries ``cache_control`` (Anthropic prompt caching)."""
    system = body.get("system")
    if isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system):
        return "".join(_texts(system))
    return None


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message, in either API's request format (handy for ``reply_fn``)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(_texts(message.get("content")))
    return ""


@dataclass
class RequestRecord:
    """What the server saw and did for one request; timestamps are ``time.perf_counter()``."""

    index: int
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the parsed JSON, or None when absent or unparsable
    received_at: float  # after the whole request (headers and body) was read
    api: Api | None = None
    stream: bool = False
    fault: str | None = None  # the fault spec applied, if any
    status: int | None = None  # None when no response status was sent (refuse, hang)
    first_content_at: float | None = None  # just before the first non-empty content was written
    done_at: float | None = None  # just before the last byte of a complete response was written
    chunks_sent: int = 0  # non-empty content chunks written
    outcome: str = "pending"  # ok | error | refused | hung | cut | client-closed | shutdown
    error: str | None = None  # the message of a validation or reply_fn error
    started_at: float | None = None  # when a slot was free and generation began (``slots``)
    rule: str | None = None  # the vendor rule a 400 enforced
    first_thinking_at: float | None = None  # just before the first reasoning (thinking) event was written

    @property
    def ttft_s(self) -> float | None:
        """Server-side truth: request fully received → first content written."""
        return None if self.first_content_at is None else self.first_content_at - self.received_at

    @property
    def e2e_s(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.received_at

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ttft_s": self.ttft_s, "e2e_s": self.e2e_s}


# --------------------------------------------------------------------------- wire formats


@dataclass
class _Plan:
    """Everything needed to answer one completion request."""

    api: Api
    request_id: str
    message_id: str
    model: str
    stream: bool
    include_usage: bool
    tokens: list[str]
    finish: Literal["stop", "length"]
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    ttft_s: float
    per_token_s: float
    created: int = field(default_factory=lambda: int(time.time()))
    thinking: str | None = None  # Anthropic extended thinking: the thinking block's text

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + self.reasoning_tokens


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


class _OpenAIFormat:
    """Chat Completions: ``chat.completion`` JSON and ``chat.completion.chunk`` SSE ending in [DONE]."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self._prefix = (
            f'{{"id":"{plan.message_id}","object":"chat.completion.chunk","created":{plan.created},'
            f'"model":{_dumps(plan.model)},"service_tier":"default",'
            f'"system_fingerprint":"fp_fakeserver","choices":['
        )
        # With include_usage, every chunk but the last carries "usage": null.
        self._suffix = ',"usage":null}' if plan.include_usage else "}"

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        p = self.plan
        prompt_details: dict[str, int] = {"cached_tokens": p.cached_tokens, "audio_tokens": 0}
        if p.cache_write_tokens:
            prompt_details["cache_write_tokens"] = p.cache_write_tokens
        return {
            "prompt_tokens": p.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": p.prompt_tokens + completion_tokens,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {
                "reasoning_tokens": p.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _choice(self, delta: str, finish: str | None) -> bytes:
        finish_json = "null" if finish is None else f'"{finish}"'
        choice = f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_json}}}'
        return _sse(f"{self._prefix}{choice}]{self._suffix}")

    def role_chunk(self) -> bytes:
        return self._choice('{"role":"assistant","content":"","refusal":null}', None)

    def content_chunk(self, token: str) -> bytes:
        return self._choice(f'{{"content":{_dumps(token)}}}', None)

    def stream_head(self) -> list[bytes]:
        return []  # the role chunk is timed separately (see early_role_chunk)

    def stream_tail(self) -> list[bytes]:
        events = [self._choice("{}", self.plan.finish)]
        if self.plan.include_usage:
            usage = _dumps(self.usage(self.plan.completion_tokens))
            events.append(_sse(f'{self._prefix}],"usage":{usage}}}'))
        events.append(b"data: [DONE]\n\n")
        return events

    def garbage_event(self) -> bytes:
        return b'data: {"id":"chatcmpl-garbage","choices":[{"delta":{"content": <<not json>>\n\n'

    def error_event(self) -> bytes:
        return _sse(_dumps({"error": _openai_error(500)}))

    def body(self) -> bytes:
        p = self.plan
        return _dumps(
            {
                "id": p.message_id,
                "object": "chat.completion",
                "created": p.created,
                "model": p.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(p.tokens),
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": p.finish,
                    }
                ],
                "usage": self.usage(p.completion_tokens),
                "service_tier": "default",
                "system_fingerprint": "fp_fakeserver",
            }
        ).encode()


class _AnthropicFormat:
    """Messages: ``message`` JSON and the named-event SSE sequence from message_start to message_stop."""

    def __init__(self, plan: _Plan):
        self.plan = plan

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        p = self.plan
        usage: dict[str, Any] = {
            # Anthropic's input_tokens excludes cache reads and writes.
            "input_tokens": p.prompt_tokens - p.cached_tokens - p.cache_write_tokens,
            "cache_creation_input_tokens": p.cache_write_tokens,
            "cache_read_input_tokens": p.cached_tokens,
            "output_tokens": output_tokens,
        }
        if p.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": p.reasoning_tokens}
        return usage

    def _stop_reason(self) -> str:
        return "max_tokens" if self.plan.finish == "length" else "end_turn"

    def role_chunk(self) -> bytes:
        return b""  # Anthropic has no role chunk; message_start is part of stream_head

    def stream_head(self) -> list[bytes]:
        p = self.plan
        start_usage = self._usage(1) | {
            "cache_creation": {
                "ephemeral_5m_input_tokens": p.cache_write_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        }
        start_usage.pop("output_tokens_details", None)
        message = {
            "id": p.message_id,
            "type": "message",
            "role": "assistant",
            "model": p.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events = [_sse(_dumps({"type": "message_start", "message": message}), "message_start")]
        if p.thinking is not None:
            events += self.thinking_events()
        if p.tokens:
            block = {"type": "content_block_start", "index": self.text_index, "content_block": {"type": "text", "text": ""}}
            events.append(_sse(_dumps(block), "content_block_start"))
        events.append(_sse('{"type":"ping"}', "ping"))
        return events

    @property
    def text_index(self) -> int:
        return 0 if self.plan.thinking is None else 1

    def thinking_events(self) -> list[bytes]:
        start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": self.plan.thinking}}
        signature = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "ZmFrZXNpZw=="}}
        return [
            _sse(_dumps(start), "content_block_start"),
            _sse(_dumps(delta), "content_block_delta"),
            _sse(_dumps(signature), "content_block_delta"),
            _sse('{"type":"content_block_stop","index":0}', "content_block_stop"),
        ]

    def content_chunk(self, token: str) -> bytes:
        delta = f'{{"type":"content_block_delta","index":{self.text_index},"delta":{{"type":"text_delta","text":{_dumps(token)}}}}}'
        return _sse(delta, "content_block_delta")

    def stream_tail(self) -> list[bytes]:
        p = self.plan
        events = []
        if p.tokens:
            events.append(_sse(f'{{"type":"content_block_stop","index":{self.text_index}}}', "content_block_stop"))
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(), "stop_sequence": None},
            # Cumulative: the final output count, not an increment over message_start's 1.
            "usage": self._usage(p.completion_tokens),
        }
        events.append(_sse(_dumps(delta), "message_delta"))
        events.append(_sse('{"type":"message_stop"}', "message_stop"))
        return events

    def garbage_event(self) -> bytes:
        # Named, because the SDK skips events without a name before parsing their data.
        return b'event: content_block_delta\ndata: {"type":"content_block_delta", <<not json>>\n\n'

    def error_event(self) -> bytes:
        return _sse(_dumps(_anthropic_error(529, self.plan.request_id)), "error")

    def body(self) -> bytes:
        p = self.plan
        content = [{"type": "text", "text": "".join(p.tokens)}] if p.tokens else []
        if p.thinking is not None:
            content.insert(0, {"type": "thinking", "thinking": p.thinking, "signature": "ZmFrZXNpZw=="})
        return _dumps(
            {
                "id": p.message_id,
                "type": "message",
                "role": "assistant",
                "model": p.model,
                "content": content,
                "stop_reason": self._stop_reason(),
                "stop_sequence": None,
                "usage": self._usage(p.completion_tokens),
            }
        ).encode()


# --------------------------------------------------------------------------- tool calls


def _tool_call_fragments(calls: list[dict[str, Any]], size: int = 8) -> list[tuple[int, str]]:
    """(call index, piece of its arguments JSON) in stream order: each call's arguments in ``size``-char pieces.

    A call's ``arguments`` may be a mapping (sent as JSON) or a string sent as is (to test invalid JSON).
    """
    out: list[tuple[int, str]] = []
    for i, call in enumerate(calls):
        raw = call.get("arguments", {})
        text = raw if isinstance(raw, str) else _dumps(raw)
        pieces = [text[j : j + size] for j in range(0, len(text), size)] or [""]
        out += [(i, piece) for piece in pieces]
    return out


class _ToolCallPieces:
    """The tool calls of one reply as stream pieces, handed out in order by the formats below."""

    def __init__(self, plan: _Plan, calls: list[dict[str, Any]], id_prefix: str, id_length: int):
        self.calls = calls
        self.ids = [f"{id_prefix}{_random_id('', id_length)}" for _ in calls]
        self.fragments = _tool_call_fragments(calls)
        self._sent = 0
        plan.tokens = [piece for _, piece in self.fragments]  # one output token per piece

    def next(self) -> tuple[int, str, bool]:
        """(call index, arguments piece, whether it is the call's first piece)."""
        index, piece = self.fragments[self._sent]
        self._sent += 1
        return index, piece, self._sent == 1 or self.fragments[self._sent - 2][0] != index

    def arguments(self, index: int) -> str:
        return "".join(p for j, p in self.fragments if j == index)


class _OpenAIToolCallFormat(_OpenAIFormat):
    """Chat Completions answering with ``tool_calls``: the first delta of a call carries its id, type and
    name, later ones only ``function.arguments`` pieces, all keyed by ``index``; finish_reason "tool_calls"."""

    def __init__(self, plan: _Plan, calls: list[dict[str, Any]]):
        super().__init__(plan)
        self.pieces = _ToolCallPieces(plan, calls, "call_", 24)
        plan.finish = "tool_calls"  # type: ignore[assignment]

    def content_chunk(self, token: str) -> bytes:
        index, piece, first = self.pieces.next()
        call: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
        if first:
            call |= {"id": self.pieces.ids[index], "type": "function", "function": {"name": self.pieces.calls[index]["name"], "arguments": piece}}
        return self._choice(_dumps({"tool_calls": [call]}), None)

    def body(self) -> bytes:
        data = json.loads(super().body())
        message = data["choices"][0]["message"]
        message["content"] = None
        message["tool_calls"] = [
            {"id": self.pieces.ids[i], "type": "function", "function": {"name": c["name"], "arguments": self.pieces.arguments(i)}}
            for i, c in enumerate(self.pieces.calls)
        ]
        return _dumps(data).encode()


class _AnthropicToolUseFormat(_AnthropicFormat):
    """Messages answering with ``tool_use`` blocks: content_block_start (input {}), then ``input_json_delta``
    pieces, then content_block_stop, per call; stop_reason "tool_use"."""

    def __init__(self, plan: _Plan, calls: list[dict[str, Any]]):
        super().__init__(plan)
        self.pieces = _ToolCallPieces(plan, calls, "toolu_01", 22)

    def _stop_reason(self) -> str:
        return "tool_use"

    def stream_head(self) -> list[bytes]:
        head = super().stream_head()
        return [event for event in head if b"content_block_start" not in event]

    def content_chunk(self, token: str) -> bytes:
        index, piece, first = self.pieces.next()
        events = b""
        if first:
            if index > 0:
                events += _sse(_dumps({"type": "content_block_stop", "index": index - 1}), "content_block_stop")
            block = {"type": "tool_use", "id": self.pieces.ids[index], "name": self.pieces.calls[index]["name"], "input": {}}
            events += _sse(_dumps({"type": "content_block_start", "index": index, "content_block": block}), "content_block_start")
        delta = {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}
        return events + _sse(_dumps(delta), "content_block_delta")

    def stream_tail(self) -> list[bytes]:
        tail = super().stream_tail()
        return [_sse(_dumps({"type": "content_block_stop", "index": len(self.pieces.calls) - 1}), "content_block_stop")] + [
            event for event in tail if b"content_block_stop" not in event
        ]

    def body(self) -> bytes:
        data = json.loads(super().body())
        data["content"] = [
            {"type": "tool_use", "id": self.pieces.ids[i], "name": c["name"], "input": c.get("arguments") if isinstance(c.get("arguments"), dict) else {}}
            for i, c in enumerate(self.pieces.calls)
        ]
        return _dumps(data).encode()


def _format_for(api: Api, plan: _Plan, calls: list[dict[str, Any]] | None) -> _OpenAIFormat | _AnthropicFormat:
    """The wire format of one reply: text, or tool calls when ``tool_calls_fn`` asked for some."""
    if calls:
        return _OpenAIToolCallFormat(plan, calls) if api == "openai" else _AnthropicToolUseFormat(plan, calls)
    return _OpenAIFormat(plan) if api == "openai" else _AnthropicFormat(plan)


@dataclass(frozen=True)
class _ErrorShape:
    openai_type: str
    openai_code: str | None
    openai_message: str
    anthropic_type: str
    anthropic_message: str


_ERRORS: dict[int, _ErrorShape] = {
    400: _ErrorShape("invalid_request_error", None, "Invalid request.", "invalid_request_error", "Invalid request."),
    401: _ErrorShape(
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "authentication_error",
        "invalid x-api-key",
    ),
    403: _ErrorShape(
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: _ErrorShape(
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
        "not_found_error",
        "Not found",
    ),
    413: _ErrorShape(
        "invalid_request_error",
        None,
        "Request too large.",
        "request_too_large",
        "Request exceeds the maximum allowed number of bytes.",
    ),
    429: _ErrorShape(
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.",
        "rate_limit_error",
        "This request would exceed the rate limit for your organization. Please try again later.",
    ),
    500: _ErrorShape(
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
        "api_error",
        "Internal server error",
    ),
    503: _ErrorShape(
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
        "api_error",
        "Service unavailable",
    ),
    529: _ErrorShape("server_error", None, "The server is overloaded.", "overloaded_error", "Overloaded"),
}
# Gateways in front of the APIs answer these with HTML, not with the API's JSON error shape.
_HTML_STATUSES = {502, 504}


def _error_shape(status: int) -> _ErrorShape:
    if status in _ERRORS:
        return _ERRORS[status]
    if status >= 500:
        return _ErrorShape("server_error", None, f"Error {status}", "api_error", f"Error {status}")
    return _ErrorShape("invalid_request_error", None, f"Error {status}", "invalid_request_error", f"Error {status}")


def _openai_error(status: int, message: str | None = None, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    shape = _error_shape(status)
    return {
        "message": message or shape.openai_message,
        "type": shape.openai_type,
        "param": param,
        "code": code or shape.openai_code,
    }


# --------------------------------------------------------------------------- vendor rules

OPENAI_REASONING = re.compile(r"^(o[1-9]|gpt-5|gpt-6|codex-mini)")
# Claude models that take temperature or top_p, not both: Opus 4.1, the 4.5 generation and later.
CLAUDE_ONE_SAMPLER = re.compile(r"^claude-(opus-4-[1-9]|(sonnet|haiku)-4-[5-9]|(opus|sonnet|haiku)-[5-9]|fable|mythos)")
EFFORT_TOKENS = {"none": 0, "minimal": 4, "low": 16, "medium": 64, "high": 256, "xhigh": 512}
THINKING_TOKENS = 24  # the thinking block's length when ``reasoning_tokens`` is not set


@dataclass(frozen=True)
class Rejection:
    """A 400 a vendor sends for a request its rules refuse."""

    rule: str
    message: str
    param: str | None = None
    code: str | None = None


def vendor_rejection(api: Api, body: dict[str, Any]) -> Rejection | None:
    """The first vendor rule (see the module docstring) that ``body`` breaks, if any."""
    model = str(body.get("model", "")).lower()
    if api == "openai":
        if not OPENAI_REASONING.search(model):
            if "reasoning_effort" in body:
                message = "Unsupported parameter: 'reasoning_effort' is not supported with this model."
                return Rejection("reasoning_effort", message, "reasoning_effort", "unsupported_parameter")
            return None
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            message = (
                f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                "Only the default (1) value is supported."
            )
            return Rejection("temperature", message, "temperature", "unsupported_value")
        if "max_tokens" in body:
            message = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
            return Rejection("max_tokens", message, "max_tokens", "unsupported_parameter")
        return None
    if CLAUDE_ONE_SAMPLER.search(model) and body.get("temperature") is not None and body.get("top_p") is not None:
        message = "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        return Rejection("temperature+top_p", message)
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return Rejection("thinking-budget", "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] <= budget:
            return Rejection("thinking-max-tokens", "`max_tokens` must be greater than `thinking.budget_tokens`.")
        if body.get("temperature") is not None and body["temperature"] != 1:
            message = "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation."
            return Rejection("thinking-temperature", message)
    return None


def _anthropic_error(status: int, request_id: str, message: str | None = None) -> dict[str, Any]:
    shape = _error_shape(status)
    return {
        "type": "error",
        "error": {"type": shape.anthropic_type, "message": message or shape.anthropic_message},
        "request_id": request_id,
    }


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(random.choices(_B62, k=length))  # ids need to be unique, not secret


def _reason(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        return connection != "close" and (self.version == "HTTP/1.1" or connection == "keep-alive")


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """Read one HTTP/1.1 request; None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ConnectionError("connection closed inside a request head") from exc
        return None
    try:
        return await _parse_request(reader, head)
    except ValueError as exc:  # not HTTP we understand: drop the connection like a strict server
        raise ConnectionError(f"malformed request: {exc}") from exc


async def _parse_request(reader: asyncio.StreamReader, head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        raw_body = bytes(body)
    else:
        raw_body = await reader.readexactly(int(headers.get("content-length", "0")))
    return _Request(method, path.split("?", 1)[0], version.strip(), headers, raw_body)


class _Exchange:
    """Writes one response onto a connection and notices when the peer has gone."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: RequestRecord | None):
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.record = record
        self.chunked = False

    @property
    def peer_gone(self) -> bool:
        return self.transport.is_closing() or self.reader.at_eof()

    def send_head(self, status: int, headers: dict[str, str], *, length: int | None) -> None:
        lines = [f"HTTP/1.1 {status} {_reason(status)}", f"date: {email.utils.formatdate(usegmt=True)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is None:
            self.chunked = True
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {length}")
        if self.record is not None:
            self.record.status = status
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> None:
        if not data:
            return
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.transport.write(data)

    def end(self) -> None:
        if self.chunked:
            self.transport.write(b"0\r\n\r\n")

    async def drain(self) -> None:
        if self.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            await self.writer.drain()

    def respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_head(status, headers, length=len(body))
        if self.record is not None:
            self.record.done_at = time.perf_counter()
        self.transport.write(body)


# --------------------------------------------------------------------------- the server


class FakeServer:
    """An OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1, run in a background thread.

    Behaviour attributes may be changed while it runs; each request reads them when it arrives.
    """

    def __init__(
        self,
        *,
        ttft_s: float = 0.0,
        per_token_s: float = 0.0,
        reply: str | None = None,
        reply_fn: Callable[[dict[str, Any]], str] | None = None,
        tool_calls_fn: Callable[[dict[str, Any]], list[dict[str, Any]] | None] | None = None,
        tokens: int | None = None,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        api_key: str | None = None,
        faults: list[str] | None = None,
        fail_all: str | None = None,
        early_role_chunk: bool = True,
        vendor_rules: bool = True,
        response_headers: dict[str, str] | None = None,
        keep_log: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = 2048,
    ):
        self.ttft_s = ttft_s
        self.per_token_s = per_token_s
        self.prompt_tokens: int | None = None
        # False: like llama-cpp-python, streams carry no usage whatever stream_options asks.
        self.send_usage = True
        # True: like vLLM, POST /tokenize counts a prompt's or messages' tokens (as the usage would).
        self.tokenize = False
        # A number: at most that many completions generate at once; the others queue (set before start).
        self.slots: int | None = None
        # Reply text precedence: reply_fn(request) > reply > "tok0 tok1 ..." (tokens) > DEFAULT_REPLY.
        self.reply = reply
        self.reply_fn = reply_fn
        # When it returns calls ([{name, arguments}]) for a request, the reply is those tool calls.
        self.tool_calls_fn = tool_calls_fn
        self.tokens = tokens
        # Cache and reasoning counts are clamped so that they stay subsets of the totals.
        self.cached_tokens = cached_tokens
        self.cache_write_tokens = cache_write_tokens
        self.reasoning_tokens = reasoning_tokens
        self.api_key = api_key  # None accepts any key
        self.faults: list[str] = list(faults or [])  # consumed first-in first-out, one per request
        self.fail_all = fail_all  # applied to every request while the queue is empty
        self.early_role_chunk = early_role_chunk
        self.vendor_rules = vendor_rules
        self.response_headers: dict[str, str] = dict(response_headers or {})
        self._cached_prefixes: set[str] = set()  # system prompts marked with cache_control, once seen
        self.keep_log = keep_log
        self.host = host
        self.port = port
        self.backlog = backlog

        self.log: list[RequestRecord] = []
        self.request_count = 0
        self.in_flight = 0
        self.peak_in_flight = 0

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeServer already started")
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name=f"fakeserver:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeServer did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError(f"FakeServer failed to start: {self._start_error}") from self._start_error

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, abort every open connection (hung ones included) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"FakeServer thread did not stop within {timeout} s")
        self._loop = self._thread = None

    def add_faults(self, *specs: str) -> None:
        """Validate and enqueue fault specs (appending to ``faults`` directly skips validation)."""
        for spec in specs:
            parse_fault(spec)
        self.faults.extend(specs)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no request is in flight, e.g. before reading a record's final fields."""
        deadline = time.perf_counter() + timeout
        while self.in_flight:
            if time.perf_counter() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start() in the caller's thread
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _listen(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._serve_connection,
            self.host,
            self.port,
            backlog=self.backlog,
            limit=_MAX_HEADER_BYTES,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None and self._stopping is not None
        self._stopping.set()
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    # ----------------------------------------------------------------- connections

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await _read_request(reader)
                if request is None or not await self._dispatch(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # server shutdown
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _dispatch(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection can carry another one."""
        if request.path.startswith(UNLOGGED_PREFIXES):
            exchange = _Exchange(reader, writer, None)
            if request.path == "/_fakeserver/stats":
                body = _dumps(self._stats()).encode()
                exchange.respond(200, {"content-type": "application/json"}, body)
            else:
                exchange.respond(200, {"content-type": "text/plain"}, b"ok")
            return request.keep_alive

        received_at = time.perf_counter()
        try:
            body = json.loads(request.raw_body) if request.raw_body else None
        except ValueError:
            body = None
        record = RequestRecord(
            index=self.request_count,
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            received_at=received_at,
        )
        self.request_count += 1
        if self.keep_log:
            self.log.append(record)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        exchange = _Exchange(reader, writer, record)
        try:
            return await self._handle(request, record, exchange)
        except asyncio.CancelledError:
            if record.outcome == "pending":
                record.outcome = "shutdown"
            raise
        finally:
            self.in_flight -= 1

    def _tokenize(self, request: _Request, record: RequestRecord, exchange: _Exchange) -> bool:
        body = record.body if isinstance(record.body, dict) else {}
        count = prompt_words(body) if "messages" in body else len(split_tokens(str(body.get("prompt", ""))))
        exchange.respond(200, {"content-type": "application/json"}, _dumps({"count": count, "tokens": list(range(count)), "max_model_len": 4096}).encode())
        record.outcome = "ok"
        return request.keep_alive

    def _next_fault(self) -> Fault | None:
        try:
            spec = self.faults.pop(0)
        except IndexError:
            spec = self.fail_all
        return None if spec is None else parse_fault(spec)

    async def _handle(self, request: _Request, record: RequestRecord, exchange: _Exchange) -> bool:
        """Answer one logged request; return whether the connection can carry another one."""
        api = _ROUTES.get(request.path)
        record.api = api
        request_id = _random_id("req_", 24)
        if self.tokenize and request.method == "POST" and request.path == "/tokenize":
            return self._tokenize(request, record, exchange)
        if api is None or request.method != "POST":
            if request.method == "GET" and request.path == "/v1/models":
                exchange.respond(200, {"content-type": "application/json"}, _dumps(_MODELS).encode())
                record.outcome = "ok"
            else:
                error_api: Api = "anthropic" if request.path.startswith(ANTHROPIC_ROUTE) else "openai"
                message = f"Unknown route {request.method} {request.path}"
                self._error(exchange, record, error_api, 404, request_id, message)
            return request.keep_alive

        body = record.body if isinstance(record.body, dict) else None
        record.stream = bool(body and body.get("stream"))
        try:
            fault = self._next_fault()
        except ValueError as exc:
            record.fault = str(exc)
            self._error(exchange, record, api, 500, request_id, f"fakeserver: {exc}")
            return request.keep_alive
        record.fault = fault.spec if fault else None

        if fault and (delay := fault.seconds("delay")):
            await asyncio.sleep(delay)
        if fault and fault.kind == "refuse":
            record.outcome = "refused"
            exchange.transport.close()
            return False
        if fault and fault.kind == "hang":
            record.outcome = "hung"
            await self._wait_for_peer_or_shutdown(exchange)
            return False
        if fault and fault.status is not None:
            self._error(exchange, record, api, fault.status, request_id, None, fault)
            return request.keep_alive

        problem = self._validate(api, request, body)
        if problem is not None:
            self._error(exchange, record, api, problem[0], request_id, problem[1])
            return request.keep_alive
        assert body is not None
        rejection = vendor_rejection(api, body) if self.vendor_rules else None
        if rejection is not None:
            record.rule = rejection.rule
            self._error(exchange, record, api, 400, request_id, rejection.message, param=rejection.param, code=rejection.code)
            return request.keep_alive
        try:
            plan = self._plan(api, body, request_id, fault)
            fmt = _format_for(api, plan, self.tool_calls_fn(body) if self.tool_calls_fn else None)
        except Exception as exc:  # a failing reply_fn is a test bug: surface it loudly as a 500
            self._error(exchange, record, api, 500, request_id, f"fakeserver reply_fn failed: {exc!r}")
            return request.keep_alive

        kind = fault.kind if fault else "ok"
        async with self._slot():
            record.started_at = time.perf_counter() if self.slots else record.received_at
            if plan.stream:
                reusable = await self._stream(exchange, record, plan, fmt, kind, fault)
            else:
                reusable = await self._respond_whole(exchange, record, plan, fmt, kind)
        return reusable and request.keep_alive

    def _slot(self) -> Any:
        """One of ``slots`` generation slots (a no-op without slots)."""
        if not self.slots:
            return contextlib.nullcontext()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        return self._slots

    def _validate(self, api: Api, request: _Request, body: dict[str, Any] | None) -> tuple[int, str] | None:
        if self.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if api == "anthropic":
                given = request.headers.get("x-api-key", given)
            if given != self.api_key:
                return 401, ""
        if body is None:
            return 400, "We could not parse the JSON body of your request."
        if api == "anthropic" and "anthropic-version" not in request.headers:
            return 400, "anthropic-version: header is required"
        required = ("model", "messages", "max_tokens") if api == "anthropic" else ("model", "messages")
        for name in required:
            if name not in body:
                return 400, f"Missing required parameter: '{name}'." if api == "openai" else f"{name}: Field required"
        if not isinstance(body["messages"], list) or not body["messages"]:
            return 400, "'messages' must be a non-empty array."
        return None

    def _plan(self, api: Api, body: dict[str, Any], request_id: str, fault: Fault | None) -> _Plan:
        if self.reply_fn is not None:
            text = self.reply_fn(body)
        elif self.reply is not None:
            text = self.reply
        elif self.tokens is not None:
            text = " ".join(f"tok{i}" for i in range(self.tokens))
        else:
            text = DEFAULT_REPLY
        tokens = [] if fault and fault.kind == "empty" else split_tokens(text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish: Literal["stop", "length"] = "stop"
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, finish = tokens[:limit], "length"
        # The usage reports the prompt's words as tokens, unless a test sets a count (e.g. past a long-context tier).
        prompt_tokens = self.prompt_tokens if self.prompt_tokens is not None else prompt_words(body)
        cached = min(self.cached_tokens, prompt_tokens)
        written = min(self.cache_write_tokens, prompt_tokens - cached)
        cacheable = _cache_marked_system(body) if api == "anthropic" else None
        if cacheable is not None:
            size = len(cacheable.split())
            cached, written = (size, 0) if cacheable in self._cached_prefixes else (0, size)
            self._cached_prefixes.add(cacheable)
        reasoning = self.reasoning_tokens
        thinking = None
        if api == "openai" and not reasoning and OPENAI_REASONING.search(str(body.get("model", "")).lower()):
            reasoning = EFFORT_TOKENS.get(str(body.get("reasoning_effort") or "medium"), 64)
        if api == "anthropic" and (body.get("thinking") or {}).get("type") == "enabled":
            reasoning = reasoning or THINKING_TOKENS
            thinking = " ".join(f"thought{i}" for i in range(reasoning))
        stream_options = body.get("stream_options") or {}
        ttft = fault.seconds("ttft") if fault and "ttft" in fault.params else self.ttft_s
        per_token = fault.seconds("per-token") if fault and "per-token" in fault.params else self.per_token_s
        return _Plan(
            api=api,
            request_id=request_id,
            message_id=_random_id("chatcmpl-", 29) if api == "openai" else _random_id("msg_01", 22),
            model=str(body.get("model")),
            stream=bool(body.get("stream")),
            include_usage=self.send_usage and bool(stream_options.get("include_usage")),
            tokens=tokens,
            finish=finish,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=reasoning,
            ttft_s=ttft or 0.0,
            per_token_s=per_token or 0.0,
            thinking=thinking,
        )

    # ----------------------------------------------------------------- responses

    @staticmethod
    def _id_headers(api: Api, request_id: str) -> dict[str, str]:
        return {"request-id": request_id} if api == "anthropic" else {"x-request-id": request_id}

    def _error(
        self,
        exchange: _Exchange,
        record: RequestRecord,
        api: Api,
        status: int,
        request_id: str,
        message: str | None,
        fault: Fault | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        headers = self._id_headers(api, request_id)
        if status in _HTML_STATUSES:
            title = f"{status} {_reason(status)}"
            body = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n"
                f"<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
            ).encode()
            headers["content-type"] = "text/html"
        else:
            if api == "anthropic":
                body = _dumps(_anthropic_error(status, request_id, message)).encode()
            else:
                body = _dumps({"error": _openai_error(status, message, param, code)}).encode()
            headers["content-type"] = "application/json"
        params = fault.params if fault else {}
        if "retry-after-ms" in params:
            headers["retry-after-ms"] = params["retry-after-ms"]
        if "retry-after" in params:
            headers["retry-after"] = params["retry-after"]
        elif status == 429 and "no-retry-after" not in params and "retry-after-ms" not in params:
            headers["retry-after"] = "1"
        record.error = message or None
        record.outcome = "error"
        exchange.respond(status, headers, body)

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _wait_for_peer_or_shutdown(self, exchange: _Exchange) -> None:
        assert self._stopping is not None
        peer_closed = asyncio.ensure_future(exchange.reader.read())  # b"" once the client hangs up
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({peer_closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            peer_closed.cancel()
            stopping.cancel()

    async def _stream(
        self,
        exchange: _Exchange,
        record: RequestRecord,
        plan: _Plan,
        fmt: _OpenAIFormat | _AnthropicFormat,
        kind: str,
        fault: Fault | None,
    ) -> bool:
        headers = self._id_headers(plan.api, plan.request_id) | {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
        } | self.response_headers
        exchange.send_head(200, headers, length=None)
        if plan.thinking is not None:
            record.first_thinking_at = time.perf_counter()
        for event in fmt.stream_head():
            exchange.send(event)
        if self.early_role_chunk:
            exchange.send(fmt.role_chunk())
        cut_after = fault.count("after", 2) if kind == "cut" else None
        error_after = fault.count("after", 1) if kind == "stream-error" else None
        malformed = kind in ("malformed-sse", "malformed-json")

        first_due = record.started_at + plan.ttft_s
        for i, token in enumerate(plan.tokens):
            await self._sleep_until(first_due + i * plan.per_token_s)
            if exchange.peer_gone:
                record.outcome = "client-closed"
                return False
            if i == cut_after:
                record.outcome = "cut"
                exchange.transport.abort()
                return False
            if i == error_after:
                return self._end_with_stream_error(exchange, record, fmt)
            if i == 0:
                record.first_content_at = time.perf_counter()
                if not self.early_role_chunk:
                    exchange.send(fmt.role_chunk())
            exchange.send(fmt.content_chunk(token))
            record.chunks_sent += 1
            if i == 0 and malformed:
                exchange.send(fmt.garbage_event())
            await exchange.drain()

        if not plan.tokens:
            await self._sleep_until(first_due)
            if not self.early_role_chunk:
                exchange.send(fmt.role_chunk())
            if malformed:
                exchange.send(fmt.garbage_event())
        if cut_after is not None:  # the reply was shorter than "after": cut before its end
            record.outcome = "cut"
            exchange.transport.abort()
            return False
        if error_after is not None:
            return self._end_with_stream_error(exchange, record, fmt)
        tail = fmt.stream_tail()
        record.done_at = time.perf_counter()
        for event in tail:
            exchange.send(event)
        exchange.end()
        record.outcome = "ok"
        return True

    @staticmethod
    def _end_with_stream_error(
        exchange: _Exchange, record: RequestRecord, fmt: _OpenAIFormat | _AnthropicFormat
    ) -> bool:
        """An error event inside a 200 stream (as the APIs send when overloaded mid-stream), then the end."""
        record.done_at = time.perf_counter()
        exchange.send(fmt.error_event())
        exchange.end()
        record.outcome = "stream-error"
        return True

    async def _respond_whole(
        self,
        exchange: _Exchange,
        record: RequestRecord,
        plan: _Plan,
        fmt: _OpenAIFormat | _AnthropicFormat,
        kind: str,
    ) -> bool:
        last_due = record.started_at + plan.ttft_s + max(len(plan.tokens) - 1, 0) * plan.per_token_s
        await self._sleep_until(last_due)
        if exchange.peer_gone:
            record.outcome = "client-closed"
            return False
        body = fmt.body()
        if kind in ("malformed-json", "malformed-sse"):
            body = body[: len(body) // 2] + b"<<not json"
        headers = self._id_headers(plan.api, plan.request_id) | {"content-type": "application/json"} | self.response_headers
        if kind == "cut":
            exchange.send_head(200, headers, length=len(body))
            exchange.send(body[: len(body) // 2])
            record.outcome = "cut"
            exchange.transport.abort()
            return False
        if plan.tokens:
            record.first_content_at = time.perf_counter()
            record.chunks_sent = len(plan.tokens)
        exchange.respond(200, headers, body)
        record.outcome = "ok"
        return True

    def _stats(self) -> dict[str, Any]:
        return {
            "request_count": self.request_count,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "records": [
                {k: v for k, v in r.as_dict().items() if k not in ("headers", "body")} for r in self.log
            ],
        }


# --------------------------------------------------------------------------- out of process


class FakeServerProcess:
    """Runs this file as a separate process, so that a benchmarked client does not share its GIL.

    ``stats()`` fetches the server's counters and log (without request bodies or headers).
    """

    def __init__(self, *args: str, timeout: float = 10.0):
        self.args = list(args)  # script options, e.g. "--ttft", "0.1", "--tokens", "10"
        self.timeout = timeout
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeServerProcess:
        cmd = [sys.executable, __file__, "--port", "0", *self.args]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("fakeserver listening on "):
            self.__exit__()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_fakeserver/stats", timeout=self.timeout) as response:
            return json.loads(response.read())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds from request to first content")
    parser.add_argument("--per-token", type=float, default=0.0, help="seconds between content chunks")
    parser.add_argument("--tokens", type=int, default=None, help='reply "tok0 tok1 ..." with this many chunks')
    parser.add_argument("--reply", default=None, help="fixed reply text (overrides --tokens)")
    parser.add_argument("--cached-tokens", type=int, default=0)
    parser.add_argument("--reasoning-tokens", type=int, default=0)
    parser.add_argument("--fail-all", default=None, help='fault applied to every request, e.g. "500"')
    parser.add_argument("--fault", action="append", default=[], help="queue a fault (repeatable)")
    parser.add_argument("--no-log", action="store_true", help="count requests but keep no records")
    parser.add_argument("--slots", type=int, default=None, help="at most this many completions generate at once")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = FakeServer(
        host=args.host,
        port=args.port,
        ttft_s=args.ttft,
        per_token_s=args.per_token,
        tokens=args.tokens,
        reply=args.reply,
        cached_tokens=args.cached_tokens,
        reasoning_tokens=args.reasoning_tokens,
        fail_all=args.fail_all,
        keep_log=not args.no_log,
    )
    server.add_faults(*args.fault)
    server.slots = args.slots
    with server:
        print(f"fakeserver listening on {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    print(f"fakeserver served {server.request_count} requests (peak {server.peak_in_flight} in flight)",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
