"""Diagnosis runs are kept so the next diagnosis of the same job can say what changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.diagnosis.report import Snapshot, SymptomKey, Target, compare
from bot.store import Store

TARGET = Target(
    workspace="ws-1",
    namespace="ns-1",
    deployment_id="dep-1",
    job_id="job-1",
    deployment_name="orders-etl",
    region="cn-hangzhou",
)
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _snapshot(
    at: datetime, risk: str | None = "RISK_LEVEL_MID", health: int | None = 70, *symptoms: SymptomKey
):
    return Snapshot(risk=risk, health_score=health, symptoms=list(symptoms), diagnosed_at=at)


async def _save(store: Store, target: Target, snapshot: Snapshot, previous: str | None = None) -> str:
    return await store.runs.save(
        team_id="T1",
        channel_id="C1",
        user_id="U1",
        target=target,
        snapshot=snapshot,
        previous_run_id=previous,
    )


async def test_a_saved_run_reads_back_whole(store: Store) -> None:
    snapshot = _snapshot(
        T0,
        "RISK_LEVEL_HIGH",
        35,
        SymptomKey(category="checkpoint", name="CheckpointTimeout"),
        SymptomKey(category="restart", name="FrequentRestart"),
    )

    run_id = await store.runs.save(
        team_id="T9", channel_id="C9", user_id="U9", target=TARGET, snapshot=snapshot, previous_run_id=None
    )
    run = await store.runs.get(run_id)

    assert run is not None
    assert (run.id, run.team_id, run.channel_id, run.user_id, run.previous_run_id) == (
        run_id,
        "T9",
        "C9",
        "U9",
        None,
    )
    assert run.target == TARGET
    assert run.snapshot == snapshot  # symptom order and microseconds included


async def test_a_run_with_nothing_reported_reads_back(store: Store) -> None:
    target = Target(workspace="ws-1", namespace="ns-1", deployment_id="dep-1", job_id="job-1")
    snapshot = _snapshot(T0, None, None)

    run = await store.runs.get(await _save(store, target, snapshot))

    assert (run.target, run.snapshot) == (target, snapshot)


async def test_unknown_run_id_is_none(store: Store) -> None:
    assert await store.runs.get("no-such-run") is None


async def test_run_ids_are_short_url_safe_and_distinct(store: Store) -> None:
    ids = [await _save(store, TARGET, _snapshot(T0 + timedelta(seconds=i))) for i in range(20)]

    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8,16}", i) for i in ids)


async def test_latest_for_is_the_newest_run_of_that_job(store: Store) -> None:
    first = await _save(store, TARGET, _snapshot(T0))
    newest = await _save(store, TARGET, _snapshot(T0 + timedelta(hours=2), "RISK_LEVEL_HIGH"), previous=first)
    # Saved last, diagnosed in between: order comes from diagnosed_at, not insertion.
    await _save(store, TARGET, _snapshot(T0 + timedelta(hours=1)))
    # Later runs of other jobs must not be picked.
    later = T0 + timedelta(days=1)
    for field in ("workspace", "namespace", "deployment_id", "job_id"):
        await _save(store, TARGET.model_copy(update={field: "other"}), _snapshot(later))

    latest = await store.runs.latest_for(TARGET)

    assert latest.id == newest
    assert latest.previous_run_id == first
    assert latest.snapshot.risk == "RISK_LEVEL_HIGH"


async def test_latest_for_ignores_name_and_region(store: Store) -> None:
    # The same job, described with fewer details, is still the same job.
    run_id = await _save(store, TARGET, _snapshot(T0))
    bare = Target(workspace="ws-1", namespace="ns-1", deployment_id="dep-1", job_id="job-1")

    assert (await store.runs.latest_for(bare)).id == run_id


async def test_latest_for_a_job_never_diagnosed_is_none(store: Store) -> None:
    await _save(store, TARGET, _snapshot(T0))

    assert await store.runs.latest_for(TARGET.model_copy(update={"job_id": "job-2"})) is None


async def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    # Wall-clock digits and instants disagree on the order here: 19:30+08:00 is 11:30 UTC, before
    # noon UTC; 09:00-04:00 is 13:00 UTC, after it. Stored as local digits, the wrong run is newest.
    noon = await _save(store, TARGET, _snapshot(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)))
    shanghai, new_york = timezone(timedelta(hours=8)), timezone(timedelta(hours=-4))
    earlier = await _save(store, TARGET, _snapshot(datetime(2024, 5, 1, 19, 30, 0, 5, tzinfo=shanghai)))
    later = await _save(store, TARGET, _snapshot(datetime(2024, 5, 1, 9, 0, tzinfo=new_york)))

    runs = {i: await store.runs.get(i) for i in (noon, earlier, later)}

    assert all(r.snapshot.diagnosed_at.tzinfo is UTC for r in runs.values())
    assert runs[earlier].snapshot.diagnosed_at == datetime(2024, 5, 1, 11, 30, 0, 5, tzinfo=UTC)
    assert runs[later].snapshot.diagnosed_at == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    assert (await store.runs.latest_for(TARGET)).id == later


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        await _save(store, TARGET, _snapshot(datetime(2024, 5, 1, 12, 0)))
    assert await store.runs.latest_for(TARGET) is None


async def test_unicode_round_trips(store: Store) -> None:
    target = TARGET.model_copy(update={"deployment_name": "订单-ETL-ß-🚀", "namespace": "命名空间"})
    snapshot = _snapshot(T0, "RISK_LEVEL_高", 50, SymptomKey(category="背压", name="下游算子 “sink” 反压 ✓"))

    run = await store.runs.get(await _save(store, target, snapshot))

    assert (run.target, run.snapshot) == (target, snapshot)
    assert (await store.runs.latest_for(target)).id == run.id


async def test_a_stored_run_compares_with_the_next_one(store: Store) -> None:
    # What the diagnose command does: find the previous run, diff, save with a link back.
    restart = SymptomKey(category="restart", name="FrequentRestart")
    lag = SymptomKey(category="source", name="ConsumerLag")
    first = await _save(store, TARGET, _snapshot(T0, "RISK_LEVEL_MID", 70, restart))
    current = _snapshot(T0 + timedelta(minutes=5), "RISK_LEVEL_HIGH", 40, lag)

    previous = await store.runs.latest_for(TARGET)
    change = compare(previous.snapshot, current)
    second = await _save(store, TARGET, current, previous=previous.id)

    assert previous.id == first
    assert (change.direction, change.health_delta, change.appeared, change.cleared) == (
        "up",
        -30,
        [lag],
        [restart],
    )
    assert change.previous_at == T0
    assert (await store.runs.get(second)).previous_run_id == first
