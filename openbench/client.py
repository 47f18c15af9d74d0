"""One model as the runner uses it: provider, rate limits, concurrency, cache, price, budget and attempts.

Candidates and judges go through the same ``ModelClient``, so that a judge's
answer is cached, timed, retried, priced and budgeted exactly as a candidate's.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

from openbench import pricing, registry
from openbench.cache import ResponseCache, cache_key
from openbench.errors import EngineError, MissingKey, OpenbenchError
from openbench.limits import RateLimiter
from openbench.manifest import ModelEntry
from openbench.providers.base import AttemptError, Provider
from openbench.records import ChatRequest, Completion, Usage
from openbench.suite import ModelSpec
from openbench.timing import AttemptClock

BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 120.0
# Without the model's tokenizer, the budget counts a token per 3 characters (English averages ~4) plus a
# message's framing: on the safe side for prose, so that reservations rarely fall short of the real cost.
CHARS_PER_TOKEN_BUDGET = 3
TOKENS_PER_MESSAGE = 4


class Notes(Protocol):
    def note(self, message: str) -> None: ...


class Budget:
    """``--max-cost``: every request reserves its worst-case cost before it is sent, and settles to the real cost.

    No request is sent whose reservation would take spent + reserved past the limit, so the
    overshoot is at most the gap between estimate and reality on requests already in flight.
    A request that does not fit waits for those in flight to settle; when none is left and it
    still does not fit, the budget is spent.
    """

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit = limit_usd
        self.spent = spent_usd
        self.reserved = 0.0
        self.hit = False
        self._settled: asyncio.Condition | None = None

    async def reserve(self, worst_usd: float | None) -> bool:
        if self.limit is None:
            return True
        if self._settled is None:
            self._settled = asyncio.Condition()
        async with self._settled:
            while not self.hit:
                if self.spent + self.reserved + (worst_usd or 0.0) <= self.limit:
                    self.reserved += worst_usd or 0.0
                    return True
                if self.reserved <= 0:
                    self.hit = True
                    break
                await self._settled.wait()
            return False

    async def settle(self, reserved_usd: float | None, cost_usd: float | None) -> None:
        self.spent += cost_usd or 0.0
        if self.limit is None:
            return
        async with self._settled:
            self.reserved = max(0.0, self.reserved - (reserved_usd or 0.0))
            if self.spent >= self.limit:
                self.hit = True
            self._settled.notify_all()


@dataclass(frozen=True)
class Answer:
    """The outcome of asking a model once (with its retries): a completion or the last error."""

    completion: Completion | None
    error: AttemptError | None
    attempts: int
    cached: bool
    wall_s: float
    cost_usd: float | None
    prompt_sha256: str | None = None


class BudgetSpent(Exception):
    """The budget cannot cover this request: it is not sent."""


class ModelClient:
    """A suite model, ready to answer requests."""

    def __init__(
        self,
        spec: ModelSpec,
        suite_dir: Path,
        *,
        cache: ResponseCache | None,
        budget: Budget,
        notes: Notes,
        hardware: pricing.Hardware | None = None,
        utilisation: float | None = None,
        run_dir: Path | None = None,
    ):
        self.spec = spec
        self.provider: Provider = registry.resolve("provider", spec.provider)(spec, suite_dir)
        self.provider.run_dir = run_dir
        self.entry = ModelEntry(id=spec.id, provider=spec.provider, model=spec.model)
        self.budget, self.notes = budget, notes
        self.limiter = RateLimiter(spec.rpm, spec.tpm)
        use_cache = spec.cache if spec.cache is not None else self.provider.caches_by_default()
        self.cache = cache if use_cache else None
        self.entry.billing = self.provider.billing()
        self.price = pricing.resolve_price(spec.provider, spec.model, spec.price) if self.entry.billing == "per-token" else None
        self.entry.price = self.price
        if hardware is not None:
            self.entry.hardware_profile = hardware
            self.entry.utilisation = utilisation
        self.stop = False
        self.first_start: float | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._counter: Any = None

    # -- life cycle -------------------------------------------------------------------------------

    def check(self, tasks: list[Any] = ()) -> bool:
        """Whether the model can run at all (and serve ``tasks``); if not, its entry says why (skipped for a missing key, else failed)."""
        try:
            self.provider.check()
            self.provider.check_tasks(list(tasks))
        except MissingKey as exc:
            self.entry.status, self.entry.reason = "skipped", str(exc)
        except OpenbenchError as exc:
            self.entry.status, self.entry.reason = "failed", str(exc)
        return self.entry.status == "pending"

    async def start(self) -> bool:
        message = self.provider.loading_message()
        if message:
            self.notes.note(f"[{self.spec.id}] {message}")
        try:
            await self.provider.start()
        except EngineError as exc:  # an engine asked for by the suite that cannot start is a configuration error: exit 2
            self.entry.status, self.entry.reason = "failed", str(exc).splitlines()[0]
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure fails this model, not the run
            self.entry.status, self.entry.reason = "failed", f"could not start: {type(exc).__name__}: {exc}"
            return False
        self.entry.details = self.provider.describe()
        self.entry.engine = self.provider.engine_info()
        self.entry.template = self.provider.template_facts()
        self.entry.endpoint = self.provider.endpoint()
        self.entry.in_flight = self.in_flight
        self._semaphore = asyncio.Semaphore(self.in_flight)
        return True

    async def close(self) -> None:
        if self._semaphore is not None:  # started: keep what the run learned (adjustments, the template's effect)
            self.entry.details = {**self.entry.details, **self.provider.describe()}
            self.entry.template = self.provider.template_facts() or self.entry.template
        await self.provider.close()  # also after a start that was interrupted or failed: release what it took

    async def set_load(self, level: int | None) -> None:
        """A load sweep's level from now on: ``level`` requests at once, as the provider serves them (in flight, or
        as one batch); None lifts the limit, so that open-loop arrivals are sent the moment they arrive."""
        keep = await self.provider.set_load(level) if level is not None else 1 << 30
        self._semaphore = asyncio.Semaphore(max(1, keep))

    @property
    def in_flight(self) -> int:
        return max(1, self.provider.max_in_flight())

    def fail(self, reason: str) -> None:
        if self.entry.status != "failed":
            self.entry.status, self.entry.reason, self.stop = "failed", reason, True

    # -- one request ------------------------------------------------------------------------------

    async def answer(self, request: ChatRequest, case_fields: dict[str, Any], sample: int = 0) -> Answer:
        """Ask once (retrying what is worth retrying); a cached answer is replayed. Raises BudgetSpent.

        ``sample``: which repeat of the item this is; each has its own cache entry, so repeats are never replays.
        """
        key = None
        if self.cache is not None:
            identity = self.provider.cache_identity()
            if sample:
                identity = {**identity, "sample": sample}
            # Providers that answer from the case (reference, fake) must not share answers between cases.
            key = cache_key({**identity, "case": case_fields} if self.provider.reads_case else identity, request)
            replay = self.cache.get(key)
            if replay is not None:
                return Answer(replay, None, 0, True, 0.0, self.cost(replay.usage), self.provider.fingerprint(request))
        worst = self._worst_cost(request)
        if not await self.budget.reserve(worst):
            raise BudgetSpent()
        wall_start = perf_counter()
        cost = None
        try:
            async with self._semaphore:
                completion, error, attempts = await self._attempts(request, case_fields)
            if completion is not None:
                cost = self.cost(completion.usage)
                if key is not None:
                    self.cache.put(key, completion)
        finally:
            await self.budget.settle(worst, cost)
        self.entry.spent_usd += cost or 0.0
        # Busy time runs from the first request to the latest answer (scoring excluded), kept
        # current after every item so that an interrupted run still knows it.
        if self.first_start is not None:
            self.entry.busy_s = max(self.entry.busy_s, perf_counter() - self.first_start)
        return Answer(completion, error, attempts, False, perf_counter() - wall_start, cost, self.provider.fingerprint(request))

    def cost(self, usage: Usage) -> float | None:
        if self.entry.billing == "free":
            return 0.0
        return pricing.cost(usage, self.price, batch=self.spec.batch_api) if self.price else None

    def _worst_cost(self, request: ChatRequest) -> float | None:
        if self.price is None or self.budget.limit is None:
            return None
        if self._counter is None:
            self._counter = self.provider.token_counter()[0] or False
        counted = self._counter(request) if self._counter else None
        if counted is None:
            counted = request.prompt_chars // CHARS_PER_TOKEN_BUDGET + TOKENS_PER_MESSAGE * len(request.messages)
        return self.cost(Usage(input_tokens=counted, output_tokens=self.provider.max_output_tokens(request)))

    async def _attempts(self, request: ChatRequest, case_fields: dict[str, Any]) -> tuple[Completion | None, AttemptError | None, int]:
        spec, provider = self.spec, self.provider
        attempts = 0
        error: AttemptError | None = None
        estimate = request.prompt_chars // 4 + provider.max_output_tokens(request)
        while attempts <= spec.max_retries:
            if self.entry.status == "failed":
                return None, error or AttemptError("model_failed", self.entry.reason or "model failed"), attempts
            await self.limiter.acquire(estimate)
            attempts += 1
            clock = AttemptClock()
            if self.first_start is None:
                self.first_start = clock.start
            try:
                call = provider.complete(request, clock, case_fields)
                completion = await (asyncio.wait_for(call, spec.timeout_s) if provider.runner_timeout else call)
                if completion.throttle_s:
                    self.limiter.pause(completion.throttle_s)  # the vendor's rate-limit headers say its window is spent
                return completion, None, attempts
            except asyncio.TimeoutError:
                error = AttemptError("timeout", f"no complete answer within {spec.timeout_s:g}s", retryable=True)
            except AttemptError as exc:
                error = exc
            if error.fatal:
                if self.entry.status != "failed":
                    self.fail(f"{error.kind}: {error}")
                    self.notes.note(f"model '{spec.id}' failed: {error} (not retrying its other items)")
                return None, error, attempts
            if not error.retryable or attempts > spec.max_retries:
                break
            await asyncio.sleep(backoff(spec, attempts, error))
        return None, error, attempts


def backoff(spec: ModelSpec, attempt: int, error: AttemptError) -> float:
    if error.retry_after is not None:
        return min(RETRY_AFTER_CAP_S, error.retry_after) + random.uniform(0, 0.05)
    # Full jitter: spreads retries of many concurrent items that failed together.
    return random.uniform(0, min(BACKOFF_CAP_S, spec.backoff_s * 2 ** (attempt - 1)))
