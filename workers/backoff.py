"""Retry delays: exponential with jitter, never sooner than the provider's Retry-After."""

from __future__ import annotations

import random

MAX_DELAY = 300.0


def retry_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    delay = min(MAX_DELAY, base * 2.0 ** max(0, attempt - 1)) * random.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
