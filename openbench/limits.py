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
        now = monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self._buckets: list[tuple[_Bucket, bool]] = []
        if rpm:
            self._buckets.append((_Bucket(rpm), False))
        if tpm:
            self._buckets.append((_Bucket(tpm), True))
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        if not self._buckets:
            return
        async with self._lock:
            for bucket, by_tokens in self._buckets:
                amount = float(tokens) if by_tokens else 1.0
                while (delay := bucket.wait_for(amount)) > 0:
                    await asyncio.sleep(delay)
