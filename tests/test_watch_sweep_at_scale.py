"""A sweep over many targets: records are written in batches, few checks run at once, and neither
changes what is checked or stored (lease semantics included). Timings live in bench/sweep.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e import Clock, make_settings

from bot.flink.sim import Fleet, Simulator
from bot.local import LocalStack
from bot.store import Store
from bot.store.watches import WatchStore
from bot.watch.model import CheckRecord
from bot.watch.policy import TargetState
from bot.watch.recorder import GroupRecorder

WS, NS = "ws-scale", "ns-scale"


async def add_watches(store: Store, n: int, now: float) -> None:
    for i in range(n):
        await store.watches.add_watch(
            team_id="T1",
            channel_id="C1",
            kind="deployment",
            workspace=WS,
            namespace=NS,
            deployment_id=f"dep-{i}",
            deployment_name=f"job-{i}",
            min_risk="RISK_LEVEL_MID",
            interval_seconds=60,
            created_by="U1",
            now=now,
        )


def record(target_id: int, job_id: str = "job-new") -> CheckRecord:
    return CheckRecord(
        target_id=target_id,
        state=TargetState(last_kind="risk", last_observed_risk="RISK_LEVEL_LOW"),
        anchor_ts=None,
        job_id=job_id,
        top_symptom=None,
    )


async def test_records_land_together_only_where_the_replica_still_holds_the_lease(store: Store):
    await add_watches(store, 6, now=1000.0)
    a = WatchStore(store.sessions, owner="replica-a", lease_seconds=10)
    b = WatchStore(store.sessions, owner="replica-b", lease_seconds=10)
    claimed = await a.claim_due_targets(1000.0, 100)
    assert len(claimed) == 6
    # A's checks outlive their lease and their interval: B takes two of them over.
    taken_over = {t.id for t in await b.claim_due_targets(1070.0, 2)}
    assert len(taken_over) == 2
    now = datetime.now(UTC)
    expired_snooze, live_snooze = sorted(taken_over)[0], sorted({t.id for t in claimed} - taken_over)[0]
    await store.watches.snooze(expired_snooze, now - timedelta(minutes=1))
    await store.watches.snooze(live_snooze, now + timedelta(hours=1))

    landed = await a.record_checks([record(t.id) for t in claimed])

    assert landed == {t.id for t in claimed} - taken_over
    for t in claimed:
        after = await store.watches.target(t.id)
        assert after is not None
        if t.id in landed:
            assert (after.job_id, after.state.last_kind) == ("job-new", "risk")
        else:  # B's check is still running: A's late answer must not overwrite anything
            assert (after.job_id, after.state.last_kind) == (None, None)
    # An expired snooze is cleared by whoever records, a running one is kept (as with one record).
    assert (await store.watches.target(expired_snooze)).state.snoozed_until is None  # type: ignore[union-attr]
    assert (await store.watches.target(live_snooze)).state.snoozed_until is not None  # type: ignore[union-attr]
    # B's own record still lands
    own = CheckRecord(
        target_id=expired_snooze, state=TargetState(), anchor_ts=None, job_id="job-b", top_symptom=None
    )
    assert await b.record_checks([own]) == {expired_snooze}


class RefusingStore:
    """The real store, except that it refuses every write that includes one target's record."""

    def __init__(self, inner: WatchStore, refused: int) -> None:
        self.inner, self.refused = inner, refused
        self.batches: list[int] = []

    async def record_checks(self, records: Sequence[CheckRecord]) -> set[int]:
        self.batches.append(len(records))
        if any(r.target_id == self.refused for r in records):
            raise RuntimeError("the database refused this row")
        return await self.inner.record_checks(records)


async def test_one_record_the_store_refuses_does_not_fail_the_others(store: Store):
    await add_watches(store, 5, now=1000.0)
    ids = [t.id for t in await store.watches.claim_due_targets(1000.0, 100)]
    repo = RefusingStore(store.watches, refused=ids[2])
    recorder = GroupRecorder(repo, linger=5.0, max_batch=100)  # type: ignore[arg-type]

    async def check(target_id: int) -> bool:
        with recorder.running():
            await asyncio.sleep(0)
            return await recorder.record(record(target_id))

    results = await asyncio.gather(*(check(i) for i in ids), return_exceptions=True)

    assert results[:2] == [True, True] and results[3:] == [True, True]
    assert isinstance(results[2], RuntimeError)
    # one write for all five (nobody waited the 5 s linger: every running check had recorded),
    # then one by one after the refusal
    assert repo.batches == [5, 1, 1, 1, 1, 1]
    for i in ids:
        after = await store.watches.target(i)
        assert after is not None and (after.job_id == "job-new") == (i != ids[2])


def fleet(n: int) -> Fleet:
    return Fleet.model_validate(
        {
            "workspaces": [
                {
                    "id": WS,
                    "namespaces": [
                        {
                            "name": NS,
                            "deployments": [
                                {
                                    "name": f"job-{i}",
                                    "jobs": [{"status": "RUNNING"}],
                                    "diagnosis": {"riskLevel": "RISK_LEVEL_LOW", "healthScore": 95},
                                }
                                for i in range(n)
                            ],
                        }
                    ],
                }
            ]
        }
    )


@pytest.mark.parametrize("concurrency", [1, 4, 256])
async def test_every_due_target_is_checked_once_however_few_checks_run_at_once(
    tmp_path: Path, concurrency: int
):
    n = 23
    clock = Clock()
    async with Simulator(fleet(n)) as sim:
        stack = await LocalStack.start(
            make_settings(max_concurrency=4),
            sim=sim,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
            now=clock,
        )
        try:
            for d in sim.fleet_summary():
                await stack.store.watches.add_watch(
                    team_id="T1",
                    channel_id="C1",
                    kind="deployment",
                    workspace=WS,
                    namespace=NS,
                    deployment_id=d["deploymentId"],
                    deployment_name=d["name"],
                    min_risk="RISK_LEVEL_MID",
                    interval_seconds=60,
                    created_by="U1",
                    now=clock().timestamp(),
                )
            sweeper = stack.wiring.sweeper
            sweeper.concurrency = concurrency

            result = await sweeper.sweep()

            assert result.checked == n and result.reasons == {"quiet": n}
            assert sim.calls["ListJobs"] == n
            watches = await stack.store.watches.list_watches("T1", "C1")
            targets = await stack.store.watches.targets_of([w.id for w in watches])
            assert len(targets) == n
            for [t] in targets.values():
                assert t.state.last_kind == "risk" and t.job_id is not None
            assert (await sweeper.sweep()).checked == 0  # all recorded, none due or leased
        finally:
            await stack.aclose()
