"""The streamed request path of the SDK providers: the SDK's own request, sent on a lean aiohttp session.

What goes through the official SDK: the key and endpoint (from the suite or the SDK's
environment variables), the client's authentication and default headers, the warm-up
request, and the SDK's typed exceptions for error statuses. What does not: each
streamed completion is POSTed by one shared aiohttp session with the URL and headers the
SDK's client used for its own warm-up request, and its server-sent events are parsed by
``sse.batches``. The SDK's per-request pipeline (parameter transformation, request
building, its transport adapter) costs about 1 ms of CPU per request; at 64 concurrent
streams on a 2-core machine that delays every timestamp the event loop takes (see the
README, "Performance").

When the warm-up did not show the SDK's request (a server without ``GET /models``), the
SDK's client sends each request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

from openbench.providers.base import AttemptError, parse_retry_after, status_error
from openbench.timing import AttemptClock

# Headers of the captured GET that must not travel with a POST of another body.
_REQUEST_SPECIFIC = frozenset({"content-length", "content-type", "host", "transfer-encoding"})


class SeenRequest:
    """An SDK client's request hook that keeps the headers of the first request the client sends."""

    def __init__(self) -> None:
        self.headers: dict[str, str] | None = None

    async def __call__(self, request: Any) -> None:
        if self.headers is None:
            self.headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_SPECIFIC}


@dataclass(frozen=True)
class StreamedResponse:
    """A streamed answer as the providers read it: its body read by read (``sse.batches``), and its headers (rate limits)."""

    chunks: AsyncIterator[bytes]
    headers: Any


class LeanStream:
    """Streamed POSTs to one endpoint with fixed headers, over one keep-alive aiohttp session."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float, status_error_of: Any = None):
        import aiohttp

        self.url = url
        self.headers = {**headers, "Content-Type": "application/json", "Accept": "text/event-stream"}
        self._status_error_of = status_error_of
        # No connection cap: the runner bounds requests in flight. It also bounds each attempt's
        # total time, so no per-read timer is armed here (one per chunk costs CPU at high concurrency).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s),
        )
        self.timeout_s = timeout_s

    @contextlib.asynccontextmanager
    async def stream(self, body: dict[str, Any], clock: AttemptClock) -> AsyncIterator[StreamedResponse]:
        import aiohttp

        data = json.dumps(body, separators=(",", ":")).encode()
        clock.restart()  # the request leaves now: nothing but aiohttp's own framing is left to do
        try:
            async with self.session.post(self.url, data=data, headers=self.headers) as response:
                if response.status >= 400:
                    raise await self._error(response)
                yield StreamedResponse(response.content.iter_any(), response.headers)
        except aiohttp.ClientPayloadError as exc:
            raise AttemptError("stream_cut", f"the stream was cut: {type(exc).__name__}: {exc}", retryable=True) from None
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            raise AttemptError("connection", f"{type(exc).__name__}: {exc}", retryable=True) from None
        except asyncio.TimeoutError:
            raise AttemptError("timeout", f"could not connect within {self.timeout_s:g}s", retryable=True) from None

    async def _error(self, response: Any) -> Exception:
        raw = await response.read()
        if self._status_error_of is not None:
            return self._status_error_of(response.status, dict(response.headers), raw, self.url)
        text = raw.decode("utf-8", "replace")[:500]
        return status_error(response.status, f"HTTP {response.status}: {text}", parse_retry_after(response.headers))

    async def close(self) -> None:
        await self.session.close()


def sdk_status_error(client: Any, http: Any) -> Any:
    """A function building the SDK's own typed exception for an error status (as its client would raise it).

    ``None`` when this SDK version does not expose how it builds them; statuses are then classified directly.
    """
    make = getattr(client, "_make_status_error_from_response", None)
    if make is None:
        return None

    def build(status: int, headers: dict[str, str], body: bytes, url: str) -> Exception:
        request = http.Request("POST", url)
        return make(http.Response(status, headers=headers, content=body, request=request))

    return build
