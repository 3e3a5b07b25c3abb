"""Channel defaults: set once, then commands in that channel need no --workspace/--namespace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.store import Store


def _clock_at(*instants: datetime):
    it = iter(instants)
    return lambda: next(it)


async def test_a_channel_without_defaults_has_none(store: Store) -> None:
    assert await store.channel_defaults.get("T1", "C1") is None


async def test_set_creates_then_updates(store: Store) -> None:
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    # A clock in another zone: the store must hand back the same instant, in UTC.
    t1 = datetime(2024, 5, 1, 17, 30, 0, 250000, tzinfo=timezone(timedelta(hours=8)))
    repo = Store(store.engine, clock=_clock_at(t0, t1)).channel_defaults

    created = await repo.set("T1", "C1", namespace="ns-a", workspace="ws-a", updated_by="U1")
    updated = await repo.set("T1", "C1", namespace="ns-b", workspace="ws-b", updated_by="U2")

    assert (created.namespace, created.workspace, created.updated_by, created.updated_at) == (
        "ns-a",
        "ws-a",
        "U1",
        t0,
    )
    fetched = await repo.get("T1", "C1")
    assert fetched == updated
    assert (fetched.namespace, fetched.workspace, fetched.updated_by) == ("ns-b", "ws-b", "U2")
    assert fetched.updated_at == t1
    assert fetched.updated_at.tzinfo is UTC


async def test_a_partial_update_leaves_the_other_field_alone(store: Store) -> None:
    repo = store.channel_defaults
    await repo.set("T1", "C1", namespace="ns-a", workspace="ws-a", updated_by="U1")

    after_ns = await repo.set("T1", "C1", namespace="ns-b", workspace=None, updated_by="U2")
    after_ws = await repo.set("T1", "C1", namespace=None, workspace="ws-b", updated_by="U3")

    assert (after_ns.namespace, after_ns.workspace) == ("ns-b", "ws-a")
    assert (after_ws.namespace, after_ws.workspace, after_ws.updated_by) == ("ns-b", "ws-b", "U3")
    assert await repo.get("T1", "C1") == after_ws


async def test_channels_and_teams_are_kept_apart(store: Store) -> None:
    repo = store.channel_defaults
    await repo.set("T1", "C1", namespace="t1c1", workspace=None, updated_by="U1")
    await repo.set("T1", "C2", namespace="t1c2", workspace=None, updated_by="U1")
    await repo.set("T2", "C1", namespace="t2c1", workspace=None, updated_by="U1")

    assert [(await repo.get(t, c)).namespace for t, c in (("T1", "C1"), ("T1", "C2"), ("T2", "C1"))] == [
        "t1c1",
        "t1c2",
        "t2c1",
    ]


async def test_clear_removes_only_the_chosen_fields(store: Store) -> None:
    repo = store.channel_defaults
    await repo.set("T1", "C1", namespace="ns", workspace="ws", updated_by="U1")

    only_ns = await repo.clear("T1", "C1", namespace=True, workspace=False, updated_by="U2")
    assert (only_ns.namespace, only_ns.workspace, only_ns.updated_by) == (None, "ws", "U2")

    both = await repo.clear("T1", "C1", updated_by="U3")
    assert (both.namespace, both.workspace) == (None, None)
    assert await repo.get("T1", "C1") == both


async def test_clear_on_a_channel_without_defaults_creates_nothing(store: Store) -> None:
    assert await store.channel_defaults.clear("T1", "C1", updated_by="U1") is None
    assert await store.channel_defaults.get("T1", "C1") is None


async def test_clear_with_nothing_chosen_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="nothing to clear"):
        await store.channel_defaults.clear("T1", "C1", namespace=False, workspace=False, updated_by="U1")


async def test_concurrent_partial_updates_both_land(store: Store) -> None:
    # Two users set different fields of a new channel's defaults at the same moment.
    repo = store.channel_defaults
    for i in range(5):
        channel = f"C{i}"
        await asyncio.gather(
            repo.set("T1", channel, namespace=f"ns-{i}", workspace=None, updated_by="U1"),
            repo.set("T1", channel, namespace=None, workspace=f"ws-{i}", updated_by="U2"),
        )
        got = await repo.get("T1", channel)
        assert (got.namespace, got.workspace) == (f"ns-{i}", f"ws-{i}")


async def test_unicode_round_trips(store: Store) -> None:
    repo = store.channel_defaults
    await repo.set("T1", "C1", namespace="命名空间-ß-🚀", workspace="área de trabajo", updated_by="Ü1")

    got = await repo.get("T1", "C1")

    assert (got.namespace, got.workspace, got.updated_by) == ("命名空间-ß-🚀", "área de trabajo", "Ü1")
