"""Server-sent events from an official SDK's raw streaming response, parsed leanly.

The SDKs build, authenticate and send the request and raise their typed
errors; we read the body's lines ourselves because building one pydantic
object per chunk costs enough CPU to distort TTFT under high concurrency.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from openbench.providers.base import AttemptError, parse_retry_after, status_error

DONE = object()


async def events(lines: AsyncIterator[str]) -> AsyncIterator[Any]:
    """Yield each ``data:`` payload as JSON (or DONE for ``[DONE]``); other SSE fields are skipped."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, "event:", ": keep-alive" comments
        payload = line[5:].strip()
        if payload == "[DONE]":
            yield DONE
            return
        if not payload:
            continue
        try:
            yield json.loads(payload)
        except json.JSONDecodeError as exc:
            raise AttemptError("malformed", f"malformed stream event (not JSON: {exc.msg}): {payload[:80]!r}", retryable=True) from None


def classify(exc: BaseException, sdk: Any, secret: str | None = None) -> AttemptError:
    """Map an SDK or transport exception to an AttemptError, with any key scrubbed from the message."""
    message = redact(f"{type(exc).__name__}: {exc}", secret)
    if isinstance(exc, AttemptError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc.status_code, message, parse_retry_after(exc.response.headers))
    if isinstance(exc, sdk.APITimeoutError):
        return AttemptError("timeout", message, retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        return AttemptError("connection", message, retryable=True)
    if isinstance(exc, sdk.APIError):
        # Raised for errors sent inside a stream, among others.
        return AttemptError("server", message, retryable=True)
    name = type(exc).__name__
    if "Protocol" in name or "Read" in name or "Stream" in name or isinstance(exc, (ConnectionError, EOFError)):
        return AttemptError("stream_cut", f"the stream was cut: {message}", retryable=True)
    if "Timeout" in name:
        return AttemptError("timeout", message, retryable=True)
    return AttemptError("client", message)


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text
