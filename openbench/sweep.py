"""``openbench sweep``: a self-hosted model's throughput and latency at increasing load, and its operating point.

The suite's own items are sent to one model at each concurrency level (a closed loop: each of
``concurrency`` workers sends its next request when its previous answer is in). Per level: requests/s,
output tokens/s, TTFT and E2E p50/p95/p99, errors and the quality of the answers. The operating point
is the level with the highest throughput that meets the latency target with no errors; there the
hardware's $/h divided by the measured throughput gives $ per 1M output tokens and $ per task.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from openbench.errors import OpenbenchError, RunError

SWEEP_FILE = "sweep.json"
DEFAULT_MAX_CONCURRENCY = 64
CPU_SATURATED = 0.9  # openbench's own CPU share of one core above which a level's figures may be ours, not the engine's
MAX_RATE_LEVEL_S = 3600.0  # a --rate level whose arrivals alone would take longer than this is refused before it starts
_CHECKED = {"extra": "forbid", "allow_inf_nan": False}  # how sweep.json is read back: no unknown keys, no NaN or inf


LoadAxis = Literal["concurrency", "batch size", "rate"]


@dataclass(frozen=True)
class SweepLevel:
    """One level's figures. ``concurrency`` is the level (closed loop), the batch size (a local model), or,
    under ``--rate``, the most requests that were in flight at once; ``rate_per_s`` is the offered rate there."""
    __pydantic_config__ = _CHECKED

    concurrency: int
    requests: int
    errors: int
    wall_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None
    e2e_p99_s: float | None
    quality: float | None
    client_cpu_share: float
    meets_target: bool
    rate_per_s: float | None = None
    arrivals_per_s: float | None = None  # the rate the measured requests really arrived at (Poisson: near rate_per_s)
    peak_in_flight: int = 0
    input_tokens_mean: float | None = None
    output_tokens_mean: float | None = None


@dataclass(frozen=True)
class OperatingPoint:
    __pydantic_config__ = _CHECKED

    concurrency: int
    requests_per_s: float
    output_tokens_per_s: float
    e2e_p95_s: float | None
    ttft_p95_s: float | None
    quality: float | None
    usd_per_hour: float | None
    usd_per_mtok_output: float | None
    usd_per_task: float | None
    rate_per_s: float | None = None
    input_tokens_mean: float | None = None
    output_tokens_mean: float | None = None
    usd_per_month: float | None = None  # the hardware rented all month
    tasks_per_month: float | None = None  # what it serves in that month at the operating point


@dataclass(frozen=True)
class ApiComparison:
    """An API model of the suite against the operating point: its $ per task on the sweep's token mix, its
    quality (from ``--against RUN``), and the monthly volume above which self-hosting is always cheaper."""
    __pydantic_config__ = _CHECKED

    model: str
    usd_per_task: float | None
    price_source: str | None
    quality: float | None
    break_even_tasks_per_month: float | None  # None: self-hosting never pays for itself against this price


@dataclass
class SweepResult:
    __pydantic_config__ = _CHECKED

    model: str
    suite: str
    slo_p95_s: float | None
    slo_ttft_p95_s: float | None
    usd_per_hour: float | None
    levels: list[SweepLevel] = field(default_factory=list)
    operating_point: OperatingPoint | None = None
    warnings: list[str] = field(default_factory=list)
    load_axis: LoadAxis = "concurrency"
    against: list[ApiComparison] = field(default_factory=list)
    interrupted: bool = False  # stopped (Ctrl-C, SIGTERM) before its last level: these are the levels measured

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> SweepResult:
        from pydantic import TypeAdapter, ValidationError

        path = folder / SWEEP_FILE if folder.is_dir() else folder
        try:
            result = TypeAdapter(cls).validate_json(path.read_bytes())
        except FileNotFoundError:
            raise RunError(f"{folder}: no {SWEEP_FILE} (expected a folder made by `openbench sweep`)") from None
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in exc.errors()[:3])
            raise RunError(f"{path}: not a sweep result ({where})") from None
        negative = next(_negatives(result), None)
        if negative is not None:
            raise RunError(f"{path}: not a sweep result ({negative} is negative)")
        return result

    def level_name(self, level: SweepLevel) -> str:
        """How a level is called in tables and charts: ``c=8``, ``batch 8`` or ``4 req/s``."""
        if self.load_axis == "rate" and level.rate_per_s is not None:
            return f"{level.rate_per_s:g} req/s"
        return f"batch {level.concurrency}" if self.load_axis == "batch size" else f"c={level.concurrency}"


def _negatives(node: Any, where: str = "") -> Any:
    """The dotted names of the negative numbers in a sweep result: every figure in it is a count, a rate, a time,
    a price or a score, none of which can be below zero."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _negatives(item, f"{where}.{i}")
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _negatives(getattr(node, name), f"{where}.{name}".lstrip("."))
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and node < 0:
        yield where


def parse_levels(text: str | None, option: str = "--concurrency") -> list[int] | None:
    """``--concurrency 1,2,4`` as a sorted list; None means doubling until the target breaks."""
    if text is None:
        return None
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise OpenbenchError(f"{option} expects whole numbers separated by commas, e.g. 1,2,4,8; got '{text}'") from None
    if not levels or levels[0] < 1:
        raise OpenbenchError(f"{option} levels must be at least 1; got '{text}'")
    return levels


def parse_rates(text: str) -> list[float]:
    """``--rate 0.5,1,2`` (requests/s) as a sorted list."""
    try:
        rates = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise OpenbenchError(f"--rate expects requests/s separated by commas, e.g. 0.5,1,2,4; got '{text}'") from None
    if not rates or not all(0 < r < float("inf") for r in rates):
        raise OpenbenchError(f"--rate levels must be positive requests/s; got '{text}'")
    return rates


def operating_point(levels: list[SweepLevel], usd_per_hour: float | None) -> OperatingPoint | None:
    """The level with the highest throughput that meets the target with no errors, priced by the hour."""
    from openbench.pricing.hardware import HOURS_PER_MONTH

    fit = [lv for lv in levels if lv.meets_target]
    if not fit:
        return None
    best = max(fit, key=lambda lv: (lv.output_tokens_per_s, lv.requests_per_s))
    per_mtok = per_task = per_month = None
    if usd_per_hour is not None:
        per_month = usd_per_hour * HOURS_PER_MONTH
        if best.output_tokens_per_s > 0:
            per_mtok = usd_per_hour / (best.output_tokens_per_s * 3600) * 1e6
        if best.requests_per_s > 0:
            per_task = usd_per_hour / (best.requests_per_s * 3600)
    return OperatingPoint(
        concurrency=best.concurrency, requests_per_s=best.requests_per_s, output_tokens_per_s=best.output_tokens_per_s,
        e2e_p95_s=best.e2e_p95_s, ttft_p95_s=best.ttft_p95_s, quality=best.quality, usd_per_hour=usd_per_hour,
        usd_per_mtok_output=per_mtok, usd_per_task=per_task, rate_per_s=best.rate_per_s,
        input_tokens_mean=best.input_tokens_mean, output_tokens_mean=best.output_tokens_mean, usd_per_month=per_month,
        tasks_per_month=best.requests_per_s * 3600 * HOURS_PER_MONTH,
    )


def break_even(point: OperatingPoint, api_usd_per_task: float | None) -> float | None:
    """Tasks a month above which the operating point's hardware is always cheaper than ``api_usd_per_task``."""
    from openbench.pricing.hardware import Hardware, break_even_tasks_per_month

    if point.usd_per_hour is None or not api_usd_per_task or point.requests_per_s <= 0:
        return None
    box = Hardware(name="operating point", accelerator="", count=1, usd_per_hour=point.usd_per_hour)
    return break_even_tasks_per_month(api_usd_per_task, box, 1.0 / point.requests_per_s)


def compare_with_apis(point: OperatingPoint | None, apis: list[tuple[str, Any]], quality: dict[str, float | None]) -> list[ApiComparison]:
    """Every per-token model's $ per task on the operating point's token mix (same input and output token counts)."""
    from openbench.pricing import cost
    from openbench.records import Usage

    if point is None or point.input_tokens_mean is None or point.output_tokens_mean is None:
        return []
    usage = Usage(input_tokens=round(point.input_tokens_mean), output_tokens=round(point.output_tokens_mean))
    rows = []
    for model_id, price in apis:
        per_task = cost(usage, price) if price is not None else None
        rows.append(ApiComparison(model=model_id, usd_per_task=per_task, price_source=price.source if price else None,
                                  quality=quality.get(model_id), break_even_tasks_per_month=break_even(point, per_task)))
    return rows


class Sweep:
    """One model driven at each level in turn; the engine (or weights) is started once for all levels."""

    def __init__(self, suite: Any, model_id: str, *, requests_per_level: int, warmup: int | None,
                 slo_p95_s: float | None, slo_ttft_p95_s: float | None, hardware: str | None, folder: Path, notes: Any,
                 seed: int = 0):
        from openbench.runner import load_work

        self.suite, self.spec = suite, suite.model(model_id)
        self.requests_per_level, self.warmup = requests_per_level, warmup
        for option, target in (("--slo-p95", slo_p95_s), ("--slo-ttft-p95", slo_ttft_p95_s)):
            if target is not None and not 0 < target < math.inf:
                raise OpenbenchError(f"{option} is a latency target in seconds, above 0 and finite; got {target:g}")
        self.slo_p95_s, self.slo_ttft_p95_s = slo_p95_s, slo_ttft_p95_s
        self.folder, self.notes = folder, notes
        self.rng = random.Random(seed)  # Poisson arrivals under --rate, the same on every run
        self.hardware = suite.spec.hardware_for(self.spec, hardware)
        self.items = [(task, scorers, case) for task, scorers, cases in load_work(suite) for case in cases]
        if not self.items:
            raise OpenbenchError("the suite has no items to send")
        # One fixed shuffle, so that a level of fewer requests than items still mixes the suite's tasks.
        random.Random(seed).shuffle(self.items)
        self.usd_per_hour = float(self.hardware.usd_per_hour * self.hardware.count) if self.hardware else None

    def api_models(self) -> list[tuple[str, Any]]:
        """The suite's models billed per token, with their prices (suite override over the catalogue)."""
        from openbench import pricing, registry

        out = []
        for spec in self.suite.spec.models:
            if spec.id != self.spec.id and registry.resolve("provider", spec.provider)(spec, self.suite.dir).billing() == "per-token":
                out.append((spec.id, pricing.resolve_price(spec.provider, spec.model, spec.price)))
        return out

    async def run(self, levels: list[int] | None, rates: list[float] | None = None,
                  against: dict[str, float | None] | None = None) -> SweepResult:
        from openbench.client import Budget, ModelClient

        client = ModelClient(self.spec, self.suite.dir, cache=None, budget=Budget(None), notes=self.notes, run_dir=self.folder)
        if client.entry.billing == "per-token":
            raise OpenbenchError(f"model '{self.spec.id}' is billed per token: a sweep measures self-hosted models")
        axis = client.provider.load_axis
        if rates is not None and axis != "concurrency":
            raise OpenbenchError(f"model '{self.spec.id}' is swept by {axis}, not by arrival rate: use --concurrency")
        self._check_load(levels, rates)
        if not client.check():
            raise OpenbenchError(f"model '{self.spec.id}' cannot run: {client.entry.reason}")
        try:
            self.folder.mkdir(parents=True, exist_ok=False)  # only once the model can run; an engine's log goes here
        except OSError as exc:
            raise OpenbenchError(f"--out {self.folder.parent}: cannot create the sweep folder there ({exc.strerror})") from None
        result = SweepResult(self.spec.id, str(self.suite.path), self.slo_p95_s, self.slo_ttft_p95_s, self.usd_per_hour,
                             load_axis="rate" if rates is not None else axis)
        steps: Any = rates if rates is not None else (levels or _doubling())
        started = False
        try:
            started = await client.start()
            if not started:
                raise OpenbenchError(f"model '{self.spec.id}' cannot run: {client.entry.reason}")
            await self._levels(client, result, steps, stop_when_broken=rates is None and levels is None)
        except (KeyboardInterrupt, asyncio.CancelledError):
            result.interrupted = True  # the levels measured so far are kept (none when stopped while the model loads)
            raise
        finally:
            if started or result.interrupted:
                await self._finish(client, result, against)
            elif not any(self.folder.iterdir()):
                self.folder.rmdir()  # a model that could not start leaves no empty sweep folder (an engine's log stays)
        return result

    async def _finish(self, client: Any, result: SweepResult, against: dict[str, float | None] | None) -> None:
        """The model closed, and what was measured written: engine.json and sweep.json."""
        await client.close()
        engine = client.entry.engine
        if engine is not None:
            (self.folder / "engine.json").write_text(engine.model_dump_json(indent=2) + "\n")
        result.operating_point = operating_point(result.levels, self.usd_per_hour)
        result.against = compare_with_apis(result.operating_point, self.api_models(), against or {})
        (self.folder / SWEEP_FILE).write_text(result.to_json())

    def _check_load(self, levels: list[int] | None, rates: list[float] | None) -> None:
        """Levels a sweep cannot measure as asked, refused before anything starts: a closed loop cannot hold more
        requests in flight than a level sends, and an open loop's arrivals must come within the hour."""
        n = self.requests_per_level
        if levels and levels[-1] > n:
            raise OpenbenchError(
                f"--concurrency {levels[-1]} is above --requests-per-level {n}: a level of {n} requests never has more "
                f"than {n} in flight; raise -n to at least {levels[-1]}")
        for rate in rates or []:
            arrivals = self._rate_warmup(rate) + n
            if arrivals / rate > MAX_RATE_LEVEL_S:
                raise OpenbenchError(
                    f"--rate {rate:g}: {arrivals} requests arriving at {rate:g}/s take about {arrivals / rate / 3600:,.1f} h, "
                    f"more than the {MAX_RATE_LEVEL_S / 3600:g} h a level may take; raise the rate or lower -n/--warmup")

    def _rate_warmup(self, rate: float) -> int:
        return max(1, round(rate)) if self.warmup is None else self.warmup

    async def _levels(self, client: Any, result: SweepResult, steps: Any, stop_when_broken: bool) -> None:
        rates = result.load_axis == "rate"
        for step in steps:
            level = await (self._open_level(client, step) if rates else self._level(client, int(step)))
            result.levels.append(level)
            self.notes.note(
                f"{result.level_name(level)}: {level.requests_per_s:.2f} req/s, {level.output_tokens_per_s:.1f} tok/s, "
                f"e2e p95 {_fmt(level.e2e_p95_s)} s, errors {level.errors}"
            )
            # A level where every request failed at once has no figures that openbench's CPU could have limited.
            answered = level.requests > level.errors
            if answered and level.client_cpu_share > CPU_SATURATED and not client.provider.in_process:
                result.warnings.append(
                    f"{result.level_name(level)}: openbench used {level.client_cpu_share:.0%} of a core; "
                    "the figures there may be openbench's own limit, not the engine's"
                )
            # Doubling stops where the next level would need more requests in flight than a level sends.
            last = step >= DEFAULT_MAX_CONCURRENCY or step * 2 > self.requests_per_level
            if stop_when_broken and (not level.meets_target or last):
                break

    async def _level(self, client: Any, concurrency: int) -> SweepLevel:
        """A closed loop: ``concurrency`` workers, each sending its next request when its answer is in."""
        await client.set_load(concurrency)
        warmup = concurrency if self.warmup is None else self.warmup
        await self._closed(client, self._warmup_items(), concurrency, warmup)  # excluded from the figures
        cpu0, t0 = time.process_time(), time.perf_counter()
        answers = await self._closed(client, itertools.cycle(self.items), concurrency, self.requests_per_level)
        wall = time.perf_counter() - t0
        return self._figures(f"c{concurrency}", answers, wall, time.process_time() - cpu0, concurrency=concurrency,
                             peak=concurrency)

    async def _open_level(self, client: Any, rate: float) -> SweepLevel:
        """An open loop: requests arrive as a Poisson process at ``rate``/s, each sent when it arrives, whatever is
        in flight. The warm-up arrivals come first in the same stream. The clock runs from the first measured
        arrival to the last measured answer, and throughput counts every answer in that window (warm-up ones
        too), so that an engine that cannot keep up shows its own rate, not the arrivals'."""
        await client.set_load(None)
        warmup = self._rate_warmup(rate)
        warming, measuring = self._warmup_items(), itertools.cycle(self.items)
        request_for = self._request_for()
        in_flight = peak = 0
        measured: list[tuple[Any, Any]] = []
        finished: list[tuple[float, int]] = []  # (time, output tokens) of every answer
        t_first = cpu0 = 0.0

        async def one(item: Any, keep: bool) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight) if keep else peak
            try:
                answer = await client.answer(request_for(item), item[2].fields)
            finally:
                in_flight -= 1
            done = answer.completion
            finished.append((time.perf_counter(), (done.usage.output_tokens or 0) if done is not None else -1))
            if keep:
                measured.append((item, answer))

        pending = []
        due = time.perf_counter()
        for n in range(warmup + self.requests_per_level):
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if n == warmup:
                t_first, cpu0 = time.perf_counter(), time.process_time()
            keep = n >= warmup
            pending.append(asyncio.ensure_future(one(next(measuring if keep else warming), keep)))
            due += self.rng.expovariate(rate)
        t_arrived = time.perf_counter()
        await asyncio.gather(*pending)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - t_first
        window = [tokens for at, tokens in finished if at >= t_first]
        served = (sum(1 for t in window if t >= 0), sum(t for t in window if t > 0))
        arrivals = (self.requests_per_level - 1) / (t_arrived - t_first) if self.requests_per_level > 1 and t_arrived > t_first else None
        return self._figures(f"r{rate:g}", measured, wall, cpu, concurrency=peak, peak=peak, rate=rate,
                             arrivals_per_s=arrivals, served=served)

    def _figures(self, name: str, answers: list[tuple[Any, Any]], wall: float, cpu: float, *, concurrency: int,
                 peak: int, rate: float | None = None, arrivals_per_s: float | None = None,
                 served: tuple[int, int] | None = None) -> SweepLevel:
        """A level's figures from its answers; its records go to ``level-NAME.jsonl``. ``served``: the answers and
        output tokens that throughput counts, when they are not these answers' own (an open loop's window)."""
        from openbench import stats
        from openbench.records import ItemResult
        from openbench.scorers.base import combine

        records, e2e, ttft, scores, inputs = [], [], [], [], []
        tokens = errors = 0
        for (task, scorers, case), answer in answers:
            completion = answer.completion
            if completion is None:
                errors += 1
                records.append(ItemResult(task=task.name, case_id=case.id, model=self.spec.id, error=str(answer.error),
                                          error_kind=answer.error.kind if answer.error else None))
                continue
            timing, usage = completion.timing, completion.usage
            tokens += usage.output_tokens or 0
            if usage.input_tokens is not None:
                inputs.append(usage.input_tokens)
            e2e.append(timing.e2e_s)
            if timing.ttft_s is not None:
                ttft.append(timing.ttft_s)
            try:
                score, passed, _ = combine(scorers, completion.text, case.fields, task.pass_threshold)
                scores.append(score)
            except Exception:  # noqa: BLE001 - a scorer that needs more (a judge) leaves quality unknown here
                score = passed = None
            records.append(ItemResult(
                task=task.name, case_id=case.id, model=self.spec.id, output=completion.text, score=score, passed=passed,
                latency_s=timing.e2e_s, ttft_s=timing.ttft_s, input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens, usage_source=usage.source, attempts=answer.attempts, wall_s=answer.wall_s,
            ))
        with open(self.folder / f"level-{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r.to_dict()) + "\n" for r in records)
        done = len(e2e)
        answered, produced = served if served is not None else (done, tokens)
        p = stats.percentile
        e2e_p95, ttft_p95 = p(e2e, 95), p(ttft, 95)
        meets = errors == 0 and done > 0
        if self.slo_p95_s is not None:
            meets = meets and e2e_p95 is not None and e2e_p95 <= self.slo_p95_s
        if self.slo_ttft_p95_s is not None:
            meets = meets and ttft_p95 is not None and ttft_p95 <= self.slo_ttft_p95_s
        return SweepLevel(
            concurrency=concurrency, requests=len(answers), errors=errors, wall_s=wall,
            requests_per_s=answered / wall if wall > 0 else 0.0, output_tokens_per_s=produced / wall if wall > 0 else 0.0,
            ttft_p50_s=p(ttft, 50), ttft_p95_s=ttft_p95, ttft_p99_s=p(ttft, 99),
            e2e_p50_s=p(e2e, 50), e2e_p95_s=e2e_p95, e2e_p99_s=p(e2e, 99),
            quality=sum(scores) / len(scores) if scores else None, client_cpu_share=cpu / wall if wall > 0 else 0.0,
            meets_target=meets, rate_per_s=rate, arrivals_per_s=arrivals_per_s, peak_in_flight=peak,
            input_tokens_mean=sum(inputs) / len(inputs) if inputs else None, output_tokens_mean=tokens / done if done else None,
        )

    def _warmup_items(self) -> Any:
        """Warm-up requests come from the end of the (shuffled) items, and every level measures from the start: each
        level measures the same items, which no warm-up has just sent (an engine's prefix cache would flatter them)."""
        return itertools.cycle(reversed(self.items))

    def _request_for(self) -> Any:
        from openbench.runner import request_for

        return lambda item: request_for(self.suite, item[0], item[2])

    async def _closed(self, client: Any, source: Any, concurrency: int, count: int) -> list[tuple[Any, Any]]:
        """``count`` requests with ``concurrency`` in flight (a closed loop); answers in completion order."""
        request_for = self._request_for()
        remaining = iter(range(count))
        out: list[tuple[Any, Any]] = []

        async def worker() -> None:
            for _ in remaining:
                item = next(source)
                out.append((item, await client.answer(request_for(item), item[2].fields)))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
        return out


def _doubling() -> Any:
    c = 1
    while True:
        yield c
        c *= 2


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def target_text(result: SweepResult) -> str:
    """The latency target in words: "e2e p95 <= 2 s, ttft p95 <= 0.5 s", or "no errors" when none was given."""
    target = []
    if result.slo_p95_s is not None:
        target.append(f"e2e p95 <= {result.slo_p95_s:g} s")
    if result.slo_ttft_p95_s is not None:
        target.append(f"ttft p95 <= {result.slo_ttft_p95_s:g} s")
    return ", ".join(target) or "no errors"


def is_operating_point(result: SweepResult, level: SweepLevel) -> bool:
    point = result.operating_point
    return point is not None and (level.concurrency, level.rate_per_s) == (point.concurrency, point.rate_per_s)


def operating_load(result: SweepResult) -> str:
    """Where the operating point is, in words: "concurrency 4", "batch size 8" or "2 req/s offered"; empty without one."""
    point = result.operating_point
    if point is None:
        return ""
    return f"{point.rate_per_s:g} req/s offered" if point.rate_per_s is not None else f"{result.load_axis} {point.concurrency}"


def level_columns(result: SweepResult) -> tuple[str, ...]:
    load = ("offered req/s", "peak in flight") if result.load_axis == "rate" else (result.load_axis,)
    return (*load, "req/s", "out tok/s", "ttft p50", "ttft p95", "e2e p50", "e2e p95", "e2e p99", "errors", "quality", "meets")


def level_cells(result: SweepResult, lv: SweepLevel) -> tuple[str, ...]:
    """One level as the sweep tables show it (terminal, HTML, Markdown), under ``level_columns``."""
    mark = "<- operating point" if is_operating_point(result, lv) else ("yes" if lv.meets_target else "no")
    load = (f"{lv.rate_per_s:g}", str(lv.peak_in_flight)) if result.load_axis == "rate" else (str(lv.concurrency),)
    return (*load, f"{lv.requests_per_s:.2f}", f"{lv.output_tokens_per_s:.1f}", _fmt(lv.ttft_p50_s, 3),
            _fmt(lv.ttft_p95_s, 3), _fmt(lv.e2e_p50_s), _fmt(lv.e2e_p95_s), _fmt(lv.e2e_p99_s), str(lv.errors),
            _fmt(lv.quality), mark)


def render_sweep(result: SweepResult) -> None:
    from rich.table import Table

    from openbench.report.table import console_for, fmt_usd, table_box

    console = console_for()
    table = Table(title=f"sweep of {result.model} by {result.load_axis} (target: {target_text(result)})", box=table_box())
    for name in level_columns(result):
        table.add_column(name, justify="right")
    for lv in result.levels:
        table.add_row(*level_cells(result, lv))
    console.print(table)
    point = result.operating_point
    if point is None:
        console.print("  no level met the target: no operating point", markup=False)
    else:
        price = (f"{fmt_usd(point.usd_per_mtok_output)} per 1M output tokens, {fmt_usd(point.usd_per_task)} per task "
                 f"at ${point.usd_per_hour:g}/h" if point.usd_per_hour is not None else "no hardware price: give --hardware PROFILE@USD_PER_HOUR")
        console.print(f"  operating point: {operating_load(result)}, {point.requests_per_s:.2f} req/s, "
                      f"{point.output_tokens_per_s:.1f} output tok/s, e2e p95 {_fmt(point.e2e_p95_s)} s: {price}", markup=False)
        if result.against:
            mix = f"{point.input_tokens_mean:.0f} input + {point.output_tokens_mean:.0f} output tokens per task"
            console.print(f"  against the suite's API models on the same token mix ({mix}):", markup=False)
        for row in result.against:
            quality = f", quality {_fmt(row.quality)} against {_fmt(point.quality)} here" if row.quality is not None else ""
            console.print(f"    {row.model}: {fmt_usd(row.usd_per_task)}/task{quality}; {verdict(row, point)}", markup=False)
    for warning in result.warnings:
        console.print(f"  warning: {warning}", markup=False)


def _verdict(volume: float | None, api_usd_per_task: float | None, capacity: float | None) -> str:
    if api_usd_per_task is None:
        return "no price known"
    if volume is None:
        return "self-hosting never pays for itself at this price"
    boxes = f" ({math.ceil(volume / capacity):,} boxes)" if capacity and volume > capacity else ""
    return f"self-hosting is cheaper above {volume:,.0f} tasks/month{boxes}"


def _tasks(count: float | None) -> str:
    return "-" if count is None else f"{count:,.0f}"


def verdict(row: ApiComparison, point: OperatingPoint | None) -> str:
    """An API model against the operating point, in words: from what monthly volume self-hosting is cheaper."""
    return _verdict(row.break_even_tasks_per_month, row.usd_per_task, point.tasks_per_month if point else None)


def compare_with_run(result: SweepResult, rows: list[Any]) -> list[ApiComparison]:
    """Every API-priced model of a run (its summary ``rows``) against the operating point: its measured $ per task,
    its quality and the break-even volume. Empty without a priced operating point."""
    from openbench.summary import ALL_TASKS

    point = result.operating_point
    if point is None or point.usd_per_task is None:
        return []
    return [
        ApiComparison(model=row.model, usd_per_task=row.cost_per_task_usd, price_source="measured in the run",
                      quality=row.quality_mean, break_even_tasks_per_month=break_even(point, row.cost_per_task_usd))
        for row in rows
        if row.task == ALL_TASKS and row.cost_basis == "api" and row.cost_per_task_usd
    ]


def render_against_apis(result: SweepResult, rows: list[Any]) -> None:
    """``openbench cost RUN --sweep DIR``: the operating point's $ per task against every API model of the run."""
    from openbench.report.table import console_for, fmt_usd

    console = console_for()
    point = result.operating_point
    if point is None or point.usd_per_task is None:
        console.print(f"  sweep of {result.model}: no operating point with a price (see its sweep.json)", markup=False)
        return
    console.print(
        f"\nAt the sweep's operating point, {result.model} ({operating_load(result)}, {point.requests_per_s:.2f} req/s, "
        f"e2e p95 {_fmt(point.e2e_p95_s)} s): {fmt_usd(point.usd_per_task)} per task, {fmt_usd(point.usd_per_mtok_output)} "
        f"per 1M output tokens; one box costs {fmt_usd(point.usd_per_month)}/month and serves up to {_tasks(point.tasks_per_month)} tasks/month.",
        markup=False,
    )
    for row in compare_with_run(result, rows):
        console.print(f"  vs {row.model} at {fmt_usd(row.usd_per_task)}/task: {verdict(row, point)}", markup=False)
