"""Runs a suite: per model, items flow through a bounded pool of workers.

The runner owns what must mean the same for every provider: concurrency, rate
limits, retries with backoff, the per-attempt clock, the cache, scoring and
writing each record as soon as it is final.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from openbench import collector
from openbench.cache import ResponseCache
from openbench.client import Budget, BudgetSpent, ModelClient
from openbench.data import Case, load_cases
from openbench.errors import OpenbenchError
from openbench.manifest import JudgeEntry, ModelEntry, StructuredOutputUse
from openbench.conversation import task_request
from openbench.prompts import TemplateError
from openbench.records import ChatRequest, Completion, ItemResult, JudgeUsage, Sampling, StructuredMode
from openbench.scorers.base import BoundScorer, bind_task, combine, combine_async
from openbench.store import RunStore, utc_now
from openbench.suite import LoadedSuite, ModelSpec, TaskSpec
from openbench.summary import model_status
from openbench.timing import output_tps, tpot


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
    spent_before_usd: float = 0.0  # what earlier sessions of a resumed run spent
    error_rate_min_items: int = 20
    utilisation: float | None = None
    hardware_overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkItem:
    task: TaskSpec
    scorers: list[BoundScorer]
    case: Case
    sample: int = 0  # which of the task's repeats


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

    def summary(self) -> JudgeUsage:
        costs = [c for _, _, c in self.calls]
        return JudgeUsage(
            model=self.calls[0][0],
            calls=len(self.calls),
            input_tokens=sum(c.usage.input_tokens or 0 for _, c, _ in self.calls),
            output_tokens=sum(c.usage.output_tokens or 0 for _, c, _ in self.calls),
            cost_usd=None if any(c is None for c in costs) else sum(costs),
            latency_s=sum(c.timing.e2e_s for _, c, _ in self.calls),
        )


def load_work(suite: LoadedSuite, limit: int | None = None) -> list[tuple[TaskSpec, list[BoundScorer], list[Case]]]:
    """Every task with its bound scorers and (checked, sampled) cases."""
    return [(task, bind_task(task), load_cases(suite, ti, limit)) for ti, task in enumerate(suite.spec.tasks)]


def repeats_of(suite: LoadedSuite, task: TaskSpec) -> int:
    return task.repeats or suite.spec.defaults.repeats


def request_for(suite: LoadedSuite, task: TaskSpec, case: Case, sample: int = 0) -> ChatRequest:
    """The request a case sends: task settings over the suite's defaults. Each repeat has its own seed."""
    d = suite.spec.defaults
    sampling = Sampling(
        temperature=task.temperature if task.temperature is not None else d.temperature,
        max_tokens=task.max_tokens or d.max_tokens,
        seed=d.seed + sample if d.seed is not None else None,
        top_p=d.top_p,
        stop=tuple(d.stop),
    )
    return task_request(task, d.system, case.fields, sampling)


class Runner:
    def __init__(self, suite: LoadedSuite, store: RunStore, options: RunOptions, reporter: Reporter):
        self.suite, self.store, self.options, self.reporter = suite, store, options, reporter
        latest = store.latest_records()
        self.done = {k for k, r in latest.items() if r.error is None}
        # Answered and paid for, but the scoring failed: a resumed run scores them again without asking.
        self.answered = {k: r for k, r in latest.items() if r.error_kind == "scorer" and r.output is not None}
        self.cache: ResponseCache | None = None
        self.budget = Budget(options.max_cost_usd, options.spent_before_usd)
        self.results: list[ModelEntry] = []  # one per model started, in order; kept when the run aborts
        self.judges: dict[str, ModelClient] = {}
        self._judge_lock = asyncio.Lock()

    @property
    def spent_usd(self) -> float:
        return self.budget.spent

    @property
    def budget_hit(self) -> bool:
        return self.budget.hit

    def models(self) -> list[ModelSpec]:
        if not self.options.model_ids:
            return list(self.suite.spec.models)
        return [self.suite.model(m) for m in self.options.model_ids]

    def client(self, spec: ModelSpec) -> ModelClient:
        """A client for ``spec``, with the hardware it is billed on."""
        hardware = self.suite.spec.hardware_for(spec, self.options.hardware_overrides.get(spec.id))
        utilisation = self.options.utilisation or self.suite.spec.utilisation_for(spec) if hardware is not None else None
        if self.cache is None and self.options.cache:
            self.cache = ResponseCache()
        return ModelClient(
            spec, self.suite.dir, cache=self.cache if self.options.cache else None, budget=self.budget,
            notes=self.reporter, hardware=hardware, utilisation=utilisation, run_dir=self.store.path,
        )

    async def run(self) -> list[ModelEntry]:
        work = load_work(self.suite, self.options.limit)
        try:
            for spec in self.models():
                await self._run_model(spec, work)
        finally:
            await self.close()
        return self.results

    async def close(self) -> None:
        """Close what models share: the judges' clients and the response cache."""
        for judge in self.judges.values():
            await judge.close()
        if self.cache is not None:
            self.cache.close()

    def judge_entries(self) -> list[JudgeEntry]:
        return [JudgeEntry(id=j.spec.id, calls=j.entry.items, spent_usd=round(j.entry.spent_usd, 6), price=j.price) for j in self.judges.values()]

    # -- judges -----------------------------------------------------------------------------------

    async def judge_complete(
        self, model_id: str, request: ChatRequest, case_fields: dict[str, Any]
    ) -> tuple[Completion, float | None]:
        """One judge call through the same client as any model (cache, retries, clock, price, budget); kept apart from the candidate."""
        async with self._judge_lock:
            judge = self.judges.get(model_id)
            if judge is None:
                judge = self.client(self.suite.model(model_id))
                if not judge.check():
                    raise RuntimeError(f"judge '{model_id}' cannot run: {judge.entry.reason}")
                if not await judge.start():
                    raise RuntimeError(f"judge '{model_id}' {judge.entry.reason}")
                self.judges[model_id] = judge
        try:
            answer = await judge.answer(request, case_fields)
        except BudgetSpent:
            raise RuntimeError(f"judge '{model_id}' not asked: the budget (--max-cost {self.options.max_cost_usd}) is spent") from None
        if answer.completion is None:
            raise RuntimeError(f"judge '{model_id}' failed: {answer.error}")
        judge.entry.items += 1
        return answer.completion, answer.cost_usd

    # -- one model --------------------------------------------------------------------------------

    async def _run_model(self, spec: ModelSpec, work: list) -> ModelEntry:
        client = self.client(spec)
        entry = client.entry
        self.results.append(entry)  # before anything can raise, so that an aborted run still reports it
        todo = [
            WorkItem(task, scorers, case, sample)
            for task, scorers, cases in work
            for case in cases
            for sample in range(repeats_of(self.suite, task))
            if (task.name, case.id, spec.id, sample) not in self.done
        ]
        if client.check([task for task, _, _ in work]) and self.budget_hit:
            entry.status, entry.reason = "not run", f"the budget (--max-cost {self.options.max_cost_usd}) was spent before it"
        if entry.status == "pending" and not todo:
            entry.status, entry.reason = "ok", "nothing left to run"
        if entry.status == "pending" and self.options.max_cost_usd is not None and entry.billing == "per-token" and client.price is None:
            self.reporter.note(f"[{spec.id}] no known price: its spend is unknown and does not count toward --max-cost")
        if entry.status != "pending" or not await client.start():
            self.reporter.model_finished(spec.id, entry.status, entry.reason)
            return entry
        collector.started()  # what the start loaded is never scanned again while requests are timed
        self.reporter.model_started(spec.id, len(todo))
        try:
            await self.run_items(client, todo)
        finally:
            await self.close_client(client)
        if entry.status == "pending":
            entry.status = "ok"
            if self.budget_hit:
                entry.reason = f"stopped on budget (--max-cost {self.options.max_cost_usd})"
        # The progress line tells what this session's items say (the summary decides from every record of the run).
        self.reporter.model_finished(spec.id, model_status(entry.status, entry.items, entry.errors), entry.reason)
        return entry

    async def run_items(self, client: ModelClient, todo: list[WorkItem]) -> None:
        """Items through a started client's pool of workers; each record is stored as soon as it is final."""
        spec, entry = client.spec, client.entry
        items: Iterator[WorkItem] = iter(todo)
        aborted: list[str] = []

        async def worker() -> None:
            for item in items:
                if client.stop or self.budget_hit:
                    return
                try:
                    record = await self._run_item(client, item)
                except BudgetSpent:
                    self._budget_note()
                    return
                self.store.append(record)  # before accounting, which may stop the model
                self.reporter.item_done(spec.id, record)
                self._account(client, record, aborted)

        await asyncio.gather(*(worker() for _ in range(min(client.in_flight, len(todo)))))
        if aborted:
            # Raised once every worker has finished its item in flight, so that nothing finished is lost.
            self.reporter.model_finished(spec.id, entry.status, entry.reason)
            raise RunAborted(f"model '{spec.id}': {entry.reason}; finished items are saved")

    async def close_client(self, client: ModelClient) -> None:
        await client.close()
        self._keep_rendered_prompts(client)

    def _keep_rendered_prompts(self, client: ModelClient) -> None:
        """The first prompts exactly as a local model saw them, in the run folder: ``prompts/<model>.txt``."""
        samples = client.provider.rendered_samples()
        if samples:
            folder = self.store.path / "prompts"
            folder.mkdir(exist_ok=True)
            rule = "\n" + "-" * 72 + "\n"
            (folder / f"{client.spec.id}.txt").write_text(rule.join(samples) + "\n", encoding="utf-8")

    def _budget_note(self) -> None:
        if not getattr(self, "_budget_noted", False):
            self._budget_noted = True
            self.reporter.note(
                f"spent ${self.budget.spent:.4f} of --max-cost ${self.options.max_cost_usd}: "
                "no new requests will be sent (the next one could exceed it)"
            )

    def _account(self, client: ModelClient, record: ItemResult, aborted: list[str]) -> None:
        entry = client.entry
        entry.items += 1
        entry.errors += record.error is not None
        entry.cached += record.cached
        entry.output_tokens += 0 if record.cached else (record.output_tokens or 0)
        if record.structured_output is not None:
            # Per task: whether this model's answers were held to the schema, or the schema only asked for.
            entry.structured_output[record.task] = StructuredOutputUse(
                mode=record.structured_output, enforced=record.structured_output in StructuredMode.ENFORCED
            )
        if self.budget_hit:
            self._budget_note()
        rate = self.options.max_error_rate
        if rate is not None and not aborted and entry.items >= self.options.error_rate_min_items and entry.errors / entry.items > rate:
            client.fail(f"error rate {entry.errors}/{entry.items} exceeded --max-error-rate {rate}")
            aborted.append(entry.reason)

    # -- one item ---------------------------------------------------------------------------------

    async def _run_item(self, client: ModelClient, item: WorkItem) -> ItemResult:
        base: dict[str, Any] = {
            "task": item.task.name, "case_id": item.case.id, "model": client.spec.id, "sample": item.sample, "started_at": utc_now(),
        }
        if item.task.cluster_field:
            base["cluster"] = str(item.case.fields.get(item.task.cluster_field))
        try:
            request = request_for(self.suite, item.task, item.case, item.sample)
        except TemplateError as exc:
            return ItemResult(**base, error=str(exc), error_kind="template")
        previous = self.answered.get((item.task.name, item.case.id, client.spec.id, item.sample))
        if previous is not None:
            return await self.rescore(previous, item, request)
        answer = await client.answer(request, item.case.fields, item.sample)
        if answer.completion is None:
            return ItemResult(**base, **error_fields(answer))
        return await self._scored(base, item, request, answer)

    async def _scored(self, base: dict[str, Any], item: WorkItem, request: ChatRequest, answer: Any) -> ItemResult:
        fields = answer_fields(request, answer)
        scored = await self._score(item, request, answer.completion.text, fields["tool_calls"])
        return dataclasses.replace(ItemResult(**base, **fields), **scored)

    async def _score(self, item: WorkItem, request: ChatRequest, text: str, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Score one answer: the record fields that scoring sets (a scorer failure is an error, never a 0)."""
        args = (item.scorers, text, item.case.fields, item.task.pass_threshold)
        ctx = None
        out: dict[str, Any] = {"score": None, "passed": None, "scores": {}, "error": None, "error_kind": None, "judge": None}
        try:
            if any(s.blocking or s.needs_context for s in item.scorers):
                ctx = ScoringContext(self, request, item.case.fields)
                out["score"], out["passed"], out["scores"] = await combine_async(*args, ctx, tool_calls)
            else:
                out["score"], out["passed"], out["scores"] = combine(*args, tool_calls)
        except Exception as exc:  # noqa: BLE001 - a scorer failure is this item's error, never a silent 0
            out.update(error=f"scorer failed: {type(exc).__name__}: {exc}", error_kind="scorer")
        if ctx is not None and ctx.calls:
            out["judge"] = ctx.summary()  # the judge's tokens, cost and latency stay apart from the candidate's
        return out

    async def rescore(self, previous: ItemResult, item: WorkItem, request: ChatRequest) -> ItemResult:
        """An item answered before: score the stored answer again (judges excepted, no model is asked)."""
        scored = await self._score(item, request, previous.output or "", previous.tool_calls)
        return dataclasses.replace(previous, started_at=utc_now(), **scored)


def error_fields(answer: Any) -> dict[str, Any]:
    """The record fields of an item whose model gave no answer (after its retries): the last error and what it took."""
    error = answer.error
    return dict(error=str(error), error_kind=error.kind, attempts=answer.attempts, wall_s=answer.wall_s,
                prompt_sha256=answer.prompt_sha256)


def answer_fields(request: ChatRequest, answer: Any) -> dict[str, Any]:
    """The record fields of an answered item (output, tokens, cost, timing), scoring apart: a run and a sweep alike."""
    completion = answer.completion
    usage, timing = completion.usage, completion.timing
    fields: dict[str, Any] = dict(
        output=completion.text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        usage_source=usage.source,
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=answer.attempts,
        prompt_sha256=answer.prompt_sha256,
        wall_s=answer.wall_s,
        finish_reason=completion.finish_reason,
        tool_calls=completion.tool_calls_json(),
        structured_output=completion.structured_output
        or (StructuredMode.NOT_SENT if request.response_format is not None else None),
        notes=list(completion.notes) or None,
    )
    if not answer.cached:  # a replay has no latency to report
        fields.update(
            latency_s=timing.e2e_s,
            ttft_s=timing.ttft_s,
            thinking_s=timing.thinking_s,
            itl_s=timing.itl_s,
            tpot_s=tpot(timing, usage.output_tokens),
            output_tps=output_tps(timing, usage.output_tokens),
        )
    return fields
