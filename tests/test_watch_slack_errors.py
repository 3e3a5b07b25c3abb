"""Slack refusing or failing: nothing a watch had to say is dropped, nothing is said twice.

* 429: the Web API client waits out Retry-After and sends again;
* channel_not_found / not_in_channel / is_archived: the channel's watches pause (no checks)
  until a command in the channel resumes them; what could not be posted is posted then;
* any other failure (5xx, internal_error): the post is tried again at the next check;
* a failed edit of the alert after its thread reply went out does not repeat the reply.
"""

from __future__ import annotations

import pytest
from e2e import all_text
from watch_helpers import CH, World, listing, say, tick, watch

OTHER = "COTHER"


async def test_rate_limited_alert_is_waited_out_and_delivered(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "HIGH")
    posts = w.slack.calls["chat.postMessage"]
    w.slack.rate_limit_next("chat.postMessage", retry_after=0)  # the client adds < 1 s of jitter
    result = await bot.wiring.sweeper.sweep()
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    assert w.slack.calls["chat.postMessage"] == posts + 2  # refused once, then taken
    [alert] = w.alerts()
    assert "High" in all_text(alert)
    assert (await tick(w, bot)).reasons == {"unchanged": 1}
    assert len(w.posts()) == 1


def make_unavailable(w: World, error: str) -> None:
    if error == "not_in_channel":
        w.slack.not_member.add(CH)
    elif error == "is_archived":
        w.slack.archived.add(CH)
    else:  # the channel is gone (LocalSlack has every other channel): refuse the next post
        w.slack.fail_next("chat.postMessage", error)


def make_available(w: World) -> None:
    w.slack.not_member.discard(CH)
    w.slack.archived.discard(CH)


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_unavailable_channel_pauses_its_watches_until_a_command(w: World, error: str):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    await watch(bot, "inventory-sync")
    await watch(bot, "payments-fraud-scoring", channel=OTHER)  # another channel carries on
    w.set("orders-etl", "HIGH")
    w.set("inventory-sync", "LOW")
    w.set("payments-fraud-scoring", "LOW")
    make_unavailable(w, error)

    first = await bot.wiring.sweeper.sweep()
    assert first.checked == 3 and first.undelivered == 1
    assert w.posts() == []
    # paused: only the other channel's watch is checked from now on
    for _ in range(3):
        before = w.checks()
        assert (await tick(w, bot)).checked == 1
        assert w.checks() == before + 1

    # the listing says why, and the command (from the channel) resumes it
    shown = await listing(bot)
    assert f"paused: `{error}`" in shown, shown
    assert "try posting here again" in all_text(bot.slack.channel_messages(CH)[-1])
    if error == "channel_not_found":
        make_unavailable(w, error)  # the first refusal was used up
    # still unavailable: the next check pauses it again, the alert still not dropped
    result = await tick(w, bot)
    assert result.checked == 3 and result.undelivered == 1
    assert "paused" in await listing(bot)

    make_available(w)
    result = await tick(w, bot)
    assert result.checked == 3 and result.reasons["new_incident"] == 1 and result.delivered == 1
    [alert] = w.alerts()
    assert "orders-etl" in all_text(alert) and "High" in all_text(alert)
    assert (await tick(w, bot)).reasons == {"unchanged": 1, "quiet": 2}
    assert len(w.posts()) == 1
    assert "paused" not in await listing(bot)


async def test_further_rise_held_by_a_pause_goes_to_the_thread_after_it(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "MID")
    await bot.wiring.sweeper.sweep()
    assert (await tick(w, bot)).reasons == {"new_incident": 1}
    [alert] = w.alerts()
    w.slack.not_member.add(CH)  # someone removed the bot from the channel
    w.set("orders-etl", "HIGH")
    assert (await tick(w, bot)).undelivered == 1
    assert (await tick(w, bot)).checked == 0
    w.slack.not_member.discard(CH)
    await say(bot, "watch deployment orders-etl")  # any watch command resumes (even a refused one)
    assert (await tick(w, bot)).reasons == {"changed": 1}
    [reply] = w.replies(alert)
    assert "High" in all_text(reply) and "High" in all_text(alert)
    assert w.alerts() == [alert]


async def test_slack_outage_is_retried_at_each_check_until_posted(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "HIGH")
    w.slack.fail_next("chat.postMessage", "internal_error", times=3, status=500)
    for _ in range(3):
        result = await tick(w, bot)
        assert result.reasons == {"new_incident": 1} and result.undelivered == 1
    assert w.posts() == []
    result = await tick(w, bot)
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    assert (await tick(w, bot)).reasons == {"unchanged": 1}
    [alert] = w.alerts()
    assert "High" in all_text(alert)
    assert "paused" not in await listing(bot)  # an outage is not the channel's fault

    # a thread reply is retried the same way
    w.set("orders-etl", "LOW")
    await tick(w, bot)
    w.slack.fail_next("chat.postMessage", "service_unavailable", times=2, status=503)
    assert (await tick(w, bot)).undelivered == 1
    assert (await tick(w, bot)).undelivered == 1
    assert (await tick(w, bot)).reasons == {"back_to_normal": 1}
    [reply] = w.replies(alert)
    assert "Back to normal" in all_text(reply)
    assert (await tick(w, bot)).reasons == {"quiet": 1}
    assert len(w.posts()) == 2


@pytest.mark.parametrize("error", ["internal_error", "is_archived"])
async def test_failed_anchor_edit_keeps_the_reply_and_is_redone(w: World, error: str):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "MID")
    await bot.wiring.sweeper.sweep()
    await tick(w, bot)
    [alert] = w.alerts()
    w.set("orders-etl", "HIGH")
    w.slack.fail_next("chat.update", error)
    assert (await tick(w, bot)).reasons == {"changed": 1}
    [reply] = w.replies(alert)
    assert "High" in all_text(reply)
    assert alert.updates == 0 and "High" not in all_text(alert)
    # the next check edits the alert and does not post the reply again
    assert (await tick(w, bot)).reasons == {"root_update": 1}
    assert "High" in all_text(alert) and alert.updates == 1
    assert (await tick(w, bot)).reasons == {"unchanged": 1}
    assert w.replies(alert) == [reply] and w.alerts() == [alert]


async def test_rate_limited_anchor_edit_is_waited_out(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "MID")
    await bot.wiring.sweeper.sweep()
    await tick(w, bot)
    [alert] = w.alerts()
    w.set("orders-etl", "HIGH")
    w.slack.rate_limit_next("chat.update", retry_after=0)
    edits = w.slack.calls["chat.update"]
    assert (await tick(w, bot)).reasons == {"changed": 1}
    assert w.slack.calls["chat.update"] == edits + 2
    assert "High" in all_text(alert) and len(w.replies(alert)) == 1


async def test_scheduled_report_survives_an_outage_and_a_pause(w: World):
    bot = await w.start_bot()  # 08:00 UTC
    await watch(bot, "orders-etl")
    await bot.wiring.sweeper.sweep()
    await say(bot, "report daily 09:00 UTC")
    run = bot.wiring.watch.run_due_reports

    def reports() -> int:
        return sum("Fleet report" in m.text for m in w.posts())

    w.clock.advance(hours=1)
    w.slack.fail_next("chat.postMessage", "internal_error", status=500)
    assert await run(bot.wiring.notifier) == 0
    assert await run(bot.wiring.notifier) == 0  # retried later, not in a tight loop
    w.clock.advance(minutes=1)
    assert await run(bot.wiring.notifier) == 1
    assert reports() == 1

    w.clock.advance(days=1)
    w.slack.not_member.add(CH)
    assert await run(bot.wiring.notifier) == 0
    w.clock.advance(minutes=5)
    assert await run(bot.wiring.notifier) == 0  # paused
    assert "paused: `not_in_channel`" in await listing(bot)
    w.slack.not_member.discard(CH)
    assert await run(bot.wiring.notifier) == 1  # the command resumed it; today's report is not lost
    assert await run(bot.wiring.notifier) == 0
    assert reports() == 2
