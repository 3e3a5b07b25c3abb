"""Shared set-up for the FlinkClient tests: the simulator on loopback port 0 and a client pointed at it.

A plain async context manager rather than fixtures, so each test file states what it runs against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from bot.config import Settings
from bot.flink.client import FlinkClient
from bot.flink.credentials import CredentialsProvider, StaticCredentials
from bot.flink.sim import Faults, Fleet, Simulator

AK, SECRET = "test-ak", "test-secret"
STS_AK, STS_SECRET, STS_TOKEN = "STS.test-ak", "sts-secret", "sts-token"
WS = "ws-demo"
NS = "default-namespace"


def fast_settings(base_url: str, **overrides: Any) -> Settings:
    """Settings with retry waits of milliseconds and a limiter that never gets in the way."""
    values: dict[str, Any] = {
        "endpoint": base_url,
        "max_retries": 3,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "request_timeout": 5.0,
        "max_concurrency": 8,
        "max_calls_per_second": 1000.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def sim_and_client(
    *,
    fleet: Fleet | None = None,
    faults: Faults | None = None,
    credentials: CredentialsProvider | None = None,
    middlewares: Iterable[Any] = (),
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[Simulator, FlinkClient]]:
    """A running simulator (known keys, one STS pair) and a client for it; both closed on exit."""
    sim = Simulator(
        fleet=fleet,
        access_keys={AK: SECRET, STS_AK: STS_SECRET},
        security_tokens={STS_AK: STS_TOKEN},
        faults=faults,
        seed=7,
    )
    for mw in middlewares:
        sim.app.middlewares.append(mw)
    base_url = await sim.start(host="127.0.0.1", port=0)
    client = FlinkClient(
        fast_settings(base_url, **settings), credentials or StaticCredentials(AK, SECRET), sleep=sleep
    )
    try:
        yield sim, client
    finally:
        await client.aclose()
        await sim.stop()


def deployment(sim: Simulator, name: str) -> dict[str, Any]:
    """The fleet summary entry of the deployment called `name`."""
    return next(d for d in sim.fleet_summary() if d["name"] == name)
