"""Anthropic messages through the official ``anthropic`` SDK, streamed.

Input and cache tokens come from ``message_start``; output tokens from the last
``message_delta`` (the count there is cumulative: the last value is kept, never
summed).
"""

from __future__ import annotations

from typing import Any

from openbench.providers.base import AttemptError
from openbench.providers.sse import SENDING, SDKProvider, classify, events
from openbench.records import ChatRequest, Completion, Usage
from openbench.timing import AttemptClock


class AnthropicProvider(SDKProvider):
    sdk_name, key_env, base_url_env = "anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"

    def _client(self, sdk: Any, **kwargs: Any) -> Any:
        return sdk.AsyncAnthropic(**kwargs)

    api_path = "/v1/messages"

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
            "max_tokens": s.max_tokens,
            "temperature": min(s.temperature, 1.0),  # Anthropic's range is [0, 1]
            "stream": True,
        }
        if system:
            body["system"] = system
        if s.top_p is not None:
            body["top_p"] = s.top_p
        if s.stop:
            body["stop_sequences"] = list(s.stop)
        body.update(self.spec.params)
        return body

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        import anthropic

        parts: list[str] = []
        start_usage: dict[str, Any] = {}
        output_tokens = None
        thinking_tokens = 0
        stop_reason = None
        finished = False
        clock.restart()  # restarted again by the transport when the request is really sent
        sending = SENDING.set(clock)
        try:
            async with self._stream(self._body(request), clock) as lines:
                async for event in events(lines):
                    kind = event.get("type") if isinstance(event, dict) else None
                    if kind == "content_block_delta":
                        delta = event.get("delta") or {}
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            clock.chunk()
                            parts.append(delta["text"])
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
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify(exc, anthropic, self._key) from None
        finally:
            SENDING.reset(sending)
        timing = clock.finish()
        if not finished:
            raise AttemptError("stream_cut", "the stream ended before message_stop", retryable=True)
        return Completion(
            text="".join(parts), usage=_usage(start_usage, output_tokens, thinking_tokens), timing=timing, finish_reason=stop_reason
        )


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
