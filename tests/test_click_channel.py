"""Clicks stay in their channel: a button value copied (or tampered with) into another channel or
workspace is refused with an ephemeral note and a log line, and nothing changes or is posted.

Real Slack never lets a user edit a button value; these requests are signed and carry another
channel's ids, as a forged click would.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from e2e import all_text, diagnose_and_wait
from watch_helpers import CH, tick, watch

from bot.slack.driver import SlackDriver, find_button

OTHER = "COTHER"


async def alerting(w):
    """A bot whose channel CH has an alert on orders-etl (HIGH)."""
    stack = await w.start_bot()
    await watch(stack, "orders-etl")
    w.set("orders-etl", "HIGH")
    await tick(w, stack)
    [alert] = w.alerts("orders-etl")
    return stack, alert


def elsewhere(message, channel: str = OTHER):
    """The same message as if shown in `channel`: its buttons' values unchanged."""
    return dataclasses.replace(message, channel=channel)


def last_note(stack, channel: str) -> str:
    return all_text(stack.slack.channel_messages(channel)[-1])


async def state_of(stack):
    targets = await stack.store.watches.channel_targets(stack.driver.team_id, CH)
    return [(t.id, t.state.snoozed_until, t.muted) for t in targets]


@pytest.mark.parametrize("button", ["snooze_1h", "snooze_24h", "unwatch_target"])
async def test_watch_buttons_from_another_channel_are_refused(w, button, caplog):
    caplog.set_level(logging.INFO)
    stack, alert = await alerting(w)
    before, posts, watches = (
        await state_of(stack),
        stack.slack.calls["chat.postMessage"],
        len(await stack.store.watches.list_watches(stack.driver.team_id, CH)),
    )
    reply = await stack.driver.press(elsewhere(alert), find_button(alert, button), user="UMALLORY")
    assert reply.status == 200
    await stack.settle()
    assert "belongs to another channel" in last_note(stack, OTHER)
    assert stack.slack.channel_messages(OTHER)[-1].ephemeral
    assert await state_of(stack) == before
    assert len(await stack.store.watches.list_watches(stack.driver.team_id, CH)) == watches
    assert stack.slack.calls["chat.postMessage"] == posts
    assert not w.replies(alert), "nothing said in the alert's thread"
    assert any("another channel" in r.getMessage() for r in caplog.records)


async def test_watch_buttons_from_another_workspace_are_refused(w):
    stack, alert = await alerting(w)
    before = await state_of(stack)
    async with SlackDriver(
        stack.events_url, stack.driver.verifier.signing_secret, w.slack, team_id="TOTHER"
    ) as d:
        await d.press(alert, find_button(alert, "snooze_24h"), user="UMALLORY")
        await d.press(alert, find_button(alert, "unwatch_target"), user="UMALLORY")
    await stack.settle()
    assert await state_of(stack) == before
    assert "belongs to another channel" in last_note(stack, CH)


async def test_snooze_in_its_own_channel_still_works(w):
    stack, alert = await alerting(w)
    await stack.driver.press(alert, find_button(alert, "snooze_1h"), user="UOPS")
    await stack.settle()
    [(_, snoozed, _)] = await state_of(stack)
    assert snoozed is not None


async def test_rerun_alert_from_a_channel_that_does_not_watch_it_is_refused(w):
    stack, alert = await alerting(w)
    diagnoses = w.sim.calls["GetJobDiagnosis"]
    await stack.driver.press(elsewhere(alert), find_button(alert, "rerun_alert"), user="UMALLORY")
    await stack.settle()
    assert "belongs to another channel" in last_note(stack, OTHER)
    assert w.sim.calls["GetJobDiagnosis"] == diagnoses


# ------------------------------------------------------------------- Share and Re-run


@pytest.fixture
async def stack(w):
    return await w.start_bot()


async def test_share_of_another_channels_diagnosis_is_refused(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl", channel="CSECRET", user="UALICE")
    reply = await stack.driver.press(
        elsewhere(message), find_button(message, "share_diagnosis"), user="UMALLORY"
    )
    assert reply.status == 200
    await stack.settle()
    assert stack.slack.calls["chat.postMessage"] == 0
    assert not stack.slack.channel_messages(OTHER, include_ephemeral=False)
    note = stack.slack.channel_messages(OTHER)[-1]
    assert note.ephemeral and "belongs to another channel" in all_text(note)
    assert "orders-etl" not in all_text(note)


async def test_share_in_its_own_channel_still_works(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl", channel="CSECRET", user="UALICE")
    await stack.driver.press(message, find_button(message, "share_diagnosis"), user="UALICE")
    await stack.settle()
    assert stack.slack.calls["chat.postMessage"] == 1


async def test_rerun_of_another_channels_diagnosis_is_refused(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl", channel="CSECRET", user="UALICE")
    diagnoses, updates = stack.sim.calls["GetJobDiagnosis"], message.updates
    await stack.driver.press(elsewhere(message), find_button(message, "rerun_diagnosis"), user="UMALLORY")
    await stack.settle()
    assert stack.sim.calls["GetJobDiagnosis"] == diagnoses
    assert "belongs to another channel" in last_note(stack, OTHER)
    assert message.updates == updates
