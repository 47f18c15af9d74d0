"""Client-side rate limits: requests and tokens per minute, with at most a one-second burst."""

from __future__ import annotations

import asyncio
import time

from openbench.limits import RateLimiter


def _elapsed(limiter: RateLimiter, calls: int, tokens: int = 0) -> float:
    async def go() -> float:
        start = time.monotonic()
        for _ in range(calls):
            await limiter.acquire(tokens)
        return time.monotonic() - start

    return asyncio.run(go())


def test_rpm_spaces_requests_after_a_one_second_burst() -> None:
    # 240 rpm = 4/s: a burst of 4, then one every 0.25 s -> 8 calls take about 1 s.
    elapsed = _elapsed(RateLimiter(rpm=240), 8)
    assert 0.9 <= elapsed <= 1.6


def test_tpm_counts_tokens() -> None:
    # 6,000 tpm = 100 tokens/s: three 100-token requests -> the burst covers one, then 1 s each.
    elapsed = _elapsed(RateLimiter(tpm=6000), 3, tokens=100)
    assert 1.9 <= elapsed <= 2.6


def test_no_limits_never_waits() -> None:
    limiter = RateLimiter()
    assert _elapsed(limiter, 1000) < 0.2


def test_tpm_charges_a_request_larger_than_the_burst_in_full() -> None:
    # 6,000 tpm = 100 tokens/s: a 250-token request goes at once and leaves a debt of 150 tokens;
    # the next waits until the bucket is full again: 2.5 s, where charging one second's worth took 1 s.
    elapsed = _elapsed(RateLimiter(tpm=6000), 2, tokens=250)
    assert 2.4 <= elapsed <= 3.2


def test_pause_holds_every_request_until_the_vendor_window_resets() -> None:
    async def go() -> float:
        limiter = RateLimiter()  # no client-side limit: only the vendor's headers
        limiter.pause(0.3)
        start = time.monotonic()
        await limiter.acquire(10)
        return time.monotonic() - start

    assert 0.29 <= asyncio.run(go()) <= 0.6
