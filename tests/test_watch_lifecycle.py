"""Issue 10 end to end: failed jobs, restart loops and health drops, in one thread per deployment.

Through the simulator (`set_status`, `restart`), the local Slack, the controllable clock and real
bots on a real database (see `watch_helpers.World`); every message is checked against
slack_sdk's block models.
"""

from __future__ import annotations

import asyncio

import pytest
from e2e import all_text
from slack_sdk.models.blocks import Block
from watch_helpers import CH, World, listing, tick, watch, world

from bot.slack.driver import find_button
from bot.slack.localslack import LocalMessage
from bot.watch.policy import TargetState

FAILED_AT = 1733300000000  # 2024-12-04 08:13 UTC
EVIL = "<!channel> boom & <@U1>"


def valid(messages: list[LocalMessage]) -> None:
    for m in messages:
        for b in [*m.blocks, *[b for a in m.attachments or [] for b in a.get("blocks", [])]]:
            parsed = Block.parse(b)
            assert parsed is not None, b
            parsed.validate_json()


def fail(
    w: World, name: str, reason: str = "ClassNotFoundException", message: str = "java.lang.Boom"
) -> None:
    w.sim.set_status(
        w.dep_id(name),
        {
            "currentJobStatus": "FAILED",
            "failure": {"failedAt": FAILED_AT, "reason": reason, "message": message},
        },
    )


def everything(w: World) -> list[LocalMessage]:
    """Every message in the channel, thread replies included (LocalSlack keeps them in order)."""
    return w.posts()


async def test_a_failed_job_alerts_at_once_and_running_again_closes_it(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    assert (await bot.wiring.sweeper.sweep()).reasons == {"quiet": 1}
    diagnoses = w.sim.calls["GetJobDiagnosis"]
    for _ in range(2):
        assert (await tick(w, bot)).reasons == {"quiet": 1}
    assert w.sim.calls["GetJobDiagnosis"] == diagnoses, "nothing wrong: one call (ListJobs) per check"

    fail(w, "orders-etl", message=f"{EVIL}\n" + "at com.example.Frame(Frame.java:1)\n" * 400)
    assert (await tick(w, bot)).reasons == {"new_incident": 1}
    [root] = w.alerts()
    text = all_text(root)
    assert "Job failed: orders-etl" in text and "ClassNotFoundException" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # escaped
    assert "2024-12-04 08:13 UTC" in text  # when it failed
    assert len(text) < 12000  # the stack trace was cut to fit
    assert (await tick(w, bot)).reasons == {"unchanged": 1}
    assert w.replies(root) == []

    w.sim.restart(w.dep_id("orders-etl"))  # a new job, RUNNING
    assert (await tick(w, bot)).reasons == {"back_to_normal": 1}
    [reply] = w.replies(root)
    assert "running again" in all_text(reply) and "Back to normal" in all_text(reply)
    assert root.updates == 1 and "Back to normal" in all_text(w.alerts()[0])
    assert (await tick(w, bot)).reasons == {"quiet": 1}
    valid(everything(w))


async def test_a_failure_during_an_open_risk_incident_goes_into_its_thread(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    w.set("orders-etl", "HIGH")
    assert (await bot.wiring.sweeper.sweep()).reasons == {"new_incident": 1}
    [root] = w.alerts()
    assert "High risk" in all_text(root)

    fail(w, "orders-etl")
    assert (await tick(w, bot)).reasons == {"changed": 1}
    assert w.alerts() == [root]
    [reply] = w.replies(root)
    assert "Job failed" in all_text(reply)
    root = w.alerts()[0]
    assert root.updates == 1
    header = root.blocks[0]["text"]["text"]
    assert header.startswith(":red_circle: Job failed: orders-etl")  # the worst open condition
    assert "Also open:* risk" in all_text(root)
    valid(everything(w))


async def test_a_restart_loop_alerts_with_the_count_and_the_window(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl", extra="--restarts 5")
    dep = w.dep_id("orders-etl")
    w.sim.set_status(dep, {"currentJobStatus": "RUNNING", "running": {"observedFlinkJobRestarts": 2}})
    assert (await bot.wiring.sweeper.sweep()).reasons == {"quiet": 1}  # a baseline
    w.sim.set_status(dep, {"running": {"observedFlinkJobRestarts": 5}})
    assert (await tick(w, bot)).reasons == {"quiet": 1}  # grew by 3 < 5
    w.sim.set_status(dep, {"running": {"observedFlinkJobRestarts": 12}})
    assert (await tick(w, bot)).reasons == {"new_incident": 1}
    [root] = w.alerts()
    assert "Restarting: orders-etl" in all_text(root) and "7 restarts since the last check" in all_text(root)
    assert (await tick(w, bot)).reasons == {"back_to_normal": 1}  # no new restart
    [reply] = w.replies(root)
    assert "stopped restarting" in all_text(reply)

    # New jobs (job id changes) count too: five starts within the hour.
    for _ in range(5):
        w.sim.restart(dep)
        result = await tick(w, bot, seconds=60)
    assert result.reasons == {"new_incident": 1}
    second = w.alerts()[-1]
    assert second is not root and "5 new jobs within the last hour" in all_text(second)
    valid(everything(w))


async def test_a_health_drop_alerts_after_two_checks_and_shows_the_band(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl", extra="--min-health 60 --min-risk off")
    dep = w.dep_id("orders-etl")
    w.sim.set_diagnosis(dep, {"riskLevel": "RISK_LEVEL_HIGH", "healthScore": 45})
    assert (await bot.wiring.sweeper.sweep()).reasons == {"quiet": 1}  # risk alerts are off; one low score
    assert (await tick(w, bot)).reasons == {"new_incident": 1}
    [root] = w.alerts()
    assert "Health unhealthy: orders-etl" in all_text(root) and "45/100 (unhealthy)" in all_text(root)
    w.sim.set_diagnosis(dep, {"riskLevel": "RISK_LEVEL_LOW", "healthScore": 85})
    assert (await tick(w, bot)).reasons == {"back_to_normal": 1}
    [reply] = w.replies(root)
    assert "recovered" in all_text(reply) and "85/100 (healthy)" in all_text(reply)
    valid(everything(w))


async def test_snooze_until_redeploy_ends_at_the_new_job_with_a_note(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    fail(w, "orders-etl")
    assert (await bot.wiring.sweeper.sweep()).reasons == {"new_incident": 1}
    [root] = w.alerts()
    await bot.driver.press(root, find_button(root, "snooze_redeploy"), user="UOPS")
    await bot.settle()
    [said] = w.replies(root)
    assert "until the deployment starts a new job" in all_text(said)
    assert "snoozed until a new job starts" in await listing(bot)

    w.set("orders-etl", "HIGH")  # a job that is not running is not diagnosed: nothing new
    w.sim.set_status(w.dep_id("orders-etl"), {"currentJobStatus": "STARTING"})
    for _ in range(3):
        assert (await tick(w, bot)).reasons in ({"unchanged": 1}, {"snoozed": 1})
    assert len(w.replies(root)) == 1

    w.sim.restart(w.dep_id("orders-etl"))  # the redeploy: a new job, running with HIGH risk
    result = await tick(w, bot)
    assert result.reasons == {"changed": 1}
    replies = w.replies(root)
    assert len(replies) == 2
    note = all_text(replies[-1])
    assert "snooze on" in note and "ended" in note and "running again" in note and "High" in note
    assert "snoozed" not in await listing(bot)
    valid(everything(w))


async def test_a_bot_restart_in_the_middle_of_an_incident_keeps_its_thread(w: World):
    a = await w.start_bot()
    await watch(a, "orders-etl")
    fail(w, "orders-etl")
    assert (await a.wiring.sweeper.sweep()).reasons == {"new_incident": 1}
    await w.stop_bot(a)

    b = await w.start_bot()
    for _ in range(2):
        assert (await tick(w, b)).reasons == {"unchanged": 1}
    [root] = w.alerts()
    assert w.replies(root) == []
    assert "open incident: job failed" in await listing(b)
    w.sim.restart(w.dep_id("orders-etl"))
    assert (await tick(w, b)).reasons == {"back_to_normal": 1}
    assert w.alerts() == [w.alerts()[0]] and len(w.replies(root)) == 1


async def test_cancelled_is_not_a_failure(w: World):
    bot = await w.start_bot()
    await watch(bot, "orders-etl")
    await bot.wiring.sweeper.sweep()
    w.sim.set_status(w.dep_id("orders-etl"), {"currentJobStatus": "CANCELLED"})
    for _ in range(2):
        assert (await tick(w, bot)).reasons == {"quiet": 1}
    assert w.alerts() == []
    assert "job cancelled, not a failure" in await listing(bot)


def test_a_state_stored_before_incidents_loads_as_an_open_risk_incident():
    old = {
        "confirmed_risk": "RISK_LEVEL_HIGH",
        "announced_risk": "RISK_LEVEL_HIGH",
        "anchor_risk": "RISK_LEVEL_HIGH",
        "failure_streak": 2,
        "checks_since_failure": 0,
        "last_kind": "failure",
        "last_error_kind": "throttled",
    }
    s = TargetState.load(old)
    assert s.episode_open and s.incident.root_level == "RISK_LEVEL_HIGH"
    assert s.failure_streak == 2 and s.checks_since_failure == 0 and s.last_error_kind == "throttled"
    assert TargetState.load({"failure_streak": "garbage", "incident": 7}).failure_streak == 0


# --- two replicas -------------------------------------------------------------------------------


@pytest.fixture
async def shared(db_url: str):
    async with world(db_url) as w:
        yield w


async def test_two_replicas_post_each_incident_message_once(shared: World):
    w = shared
    a = await w.start_bot()
    b = await w.start_bot()
    await watch(a, "orders-etl")
    await watch(b, "inventory-sync", extra="--min-risk high")
    w.clock.advance(seconds=-2)
    dep = w.dep_id("orders-etl")
    inv = w.dep_id("inventory-sync")
    script = [
        lambda: None,
        lambda: fail(w, "orders-etl"),
        lambda: w.set("orders-etl", "HIGH"),
        lambda: w.sim.restart(dep),  # running again, HIGH stays: the incident stays open
        lambda: w.sim.set_status(inv, {"running": {"observedFlinkJobRestarts": 50}}),
        lambda: w.set("orders-etl", "LOW"),
        lambda: None,
        lambda: None,
    ]
    for step in script:
        step()
        w.clock.advance(seconds=2)
        ra, rb = await asyncio.gather(a.wiring.sweeper.sweep(), b.wiring.sweeper.sweep())
        assert ra.checked + rb.checked == 2
    roots = {m.ts: m for m in w.alerts()}
    orders = [m for m in roots.values() if "orders-etl" in all_text(m)]
    inventory = [m for m in roots.values() if "inventory-sync" in all_text(m)]
    assert len(orders) == 1 and len(inventory) == 1
    texts = [all_text(r) for r in w.replies(orders[0])]
    assert len(texts) == 2, texts  # running again (risk stays), then back to normal
    assert "running again" in texts[0] and "Back to normal" in texts[1]
    assert len(w.replies(inventory[0])) == 1  # stopped restarting: back to normal
    valid(everything(w))
    assert all(m.thread_ts in (None, *roots) for m in w.posts(CH))


def test_watch_options_parse_into_conditions():
    from bot.commands import parse_command

    c = parse_command("watch deployment x --min-risk off --failures off --restarts 5 --min-health 60")
    assert (c.min_risk, c.failures, c.restarts, c.min_health) == (None, False, 5, 60)
    d = parse_command("watch namespace ns")
    assert (d.min_risk.raw, d.failures, d.restarts, d.min_health) == ("RISK_LEVEL_MID", True, 3, None)
    assert parse_command("watch deployment x --restarts off --min-health off").restarts is None


async def test_a_health_watch_reads_the_diagnosis_when_the_job_list_has_no_score(w: World):
    # Whether ListJobs always fills healthScore is unverified; without it the health watch must
    # ask GetJobDiagnosis, or a health drop would never be seen.
    bot = await w.start_bot()
    await watch(bot, "orders-etl", extra="--min-health 60 --min-risk off")
    dep = w.dep_id("orders-etl")
    w.sim.set_diagnosis(dep, {"riskLevel": "RISK_LEVEL_LOW", "healthScore": 45})
    w.sim.set_status(dep, {"healthScore": None})
    assert (await bot.wiring.sweeper.sweep()).reasons == {"quiet": 1}
    assert w.sim.calls["GetJobDiagnosis"] >= 1
    assert (await tick(w, bot)).reasons == {"new_incident": 1}
    [root] = w.alerts()
    assert "Health unhealthy: orders-etl" in all_text(root)
    valid(everything(w))
