"""Two replicas on one database: every due check and every report is done by exactly one of them.

Two full bots share the database (SQLite file or PostgreSQL), the simulator and the Slack
workspace, and sweep at the same moment, over and over, while risk rises and falls. Whatever
the interleaving, each alert, follow-up and report reaches Slack once, and the simulator sees
one check per due target per interval.
"""

from __future__ import annotations

import asyncio

import pytest
from e2e import all_text
from watch_helpers import CH, World, listing, say, watch, world

from bot.local import LocalStack


@pytest.fixture
async def w(db_url: str):
    async with world(db_url) as w:
        yield w


async def sweep_both(w: World, a: LocalStack, b: LocalStack) -> tuple[int, int]:
    """One interval passes; both replicas sweep at once. Returns what each checked."""
    w.clock.advance(seconds=2)
    ra, rb = await asyncio.gather(a.wiring.sweeper.sweep(), b.wiring.sweeper.sweep())
    return ra.checked, rb.checked


# Per round, the level each deployment's job reports. Rounds are 2 s apart, as are the checks.
SCRIPT = {
    # MID confirmed at round 3, HIGH at round 5 (thread), LOW confirmed at round 8 (thread)
    "orders-etl": "LOW LOW MID MID MID HIGH HIGH LOW LOW LOW LOW LOW",
    # HIGH at first sight: one alert, nothing after
    "payments-fraud-scoring": "HIGH HIGH HIGH HIGH HIGH HIGH HIGH HIGH HIGH HIGH HIGH HIGH",
    # flapping: never confirmed, never posted
    "inventory-sync": "MID LOW MID LOW MID LOW MID LOW MID LOW MID LOW",
    # alert, back to normal, then a second episode with a new anchor
    "user-profile-enricher": "MID MID LOW LOW LOW HIGH HIGH HIGH HIGH HIGH HIGH HIGH",
}


async def test_each_check_and_each_post_happens_once(w: World):
    a = await w.start_bot()
    b = await w.start_bot()
    names = list(SCRIPT)
    for i, name in enumerate(names):
        await watch(a if i % 2 else b, name)  # the commands, too, reach either replica
    w.clock.advance(seconds=-2)  # the first round below finds every new watch due
    rounds = len(next(iter(SCRIPT.values())).split())
    for r in range(rounds):
        for name, levels in SCRIPT.items():
            w.set(name, levels.split()[r])
        before = w.checks()
        checked = await sweep_both(w, a, b)
        assert sum(checked) == len(names), f"round {r}: {checked}"
        assert w.checks() == before + len(names), f"round {r}: a check ran twice or not at all"

    orders, payments, inventory, profile = (w.alerts(n) for n in names)
    [anchor] = orders
    assert ["High" in all_text(m) for m in w.replies(anchor)] == [True, False]
    assert "Back to normal" in all_text(w.replies(anchor)[1])
    [anchor] = payments
    assert w.replies(anchor) == []
    assert inventory == []
    first, second = profile
    assert len(w.replies(first)) == 1 and "Back to normal" in all_text(w.replies(first)[0])
    assert w.replies(second) == []
    assert len(w.posts()) == 1 + 2 + 1 + 2 + 1


async def test_both_replicas_share_the_work_when_batches_are_small(w: World):
    a = await w.start_bot()
    b = await w.start_bot()
    names = list(SCRIPT)
    for name in names:
        await watch(a, name)
        w.set(name, "LOW")
    # claims of two at a time, from both at once: however they interleave, all four once
    # (tests/test_sweep_claims.py shows the split itself)
    a.wiring.sweeper.page = b.wiring.sweeper.page = 2
    w.clock.advance(seconds=-2)
    for r in range(6):
        before = w.checks()
        assert sum(await sweep_both(w, a, b)) == 4, f"round {r}"
        assert w.checks() == before + 4


async def test_namespace_watch_is_listed_and_checked_once_per_interval(w: World):
    a = await w.start_bot()
    b = await w.start_bot()
    assert "Watching namespace analytics" in await say(a, "watch namespace analytics --every 2s")
    w.clock.advance(seconds=-2)
    for r in range(5):
        listed, before = w.sim.calls["ListDeployments"], w.checks()
        checked = await sweep_both(w, a, b)
        assert w.sim.calls["ListDeployments"] == listed + 1, f"round {r}"
        assert sum(checked) == 4 and w.checks() == before + 4, f"round {r}: {checked}"
    _, targets = await a.wiring.watch.listing(a.slack.TEAM_ID, CH)
    [deployments] = targets.values()
    assert len(deployments) == 4  # not one set per replica
    # each deployment at Mid or above alerted once, whichever replica checked it
    announced = [t.label for t in deployments if t.state.announced_risk is not None]
    assert announced
    for t in deployments:
        assert len(w.alerts(t.label)) == (t.label in announced), t.label
    assert len(w.posts()) == len(announced)


async def test_scheduled_report_is_posted_by_one_replica(w: World):
    a = await w.start_bot()  # 08:00 UTC
    b = await w.start_bot()
    await watch(a, "orders-etl")
    await a.wiring.sweeper.sweep()
    assert "every day at 09:00 UTC" in await say(b, "report daily 09:00 UTC")

    async def run_both() -> int:
        sent = await asyncio.gather(
            a.wiring.watch.run_due_reports(a.wiring.notifier),
            b.wiring.watch.run_due_reports(b.wiring.notifier),
        )
        return sum(sent)

    w.clock.advance(hours=1)
    assert await run_both() == 1
    assert await run_both() == 0
    for _ in range(3):  # three more days
        w.clock.advance(days=1)
        assert await run_both() == 1
        assert await run_both() == 0
    assert sum("Fleet report" in m.text for m in w.posts()) == 4

    # `report now` reaches one replica (Slack sends a command once) and posts once
    assert "Posted the report" in await say(a, "report now")
    assert sum("Fleet report" in m.text for m in w.posts()) == 5
    assert await run_both() == 0


async def test_channel_paused_by_one_replica_is_not_checked_by_the_other(w: World):
    a = await w.start_bot()
    b = await w.start_bot()
    await watch(a, "orders-etl")
    await watch(a, "inventory-sync")
    w.set("orders-etl", "HIGH")
    w.set("inventory-sync", "HIGH")
    w.slack.archived.add(CH)
    w.clock.advance(seconds=-2)
    assert sum(await sweep_both(w, a, b)) == 2
    before = w.checks()
    for _ in range(3):
        assert await sweep_both(w, a, b) == (0, 0)
    assert w.checks() == before and w.posts() == []
    w.slack.archived.discard(CH)
    assert "paused: `is_archived`" in await listing(b)  # resumed on the other replica
    assert sum(await sweep_both(w, a, b)) == 2
    assert sum(await sweep_both(w, a, b)) == 2
    assert len(w.alerts("orders-etl")) == 1 and len(w.alerts("inventory-sync")) == 1
    assert len(w.posts()) == 2


async def test_same_watch_added_on_both_replicas_at_once_is_one_watch(w: World):
    a = await w.start_bot()
    b = await w.start_bot()
    dep = w.dep_id("orders-etl")
    new = {
        "team_id": a.slack.TEAM_ID,
        "channel_id": CH,
        "kind": "deployment",
        "workspace": a.settings.workspace,
        "namespace": "default-namespace",
        "deployment_id": dep,
        "deployment_name": "orders-etl",
        "min_risk": "RISK_LEVEL_MID",
        "interval_seconds": 2,
        "created_by": "UOPS",
        "now": w.clock().timestamp(),
    }
    # two people, one command, the same moment: the loser hears "already watches", not an error
    got = await asyncio.gather(
        a.store.watches.add_watch(**new), b.store.watches.add_watch(**new), return_exceptions=True
    )
    assert sorted(type(g).__name__ for g in got) == ["DuplicateWatch", "Watch"], got
    assert "already watches deployment orders-etl" in await say(b, "watch deployment orders-etl")
    [watched] = await a.wiring.watch.store.list_watches(a.slack.TEAM_ID, CH)
    assert watched.deployment_id == dep
