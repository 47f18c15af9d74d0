"""Server-sent events from an official SDK's raw streaming response, parsed leanly.

The SDKs build, authenticate and send the request and raise their typed
errors; we read the body's lines ourselves because building one pydantic
object per chunk costs enough CPU to distort TTFT under high concurrency.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
from contextvars import ContextVar
from time import perf_counter
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from openbench.errors import MissingDependency, MissingKey
from openbench.providers.base import AttemptError, Provider, parse_retry_after, status_error
from openbench.providers.sampling import PARAMS, SamplingPolicy, known_rules
from openbench.providers.transport import LeanStream, SeenRequest, StreamedResponse, sdk_status_error
from openbench.timing import AttemptClock

DONE = object()
T = TypeVar("T")


#: One network read of a stream: when it arrived, and its complete ``data:`` lines, each with its event's name
#: (``""`` where the server sends no ``event:`` line).
Batch = tuple[float, list[tuple[str, str]]]


async def batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[Batch]:
    """The server-sent events of a body, read by read: nothing is decoded but the lines.

    The arrival time is taken before any parsing, so a token's timestamp is when its bytes came in,
    whatever the JSON and the bookkeeping after it cost. One read often holds several events (at
    high concurrency, or Anthropic's three per token): they share it. Blank lines, comments and
    other fields are skipped; a line cut between two reads waits for its end.
    """
    rest = b""
    name = ""
    async for chunk in chunks:
        at = perf_counter()
        if rest:
            chunk = rest + chunk
        complete, newline, rest = chunk.rpartition(b"\n")
        if newline:
            name, found = _data_lines(complete.decode("utf-8", "replace").split("\n"), name)
            if found:
                yield at, found
    if rest.strip():  # a last line without its newline
        name, found = _data_lines([rest.decode("utf-8", "replace")], name)
        if found:
            yield perf_counter(), found


def _data_lines(lines: list[str], name: str) -> tuple[str, list[tuple[str, str]]]:
    found = []
    for line in lines:
        if line.startswith("data:"):
            found.append((name, line[5:].strip()))
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif not line.strip():
            name = ""  # a blank line ends the event
    return name, found


def decode(payload: str) -> Any:
    """A ``data:`` payload as JSON, DONE for ``[DONE]``, None when empty."""
    if payload == "[DONE]":
        return DONE
    if not payload:
        return None
    try:
        return json.loads(payload)
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


def throttle_from(headers: Any) -> float | None:
    """Seconds the vendor's rate-limit headers ask to wait before the next request: until the
    reset of a limit whose remaining count is 0 (OpenAI's ``x-ratelimit-*``, Anthropic's
    ``anthropic-ratelimit-*``); None while every limit has room."""
    if headers is None:
        return None
    waits = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for remaining, reset in (
            (f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"),
            (f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset"),
        ):
            left = headers.get(remaining)
            if left is None or not left.strip().isdigit() or int(left) > 0:
                continue
            seconds = _reset_seconds(headers.get(reset) or "")
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _reset_seconds(value: str) -> float | None:
    """``6m0s``, ``1.5s``, ``20ms`` (OpenAI) or an RFC 3339 time (Anthropic) as seconds from now."""
    value = value.strip()
    if not value:
        return None
    if _DURATION.fullmatch(value):
        return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(value))
    from datetime import datetime, timezone

    try:
        return max(0.0, (datetime.fromisoformat(value.replace("Z", "+00:00")) - datetime.now(timezone.utc)).total_seconds())
    except ValueError:
        return None


def _error_param(exc: Any) -> str | None:
    """The parameter a vendor's error names, where its body has a field for it (OpenAI's ``param``)."""
    param = getattr(exc, "param", None)
    if param is None and isinstance(getattr(exc, "body", None), dict):
        body = exc.body.get("error", exc.body)
        param = body.get("param") if isinstance(body, dict) else None
    return param if isinstance(param, str) else None


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def public_endpoint(url: str) -> str:
    """Scheme, host, port and path of an endpoint: never credentials, query strings or fragments."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


class SDKProvider(Provider):
    """What the OpenAI and Anthropic providers share: key and endpoint lookup, the SDK client, warm-up,
    and sending a request with the sampling the model accepts."""

    sdk_name = ""  # the SDK's module
    api_path = ""  # the streaming endpoint, under the client's base URL
    options = frozenset({"base_url", "api_key_env", "batch_api"})
    key_env = ""  # default key variable
    base_url_env = ""  # default endpoint variable
    default_endpoint: str | None = None  # the vendor's own; None where there is none
    vendor: str | None = None  # whose built-in sampling rules apply

    def __init__(self, spec: Any, suite_dir: Any):
        super().__init__(spec, suite_dir)
        self.client: Any = None
        self._key: str | None = None
        self._raw_response: Any = None
        self._lean: LeanStream | None = None
        override = spec.sampling.given() if spec.sampling is not None else None
        self.policy = SamplingPolicy(spec.id, known_rules(self.vendor, spec.model), override)

    @property
    def adjustments(self) -> list[str]:
        """What openbench changed in what the suite asked for, one sentence each."""
        return list(self.policy.adjustments)

    def endpoint(self) -> str | None:
        url = str(self.client.base_url) if self.client is not None else (self._base_url() or self.default_endpoint or "")
        return public_endpoint(url)

    def describe(self) -> dict[str, Any]:
        # endpoint_default: None where the vendor has no default endpoint (an OpenAI-compatible server).
        default = None if self.default_endpoint is None else self.endpoint() == public_endpoint(self.default_endpoint)
        return {"endpoint_default": default, "adjustments": self.adjustments}

    def _body(self, request: Any, params: dict[str, Any]) -> dict[str, Any]:
        """The request body for ``request`` with the sampling ``params`` (None: not sent)."""
        raise NotImplementedError

    async def _exchange(self, request: Any, clock: AttemptClock, read: Callable[[Any], Awaitable[T]]) -> T:
        """Send ``request`` and ``read`` its streamed response.

        A 400 that names a sampling parameter teaches this model's policy a rule, and the request
        goes again without that parameter, inside this attempt: it never counts as a retry of the item.
        """
        sdk = importlib.import_module(self.sdk_name)
        for _ in range(len(PARAMS) + 1):
            held = await self.policy.admit()  # first, so that the body has every rule learned while waiting
            params = self.policy.params(request.sampling)
            body = self._body(request, params)
            clock.restart()  # restarted again by the transport when the request is really sent
            sending = SENDING.set(clock)
            try:
                async with self._stream(body, clock) as response:
                    self.policy.release(held, accepted=True)
                    held = False
                    return await read(response)
            except sdk.BadRequestError as exc:
                if not self.policy.learn(str(getattr(exc, "message", exc)), _error_param(exc), params):
                    raise classify(exc, sdk, self._key) from None
            except Exception as exc:  # noqa: BLE001 - classified; nothing escapes unclassified
                raise classify(exc, sdk, self._key) from None
            finally:
                SENDING.reset(sending)
                self.policy.release(held)
        raise AttemptError("bad_request", "the vendor kept refusing the sampling parameters")

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
        identity = {"provider": self.spec.provider, "model": self.spec.model, "base_url": self._base_url(), "params": self.spec.params}
        # Settings that change the answer; only when set, so that earlier cache entries stay valid.
        options = {
            "sampling": self.policy.override or None,
            "reasoning_effort": self.spec.reasoning_effort,
            "thinking": self.spec.thinking.model_dump() if self.spec.thinking else None,
        }
        return identity | {k: v for k, v in options.items() if v is not None}

    def _client(self, sdk: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _stream(self, body: dict[str, Any], clock: AttemptClock) -> AsyncIterator[StreamedResponse]:
        """The streamed response to ``body`` (see ``providers/transport.py`` for what goes through the SDK)."""
        if self._lean is not None:
            async with self._lean.stream(body, clock) as response:
                yield response
            return
        raw = await self.client.post(self.api_path, cast_to=self._raw_response, body=body, stream=True)
        try:
            yield StreamedResponse(raw.aiter_bytes(), raw.headers)
        finally:
            await raw.aclose()

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
        self._raw_response = sdk._base_client.httpx2.Response
        await warm_up(self.client.models, self.spec.timeout_s)
        if seen.headers is not None:
            url = str(self.client.base_url).rstrip("/") + self.api_path
            self._lean = LeanStream(url, seen.headers, self.spec.timeout_s, sdk_status_error(self.client, sdk._base_client.httpx2))

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
            self._lean = None
        if self.client is not None:
            await self.client.close()
            self.client = None
