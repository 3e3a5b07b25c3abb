"""Per-endpoint limits on concurrent calls and calls per second, shared by every call and retry."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from bot import metrics


@dataclass(frozen=True)
class LimiterStats:
    """What the endpoint limiter has seen; for tests and diagnostics."""

    max_concurrency: int
    max_calls_per_second: float
    in_flight: int
    peak_in_flight: int
    started: int


class EndpointLimiter:
    """Caps concurrent calls (a semaphore) and calls per second (a leaky bucket) for one endpoint."""

    def __init__(self, max_concurrency: int, max_calls_per_second: float) -> None:
        self.max_concurrency = max_concurrency
        self.max_calls_per_second = max_calls_per_second
        self._semaphore = asyncio.Semaphore(max_concurrency)
        # AsyncLimiter cannot hand out a whole token from a bucket smaller than one, so a rate
        # under 1/s becomes "1 per 1/rate seconds".
        capacity = max(1.0, max_calls_per_second)
        self._rate = AsyncLimiter(capacity, capacity / max_calls_per_second)
        self._in_flight = 0
        self._peak = 0
        self._started = 0

    async def __aenter__(self) -> EndpointLimiter:
        # Wait for a rate token before taking a concurrency slot, so a call held back by the rate
        # does not also hold a slot.
        waiting = time.perf_counter()
        await self._rate.acquire()
        await self._semaphore.acquire()
        metrics.LIMITER_WAIT.observe(time.perf_counter() - waiting)
        self._in_flight += 1
        self._started += 1
        self._peak = max(self._peak, self._in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._in_flight -= 1
        self._semaphore.release()

    def stats(self) -> LimiterStats:
        return LimiterStats(
            self.max_concurrency, self.max_calls_per_second, self._in_flight, self._peak, self._started
        )
