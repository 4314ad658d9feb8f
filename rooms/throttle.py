"""In-process token buckets: per-user message rate limits and typing throttles on one node."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBuckets:
    """``rate`` tokens per second up to ``burst``, one bucket per key; idle buckets are forgotten."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        horizon = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < horizon}
