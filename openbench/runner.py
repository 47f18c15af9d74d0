"""Runs a suite: per model, items flow through a bounded pool of workers.

The runner owns what must mean the same for every provider: concurrency, rate
limits, retries with backoff, the per-attempt clock, the cache, scoring and
writing each record as soon as it is final.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Iterator, Protocol

from openbench import pricing, registry
from openbench.cache import ResponseCache, cache_key
from openbench.data import Case, load_cases
from openbench.errors import MissingKey, OpenbenchError
from openbench.limits import RateLimiter
from openbench.prompts import TemplateError, build_request
from openbench.providers.base import AttemptError, Provider
from openbench.records import ChatRequest, Completion, ItemResult, Sampling
from openbench.scorers.base import BoundScorer, bind_task, combine, combine_async
from openbench.store import RunStore, utc_now
from openbench.suite import LoadedSuite, ModelSpec, TaskSpec
from openbench.timing import AttemptClock, output_tps, tpot

BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 120.0


class RunAborted(OpenbenchError):
    """The run stopped itself (error rate too high)."""

    exit_code = 1


class Reporter(Protocol):
    def model_started(self, model_id: str, total: int) -> None: ...
    def item_done(self, model_id: str, record: ItemResult) -> None: ...
    def model_finished(self, model_id: str, status: str, reason: str | None) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunOptions:
    model_ids: list[str] | None = None
    limit: int | None = None
    cache: bool = True
    max_error_rate: float | None = None
    max_cost_usd: float | None = None
    error_rate_min_items: int = 20
    utilisation: float | None = None
    hardware_overrides: dict[str, str] = field(default_factory=dict)
    price_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkItem:
    task: TaskSpec
    scorers: list[BoundScorer]
    case: Case


@dataclass
class ModelRun:
    """What the manifest says about one model after the run."""

    spec: ModelSpec
    status: str = "pending"
    reason: str | None = None
    items: int = 0
    errors: int = 0
    cached: int = 0
    busy_s: float = 0.0
    output_tokens: int = 0
    spent_usd: float = 0.0
    price: dict[str, Any] | None = None
    hardware_profile: dict[str, Any] | None = None
    utilisation: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stop: bool = False
    aborted: bool = False

    @functools.cached_property
    def rate(self) -> pricing.Price | None:
        """The price as an object, built once (``price`` is its JSON form for the manifest)."""
        return pricing.Price(**self.price) if self.price else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "provider": self.spec.provider,
            "model": self.spec.model,
            "status": self.status,
            "reason": self.reason,
            "items": self.items,
            "errors": self.errors,
            "cached": self.cached,
            "busy_s": round(self.busy_s, 6),
            "output_tokens": self.output_tokens,
            "concurrency": self.spec.concurrency,
            "batch_size": self.spec.batch_size if self.spec.provider == "hf" else None,
            "price": self.price,
            "hardware_profile": self.hardware_profile,
            "utilisation": self.utilisation,
            **self.details,
        }


class _Judge:
    """A suite model used as a judge: started on first use, shared by every item."""

    def __init__(self, spec: ModelSpec):
        self.spec, self.run = spec, ModelRun(spec, status="ok")
        self.provider: Provider | None = None
        self.started = False
        self.lock = asyncio.Lock()
        self.semaphore: asyncio.Semaphore | None = None
        self.limiter = RateLimiter(spec.rpm, spec.tpm)


class ScoringContext:
    """What a model-calling scorer (a judge) may use: the item's request, and calls to suite models."""

    def __init__(self, runner: Runner, request: ChatRequest, case_fields: dict[str, Any]):
        self._runner, self.request, self.case_fields = runner, request, case_fields
        self.calls: list[tuple[str, Completion, float | None]] = []

    @property
    def suite_dir(self) -> Path:
        """The suite file's folder, for scorer parameters that name files."""
        return self._runner.suite.dir

    @property
    def prompt(self) -> str:
        return next((m.content for m in reversed(self.request.messages) if m.role == "user"), "")

    async def complete(self, model_id: str, request: ChatRequest) -> Completion:
        completion, cost = await self._runner.judge_complete(model_id, request, self.case_fields)
        self.calls.append((model_id, completion, cost))
        return completion

    def summary(self) -> dict[str, Any]:
        costs = [c for _, _, c in self.calls]
        return {
            "model": self.calls[0][0],
            "calls": len(self.calls),
            "input_tokens": sum(c.usage.input_tokens or 0 for _, c, _ in self.calls),
            "output_tokens": sum(c.usage.output_tokens or 0 for _, c, _ in self.calls),
            "cost_usd": None if any(c is None for c in costs) else sum(costs),
            "latency_s": sum(c.timing.e2e_s for _, c, _ in self.calls),
        }


def load_work(suite: LoadedSuite, limit: int | None = None) -> list[tuple[TaskSpec, list[BoundScorer], list[Case]]]:
    """Every task with its bound scorers and (checked, sampled) cases."""
    return [(task, bind_task(task), load_cases(suite, ti, limit)) for ti, task in enumerate(suite.spec.tasks)]


def request_for(suite: LoadedSuite, task: TaskSpec, case: Case) -> ChatRequest:
    """The request a case sends: task settings over the suite's defaults."""
    d = suite.spec.defaults
    sampling = Sampling(
        temperature=task.temperature if task.temperature is not None else d.temperature,
        max_tokens=task.max_tokens or d.max_tokens,
        seed=d.seed,
        top_p=d.top_p,
        stop=tuple(d.stop),
    )
    system = task.system if task.system is not None else d.system
    return build_request(system, task.prompt, case.fields, sampling)


class Runner:
    def __init__(self, suite: LoadedSuite, store: RunStore, options: RunOptions, reporter: Reporter):
        self.suite, self.store, self.options, self.reporter = suite, store, options, reporter
        latest = store.latest_records()
        self.done = {k for k, r in latest.items() if r.error is None}
        # Answered and paid for, but the scoring failed: a resumed run scores them again without asking.
        self.answered = {k: r for k, r in latest.items() if r.error_kind == "scorer" and r.output is not None}
        self.cache: ResponseCache | None = None
        self.spent_usd = 0.0
        self.budget_hit = False
        self.results: list[ModelRun] = []  # one per model started, in order; kept when the run aborts
        self.judges: dict[str, _Judge] = {}

    def models(self) -> list[ModelSpec]:
        if not self.options.model_ids:
            return list(self.suite.spec.models)
        return [self.suite.model(m) for m in self.options.model_ids]

    async def run(self) -> list[ModelRun]:
        work = load_work(self.suite, self.options.limit)
        try:
            for spec in self.models():
                await self._run_model(spec, work)
        finally:
            await self.close()
        return self.results

    async def close(self) -> None:
        """Release the judges' providers and the response cache."""
        for judge in self.judges.values():
            await judge.provider.close()
        if self.cache is not None:
            self.cache.close()

    # -- judges -----------------------------------------------------------------------------------

    async def judge_complete(
        self, model_id: str, request: ChatRequest, case_fields: dict[str, Any]
    ) -> tuple[Completion, float | None]:
        """One judge call through the same retries, clock and pricing as any model; kept apart from the candidate."""
        judge = self.judges.get(model_id)
        if judge is None:
            judge = self.judges[model_id] = _Judge(self.suite.model(model_id))
        async with judge.lock:
            if not judge.started:
                judge.provider = registry.resolve("provider", judge.spec.provider)(judge.spec, self.suite.dir)
                judge.provider.check()
                await judge.provider.start()
                judge.run.price = None if judge.provider.self_hosted else self._price(judge.spec)
                judge.semaphore = asyncio.Semaphore(judge.spec.concurrency)
                judge.started = True
        key = None
        if self.options.cache and judge.spec.use_cache:
            if self.cache is None:
                self.cache = ResponseCache()
            key = cache_key(judge.provider.cache_identity(), request)
        completion = self.cache.get(key) if key is not None else None
        replay = completion is not None
        if completion is None:
            async with judge.semaphore:
                completion, error, _ = await self._attempts(
                    judge.provider, judge.spec, judge.run, request, case_fields, judge.limiter, []
                )
            if completion is None:
                raise RuntimeError(f"judge '{model_id}' failed: {error}")
            if key is not None:
                self.cache.put(key, completion)
        rate = judge.run.rate
        cost = pricing.cost(completion.usage, rate, batch=judge.spec.batch_api) if rate else None
        judge.run.items += 1
        if not replay and cost:
            judge.run.spent_usd += cost
            self.spent_usd += cost  # the budget covers judges too
        return completion, cost

    # -- one model --------------------------------------------------------------------------------

    async def _run_model(self, spec: ModelSpec, work: list) -> ModelRun:
        run = ModelRun(spec)
        self.results.append(run)  # before anything can raise, so that an aborted run still reports it
        todo = [
            WorkItem(task, scorers, case)
            for task, scorers, cases in work
            for case in cases
            if (task.name, case.id, spec.id) not in self.done
        ]
        provider_cls = registry.resolve("provider", spec.provider)
        provider: Provider = provider_cls(spec, self.suite.dir)
        try:
            provider.check()
        except MissingKey as exc:
            run.status, run.reason = "skipped", str(exc)
        except OpenbenchError as exc:
            run.status, run.reason = "failed", str(exc)
        if run.status == "pending" and self.budget_hit:
            run.status, run.reason = "not run", f"the budget (--max-cost {self.options.max_cost_usd}) was spent before it"
        if run.status != "pending":
            self.reporter.model_finished(spec.id, run.status, run.reason)
            return run
        if not provider.self_hosted:
            run.price = self._price(spec)
        hardware = self.suite.spec.hardware_for(spec, self.options.hardware_overrides.get(spec.id))
        if hardware is not None:
            run.hardware_profile = dataclasses.asdict(hardware)
            run.utilisation = self.options.utilisation or self.suite.spec.utilisation_for(spec)
        if not todo:
            run.status, run.reason = "ok", "nothing left to run"
            self.reporter.model_finished(spec.id, run.status, run.reason)
            return run
        if spec.provider == "hf":
            self.reporter.note(f"[{spec.id}] loading {spec.model} on {spec.device} ...")
        try:
            await provider.start()
        except Exception as exc:  # noqa: BLE001 - any load failure fails this model, not the run
            run.status, run.reason = "failed", f"could not start: {type(exc).__name__}: {exc}"
            self.reporter.model_finished(spec.id, run.status, run.reason)
            return run
        run.details = provider.describe()
        self.reporter.model_started(spec.id, len(todo))
        use_cache = self.options.cache and spec.use_cache
        if use_cache and self.cache is None:
            self.cache = ResponseCache()
        identity = provider.cache_identity() if use_cache else None
        limiter = RateLimiter(spec.rpm, spec.tpm)
        in_flight = getattr(provider, "max_in_flight", lambda: spec.concurrency)()
        items: Iterator[WorkItem] = iter(todo)
        first_start: list[float] = []

        async def worker() -> None:
            for item in items:
                if run.stop or self.budget_hit:
                    return
                record = await self._run_item(provider, spec, run, item, limiter, identity, first_start)
                self.store.append(record)  # before accounting, which may stop the model
                self.reporter.item_done(spec.id, record)
                self._account(run, record)

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(todo))))))
        finally:
            await provider.close()
        if run.aborted:
            # Raised once every worker has finished its item in flight, so that nothing finished is lost.
            self.reporter.model_finished(spec.id, run.status, run.reason)
            raise RunAborted(f"model '{spec.id}': {run.reason}; finished items are saved")
        if run.status == "pending":
            run.status = "ok"
            if self.budget_hit:
                run.reason = f"stopped on budget (--max-cost {self.options.max_cost_usd})"
        self.reporter.model_finished(spec.id, run.status, run.reason)
        return run

    def _price(self, spec: ModelSpec) -> dict[str, Any] | None:
        suite_override = spec.price.model_dump(exclude_none=True) if spec.price else None
        price = pricing.resolve_price(
            spec.provider, spec.model, suite_override=suite_override, cli_override=self.options.price_overrides.get(spec.id)
        )
        return dataclasses.asdict(price) if price else None

    def _account(self, run: ModelRun, record: ItemResult) -> None:
        run.items += 1
        run.errors += record.error is not None
        run.cached += record.cached
        run.output_tokens += 0 if record.cached else (record.output_tokens or 0)
        if record.cost_usd is not None and not record.cached:
            run.spent_usd += record.cost_usd
            self.spent_usd += record.cost_usd
        limit = self.options.max_cost_usd
        if limit is not None and self.spent_usd >= limit and not self.budget_hit:
            self.budget_hit = True
            run.stop = True
            self.reporter.note(f"spent ${self.spent_usd:.4f} ≥ --max-cost ${limit}: no new requests will be sent")
        rate = self.options.max_error_rate
        if rate is not None and not run.aborted and run.items >= self.options.error_rate_min_items and run.errors / run.items > rate:
            run.stop = run.aborted = True
            run.status = "failed"
            run.reason = f"error rate {run.errors}/{run.items} exceeded --max-error-rate {rate}"

    # -- one item ---------------------------------------------------------------------------------

    async def _run_item(
        self,
        provider: Provider,
        spec: ModelSpec,
        run: ModelRun,
        item: WorkItem,
        limiter: RateLimiter,
        identity: dict[str, Any] | None,
        first_start: list[float],
    ) -> ItemResult:
        base: dict[str, Any] = {"task": item.task.name, "case_id": item.case.id, "model": spec.id, "started_at": utc_now()}
        if item.task.cluster_field:
            base["extra"] = {"cluster": str(item.case.fields.get(item.task.cluster_field))}
        try:
            request = request_for(self.suite, item.task, item.case)
        except TemplateError as exc:
            return ItemResult(**base, error=str(exc), error_kind="template")
        previous = self.answered.get((item.task.name, item.case.id, spec.id))
        if previous is not None:
            return await self.rescore(previous, item, request)
        key = None
        if identity is not None:
            # Providers that answer from the case (reference, fake) must not share answers between cases.
            key = cache_key({**identity, "case": item.case.fields} if provider.reads_case else identity, request)
        cached = self.cache.get(key) if key is not None and self.cache is not None else None
        attempts = 0
        wall_start = perf_counter()
        if cached is not None:
            completion, error = cached, None
        else:
            completion, error, attempts = await self._attempts(provider, spec, run, request, item.case.fields, limiter, first_start)
            # Busy time runs from the first request to the latest answer (scoring excluded), kept
            # current after every item so that an interrupted run still knows it.
            run.busy_s = max(run.busy_s, perf_counter() - first_start[0])
            if completion is not None and key is not None and self.cache is not None:
                self.cache.put(key, completion)
        wall_s = perf_counter() - wall_start
        if completion is None:
            return ItemResult(**base, error=str(error), error_kind=error.kind, attempts=attempts, wall_s=wall_s)
        return await self._scored(base, item, spec, run, request, completion, cached is not None, attempts, wall_s)

    async def _attempts(
        self, provider, spec, run, request, case_fields, limiter, first_start
    ) -> tuple[Completion | None, AttemptError | None, int]:
        attempts = 0
        error: AttemptError | None = None
        estimate = sum(len(m.content) for m in request.messages) // 4 + request.sampling.max_tokens
        while attempts <= spec.max_retries:
            if run.status == "failed":
                return None, error or AttemptError("model_failed", run.reason or "model failed"), attempts
            await limiter.acquire(estimate)
            attempts += 1
            clock = AttemptClock()
            if not first_start:
                first_start.append(clock.start)
            try:
                if provider.self_hosted and spec.provider == "hf":
                    return await provider.complete(request, clock, case_fields), None, attempts
                return await asyncio.wait_for(provider.complete(request, clock, case_fields), spec.timeout_s), None, attempts
            except asyncio.TimeoutError:
                error = AttemptError("timeout", f"no complete answer within {spec.timeout_s:g}s", retryable=True)
            except AttemptError as exc:
                error = exc
            if error.fatal:
                if run.status != "failed":
                    run.status, run.reason, run.stop = "failed", f"{error.kind}: {error}", True
                    self.reporter.note(f"model '{spec.id}' failed: {error} (not retrying its other items)")
                return None, error, attempts
            if not error.retryable or attempts > spec.max_retries:
                break
            await asyncio.sleep(self._backoff(spec, attempts, error))
        return None, error, attempts

    @staticmethod
    def _backoff(spec: ModelSpec, attempt: int, error: AttemptError) -> float:
        if error.retry_after is not None:
            return min(RETRY_AFTER_CAP_S, error.retry_after) + random.uniform(0, 0.05)
        # Full jitter: spreads retries of many concurrent items that failed together.
        return random.uniform(0, min(BACKOFF_CAP_S, spec.backoff_s * 2 ** (attempt - 1)))

    async def _scored(self, base, item, spec, run, request, completion, cached, attempts, wall_s) -> ItemResult:
        usage, timing = completion.usage, completion.timing
        cost = pricing.cost(usage, run.rate, batch=spec.batch_api) if run.rate else None
        fields: dict[str, Any] = dict(
            output=completion.text,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            cached=cached,
            attempts=attempts,
            wall_s=wall_s,
            finish_reason=completion.finish_reason,
        )
        if not cached:  # a replay has no latency to report
            fields.update(
                latency_s=timing.e2e_s,
                ttft_s=timing.ttft_s,
                itl_s=timing.itl_s,
                tpot_s=tpot(timing, usage.output_tokens),
                output_tps=output_tps(timing, usage.output_tokens),
            )
        return dataclasses.replace(ItemResult(**base, **fields), **await self._score(item, request, completion.text, base))

    async def _score(self, item: WorkItem, request: ChatRequest, text: str, base: dict[str, Any]) -> dict[str, Any]:
        """Score one answer: the record fields that scoring sets (a scorer failure is an error, never a 0)."""
        args = (item.scorers, text, item.case.fields, item.task.pass_threshold)
        ctx = None
        out: dict[str, Any] = {"score": None, "passed": None, "scores": {}, "error": None, "error_kind": None}
        try:
            if any(s.blocking or s.needs_context for s in item.scorers):
                ctx = ScoringContext(self, request, item.case.fields)
                out["score"], out["passed"], out["scores"] = await combine_async(*args, ctx)
            else:
                out["score"], out["passed"], out["scores"] = combine(*args)
        except Exception as exc:  # noqa: BLE001 - a scorer failure is this item's error, never a silent 0
            out.update(error=f"scorer failed: {type(exc).__name__}: {exc}", error_kind="scorer")
        extra = dict(base.get("extra") or {})
        extra.pop("judge", None)
        if ctx is not None and ctx.calls:
            extra["judge"] = ctx.summary()  # the judge's tokens, cost and latency stay apart from the candidate's
        out["extra"] = extra
        return out

    async def rescore(self, previous: ItemResult, item: WorkItem, request: ChatRequest) -> ItemResult:
        """An item answered before: score the stored answer again (judges excepted, no model is asked)."""
        scored = await self._score(item, request, previous.output or "", previous.to_dict())
        return dataclasses.replace(previous, started_at=utc_now(), **scored)
