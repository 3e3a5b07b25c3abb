"""Replicas split a sweep, keep the checks they claimed, and take over a dead one's (issue 9).

Due targets are claimed a page at a time, so a second replica sweeping at the same moment finds
work left; a check's lease is renewed while it runs, so a slow check is not taken over; a replica
that dies leaves its checks due again one lease later. Two real bots (or a bot and a bare
claim) on one database (SQLite file and PostgreSQL) against the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from e2e import Clock, make_settings
from sqlalchemy import select
from test_watch_sweep_at_scale import NS, WS, fleet

from bot.flink.sim import Faults, Simulator
from bot.local import LocalStack
from bot.store.models import WatchTargetRow
from bot.store.watches import WatchStore

on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


class Bots:
    def __init__(self, sim: Simulator, db_url: str, now: Any) -> None:
        self.sim, self.db_url, self.now = sim, db_url, now
        self.stacks: list[LocalStack] = []

    async def start(self) -> LocalStack:
        stack = await LocalStack.start(
            make_settings(max_retries=0), sim=self.sim, database_url=self.db_url, now=self.now
        )
        self.stacks.append(stack)
        return stack

    async def watch_all(self, stack: LocalStack, *, interval: int, now: float) -> None:
        for d in self.sim.fleet_summary():
            await stack.store.watches.add_watch(
                team_id="T1",
                channel_id="C1",
                kind="deployment",
                workspace=WS,
                namespace=NS,
                deployment_id=d["deploymentId"],
                deployment_name=d["name"],
                min_risk="RISK_LEVEL_MID",
                interval_seconds=interval,
                created_by="U1",
                now=now,
            )

    def checks(self) -> int:
        return self.sim.calls["ListJobs"]  # every check starts with one

    async def until_checks(self, n: int) -> None:
        while self.checks() < n:  # noqa: ASYNC110 (the simulator only counts; nothing to wait on)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def bots(n: int, db_url: str, now: Any = None) -> AsyncIterator[Bots]:
    async with Simulator(fleet(n)) as sim:
        b = Bots(sim, db_url, now)
        try:
            yield b
        finally:
            for stack in reversed(b.stacks):
                await stack.aclose()


async def recorded(stack: LocalStack) -> int:
    """Targets whose check has been recorded (a job id is stored)."""
    watches = await stack.store.watches.list_watches("T1", "C1")
    targets = await stack.store.watches.targets_of([x.id for x in watches])
    return sum(t.job_id is not None for ts in targets.values() for t in ts)


async def test_two_replicas_split_one_sweep(db_url: str):
    n = 12
    clock = Clock()
    async with bots(n, db_url, clock) as b:
        a, c = await b.start(), await b.start()
        await b.watch_all(a, interval=300, now=clock().timestamp())
        for stack in (a, c):
            stack.wiring.sweeper.page = 2
            stack.wiring.sweeper.concurrency = 1
        b.sim.faults = Faults(latency_ms=50)

        first = asyncio.create_task(a.wiring.sweeper.sweep())
        await b.until_checks(1)  # A is under way
        ra, rc = await asyncio.gather(first, c.wiring.sweeper.sweep())

        # B found most of the sweep still unclaimed (A holds a page, the queue and one check)
        assert ra.checked > 0 and rc.checked > 0, (ra.checked, rc.checked)
        assert ra.checked + rc.checked == n
        assert b.checks() == n  # none twice
        assert await recorded(a) == n


async def test_a_renewed_lease_keeps_a_slow_check_from_running_twice(db_url: str):
    # Real time: the lease (1.5 s) runs out well before the one slow check (4 s) is answered.
    async with bots(1, db_url) as b:
        a, c = await b.start(), await b.start()
        for stack in (a, c):
            stack.store.watches.lease_seconds = 1.5
        await b.watch_all(a, interval=300, now=datetime.now(UTC).timestamp() - 1)
        b.sim.faults = Faults(latency_ms=4000)

        slow = asyncio.create_task(a.wiring.sweeper.sweep())
        await b.until_checks(1)
        other = 0
        while not slow.done():  # the other replica sweeps all along
            other += (await c.wiring.sweeper.sweep()).checked
            await asyncio.sleep(0.2)

        assert (await slow).checked == 1
        assert other == 0 and b.checks() == 1
        assert await recorded(a) == 1  # and A still held the lease when it recorded


async def test_a_dead_replicas_checks_are_taken_over_one_lease_later(db_url: str):
    n = 5
    clock = Clock()
    async with bots(n, db_url, clock) as b:
        survivor = await b.start()
        await b.watch_all(survivor, interval=600, now=clock().timestamp())
        # What a replica killed mid-sweep leaves behind: its claims, never recorded.
        dead = WatchStore(survivor.store.sessions, owner="dead-replica", lease_seconds=120)
        assert len(await dead.claim_due_targets(clock().timestamp(), 100)) == n

        clock.advance(seconds=60)
        assert (await survivor.wiring.sweeper.sweep()).checked == 0  # the lease still holds
        # one lease later, not one interval (600 s) later: no check is skipped
        clock.advance(seconds=61)
        assert (await survivor.wiring.sweeper.sweep()).checked == n
        assert b.checks() == n and await recorded(survivor) == n
        clock.advance(seconds=1)
        assert (await survivor.wiring.sweeper.sweep()).checked == 0  # next due one interval on
        clock.advance(seconds=600)
        assert (await survivor.wiring.sweeper.sweep()).checked == n
        assert b.checks() == 2 * n


@on_postgres
async def test_a_claim_skips_rows_another_replica_has_locked(db_url: str):
    n = 6
    clock = Clock()
    async with bots(n, db_url, clock) as b:
        a = await b.start()
        await b.watch_all(a, interval=300, now=clock().timestamp())
        other = WatchStore(a.store.sessions, owner="replica-b")
        t = WatchTargetRow.__table__
        # Replica A is in the middle of claiming the two oldest rows: locked, not yet committed.
        async with a.store.sessions.begin() as session:
            locked = set(
                (
                    await session.execute(
                        select(t.c.id).order_by(t.c.next_check_at, t.c.id).limit(2).with_for_update()
                    )
                ).scalars()
            )
            # B's claim does not wait for A's transaction (it would wait forever: A commits only
            # after B's answer); the timeout only turns such a wait into a failure.
            page = await asyncio.wait_for(other.claim_due_targets(clock().timestamp(), 3), 30)
            assert len(page) == 3 and not locked & {x.id for x in page}
