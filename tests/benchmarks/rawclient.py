"""A minimal reference client: aiohttp plus hand-rolled SSE parsing for the OpenAI chat route.

It does as little per chunk as possible, so its timings are the floor that richer clients
(the SDKs, openbench's providers) are compared with. TTFT is send → first non-empty
content delta; E2E is send → end of the response body.

    python tests/benchmarks/rawclient.py -n 1000 -c 64            # spawns its own fake server
    python tests/benchmarks/rawclient.py --url http://127.0.0.1:8000 -n 200 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


def chat_url(url: str) -> str:
    """Accept a server root, a ``.../v1`` base URL or the full route."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return f"{url}/chat/completions"
    return f"{url}/v1/chat/completions"


async def stream_one(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    index: int = 0,
) -> dict[str, Any]:
    """Send one streaming request and time it; errors are returned, not raised."""
    result: dict[str, Any] = {
        "index": index,
        "ok": False,
        "status": None,
        "start": time.perf_counter(),
        "ttft_s": None,
        "e2e_s": None,
        "chunks": 0,
        "text": "",
        "usage": None,
        "done": False,
        "error": None,
    }
    start = result["start"]
    parts: list[str] = []
    try:
        async with session.post(url, json=payload) as response:
            result["status"] = response.status
            if response.status != 200:
                result["error"] = f"HTTP {response.status}: {(await response.text())[:200]}"
                result["e2e_s"] = time.perf_counter() - start
                return result
            async for raw_line in response.content:
                if not raw_line.startswith(b"data:"):
                    continue
                data = raw_line[5:].strip()
                if data == b"[DONE]":
                    result["done"] = True
                    continue
                chunk = json.loads(data)
                if chunk.get("usage"):
                    result["usage"] = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if result["ttft_s"] is None:
                            result["ttft_s"] = time.perf_counter() - start
                        parts.append(content)
                        result["chunks"] += 1
        result["e2e_s"] = time.perf_counter() - start
        result["ok"] = result["done"]
        if not result["done"]:
            result["error"] = "stream ended without [DONE]"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        result["e2e_s"] = time.perf_counter() - start
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["text"] = "".join(parts)
    return result


async def run_raw(
    url: str,
    n: int,
    concurrency: int,
    *,
    model: str = "fake-model",
    prompt: str = "Say hello.",
    max_tokens: int | None = None,
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Send ``n`` streaming chat requests with at most ``concurrency`` in flight; results in index order."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    target = chat_url(url)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    next_index = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in next_index:
            results[index] = await stream_one(session, target, payload, index)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, n))))
    return results


def summarize(results: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    ok = [r for r in results if r.get("ok")]
    ttfts = sorted(r["ttft_s"] for r in ok if r["ttft_s"] is not None)
    e2es = sorted(r["e2e_s"] for r in ok)

    def pct(values: list[float], q: float) -> float | None:
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "wall_s": wall_s,
        "ttft_mean_s": statistics.fmean(ttfts) if ttfts else None,
        "ttft_p50_s": pct(ttfts, 0.5),
        "ttft_p95_s": pct(ttfts, 0.95),
        "e2e_p50_s": pct(e2es, 0.5),
        "e2e_p95_s": pct(e2es, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Minimal aiohttp streaming client (reference timings).")
    parser.add_argument("--url", help="server root; without it a fake server is spawned in its own process")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--ttft", type=float, default=0.1, help="spawned server: TTFT in seconds")
    parser.add_argument("--per-token", type=float, default=0.01, help="spawned server: seconds per chunk")
    parser.add_argument("--tokens", type=int, default=20, help="spawned server: chunks per reply")
    args = parser.parse_args()

    def measure(url: str) -> dict[str, Any]:
        start = time.perf_counter()
        results = asyncio.run(run_raw(url, args.n, args.concurrency))
        return summarize(results, time.perf_counter() - start)

    if args.url:
        summary = measure(args.url)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from fakeserver import FakeServerProcess

        timing = ["--ttft", str(args.ttft), "--per-token", str(args.per_token), "--tokens", str(args.tokens)]
        with FakeServerProcess("--no-log", *timing) as server:
            summary = measure(server.url)
        rounds = -(-args.n // args.concurrency)
        summary["ideal_wall_s"] = rounds * (args.ttft + (args.tokens - 1) * args.per_token)
        summary["ideal_ttft_s"] = args.ttft
    for key, value in summary.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
