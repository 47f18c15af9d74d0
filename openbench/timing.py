"""One clock per attempt, shared by every provider so that the numbers mean the same everywhere.

Definitions (also in the README):
  TTFT  send → first non-empty content delta (visible text: a reasoning model's thinking is not content)
  thinking  send → first reasoning delta, where the stream shows one
  E2E   send → last byte
  ITL   mean gap between content chunks
  TPOT  (E2E − TTFT) / (output tokens − 1)
"""

from __future__ import annotations

from time import perf_counter

from openbench.records import Timing


class AttemptClock:
    """Timestamps of one attempt. ``start`` is when the request is sent (or generation begins)."""

    __slots__ = ("start", "first", "last", "chunks", "thinking")

    def __init__(self, start: float | None = None):
        self.start = perf_counter() if start is None else start
        self.first: float | None = None
        self.last: float | None = None
        self.chunks = 0
        self.thinking: float | None = None

    def restart(self, at: float | None = None) -> None:
        """Set the send time, e.g. when a queued local request actually starts generating."""
        self.start = perf_counter() if at is None else at

    def chunk(self, at: float | None = None) -> None:
        """A non-empty content delta arrived."""
        now = perf_counter() if at is None else at
        if self.first is None:
            self.first = now
        self.last = now
        self.chunks += 1

    def thought(self, at: float | None = None) -> None:
        """A reasoning (thinking) delta arrived: only the first one is kept."""
        if self.thinking is None:
            self.thinking = perf_counter() if at is None else at

    def finish(self, at: float | None = None) -> Timing:
        end = perf_counter() if at is None else at
        ttft = None if self.first is None else self.first - self.start
        itl = None
        if self.chunks > 1 and self.first is not None and self.last is not None:
            itl = (self.last - self.first) / (self.chunks - 1)
        thinking = None if self.thinking is None else self.thinking - self.start
        return Timing(e2e_s=end - self.start, ttft_s=ttft, itl_s=itl, chunks=self.chunks, thinking_s=thinking)


def tpot(timing: Timing, output_tokens: int | None) -> float | None:
    if timing.ttft_s is None or not output_tokens or output_tokens < 2:
        return None
    return (timing.e2e_s - timing.ttft_s) / (output_tokens - 1)


def output_tps(timing: Timing, output_tokens: int | None) -> float | None:
    if not output_tokens or timing.e2e_s <= 0:
        return None
    return output_tokens / timing.e2e_s
