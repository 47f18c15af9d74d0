"""Server-sent events from an official SDK's raw streaming response, parsed leanly.

The SDKs build, authenticate and send the request and raise their typed
errors; we read the body's lines ourselves because building one pydantic
object per chunk costs enough CPU to distort TTFT under high concurrency.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import os
from contextvars import ContextVar
from typing import Any, AsyncIterator

from openbench.errors import MissingDependency, MissingKey
from openbench.providers.base import AttemptError, Provider, parse_retry_after, status_error
from openbench.providers.transport import LeanStream, SeenRequest, sdk_status_error
from openbench.timing import AttemptClock

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


# The clock of the attempt running in the current task; the transport's request hook restarts
# it at the moment the request goes out, after the SDK has built it.
SENDING: ContextVar[AttemptClock | None] = ContextVar("openbench_sending", default=None)


async def _mark_sent(request: Any) -> None:
    clock = SENDING.get()
    if clock is not None:
        clock.restart()


def http_client(sdk: Any, timeout_s: float, *hooks: Any) -> Any:
    """An SDK HTTP client whose clock starts when the request is sent, on aiohttp where installed.

    Under many concurrent streams the SDKs' default transport (httpx2) spends enough CPU on
    the event loop in its connection pool to delay when requests really leave (+70 to
    +170 ms of TTFT at 64 streams on one core); the SDKs' own aiohttp transport keeps the
    client's share small (see tests/benchmarks/api_concurrency.py).
    """
    hooks = {"request": [_mark_sent, *hooks]}
    try:
        import aiohttp  # noqa: F401

        return sdk.DefaultAioHttpClient(timeout=timeout_s, event_hooks=hooks)
    except (ImportError, RuntimeError):  # no aiohttp, or an SDK built without its aiohttp extra
        return sdk.DefaultAsyncHttpxClient(timeout=timeout_s, event_hooks=hooks)


async def warm_up(models: Any, timeout_s: float) -> None:
    """One free ``GET /models`` before the first timed request.

    An SDK's first request imports modules and builds caches (~20-100 ms) that
    would otherwise land in the first items' TTFT. Any answer will do, errors included.
    """
    with contextlib.suppress(Exception):
        await models.with_raw_response.list(timeout=min(timeout_s, 10.0))


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


class SDKProvider(Provider):
    """What the OpenAI and Anthropic providers share: key and endpoint lookup, the SDK client, warm-up."""

    sdk_name = ""  # the SDK's module
    #: Send streamed requests on the lean session (False: through the SDK's client, e.g. to compare them).
    lean_transport = True
    api_path = ""  # the streaming endpoint, under the client's base URL
    options = frozenset({"base_url", "api_key_env", "batch_api"})
    key_env = ""  # default key variable
    base_url_env = ""  # default endpoint variable

    def __init__(self, spec: Any, suite_dir: Any):
        super().__init__(spec, suite_dir)
        self.client: Any = None
        self._key: str | None = None
        self._raw_response: Any = None
        self._lean: Any = None

    def billing(self) -> str:
        return "per-token"

    def _api_key(self) -> str | None:
        return os.environ.get(self.spec.api_key_env or self.key_env) or None

    def _base_url(self) -> str | None:
        return self.spec.base_url or os.environ.get(self.base_url_env) or None

    def check(self) -> None:
        if importlib.util.find_spec(self.sdk_name) is None:
            raise MissingDependency(self.sdk_name, f"The {self.spec.provider} provider")
        if not self._api_key():
            raise MissingKey(self.spec.api_key_env or self.key_env)

    def cache_identity(self) -> dict[str, Any]:
        return {"provider": self.spec.provider, "model": self.spec.model, "base_url": self._base_url(), "params": self.spec.params}

    def _client(self, sdk: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _stream(self, body: dict[str, Any], clock: AttemptClock) -> AsyncIterator[AsyncIterator[str]]:
        """The response's lines for ``body`` (see ``providers/transport.py`` for what goes through the SDK)."""
        if self._lean is not None:
            async with self._lean.stream(body, clock) as lines:
                yield lines
            return
        response = await self.client.post(self.api_path, cast_to=self._raw_response, body=body, stream=True)
        try:
            yield response.aiter_lines()
        finally:
            await response.aclose()

    async def start(self) -> None:
        sdk = importlib.import_module(self.sdk_name)
        self._key = self._api_key() or "EMPTY"
        seen = SeenRequest()
        # The runner owns retries (timed per attempt), so the SDK's own are off.
        self.client = self._client(
            sdk,
            api_key=self._key,
            base_url=self._base_url(),
            max_retries=0,
            timeout=self.spec.timeout_s,
            http_client=http_client(sdk, self.spec.timeout_s, seen),
        )
        self._raw_response = _raw_response_type(sdk)
        await warm_up(self.client.models, self.spec.timeout_s)
        if seen.headers is not None and self.lean_transport:
            url = str(self.client.base_url).rstrip("/") + self.api_path
            errors = sdk_status_error(self.client, sdk._base_client.httpx2)
            self._lean = LeanStream(url, seen.headers, self.spec.timeout_s, errors)

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
            self._lean = None
        if self.client is not None:
            await self.client.close()
            self.client = None


def _raw_response_type(sdk: Any) -> Any:
    """The HTTP library's response class, which an SDK client returns unparsed when asked for it."""
    return sdk._base_client.httpx2.Response
