"""Anthropic messages through the official ``anthropic`` SDK, streamed.

Input and cache tokens come from ``message_start``; output tokens from the last
``message_delta`` (the count there is cumulative: the last value is kept, never
summed).
"""

from __future__ import annotations

from typing import Any

from openbench.providers.base import AttemptError
from openbench.providers.chatformat import (
    AnthropicToolBlocks,
    anthropic_conversation,
    anthropic_structured_mode,
    anthropic_tool_fields,
    forced_tool_answer,
)
from openbench.providers.sampling import Rule
from openbench.providers.sse import SDKProvider, batches, decode, throttle_from
from openbench.records import ChatRequest, Completion, Usage
from openbench.timing import AttemptClock


class AnthropicProvider(SDKProvider):
    sdk_name, key_env, base_url_env = "anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"
    default_endpoint, vendor = "https://api.anthropic.com", "anthropic"
    options = SDKProvider.options | {"sampling", "thinking", "prompt_cache"}

    def __init__(self, spec: Any, suite_dir: Any):
        super().__init__(spec, suite_dir)
        if spec.thinking is not None:
            # With extended thinking, Anthropic accepts only the default temperature (1).
            self.policy.rules.append(Rule("temperature", only=1.0))

    def _client(self, sdk: Any, **kwargs: Any) -> Any:
        return sdk.AsyncAnthropic(**kwargs)

    api_path = "/v1/messages"

    def _body(self, request: ChatRequest, params: dict[str, Any]) -> dict[str, Any]:
        model = self.policy.model  # the model's id, as the notes name it
        system, messages, _ = anthropic_conversation(request.messages)
        max_tokens = request.sampling.max_tokens
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
        }
        temperature = params["temperature"]
        if temperature is not None:
            if temperature > 1.0:
                self.policy.note(f"{model}: temperature {temperature:g} is above Anthropic's range [0, 1]; 1 was sent")
            body["temperature"] = min(temperature, 1.0)
        if system:
            # prompt_cache marks the system prompt as a cacheable prefix.
            cache = {"cache_control": {"type": "ephemeral"}} if self.spec.prompt_cache else {}
            body["system"] = [{"type": "text", "text": system, **cache}] if cache else system
        if params["top_p"] is not None:
            body["top_p"] = params["top_p"]
        if params["stop"]:
            body["stop_sequences"] = params["stop"]
        thinking = self.spec.thinking
        if thinking is not None:
            body["thinking"] = {"type": thinking.type, "budget_tokens": thinking.budget_tokens}
            body["max_tokens"] = self.max_output_tokens(request)
            if body["max_tokens"] != max_tokens:
                self.policy.note(
                    f"{model}: max_tokens {max_tokens} raised to {body['max_tokens']} (thinking budget {thinking.budget_tokens} + {max_tokens} for the answer)"
                )
        body.update(anthropic_tool_fields(request, can_force=self._can_force_tool))
        body.update(self.spec.params)
        return body

    def max_output_tokens(self, request: ChatRequest) -> int:
        max_tokens, thinking = request.sampling.max_tokens, self.spec.thinking
        # Anthropic needs max_tokens above the thinking budget; the suite's max_tokens is then kept for the answer.
        return thinking.budget_tokens + max_tokens if thinking is not None and max_tokens <= thinking.budget_tokens else max_tokens

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        return await self._exchange(request, clock, lambda response: self._read(response, clock, request))

    @property
    def _can_force_tool(self) -> bool:
        return self.spec.thinking is None  # with extended thinking, Anthropic refuses a forced tool_choice

    async def _read(self, response: Any, clock: AttemptClock, request: ChatRequest) -> Completion:
        parts: list[str] = []
        tool_blocks = AnthropicToolBlocks()
        start_usage: dict[str, Any] = {}
        output_tokens = None
        thinking_tokens = 0
        stop_reason = None
        finished = False
        last = None
        async for at, found in batches(response.chunks):
            last = at
            for name, payload in found:
                if name in _UNREAD:
                    continue  # named by its event line: nothing in it is read, so its JSON is not decoded
                event = decode(payload)
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        clock.chunk(at)
                        parts.append(delta["text"])
                    elif delta.get("type") == "thinking_delta":
                        clock.thought(at)
                    elif tool_blocks.delta(event):
                        clock.chunk(at)  # tool input streaming counts as tokens, for TTFT too
                elif kind == "content_block_start" and ((event.get("content_block") or {}).get("type") in _THINKING_BLOCKS):
                    clock.thought(at)
                elif kind == "content_block_start" and tool_blocks.start(event):
                    clock.chunk(at)  # the tool's name is the model's first output
                elif kind == "message_start":
                    start_usage = (event.get("message") or {}).get("usage") or {}
                    output_tokens = start_usage.get("output_tokens")
                elif kind == "message_delta":
                    usage = event.get("usage") or {}
                    output_tokens = usage.get("output_tokens", output_tokens)  # cumulative
                    # Input and cache counts here, when sent, are cumulative too and win over message_start's.
                    start_usage = {**start_usage, **{k: v for k, v in usage.items() if k in _INPUT_FIELDS and v is not None}}
                    details = usage.get("output_tokens_details") or {}
                    thinking_tokens = details.get("thinking_tokens", thinking_tokens)
                    stop_reason = (event.get("delta") or {}).get("stop_reason") or stop_reason
                elif kind == "message_stop":
                    finished = True
                elif kind == "error":
                    error = event.get("error") or {}
                    retryable = error.get("type") in ("overloaded_error", "api_error", "rate_limit_error")
                    raise AttemptError("server", f"error in stream: {error.get('type')}: {error.get('message')}", retryable=retryable)
        timing = clock.finish(last)  # E2E ends when the last read arrived
        if not finished:
            raise AttemptError("stream_cut", "the stream ended before message_stop", retryable=True)
        answer, calls = forced_tool_answer(request, tool_blocks.calls(), self._can_force_tool)
        return Completion(
            text=answer if answer is not None else "".join(parts),
            usage=_usage(start_usage, output_tokens, thinking_tokens),
            timing=timing,
            finish_reason=stop_reason,
            throttle_s=throttle_from(response.headers),
            tool_calls=calls,
            structured_output=anthropic_structured_mode(request, self._can_force_tool),
            notes=_merge_note(request),
        )


def _merge_note(request: ChatRequest) -> tuple[str, ...]:
    merges = anthropic_conversation(request.messages)[2]
    return (f"{merges} adjacent same-role turn(s) merged for Anthropic's alternating turns",) if merges else ()


_THINKING_BLOCKS = ("thinking", "redacted_thinking")
#: Events whose content nothing reads (keep-alive pings, a block's end), skipped by their ``event:`` line.
_UNREAD = frozenset({"ping", "content_block_stop"})
_INPUT_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _usage(start: dict[str, Any], output_tokens: int | None, thinking_tokens: int = 0) -> Usage:
    if not start:
        return Usage(output_tokens=output_tokens, reasoning_tokens=thinking_tokens)
    cache_read = start.get("cache_read_input_tokens") or 0
    cache_write = start.get("cache_creation_input_tokens") or 0
    # Anthropic's input_tokens excludes cache reads and writes; ours counts every prompt token.
    return Usage(
        input_tokens=(start.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=output_tokens,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=thinking_tokens,
    )
