"""What every provider implements, and how it reports a failed attempt.

Providers make one attempt and classify what went wrong; the runner owns
retries, backoff, concurrency and the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from openbench.manifest import Billing, EngineInfo
from openbench.parity import TemplateFacts, fingerprint
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
    """Base class. Subclasses implement ``complete`` and declare what they are; the rest has sensible defaults.

    The runner, the estimator and the summaries never ask which provider a model
    uses: they ask it what it can do through the methods below.
    """

    #: The variable holding the API key when the suite names none (``None``: no key needed).
    key_env: str | None = None
    #: Providers whose answer depends on the case's fields, not only on the request (cache key).
    reads_case = False
    #: Whether the runner's per-request ``timeout_s`` applies (a provider that bounds its own work says False).
    runner_timeout = True
    #: The provider-specific model options (``suite.PROVIDER_OPTIONS``) this provider reads; any other is a suite error.
    options: frozenset[str] = frozenset()
    #: What a load sweep's levels set: requests in flight (a server's queue), or the size of a local batch.
    load_axis = "concurrency"
    #: Whether the model computes inside openbench's own process (then openbench's CPU is the model's, not overhead).
    in_process = False

    def __init__(self, spec: ModelSpec, suite_dir: Path):
        self.spec = spec
        self.suite_dir = suite_dir
        #: The run folder, for files a provider writes beside the records (an engine's log); None outside a run.
        self.run_dir: Path | None = None

    def billing(self) -> Billing:
        """How answers are paid for: per token at a price, by the hour of hardware, or not at all.

        A model given a ``price:`` is billed per token; otherwise it runs on hardware of your own.
        """
        return "per-token" if self.spec.price is not None else "hardware"

    def max_in_flight(self) -> int:
        """How many requests this model wants in flight at once."""
        return self.spec.concurrency

    async def set_load(self, level: int) -> int:
        """Serve ``level`` requests at once from now on (a load sweep's level); returns the requests to keep in flight."""
        return level

    def caches_by_default(self) -> bool:
        """Answers that cost money per token are cached by default, so that a re-run never pays twice."""
        return self.billing() == "per-token"

    def loading_message(self) -> str | None:
        """What to say while ``start`` runs, when it takes long enough to need saying."""
        return None

    def check(self) -> None:
        """Raise MissingKey / MissingDependency / OpenbenchError if this model cannot run at all."""

    def check_tasks(self, tasks: list[Any]) -> None:
        """Raise OpenbenchError when this model cannot serve what the tasks ask for (tools, say)."""

    def cache_identity(self) -> dict[str, Any]:
        """What, besides the request, changes this provider's output."""
        return {"provider": self.spec.provider, "model": self.spec.model, "base_url": self.spec.base_url}

    async def start(self) -> None:
        """Load weights, open clients. Called once before the first item."""

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what ``start`` took."""

    def token_counter(self) -> tuple[Callable[[ChatRequest], int] | None, str]:
        """A function counting a request's input tokens without loading the model, and how it counts.

        ``None`` when nothing better than an approximation is at hand (the caller then approximates).
        """
        return None, "approximation"

    def max_output_tokens(self, request: ChatRequest) -> int:
        """The most output tokens ``request`` can be billed for (budgets, rate limits and estimates use it)."""
        return request.sampling.max_tokens

    def endpoint(self) -> str | None:
        """Where requests go (scheme://host:port/path; never credentials or query strings); None for local models."""
        return None

    @property
    def adjustments(self) -> list[str]:
        """What this provider changed in what the suite asked for, one sentence each."""
        return []

    def fingerprint(self, request: ChatRequest) -> str:
        """SHA-256 of exactly what is sent for ``request``: here, its canonical messages."""
        return fingerprint([[m.role, m.content] for m in request.messages])

    def template_facts(self) -> TemplateFacts | None:
        """What a chat template does to the suite's messages (local models); None where no template applies."""
        return None

    def rendered_samples(self) -> list[str]:
        """The first prompts exactly as the model saw them, where they differ from the messages (local models)."""
        return []

    def describe(self) -> dict[str, Any]:
        """Facts about the running model for the manifest (device, dtype, resolved path...)."""
        return {}

    def engine_info(self) -> EngineInfo | None:
        """The serving engine this provider launched (version, command, load time, accelerators), if any."""
        return None
