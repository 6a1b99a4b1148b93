"""Per-account throughput: a token bucket fed with the clock, no timers."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, bursts up to `burst` (default: one second's worth)."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._last = now

    def allow(self, now: float) -> bool:
        if self.rate <= 0:  # 0 = unlimited
            return True
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
