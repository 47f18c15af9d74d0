"""Client-side rate limits (requests and tokens per minute) as token buckets."""

from __future__ import annotations

import asyncio
from time import monotonic


class _Bucket:
    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        # A one-second burst at most: a vendor's per-minute limit is often enforced in shorter windows.
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = monotonic()

    def wait_for(self, amount: float) -> float:
        """0 once ``amount`` is charged, else how long to wait before asking again.

        A request larger than the burst goes once the bucket is full, and is charged whole:
        the level goes below zero, and the requests after it wait until that debt is repaid.
        """
        now = monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        needed = min(amount, self.capacity)
        if self.level >= needed:
            self.level -= amount
            return 0.0
        return (needed - self.level) / self.rate


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self._buckets: list[tuple[_Bucket, bool]] = []
        if rpm:
            self._buckets.append((_Bucket(rpm), False))
        if tpm:
            self._buckets.append((_Bucket(tpm), True))
        self._lock = asyncio.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the vendor's rate-limit headers said its window is spent)."""
        self._resume_at = max(self._resume_at, monotonic() + seconds)

    async def acquire(self, tokens: int = 0) -> None:
        while (delay := self._resume_at - monotonic()) > 0:
            await asyncio.sleep(delay)
        if not self._buckets:
            return
        async with self._lock:
            for bucket, by_tokens in self._buckets:
                amount = float(tokens) if by_tokens else 1.0
                while (delay := bucket.wait_for(amount)) > 0:
                    await asyncio.sleep(delay)
