"""Watching end to end: risk changes driven through the simulator, time through a clock.

The policy table (rise, further rise, fall, flapping, jump to HIGH, snooze, API failure streak)
is exercised through the real sweep: simulator → Flink client → store → policy → Slack sink.
"""

from __future__ import annotations

import pytest
from e2e import Clock, all_text, deployment, make_settings, running_stack

from bot.flink.sim import Faults
from bot.slack.driver import buttons_of, find_button

CH = "CWATCH"


def risk(level: str, health: int, symptom: str = "Backpressure") -> dict:
    return {
        "riskLevel": level,
        "healthScore": health,
        "symptoms": {
            "runtime": [
                {"name": symptom, "description": f"{symptom} seen", "recommendation": f"fix {symptom}"}
            ]
        },
    }


class Watching:
    """One watched deployment with helpers to move the simulator and the clock."""

    def __init__(self, stack, clock: Clock, name: str) -> None:
        self.stack, self.clock, self.name = stack, clock, name
        self.dep = deployment(stack.sim, name)

    def set(self, level: str, health: int = 50, symptom: str = "Backpressure") -> None:
        self.stack.sim.set_diagnosis(self.dep["deploymentId"], risk(f"RISK_LEVEL_{level}", health, symptom))

    async def check(self):
        self.clock.advance(seconds=2)
        return await self.stack.wiring.sweeper.sweep()

    async def sequence(self, *levels: str) -> list[str]:
        reasons = []
        for level in levels:
            self.set(level, {"LOW": 95, "MID": 70, "HIGH": 30}[level])
            result = await self.check()
            reasons.append(next(iter(result.reasons)))
        return reasons

    def top_level(self):
        return [
            m for m in self.stack.slack.channel_messages(CH, include_ephemeral=False) if m.thread_ts is None
        ]

    def replies(self, anchor):
        return self.stack.slack.thread(CH, anchor.ts)


async def watch(stack, clock, name: str, extra: str = "") -> Watching:
    reply = await stack.driver.command(f"watch deployment {name} --every 2s {extra}", channel=CH, user="UOPS")
    assert reply.status == 200
    await stack.settle()
    return Watching(stack, clock, name)


@pytest.fixture
async def env(tmp_path):
    clock = Clock()
    async with running_stack(tmp_path, now=clock, settings=make_settings(max_retries=0)) as stack:
        yield stack, clock


async def test_rise_confirmed_then_alerted_once_with_buttons(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    assert await w.sequence("LOW", "MID") == ["quiet", "quiet"]
    assert w.top_level() == []
    assert await w.sequence("MID") == ["new_incident"]
    [alert] = w.top_level()
    text = all_text(alert)
    assert "orders-etl" in text and "Mid" in text and "fix Backpressure" in text
    assert [b["action_id"] for b in buttons_of(alert)] == [
        "rerun_alert",
        "snooze_1h",
        "snooze_24h",
        "snooze_redeploy",
        "unwatch_target",
    ]
    assert await w.sequence("MID", "MID") == ["unchanged", "unchanged"]
    assert len(w.top_level()) == 1 and w.replies(alert) == []


async def test_further_rise_goes_to_the_thread_and_updates_the_alert(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("MID", "MID")
    [alert] = w.top_level()
    assert await w.sequence("HIGH") == ["changed"]
    [reply] = w.replies(alert)
    assert "High" in all_text(reply)
    assert alert.updates == 1 and "High" in all_text(alert)
    assert await w.sequence("HIGH", "HIGH") == ["unchanged", "unchanged"]
    assert len(w.replies(alert)) == 1


async def test_fall_below_threshold_posts_one_back_to_normal(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("HIGH")
    [alert] = w.top_level()
    assert await w.sequence("LOW") == ["unchanged"]  # not confirmed yet: the incident stays open
    assert await w.sequence("LOW") == ["back_to_normal"]
    [reply] = w.replies(alert)
    assert "Back to normal" in all_text(reply)
    assert "Back to normal" in all_text(alert)  # the first message shows the current state
    assert await w.sequence("LOW", "LOW") == ["quiet", "quiet"]
    assert len(w.replies(alert)) == 1
    # the next rise opens a new episode: a new top-level alert
    await w.sequence("HIGH")
    assert len(w.top_level()) == 2


async def test_flapping_never_alerts(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("LOW", "LOW", "MID", "LOW", "MID", "LOW", "MID", "LOW")
    assert w.top_level() == []


async def test_jump_straight_to_high_alerts_at_once(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("LOW", "LOW")
    assert await w.sequence("HIGH") == ["new_incident"]
    assert len(w.top_level()) == 1


async def test_threshold_high_ignores_mid(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl", "--min-risk high")
    await w.sequence("MID", "MID", "MID")
    assert w.top_level() == []
    await w.sequence("HIGH")
    assert len(w.top_level()) == 1


async def test_api_failure_streak_notes_once_and_recovery_once(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("LOW", "LOW")
    stack.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    results = [await w.check() for _ in range(5)]
    assert [next(iter(r.reasons)) for r in results] == ["failure_counted"] * 5
    assert [r.outages for r in results] == [
        {"no_outage": 1},
        {"no_outage": 1},
        {"cannot_check": 1},
        {"still_cannot_check": 1},
        {"still_cannot_check": 1},
    ]
    [note] = w.top_level()
    assert "Can't check" in all_text(note)
    stack.sim.faults = Faults()
    # the outage ends after FLINKDIAG_OUTAGE_RECOVERY_CHECKS (3) good checks in a row
    outages = [(await w.check()).outages for _ in range(3)]
    assert outages == [{"still_cannot_check": 1}, {"still_cannot_check": 1}, {"checking_again": 1}]
    [note] = w.top_level()  # the note itself now says it is over; the reply is in its thread
    assert "Checks work again" in all_text(note)
    [again] = w.replies(note)
    assert "again" in all_text(again)
    # a short streak that recovers says nothing
    stack.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    await w.check()
    await w.check()
    stack.sim.faults = Faults()
    await w.sequence("LOW", "LOW", "LOW")
    assert len(w.top_level()) == 1 and len(w.replies(note)) == 1


async def test_failures_are_not_risk_changes(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("MID")  # pending
    stack.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    await w.check()
    stack.sim.faults = Faults()
    assert await w.sequence("MID") == ["new_incident"]  # the failure did not break "consecutive"


async def test_deployment_without_running_job_is_reported_not_an_error_storm(env):
    stack, clock = env
    w = await watch(stack, clock, "notification-dispatcher")
    for _ in range(5):
        result = await w.check()
        assert result.reasons == {"quiet": 1}
    assert w.top_level() == []
    await stack.driver.command("watches", channel=CH)
    await stack.settle()
    assert "no running job" in all_text(stack.slack.channel_messages(CH)[-1])


async def test_restarted_job_keeps_the_episode(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("HIGH")
    old_job = w.dep["jobId"]
    new_job = stack.sim.restart(w.dep["deploymentId"])
    assert new_job != old_job
    assert await w.sequence("HIGH") == ["unchanged"]
    assert len(w.top_level()) == 1
    [alert] = w.top_level()
    await w.sequence("LOW", "LOW")
    assert "Back to normal" in all_text(w.replies(alert)[-1])


async def test_snooze_holds_posts_until_it_expires(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("MID", "MID")
    [alert] = w.top_level()
    reply = await stack.driver.press(alert, find_button(alert, "snooze_1h"), user="UOPS")
    assert reply.status == 200
    await stack.settle()
    assert any("snoozed" in all_text(m).lower() for m in w.replies(alert))
    before = len(w.replies(alert))
    assert await w.sequence("HIGH") == ["snoozed"]
    assert len(w.replies(alert)) == before
    clock.advance(hours=1)
    assert await w.sequence("HIGH") == ["changed"]
    assert len(w.replies(alert)) == before + 1


async def test_snooze_24h_and_watches_shows_it(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("HIGH")
    [alert] = w.top_level()
    await stack.driver.press(alert, find_button(alert, "snooze_24h"), user="UOPS")
    await stack.settle()
    await stack.driver.command("watches", channel=CH)
    await stack.settle()
    assert "snoozed" in all_text(stack.slack.channel_messages(CH)[-1]).lower()
    clock.advance(hours=23)
    assert await w.sequence("LOW", "LOW") == ["unchanged", "snoozed"]
    clock.advance(hours=2)
    assert await w.sequence("LOW") == ["back_to_normal"]


async def test_unwatch_button_stops_checks(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("HIGH")
    [alert] = w.top_level()
    await stack.driver.press(alert, find_button(alert, "unwatch_target"), user="UOPS")
    await stack.settle()
    assert "Stopped watching orders-etl" in all_text(stack.slack.channel_messages(CH)[-1])
    calls = sum(stack.sim.calls.values())
    assert (await w.check()).checked == 0
    assert sum(stack.sim.calls.values()) == calls


async def test_rerun_on_an_alert_answers_privately_and_keeps_the_alert(env):
    stack, clock = env
    w = await watch(stack, clock, "orders-etl")
    await w.sequence("HIGH")
    [alert] = w.top_level()
    updates = alert.updates
    await stack.driver.press(alert, find_button(alert, "rerun_alert"), user="UOPS")
    await stack.settle()
    private = stack.slack.channel_messages(CH)[-1]
    assert private.ephemeral and "orders-etl" in all_text(private) and "High" in all_text(private)
    assert alert.updates == updates


async def test_namespace_watch_includes_deployments_created_later(env):
    from bot.flink.sim_fleet import SimDeployment, SimJob

    stack, clock = env
    reply = await stack.driver.command("watch namespace analytics --every 2s", channel=CH)
    assert reply.status == 200
    await stack.settle()
    first = await stack.wiring.sweeper.sweep()
    assert first.expanded == 1 and first.checked == 4  # the four analytics deployments
    ns = stack.sim.fleet.namespace("ws-demo", "analytics")
    ns.deployments.append(
        SimDeployment(name="fresh-job", jobs=[SimJob()], diagnosis=risk("RISK_LEVEL_HIGH", 20, "OOM"))
    )
    stack.sim.fleet.normalise()
    clock.advance(seconds=2)
    second = await stack.wiring.sweeper.sweep()
    assert second.checked == 5
    alerts = [
        m for m in stack.slack.channel_messages(CH, include_ephemeral=False) if "fresh-job" in all_text(m)
    ]
    assert len(alerts) == 1 and "OOM" in all_text(alerts[0])


async def test_alert_links_to_the_console_when_the_region_is_known(tmp_path):
    clock = Clock()
    settings = make_settings(
        max_retries=0,
        region="cn-hangzhou",
        console_url="https://example.console/{region}/{namespace}/{deployment_id}",
    )
    async with running_stack(tmp_path, now=clock, settings=settings) as stack:
        w = await watch(stack, clock, "orders-etl")
        await w.sequence("HIGH")
        [alert] = w.top_level()
        link = find_button(alert, "open_console")
        d = deployment(stack.sim, "orders-etl")
        assert link["url"] == f"https://example.console/cn-hangzhou/{d['namespace']}/{d['deploymentId']}"


async def test_an_alert_storm_shares_one_digest_message(tmp_path):
    clock = Clock()
    settings = make_settings(max_retries=0, alert_storm_limit=3)
    async with running_stack(tmp_path, now=clock, settings=settings) as stack:
        reply = await stack.driver.command(
            "watch namespace default-namespace --every 2s --failures off", channel=CH
        )
        assert reply.status == 200
        await stack.settle()
        running = [
            d
            for d in stack.sim.fleet_summary()
            if d["namespace"] == "default-namespace" and d["jobStatus"] == "RUNNING"
        ]
        assert len(running) == 6
        for d in running:
            stack.sim.set_diagnosis(d["deploymentId"], risk("RISK_LEVEL_HIGH", 20, f"OOM in {d['name']}"))
        result = await stack.wiring.sweeper.sweep()
        assert result.reasons["new_incident"] == 6 and result.delivered == 6
        top = [m for m in stack.slack.channel_messages(CH, include_ephemeral=False) if m.thread_ts is None]
        assert len(top) == 4, "three alerts of their own, one digest for the rest"
        [digest] = [m for m in top if "more deployments" in m.text]
        listed = [d["name"] for d in running if d["name"] in all_text(digest)]
        assert len(listed) == 3
        # a digest target's follow-up goes into the digest's thread; the digest is not rewritten
        name = listed[0]
        dep = deployment(stack.sim, name)
        updates = digest.updates
        for _ in range(2):
            stack.sim.set_diagnosis(dep["deploymentId"], risk("RISK_LEVEL_LOW", 95))
            clock.advance(seconds=2)
            await stack.wiring.sweeper.sweep()
        [reply] = stack.slack.thread(CH, digest.ts)
        assert "Back to normal" in all_text(reply) and name in all_text(reply)
        assert digest.updates == updates
        # the next sweep with nothing new posts nothing
        before = len(stack.slack.channel_messages(CH))
        clock.advance(seconds=2)
        await stack.wiring.sweeper.sweep()
        assert len(stack.slack.channel_messages(CH)) == before
