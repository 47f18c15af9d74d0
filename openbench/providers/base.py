"""What every provider implements, and how it reports a failed attempt.

Providers make one attempt and classify what went wrong; the runner owns
retries, backoff, concurrency and the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openbench.records import ChatRequest, Completion
from openbench.suite import ModelSpec
from openbench.timing import AttemptClock


class AttemptError(Exception):
    """One attempt failed.

    ``retryable``: worth another attempt (429, 5xx, timeouts, cut streams).
    ``fatal``: no item of this model can succeed (bad key, unknown model); the
    runner stops the model once instead of failing every item.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool = False,
        fatal: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.kind, self.retryable, self.fatal = kind, retryable, fatal
        self.retry_after, self.status = retry_after, status


def status_error(status: int, message: str, retry_after: float | None = None) -> AttemptError:
    """Classify an HTTP status the way both vendors document it."""
    if status == 429:
        return AttemptError("rate_limit", message, retryable=True, retry_after=retry_after, status=status)
    if status in (401, 403):
        return AttemptError("auth", message, fatal=True, status=status)
    if status == 404:
        return AttemptError("not_found", message, fatal=True, status=status)
    if status in (408, 409) or status >= 500:
        return AttemptError("server", message, retryable=True, retry_after=retry_after, status=status)
    return AttemptError("bad_request", message, status=status)


def parse_retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime
            from datetime import datetime, timezone

            try:
                seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
            except (TypeError, ValueError):
                continue
        return max(0.0, seconds / 1000 if name == "retry-after-ms" else seconds)
    return None


class Provider:
    """Base class. Subclasses implement ``complete``; the rest has sensible defaults."""

    #: Per-token-billed vendor APIs set this to False; it drives the cost columns.
    self_hosted = True
    #: Providers whose answer depends on the case's fields, not only on the request (cache key).
    reads_case = False

    def __init__(self, spec: ModelSpec, suite_dir: Path):
        self.spec = spec
        self.suite_dir = suite_dir

    def check(self) -> None:
        """Raise MissingKey / MissingDependency / OpenbenchError if this model cannot run at all."""

    def cache_identity(self) -> dict[str, Any]:
        """What, besides the request, changes this provider's output."""
        return {"provider": self.spec.provider, "model": self.spec.model, "base_url": self.spec.base_url}

    async def start(self) -> None:
        """Load weights, open clients. Called once before the first item."""

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what ``start`` took."""

    def count_tokens(self, request: ChatRequest) -> int | None:
        """Input tokens of a request with the model's own tokenizer, if one is at hand."""
        return None

    @property
    def adjustments(self) -> list[str]:
        """What this provider changed in what the suite asked for, one sentence each."""
        return []

    def describe(self) -> dict[str, Any]:
        """Facts about the running model for the manifest (device, dtype, resolved path...)."""
        return {}
