"""One note per watch per outage (issue 7), end to end: the simulator's faults, local Slack, the
controllable clock and the database (SQLite and PostgreSQL).

Before: "can't check" was posted per deployment at the top level, so a full outage over two
namespace watches gave a dozen notes and a dozen "checking again", and answers that failed half
the time made them flap. Now a watch posts one note per outage, listing what it can't check and
edited as that changes, and one checking-again reply in the note's thread when every listed
deployment has had FLINKDIAG_OUTAGE_RECOVERY_CHECKS good checks in a row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from e2e import all_text
from slack_sdk.models.blocks import Block
from watch_helpers import World, listing, say, tick, watch, world

from bot.flink.sim import Faults
from bot.slack.localslack import LocalMessage

NAMESPACES = ("default-namespace", "analytics")


@pytest.fixture
async def w(db_url: str) -> AsyncIterator[World]:
    async with world(db_url) as shared:
        yield shared


def valid_block_kit(messages: list[LocalMessage]) -> None:
    for m in messages:
        assert m.text.strip()
        assert len(m.blocks) <= 50
        for b in m.blocks:
            parsed = Block.parse(b)
            assert parsed is not None, b
            parsed.to_dict()  # slack_sdk's own validations; raises SlackObjectFormationError


def all_low(w: World) -> dict[str, list[str]]:
    """Every deployment at LOW (no risk alerts in the way); deployment names per namespace."""
    names: dict[str, list[str]] = {}
    for d in w.sim.fleet_summary():
        w.set(d["name"], "LOW")
        names.setdefault(d["namespace"], []).append(d["name"])
    return names


def notes(w: World) -> list[LocalMessage]:
    return [m for m in w.alerts() if "check" in all_text(m)]


def note_of(w: World, namespace: str) -> LocalMessage:
    [note] = [m for m in notes(w) if f"namespace {namespace}" in m.text]
    return note


def everything(w: World) -> list[LocalMessage]:
    return w.slack.channel_messages("CWATCH", include_ephemeral=False) + [
        r for m in w.alerts() for r in w.replies(m) if r.ts != m.ts
    ]


async def watch_namespaces(w: World):
    bot = await w.start_bot()
    for ns in NAMESPACES:
        answer = await say(bot, f"watch namespace {ns} --every 2s --failures off")
        assert f"Watching namespace {ns}" in answer, answer
    await bot.wiring.sweeper.sweep()
    return bot


async def test_a_full_outage_gives_one_note_per_watch_and_one_recovery(w: World):
    names = all_low(w)
    bot = await watch_namespaces(w)
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    for _ in range(6):
        await tick(w, bot)
        valid_block_kit(everything(w))
    assert len(w.alerts()) == 2, [m.text for m in w.alerts()]
    for ns in NAMESPACES:
        note = note_of(w, ns)
        assert f"Can't check {len(names[ns])} deployments in namespace {ns}" in note.text
        for name in names[ns]:
            assert name in all_text(note)
        assert w.replies(note) == []
    shown = await listing(bot)
    assert "in an outage: can't check 8 deployments since" in shown
    assert "in an outage: can't check 4 deployments since" in shown

    # A deployment goes away while the API is down: once it answers, the note drops it (an edit).
    gone = names["analytics"][-1]
    analytics = w.sim.fleet.namespace("ws-demo", "analytics")
    assert analytics is not None
    analytics.deployments = [d for d in analytics.deployments if d.name != gone]
    w.sim.fleet.normalise()
    w.sim.faults = Faults()
    before = note_of(w, "analytics").updates
    await tick(w, bot)
    note = note_of(w, "analytics")
    assert note.updates == before + 1 and gone not in all_text(note)
    assert "Can't check 3 deployments in namespace analytics" in note.text
    assert len(w.alerts()) == 2

    for _ in range(4):
        await tick(w, bot)
        valid_block_kit(everything(w))
    assert len(w.alerts()) == 2
    for ns in NAMESPACES:
        note = note_of(w, ns)
        assert "Checks work again" in all_text(note)
        [again] = w.replies(note)
        assert "again" in all_text(again)
    assert "in an outage" not in await listing(bot)


async def test_flapping_answers_never_end_an_outage(w: World):
    all_low(w)
    bot = await watch_namespaces(w)
    # Half the answers cut off (and half of the rest refused): checks fail and work at random.
    w.sim.faults = Faults(error_rate=0.6, error_kinds=["malformed", "server_error"])
    for _ in range(25):
        await tick(w, bot)
    valid_block_kit(everything(w))
    assert len(notes(w)) == 2, [m.text for m in notes(w)]
    for ns in NAMESPACES:
        assert len(w.replies(note_of(w, ns))) == 0
    w.sim.faults = Faults()
    for _ in range(4):
        await tick(w, bot)
    valid_block_kit(everything(w))
    assert len(w.alerts()) == 2
    for ns in NAMESPACES:
        [again] = w.replies(note_of(w, ns))
        assert "again" in all_text(again)


async def test_a_deployment_watch_outage_goes_in_its_alert_thread(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "HIGH")
    await bot.wiring.sweeper.sweep()
    [alert] = w.alerts()
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    for _ in range(5):
        await tick(w, bot)
    assert w.alerts() == [alert]
    [note] = w.replies(alert)
    assert "Can't check deployment orders-etl" in note.text
    w.sim.faults = Faults()
    for _ in range(3):
        await tick(w, bot)
    assert w.alerts() == [alert]
    replies = w.replies(alert)
    assert len(replies) == 2 and "again" in all_text(replies[-1])
    assert "Checks work again" in all_text(replies[0])  # the note, edited
    valid_block_kit(everything(w))


async def test_a_deployment_watch_outage_without_an_alert_is_one_top_level_note(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "LOW")
    await bot.wiring.sweeper.sweep()
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    for _ in range(5):
        await tick(w, bot)
    [note] = w.alerts()
    assert "Can't check deployment orders-etl" in note.text
    w.sim.faults = Faults()
    for _ in range(3):
        await tick(w, bot)
    assert w.alerts() == [note]
    [again] = w.replies(note)
    assert "again" in all_text(again)


async def test_a_paused_channel_gets_no_outage_note(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "LOW")
    await bot.wiring.sweeper.sweep()
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    await tick(w, bot)
    await tick(w, bot)
    w.slack.not_member.add("CWATCH")
    result = await tick(w, bot)  # the third failure: the note is refused, the channel paused
    assert result.outages == {"undelivered": 1}
    for _ in range(3):
        assert (await tick(w, bot)).checked == 0
    assert w.alerts() == []
