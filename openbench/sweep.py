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
from pathlib import Path
from typing import Any

from openbench.errors import OpenbenchError
from openbench.sweepresult import SWEEP_FILE, SweepLevel, SweepResult, compare_with_apis, operating_point

DEFAULT_MAX_CONCURRENCY = 64
CPU_SATURATED = 0.9  # openbench's own CPU share of one core above which a level's figures may be ours, not the engine's
MAX_RATE_LEVEL_S = 3600.0  # a --rate level whose arrivals alone would take longer than this is refused before it starts


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
        self.result: SweepResult | None = None  # once the sweep folder exists; an interrupted sweep's levels so far

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
        result = self.result = SweepResult(self.spec.id, str(self.suite.path), self.slo_p95_s, self.slo_ttft_p95_s,
                                           self.usd_per_hour, load_axis="rate" if rates is not None else axis)
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
        """What was measured written (sweep.json, engine.json), then the model closed: an interrupt can leave the
        client in any state, and closing it must not lose the levels."""
        try:
            engine = client.entry.engine
            if engine is not None:
                (self.folder / "engine.json").write_text(engine.model_dump_json(indent=2) + "\n")
            result.operating_point = operating_point(result.levels, self.usd_per_hour)
            result.against = compare_with_apis(result.operating_point, self.api_models(), against or {})
            (self.folder / SWEEP_FILE).write_text(result.to_json())
        finally:
            await client.close()

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
                f"e2e p95 {'-' if level.e2e_p95_s is None else f'{level.e2e_p95_s:.2f}'} s, errors {level.errors}"
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
        measured: list[tuple[Any, Any, Any]] = []
        finished: list[tuple[float, int]] = []  # (time, output tokens) of every answer
        t_first = cpu0 = 0.0

        async def one(item: Any, keep: bool) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight) if keep else peak
            request = request_for(item)
            try:
                answer = await client.answer(request, item[2].fields)
            finally:
                in_flight -= 1
            done = answer.completion
            finished.append((time.perf_counter(), (done.usage.output_tokens or 0) if done is not None else -1))
            if keep:
                measured.append((item, request, answer))

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

    def _figures(self, name: str, answers: list[tuple[Any, Any, Any]], wall: float, cpu: float, *, concurrency: int,
                 peak: int, rate: float | None = None, arrivals_per_s: float | None = None,
                 served: tuple[int, int] | None = None) -> SweepLevel:
        """A level's figures from its answers; its records (as a run stores them) go to ``level-NAME.jsonl``.
        ``served``: the answers and output tokens that throughput counts, when they are not these answers' own
        (an open loop's window)."""
        from openbench import stats
        from openbench.records import ItemResult
        from openbench.runner import answer_fields, error_fields
        from openbench.scorers.base import combine

        records, e2e, ttft, scores, inputs = [], [], [], [], []
        tokens = errors = 0
        for (task, scorers, case), request, answer in answers:
            base = {"task": task.name, "case_id": case.id, "model": self.spec.id}
            completion = answer.completion
            if completion is None:
                errors += 1
                records.append(ItemResult(**base, **error_fields(answer)))
                continue
            fields = answer_fields(request, answer)
            timing, usage = completion.timing, completion.usage
            tokens += usage.output_tokens or 0
            if usage.input_tokens is not None:
                inputs.append(usage.input_tokens)
            e2e.append(timing.e2e_s)
            if timing.ttft_s is not None:
                ttft.append(timing.ttft_s)
            try:
                fields["score"], fields["passed"], fields["scores"] = combine(
                    scorers, completion.text, case.fields, task.pass_threshold, fields["tool_calls"])
                scores.append(fields["score"])
            except Exception:  # noqa: BLE001 - a scorer that needs more (a judge) leaves quality unknown here
                pass
            records.append(ItemResult(**base, **fields))
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

    async def _closed(self, client: Any, source: Any, concurrency: int, count: int) -> list[tuple[Any, Any, Any]]:
        """``count`` requests with ``concurrency`` in flight (a closed loop): (item, request, answer) in completion order."""
        request_for = self._request_for()
        remaining = iter(range(count))
        out: list[tuple[Any, Any, Any]] = []

        async def worker() -> None:
            for _ in remaining:
                item = next(source)
                request = request_for(item)
                out.append((item, request, await client.answer(request, item[2].fields)))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
        return out


def _doubling() -> Any:
    c = 1
    while True:
        yield c
        c *= 2
