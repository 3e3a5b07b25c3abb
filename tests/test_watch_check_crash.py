"""A check that fails is a failed check (issue 7): whatever breaks in it, an answer the client
can't read or a record the store refuses, is counted toward the watch's can't-check note, the
target's lease is given back at once, and nothing already posted is posted again.

Faults are real: the simulator's malformed answers (`/_sim/faults`), and a trigger in the real
database (SQLite and PostgreSQL) that refuses the check's record after its alert went out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from e2e import all_text
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from watch_helpers import World, risk, tick, watch, world

from bot.flink.sim import Faults


@pytest.fixture
async def w(db_url: str) -> AsyncIterator[World]:
    async with world(db_url) as shared:
        yield shared


async def refuse_records_mentioning(database_url: str, word: str) -> None:
    """A trigger that makes the database refuse a target's record whose top symptom has `word`."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                await conn.execute(
                    text(
                        "CREATE TRIGGER refuse_record BEFORE UPDATE ON watch_targets "
                        f"WHEN NEW.top_symptom LIKE '%{word}%' "
                        "BEGIN SELECT RAISE(ABORT, 'record refused'); END"
                    )
                )
            else:
                await conn.execute(
                    text(
                        "CREATE FUNCTION refuse_record() RETURNS trigger AS $$ "
                        "BEGIN RAISE EXCEPTION 'record refused'; END $$ LANGUAGE plpgsql"
                    )
                )
                await conn.execute(
                    text(
                        "CREATE TRIGGER refuse_record BEFORE UPDATE ON watch_targets FOR EACH ROW "
                        f"WHEN (NEW.top_symptom LIKE '%{word}%') EXECUTE FUNCTION refuse_record()"
                    )
                )
    finally:
        await engine.dispose()


async def test_unreadable_answers_are_failed_checks_that_give_the_lease_back(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "LOW")
    await bot.wiring.sweeper.sweep()
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["malformed"])
    outages = []
    for _ in range(4):
        before = w.checks()
        result = await tick(w, bot)
        assert w.checks() > before, "checked again two seconds later: the lease was given back"
        assert result.failures == 1
        outages.append(result.outages)
    assert outages == [{"no_outage": 1}, {"no_outage": 1}, {"cannot_check": 1}, {"still_cannot_check": 1}]
    [note] = w.alerts()
    assert "Can't check" in all_text(note)

    w.sim.faults = Faults()
    for _ in range(3):
        await tick(w, bot)
    assert w.alerts() == [note] and len(w.replies(note)) == 1
    assert "Checks work again" in all_text(w.alerts()[0])


async def test_a_record_refused_after_the_alert_never_posts_the_alert_again(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    await refuse_records_mentioning(w.database_url, "poison")
    w.set("orders-etl", "HIGH", symptom="poison pill")
    first = await bot.wiring.sweeper.sweep()
    assert first.reasons == {"new_incident": 1}
    [alert] = w.alerts()

    # The refused record was replaced by a failure record that kept the incident: the next
    # checks know the alert is out. (They are status-only looks, with nothing to post, so their
    # records carry no symptom and land.)
    for _ in range(3):
        before = w.checks()
        result = await tick(w, bot)
        assert w.checks() > before, "the lease was given back with the failure record"
        assert result.reasons == {"unchanged": 1}

    # Long past any lease: still one alert.
    w.clock.advance(seconds=600)
    await bot.wiring.sweeper.sweep()
    assert w.alerts() == [alert] and w.replies(alert) == []

    w.set("orders-etl", "LOW", symptom="Backpressure")
    for _ in range(2):
        await tick(w, bot)
    assert w.alerts() == [alert]
    [reply] = w.replies(alert)
    assert "Back to normal" in all_text(reply)


async def test_an_answer_the_models_cannot_take_is_never_silence(w: World):
    # diagnoseTime 1e400 made parsing raise OverflowError: every check crashed, kept its lease,
    # and nothing was ever posted. Now it is a failed check (a can't-check note after three),
    # or, once the models take such numbers, an alert; never silence.
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "HIGH")
    placed = w.sim.fleet.deployment(w.dep_id("orders-etl"))
    assert placed is not None
    # Straight into the fleet: the simulator's own setter reads the body with the same models.
    placed.deployment.diagnosis = {**risk("HIGH"), "diagnoseTime": float("inf")}
    for _ in range(3):
        before = w.checks()
        await tick(w, bot)
        assert w.checks() > before, "each check gives its lease back"
    [message] = w.alerts()
    assert "orders-etl" in all_text(message)
