"""Watching across restarts: a new bot on the same database picks up where the last one stopped.

The simulator, the Slack workspace and the clock outlive the bots (see `watch_helpers.World`);
only the bot process is replaced, the way a deploy or a crash replaces it.
"""

from __future__ import annotations

from e2e import all_text
from watch_helpers import CH, World, listing, say, tick, watch

from bot.flink.sim import Faults
from bot.slack.driver import find_button
from bot.watch.model import CheckRecord


async def test_rise_seen_once_before_a_restart_is_alerted_once_after_it(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "MID")
    assert (await a.wiring.sweeper.sweep()).reasons == {"quiet": 1}
    await w.stop_bot(a)

    b = await w.start_bot()
    # not zero (the pending sighting survived), not two
    assert (await tick(w, b)).reasons == {"new_incident": 1}
    assert (await tick(w, b)).reasons == {"unchanged": 1}
    [alert] = w.alerts()
    assert "orders-etl" in all_text(alert) and "Mid" in all_text(alert)


async def test_alert_sent_before_a_restart_is_not_sent_again(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "MID")
    await a.wiring.sweeper.sweep()
    assert (await tick(w, a)).reasons == {"new_incident": 1}
    await w.stop_bot(a)

    b = await w.start_bot()
    for _ in range(3):
        assert (await tick(w, b)).reasons == {"unchanged": 1}
    [alert] = w.alerts()
    assert w.replies(alert) == []
    # the episode (and its anchor) survived too: a further rise goes into the old thread
    w.set("orders-etl", "HIGH")
    assert (await tick(w, b)).reasons == {"changed": 1}
    assert [alert] == w.alerts()
    [reply] = w.replies(alert)
    assert "High" in all_text(reply) and alert.updates == 1 and "High" in all_text(alert)


async def test_rise_while_no_bot_ran_is_alerted_at_the_first_sweep(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    await watch(a, "inventory-sync")
    w.set("orders-etl", "LOW")
    w.set("inventory-sync", "LOW")
    await a.wiring.sweeper.sweep()
    await tick(w, a)
    await w.stop_bot(a)

    w.set("orders-etl", "HIGH")
    w.set("inventory-sync", "MID")
    w.clock.advance(minutes=30)  # hundreds of intervals went by
    b = await w.start_bot()
    before = w.checks()
    first = await b.wiring.sweeper.sweep()
    # everything overdue is checked once (no backlog of missed checks), and HIGH alerts at once
    assert first.checked == 2 and w.checks() == before + 2
    assert first.reasons == {"new_incident": 1, "quiet": 1}
    assert (await tick(w, b)).reasons == {"new_incident": 1, "unchanged": 1}
    assert len(w.alerts("orders-etl")) == 1 and len(w.alerts("inventory-sync")) == 1


async def test_job_restart_and_bot_restart_between_two_sightings(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "MID")
    await a.wiring.sweeper.sweep()
    old_job = w.job_id("orders-etl")
    await w.stop_bot(a)

    new_job = w.sim.restart(w.dep_id("orders-etl"))  # the deployment restarted: a new job id
    assert new_job != old_job
    b = await w.start_bot()
    # the watch follows the deployment, but a new job is a different run: its MID is a first
    # sighting, not the second of the old job's
    assert (await tick(w, b)).reasons == {"quiet": 1}
    assert (await tick(w, b)).reasons == {"new_incident": 1}
    [alert] = w.alerts()
    assert new_job in all_text(alert) and old_job not in all_text(alert)


async def test_job_restart_between_checks_keeps_the_episode(w: World):
    a = await w.start_bot()
    # restart loops off: three restarts in an hour would be one (see test_watch_lifecycle.py)
    await watch(a, "orders-etl", extra="--restarts off")
    w.set("orders-etl", "HIGH")
    assert (await a.wiring.sweeper.sweep()).reasons == {"new_incident": 1}
    w.sim.restart(w.dep_id("orders-etl"))
    assert (await tick(w, a)).reasons == {"unchanged": 1}
    w.set("orders-etl", "LOW")
    w.sim.restart(w.dep_id("orders-etl"))
    assert (await tick(w, a)).reasons == {"unchanged": 1}
    assert (await tick(w, a)).reasons == {"back_to_normal": 1}
    [alert] = w.alerts()
    [reply] = w.replies(alert)
    assert "Back to normal" in all_text(reply)


async def test_check_taken_by_a_bot_that_died_is_taken_over_after_its_lease(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "HIGH")
    # bot A claims the check and dies before finishing it
    [claimed] = await a.store.watches.claim_due_targets(w.clock().timestamp(), 10)
    lease = a.store.watches.lease_seconds
    await w.stop_bot(a)

    b = await w.start_bot()
    assert (await tick(w, b)).checked == 0  # A's lease still holds: two bots never check at once
    assert (await tick(w, b, seconds=lease)).reasons == {"new_incident": 1}
    assert len(w.alerts()) == 1
    # A's late answer (had it come back) is refused: it no longer holds the lease
    late = CheckRecord(
        target_id=claimed.id, state=claimed.state, anchor_ts=None, job_id=None, top_symptom=None
    )
    assert await b.store.watches.record_checks([late]) == set()


async def test_snooze_pressed_before_a_restart_holds_after_it(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "MID")
    await a.wiring.sweeper.sweep()
    await tick(w, a)
    [alert] = w.alerts()
    assert (await a.driver.press(alert, find_button(alert, "snooze_1h"), user="UOPS")).status == 200
    await a.settle()
    notes = len(w.replies(alert))  # the "snoozed until" note
    await w.stop_bot(a)

    b = await w.start_bot()
    w.set("orders-etl", "HIGH")
    assert (await tick(w, b)).reasons == {"snoozed": 1}
    w.clock.advance(hours=1)
    assert (await tick(w, b)).reasons == {"changed": 1}
    assert len(w.replies(alert)) == notes + 1 and w.alerts() == [alert]


async def test_failure_streak_counts_across_a_restart(w: World):
    a = await w.start_bot()  # a cannot-check note after three failed checks in a row
    await watch(a, "orders-etl")
    w.set("orders-etl", "LOW")
    await a.wiring.sweeper.sweep()
    w.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    assert (await tick(w, a)).reasons == {"failure_counted": 1}
    assert (await tick(w, a)).reasons == {"failure_counted": 1}
    await w.stop_bot(a)

    b = await w.start_bot()
    assert (await tick(w, b)).outages == {"cannot_check": 1}
    assert (await tick(w, b)).outages == {"still_cannot_check": 1}
    w.sim.faults = Faults()
    assert [(await tick(w, b)).outages for _ in range(3)][-1] == {"checking_again": 1}
    [note] = w.alerts()
    assert len(w.replies(note)) == 1


async def test_paused_channel_stays_paused_across_a_restart(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    w.set("orders-etl", "HIGH")
    w.slack.not_member.add(CH)
    assert (await a.wiring.sweeper.sweep()).undelivered == 1
    await w.stop_bot(a)

    b = await w.start_bot()
    before = w.checks()
    assert (await tick(w, b)).checked == 0 and w.checks() == before
    w.slack.not_member.discard(CH)
    assert "paused: `not_in_channel`" in await listing(b)
    assert (await tick(w, b)).reasons == {"new_incident": 1}
    assert len(w.alerts()) == 1


async def test_report_schedule_survives_restarts_and_posts_once(w: World):
    a = await w.start_bot()  # the clock starts at 08:00 UTC
    await watch(a, "orders-etl")
    await a.wiring.sweeper.sweep()
    assert "every day at 09:00 UTC" in await say(a, "report daily 09:00 UTC")
    await w.stop_bot(a)

    def reports() -> int:
        return sum("Fleet report" in m.text for m in w.posts())

    w.clock.advance(hours=1)  # 09:00, no bot running
    b = await w.start_bot()
    assert await b.wiring.watch.run_due_reports(b.wiring.notifier) == 1
    assert await b.wiring.watch.run_due_reports(b.wiring.notifier) == 0
    await w.stop_bot(b)

    c = await w.start_bot()  # a second restart the same day does not repeat it
    assert await c.wiring.watch.run_due_reports(c.wiring.notifier) == 0
    await w.stop_bot(c)
    assert reports() == 1

    w.clock.advance(days=3)  # down over three report times: one report, not a backlog of three
    d = await w.start_bot()
    assert await d.wiring.watch.run_due_reports(d.wiring.notifier) == 1
    assert await d.wiring.watch.run_due_reports(d.wiring.notifier) == 0
    assert reports() == 2
    # the "since the last report" comparison survived as well (it reads the stored snapshot)
    assert (await d.store.watches.get_report(d.slack.TEAM_ID, CH)).last_sent_at == w.clock()
