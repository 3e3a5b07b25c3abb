"""`watch`, `unwatch`, `watches` and `report …` commands, and scheduled reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from e2e import Clock, all_text, deployment, make_settings, running_stack

CH = "CCMD"


async def say(stack, text: str, channel: str = CH) -> str:
    """Run a command; return the text of the last message in the channel."""
    reply = await stack.driver.command(text, channel=channel, user="UOPS")
    assert reply.status == 200, reply.text
    await stack.settle()
    return all_text(stack.slack.channel_messages(channel)[-1])


@pytest.fixture
async def env(tmp_path):
    clock = Clock(datetime(2026, 11, 27, 7, 0, tzinfo=UTC))  # a Friday, 08:00 in Berlin
    async with running_stack(tmp_path, now=clock) as stack:
        yield stack, clock


async def test_watch_deployment_then_list_it(env):
    stack, _ = env
    answer = await say(stack, "watch deployment payments-fraud-scoring --every 30s --min-risk medium")
    assert (
        "Watching deployment payments-fraud-scoring" in answer
        and "Mid or above" in answer
        and "30s" in answer
    )
    listing = await say(stack, "watches")
    assert "payments-fraud-scoring" in listing and "not checked yet" in listing
    await stack.wiring.sweeper.sweep()
    listing = await say(stack, "watches")
    assert "High" in listing and "not checked yet" not in listing


async def test_duplicate_watch_is_refused(env):
    stack, _ = env
    await say(stack, "watch deployment orders-etl")
    answer = await say(stack, "watch deployment orders-etl --every 10m")
    assert "already watches deployment orders-etl" in answer


async def test_watch_unknown_deployment_or_namespace(env):
    stack, _ = env
    assert "No deployment named or with id `ghost`" in await say(stack, "watch deployment ghost")
    # a namespace outside FLINKDIAG_NAMESPACES is refused before the API is asked
    answer = await say(stack, "watch namespace nowhere")
    assert "I don't serve namespace `nowhere`" in answer
    assert "watches nothing yet" in await say(stack, "watches")


async def test_deployment_already_covered_by_namespace_watch(env):
    stack, _ = env
    await say(stack, "watch namespace analytics")
    answer = await say(stack, "watch deployment clickstream-agg")
    assert "already watched here through the watch on namespace `analytics`" in answer


async def test_interval_floor_and_default(tmp_path):
    async with running_stack(
        tmp_path, settings=make_settings(min_watch_interval=timedelta(minutes=1))
    ) as stack:
        reply = await stack.driver.command("watch deployment orders-etl --every 30s", channel=CH)
        assert "shorter than this bot's floor of 1m" in str(reply.body)
        answer = await say(stack, "watch deployment orders-etl")
        assert "every 5m" in answer


async def test_unwatch(env):
    stack, _ = env
    await say(stack, "watch deployment orders-etl")
    await say(stack, "watch namespace analytics")
    assert "Stopped watching deployment orders-etl" in await say(stack, "unwatch deployment orders-etl")
    assert "doesn't watch deployment `orders-etl`" in await say(stack, "unwatch deployment orders-etl")
    assert "Stopped watching namespace analytics" in await say(stack, "unwatch namespace analytics")
    assert "watches nothing yet" in await say(stack, "watches")


async def test_unwatch_by_deployment_id(env):
    stack, _ = env
    await say(stack, "watch deployment orders-etl")
    dep = deployment(stack.sim, "orders-etl")
    assert "Stopped watching" in await say(stack, f"unwatch deployment {dep['deploymentId']}")


async def test_report_now_lists_watched_deployments_worst_first(env):
    stack, _ = env
    for name in ("orders-etl", "payments-fraud-scoring", "inventory-sync"):
        await say(stack, f"watch deployment {name}")
    await stack.wiring.sweeper.sweep()
    answer = await say(stack, "report now")
    assert "Posted the report" in answer
    [report] = [
        m for m in stack.slack.channel_messages(CH, include_ephemeral=False) if "Fleet report" in m.text
    ]
    text = all_text(report)
    assert text.index("payments-fraud-scoring") < text.index("inventory-sync") < text.index("orders-etl")
    assert "1 high, 1 mid, 1 low" in text


async def test_report_now_in_a_channel_the_bot_is_not_in(env):
    stack, _ = env
    stack.slack.not_member.add("CNOPE")
    answer = await say(stack, "report now", channel="CNOPE")
    assert "can't post in this channel (not_in_channel)" in answer and "/invite" in answer


async def test_scheduled_daily_report_fires_once_at_its_time(env):
    stack, clock = env
    await say(stack, "watch deployment orders-etl")
    answer = await say(stack, "report daily 09:00 Europe/Berlin")
    assert "every day at 09:00 Europe/Berlin" in answer
    run = stack.wiring.watch.run_due_reports
    notifier = stack.wiring.notifier
    clock.advance(minutes=59)  # 08:59 Berlin
    assert await run(notifier) == 0
    clock.advance(minutes=1)  # 09:00 Berlin
    assert await run(notifier) == 1
    assert await run(notifier) == 0, "never twice for one slot"
    clock.advance(hours=23, minutes=59)
    assert await run(notifier) == 0
    clock.advance(minutes=1)
    assert await run(notifier) == 1
    reports = [
        m for m in stack.slack.channel_messages(CH, include_ephemeral=False) if "Fleet report" in m.text
    ]
    assert len(reports) == 2


async def test_weekday_reports_skip_the_weekend_and_off_stops_them(env):
    stack, clock = env
    await say(stack, "watch deployment orders-etl")
    await say(stack, "report weekdays 09:00 Europe/Berlin")
    run, notifier = stack.wiring.watch.run_due_reports, stack.wiring.notifier
    sent = 0
    for _ in range(4 * 24):  # Friday 08:00 → Tuesday 08:00, hour by hour
        clock.advance(hours=1)
        sent += await run(notifier)
    assert sent == 2  # Friday and Monday
    assert "off" in await say(stack, "report off")
    clock.advance(days=1, hours=2)
    assert await run(notifier) == 0


async def test_report_shows_change_since_the_last_one(env):
    stack, clock = env
    await say(stack, "watch deployment orders-etl --every 30s")
    await stack.wiring.sweeper.sweep()
    await say(stack, "report now")
    dep = deployment(stack.sim, "orders-etl")
    stack.sim.set_diagnosis(dep["deploymentId"], {"riskLevel": "RISK_LEVEL_HIGH", "healthScore": 30})
    clock.advance(seconds=31)
    await stack.wiring.sweeper.sweep()
    await say(stack, "report now")
    reports = [
        m for m in stack.slack.channel_messages(CH, include_ephemeral=False) if "Fleet report" in m.text
    ]
    assert len(reports) == 2
    assert "↑" in all_text(reports[-1]) or "up" in all_text(reports[-1])
    assert "↑" not in all_text(reports[0])


async def test_watch_commands_without_the_feature_configured_are_not_lost(env):
    # `report` alone names the mistake (and the valid forms)
    stack, _ = env
    reply = await stack.driver.command("report", channel=CH)
    assert "report daily HH:MM" in str(reply.body)


async def test_unwatch_a_deployment_watched_through_its_namespace_says_how(env):
    stack, _ = env
    await say(stack, "watch namespace analytics")
    answer = await say(stack, "unwatch deployment clickstream-agg")
    assert "doesn't watch deployment `clickstream-agg` on its own" in answer
    assert "`analytics`" in answer and "Unwatch" in answer
