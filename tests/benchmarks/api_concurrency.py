"""How truthfully openbench times streamed API requests under concurrency, against a minimal client.

A fake server in its own process (TTFT 100 ms, 10 ms per token, 10-token answers) records when it
received each request and when it wrote the first content. N streamed requests go through:

  * raw          tests/benchmarks/rawclient.py (aiohttp, hand-parsed SSE): the reference floor;
  * compatible   openbench's real path: a suite with an ``openai-compatible`` model, run by the Runner;
  * openai       the same with the ``openai`` provider;
  * anthropic    the same with the ``anthropic`` provider (Messages API);
  * cli-openai, cli-anthropic, cli-compatible: a whole ``openbench run SUITE`` process per measurement.

For each concurrency it prints the request phase as the server saw it (first request received to
last byte sent) against the ideal (N/C × per-request time) and against the raw client in the same
round, each request's client TTFT (and E2E) minus the server's truth, matched by a request id that
the prompt carries, the client's CPU per request, and for ``cli-*`` the whole process's wall time
and the part of it outside the request phase (start-up, warm-up, summary, teardown). Both
processes read CLOCK_MONOTONIC (perf_counter on Linux). Each configuration runs ``--repeat`` times,
interleaved (one round runs every client once), and the medians are printed, with the machine's
load before and after.

    python tests/benchmarks/api_concurrency.py                         # ~4 minutes
    python tests/benchmarks/api_concurrency.py --n 200 --concurrency 64 --clients raw,compatible --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # fakeserver (tests/), rawclient (tests/benchmarks/)

PROMPT = "[{{ id }}] Say hello."
CLIENTS = ("raw", "compatible", "openai", "anthropic", "cli-compatible", "cli-openai", "cli-anthropic")
PROVIDERS = {"compatible": "openai-compatible", "openai": "openai", "anthropic": "anthropic"}


def request_id(text: str) -> str:
    return text.split("]", 1)[0].lstrip("[")


# -- the server, in a child process ------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Child mode: serve; on each "dump" line from stdin print {request id: [ttft_s, e2e_s, received_at, first_content_at]}."""
    from fakeserver import FakeServer, last_user_text

    server = FakeServer(ttft_s=args.ttft, per_token_s=args.per_token, tokens=args.tokens, backlog=4096)
    with server:
        print(f"listening {server.url}", flush=True)
        for line in sys.stdin:
            if line.strip() != "dump":
                continue
            server.wait_idle(10)
            log, server.log = server.log, []
            truth = {
                request_id(last_user_text(r.body)): [r.ttft_s, r.e2e_s, r.received_at, r.first_content_at]
                for r in log
                if r.api is not None
            }
            print(json.dumps(truth), flush=True)


class ServerProcess:
    def __init__(self, args: argparse.Namespace):
        timing = ["--ttft", str(args.ttft), "--per-token", str(args.per_token), "--tokens", str(args.tokens)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", *timing], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.close()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split()[-1]

    def truth(self) -> dict[str, list[float | None]]:
        """The server's timings of every request since the last call, by request id."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the clients ---------------------------------------------------------------------------------------


@dataclass
class Measured:
    wall_s: float
    timings: dict[str, tuple[float | None, float | None]]  # request id -> (ttft_s, e2e_s)
    errors: int
    cpu_s: float = 0.0  # the client's CPU time (the server runs in another process)
    process_s: float | None = None  # a whole ``openbench run`` process, start to exit


async def _raw(url: str, n: int, concurrency: int) -> Measured:
    import aiohttp
    from rawclient import chat_url, stream_one

    ids = iter(range(n))
    results: list[dict[str, Any]] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in ids:
            payload = {
                "model": "fake-model",
                "messages": [{"role": "user", "content": f"[r{i}] Say hello."}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            results.append(await stream_one(session, chat_url(url), payload, i))

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, n))))
    wall = time.perf_counter() - started
    timings = {f"r{r['index']}": (r["ttft_s"], r["e2e_s"]) for r in results if r["ok"]}
    return Measured(wall, timings, n - len(timings))


class _Silent:
    def model_started(self, model_id: str, total: int) -> None: ...
    def item_done(self, model_id: str, record: Any) -> None: ...
    def model_finished(self, model_id: str, status: str, reason: str | None) -> None: ...
    def note(self, message: str) -> None: ...


def _write_suite(url: str, provider: str, n: int, concurrency: int, workdir: Path) -> tuple[str, Path]:
    name = f"{provider}-c{concurrency}-n{n}"
    model: dict[str, Any] = {"id": name, "provider": provider, "model": "fake-model", "concurrency": concurrency,
                             "cache": False, "max_retries": 0, "timeout_s": 60}
    if provider == "openai-compatible":
        model["base_url"] = f"{url}/v1"
    elif provider == "openai":
        model |= {"base_url": f"{url}/v1", "api_key_env": "BENCH_KEY"}
    else:
        model |= {"base_url": url, "api_key_env": "BENCH_KEY"}
    os.environ["BENCH_KEY"] = "sk-bench"
    (workdir / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(n)))
    suite_spec = {
        "name": name,
        "models": [model],
        "tasks": [{"name": "hello", "prompt": PROMPT, "data": {"file": f"{name}.jsonl"},
                   "scorers": [{"type": "contains", "expected": "tok9"}]}],
    }
    suite_path = workdir / f"{name}.yaml"
    suite_path.write_text(json.dumps(suite_spec))
    return name, suite_path


def _openbench(url: str, provider: str, n: int, concurrency: int, workdir: Path) -> Measured:
    """openbench's real path: suite file → load_suite → Runner (cache off) → records.jsonl."""
    from openbench.runner import RunOptions, Runner
    from openbench.store import RunStore
    from openbench.suite import load_suite

    name, suite_path = _write_suite(url, provider, n, concurrency, workdir)
    store = RunStore.create(workdir / "runs", name)
    runner = Runner(load_suite(suite_path), store, RunOptions(cache=False), _Silent())
    started = time.perf_counter()
    asyncio.run(runner.run())
    wall = time.perf_counter() - started
    store.close()
    return _from_records(store, wall)


def _from_records(store: Any, wall: float) -> Measured:
    timings, errors = {}, 0
    for record in store.iter_records():
        if record.error is not None:
            errors += 1
        else:
            timings[record.case_id] = (record.ttft_s, record.latency_s)
    return Measured(wall, timings, errors)


def _cli(url: str, provider: str, n: int, concurrency: int, workdir: Path) -> Measured:
    """A whole ``openbench run SUITE --no-cache`` process, as a user starts it."""
    import resource

    from openbench.store import RunStore

    name, suite_path = _write_suite(url, provider, n, concurrency, workdir)
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))  # one run folder per measurement
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "openbench", "run", str(suite_path), "--no-cache", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"openbench run failed ({done.returncode}): {done.stderr[-2000:]}")
    (run_dir,) = out.iterdir()
    measured = _from_records(RunStore.open(run_dir), wall)
    measured.process_s = wall
    measured.cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return measured


def measure(client: str, server: ServerProcess, n: int, concurrency: int, workdir: Path) -> Measured:
    server.truth()  # forget earlier requests (the providers' warm-up included)
    cpu = time.process_time()
    if client == "raw":
        measured = asyncio.run(_raw(server.url, n, concurrency))
    elif client.startswith("cli-"):
        return _cli(server.url, PROVIDERS[client[4:]], n, concurrency, workdir)
    else:
        measured = _openbench(server.url, PROVIDERS[client], n, concurrency, workdir)
    measured.cpu_s = time.process_time() - cpu
    return measured


# -- the report ----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    """One measurement's figures, judged against the server's truth."""

    phase_s: float  # the server's first request received to its last byte sent
    ttft_p50: float
    ttft_p95: float
    e2e_p50: float
    e2e_p95: float
    cpu_ms: float
    process_s: float | None
    errors: int


def figures(m: Measured, truth: dict[str, list[float | None]], n: int) -> Figures:
    ttft_err = [(m.timings[k][0] - t[0]) * 1e3 for k, t in truth.items() if k in m.timings and m.timings[k][0] is not None and t[0] is not None]
    e2e_err = [(m.timings[k][1] - t[1]) * 1e3 for k, t in truth.items() if k in m.timings and m.timings[k][1] is not None and t[1] is not None]
    received = [t[2] for t in truth.values() if t[2] is not None]
    ended = [t[2] + t[1] for t in truth.values() if t[2] is not None and t[1] is not None]
    nan = float("nan")
    return Figures(
        phase_s=max(ended) - min(received) if ended else nan,
        ttft_p50=pct(ttft_err, 0.5) if ttft_err else nan,
        ttft_p95=pct(ttft_err, 0.95) if ttft_err else nan,
        e2e_p50=pct(e2e_err, 0.5) if e2e_err else nan,
        e2e_p95=pct(e2e_err, 0.95) if e2e_err else nan,
        cpu_ms=m.cpu_s / n * 1e3,
        process_s=m.process_s,
        errors=m.errors + n - len(ttft_err),
    )


def median_row(client: str, c: int, n: int, runs: list[Figures], raw_phase: float | None, ideal: float) -> str:
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    phase = med([f.phase_s for f in runs])
    process = [f.process_s for f in runs if f.process_s is not None]
    outside = [f.process_s - f.phase_s for f in runs if f.process_s is not None]
    vs_raw = f"{phase / raw_phase:6.2f}" if raw_phase else "     -"
    cli = f"{med(process):8.2f} {med(outside):8.2f}" if process else "       -        -"
    return (f"{client:<15} {c:>4} {n:>5} {phase:7.2f} {phase / ideal:6.2f} {vs_raw}   "
            f"{med([f.ttft_p50 for f in runs]):+7.1f} {med([f.ttft_p95 for f in runs]):+7.1f}   "
            f"{med([f.e2e_p50 for f in runs]):+7.1f} {med([f.e2e_p95 for f in runs]):+7.1f} "
            f"{med([f.cpu_ms for f in runs]):8.2f} {cli} {max(f.errors for f in runs):>6}")


HEADER = ("client            C     N phase s ×ideal   ×raw   TTFT err ms p50    p95   E2E err ms p50    p95"
          "  CPU ms/req process s outside s errors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="requests per concurrency level (default 1000)")
    parser.add_argument("--serial-n", type=int, default=30, help="requests at concurrency 1 (default 30; 1000 would take 190 s)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels (default 1,16,64)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated subset of {','.join(CLIENTS)}")
    parser.add_argument("--ttft", type=float, default=0.1)
    parser.add_argument("--per-token", type=float, default=0.01)
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per level; each round runs every client once (default 3)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown client(s) {sorted(unknown)}; known: {', '.join(CLIENTS)}")
    levels = [int(c) for c in args.concurrency.split(",")]
    per_request_s = args.ttft + (args.tokens - 1) * args.per_token
    os.environ.setdefault("OPENBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="openbench-bench-cache-"))
    print(f"fake server: TTFT {args.ttft * 1e3:.0f} ms, {args.per_token * 1e3:.0f} ms/token, {args.tokens} tokens "
          f"({per_request_s * 1e3:.0f} ms per request); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("errors: client minus server truth per request (positive = the client reports more than happened)\n")
    print(HEADER)
    # Imported before any clock starts: wall times measure requests, not imports.
    import aiohttp  # noqa: F401
    import anthropic  # noqa: F401
    import openai  # noqa: F401

    import openbench.runner  # noqa: F401

    server = ServerProcess(args)
    try:
        with tempfile.TemporaryDirectory(prefix="openbench-bench-") as tmp:
            for c in levels:
                n = args.n if c > 1 else min(args.n, args.serial_n)
                ideal = n / c * per_request_s
                runs: dict[str, list[Figures]] = {client: [] for client in clients}
                for _ in range(args.repeat):  # interleaved: a busy spell hits every client alike
                    for client in clients:
                        m = measure(client, server, n, c, Path(tmp))
                        runs[client].append(figures(m, server.truth(), n))
                raw_phase = statistics.median(f.phase_s for f in runs["raw"]) if "raw" in runs else None
                for client in clients:
                    print(median_row(client, c, n, runs[client], raw_phase, ideal), flush=True)
                print()
    finally:
        server.close()
    print(f"medians of {args.repeat} interleaved rounds; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
