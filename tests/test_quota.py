"""The API quota (FLINKDIAG_MAX_CALLS_PER_SECOND) holds in every one-second window, for one
process and for replicas sharing a PostgreSQL database; shares follow replicas joining, leaving
and dying. Calls are counted where the quota is enforced: at the simulator, as they arrive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from flink_helpers import AK, NS, SECRET, WS, fast_settings, sim_and_client

from bot.app import start_limiter
from bot.flink.client import FlinkClient
from bot.flink.credentials import StaticCredentials
from bot.flink.sim import Simulator
from bot.store import Store
from bot.store.quota import Share, next_cap, targets

Q = 40
LEASE = 3.0  # the shortest allowed: heartbeats every 0.15 s, a dead replica's share back in 3 s
on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


async def burst(client: FlinkClient, calls: int) -> None:
    """`calls` API calls at once (one ListDeployments each), as many callers at once."""
    await asyncio.gather(*(client.list_deployments(WS, NS) for _ in range(calls)))


async def eventually(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Wait for `check()`; the bound only keeps a broken build from hanging the suite."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- one process


async def test_one_process_never_sends_more_than_q_in_any_second() -> None:
    async with sim_and_client(max_calls_per_second=Q, max_concurrency=3 * Q) as (sim, client):
        await burst(client, int(2.5 * Q))
    assert sim.calls["ListDeployments"] == int(2.5 * Q)
    # Reached (the first Q leave together), never passed: the bucket this replaced let 2 Q through.
    assert sim.busiest_second.most == Q


async def test_a_quota_with_a_fraction_keeps_under_it() -> None:
    async with sim_and_client(max_calls_per_second=7.5, max_concurrency=20) as (sim, client):
        await burst(client, 15)
    assert sim.busiest_second.most == 7


async def test_on_sqlite_the_process_keeps_the_whole_quota(tmp_path) -> None:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}") as store:
        limiter = await start_limiter(fast_settings("http://127.0.0.1:1", max_calls_per_second=Q), store)
        assert limiter.cap == Q
        await limiter.aclose()
        assert await store.quota.shares() == []


# --------------------------------------------------------------------------- replicas


@asynccontextmanager
async def fleet_of_replicas(db_url: str) -> AsyncIterator[tuple[Simulator, Callable[[str], object]]]:
    """A simulator and a way to start replicas on `db_url`: each its own Store (engine) and client."""
    async with AsyncExitStack() as stack:
        sim = Simulator(access_keys={AK: SECRET})
        await sim.start()
        stack.push_async_callback(sim.stop)

        async def replica(name: str) -> FlinkClient:
            store = await Store.open(db_url)
            stack.push_async_callback(store.close)
            settings = fast_settings(
                sim.base_url, max_calls_per_second=Q, max_concurrency=3 * Q, quota_lease_seconds=LEASE
            )
            client = FlinkClient(
                settings,
                StaticCredentials(AK, SECRET),
                limiter=await start_limiter(settings, store, replica=name),
            )
            stack.push_async_callback(client.aclose)
            return client

        yield sim, replica


def cap(client: FlinkClient) -> int:
    return client.limiter_stats().cap


@on_postgres
async def test_two_replicas_together_never_send_more_than_q_in_any_second(db_url: str) -> None:
    async with fleet_of_replicas(db_url) as (sim, replica):
        a = await replica("replica-a")
        assert cap(a) == Q  # alone: the whole quota at once
        busy_a = asyncio.create_task(burst(a, 4 * Q))
        await eventually(lambda: sim.calls["ListDeployments"] >= Q, "replica a is sending")
        # b joins while a sends at the full quota: a must give up half before b sends anything.
        b = await replica("replica-b")
        await asyncio.gather(busy_a, burst(b, 2 * Q))
        assert sim.calls["ListDeployments"] == 6 * Q
        assert (cap(a), cap(b)) == (Q // 2, Q // 2)
    assert sim.busiest_second.most <= Q


@on_postgres
async def test_two_settled_replicas_fill_the_quota_together_and_no_more(db_url: str) -> None:
    async with fleet_of_replicas(db_url) as (sim, replica):
        a, b = await replica("replica-a"), await replica("replica-b")
        await eventually(lambda: cap(a) == cap(b) == Q // 2, "an even split")
        sim.busiest_second.reset()
        await asyncio.gather(burst(a, Q), burst(b, Q))
    # Each alone would send Q in its first second; together they send Q, half each.
    assert sim.busiest_second.most == Q


@on_postgres
async def test_a_joining_replica_takes_its_share_within_seconds(db_url: str) -> None:
    async with fleet_of_replicas(db_url) as (_sim, replica):
        a = await replica("replica-a")
        b = await replica("replica-b")
        assert cap(b) == 0  # a has not given anything up yet
        await eventually(lambda: cap(b) == Q // 2, "b holds half", within=5)
        assert cap(a) == Q // 2
        c = await replica("replica-c")
        await eventually(lambda: cap(c) > 0, "c holds a third", within=5)
        assert sorted([cap(a), cap(b), cap(c)]) == [13, 13, 14]


@on_postgres
async def test_a_replica_that_stops_heartbeating_gives_its_share_back_within_the_lease(
    db_url: str,
) -> None:
    async with fleet_of_replicas(db_url) as (_sim, replica):
        a, b = await replica("replica-a"), await replica("replica-b")
        await eventually(lambda: cap(a) == cap(b) == Q // 2, "an even split")
        await b._limiter.stop_heartbeat()  # as if killed: nothing is written, nothing given back
        await eventually(lambda: cap(a) == Q, "a holds the whole quota again", within=3 * LEASE)
        # Not before b's own limiter stopped it (one window before its lease ran out), so the two
        # never both sent under their old shares in one window.
        assert cap(b) == 0


@on_postgres
async def test_a_replica_that_leaves_gives_its_share_back(db_url: str) -> None:
    async with fleet_of_replicas(db_url) as (_sim, replica):
        a, b = await replica("replica-a"), await replica("replica-b")
        await eventually(lambda: cap(a) == cap(b) == Q // 2, "an even split")
        await b.aclose()
        assert cap(b) == 0
        await eventually(lambda: cap(a) == Q, "a holds the whole quota again", within=LEASE)


# --------------------------------------------------------------------------- the decision


def share(rid: str, cap: int, cap_at: float = 0.0, quota: int = Q) -> Share:
    return Share(rid, quota, cap, cap_at, heartbeat_at=100.0)


@pytest.mark.parametrize(
    ("me", "others", "expected", "why"),
    [
        (share("a", 0), [], Q, "alone: the whole quota at once"),
        (share("a", Q), [share("b", 0, cap_at=99.9)], Q // 2, "a replica joined: lower at once"),
        (share("b", 0), [share("a", Q // 2, cap_at=99.5)], 0, "a lowered less than a window ago"),
        (share("b", 0), [share("a", Q, cap_at=10)], 0, "a has not lowered yet"),
        (share("b", 0), [share("a", Q // 2, cap_at=98.0)], Q // 2, "a lowered a window ago: raise"),
        (share("a", 10), [share("b", 0, quota=10)], 5, "the smallest quota configured wins"),
    ],
)
def test_next_cap(me: Share, others: list[Share], expected: int, why: str) -> None:
    assert next_cap(me, others, now=100.0, window=1.02) == expected, why


def test_shares_add_up_to_the_quota() -> None:
    assert targets(["c", "a", "b"], 40) == {"a": 14, "b": 13, "c": 13}
    assert targets(["a", "b", "c"], 2) == {"a": 1, "b": 1, "c": 0}
