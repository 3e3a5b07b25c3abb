"""The per-endpoint limiter: concurrency is capped as the server sees it, calls are spaced by the
rate limit, and retries go through the same limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from flink_helpers import NS, WS, sim_and_client

from bot.flink.sim import Faults


class InFlight:
    """aiohttp middleware for the simulator's app: counts API requests being handled at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await handler(request)
        finally:
            self.now -= 1


async def test_server_never_sees_more_than_max_concurrency() -> None:
    counter = InFlight()
    async with sim_and_client(
        faults=Faults(latency_ms=40), middlewares=[counter.middleware], max_concurrency=2
    ) as (sim, client):
        results = await asyncio.gather(*(client.list_deployments(WS, NS) for _ in range(10)))
        stats = client.limiter_stats()
    assert all(len(r) == 8 for r in results)
    assert sim.calls["ListDeployments"] == 10
    assert counter.peak == 2  # reached, never passed
    assert (stats.peak_in_flight, stats.in_flight, stats.started) == (2, 0, 10)


async def test_without_a_tight_cap_calls_do_overlap() -> None:
    # The counter above can see overlap at all: otherwise "peak == 2" would prove nothing.
    counter = InFlight()
    async with sim_and_client(
        faults=Faults(latency_ms=40), middlewares=[counter.middleware], max_concurrency=8
    ) as (_sim, client):
        await asyncio.gather(*(client.list_deployments(WS, NS) for _ in range(6)))
    assert counter.peak > 2


async def test_rate_limit_spaces_calls() -> None:
    async with sim_and_client(max_calls_per_second=5.0, max_concurrency=10) as (sim, client):
        started = time.monotonic()
        await asyncio.gather(*(client.list_deployments(WS, NS) for _ in range(10)))
        elapsed = time.monotonic() - started
    assert sim.calls["ListDeployments"] == 10
    # A bucket of 5 lets the first 5 through at once; the other 5 drip at 5/s, so ~1 s in all.
    # Only a lower bound (with margin): a slow machine can only make it longer.
    assert elapsed >= 0.8


async def test_retries_go_through_the_limiter() -> None:
    faults = Faults(fail_next=3, error_kinds=["server_error"])
    async with sim_and_client(faults=faults) as (sim, client):
        await client.list_deployments(WS, NS)
        assert client.limiter_stats().started == 4
    assert sim.calls["ListDeployments"] == 4


async def test_rate_under_one_per_second_is_allowed() -> None:
    async with sim_and_client(max_calls_per_second=0.5) as (_sim, client):
        assert len(await client.list_deployments(WS, NS)) == 8
