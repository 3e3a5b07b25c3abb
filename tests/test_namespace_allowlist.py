"""The bot serves only the namespaces it is configured for (FLINKDIAG_NAMESPACES, narrowed per
channel by FLINKDIAG_CHANNEL_NAMESPACES): commands, buttons, watches and reports obey it.

The simulator's fleet has namespaces `default-namespace` (orders-etl, …) and `analytics`
(clickstream-agg, …). A config change is a bot restarted with other settings on the same world.
"""

from __future__ import annotations

import pytest
from e2e import all_text, diagnose_and_wait
from watch_helpers import CH, listing, say, tick, watch

from bot.config import Settings
from bot.diagnosis.report import Target
from bot.namespaces import NamespacePolicy
from bot.slack.buttons import action_value
from bot.slack.driver import find_button

ONLY_ANALYTICS = {"namespaces": ["analytics"]}
REFUSAL = "I don't serve namespace `default-namespace` in this channel"


def refused(text: str, namespace: str = "default-namespace") -> bool:
    return f"I don't serve namespace `{namespace}`" in text and "FLINKDIAG_NAMESPACES" in text


# ------------------------------------------------------------------- the policy itself


def test_settings_read_the_allow_list_and_channel_narrowing():
    s = Settings.model_validate(
        {"namespaces": "analytics,payments,orders", "channel_namespaces": "C1=analytics, payments;C2=orders"}
    )
    p = NamespacePolicy(tuple(s.namespaces), s.channel_namespaces)
    assert p.allows("T", "CANY", "orders") and not p.allows("T", "CANY", "secret")
    assert p.allows("T", "C1", "payments") and not p.allows("T", "C1", "orders")
    assert p.defaults_for("T", "C2") == ["orders"]
    assert p.defaults_for("T", "CANY") == ["analytics", "payments", "orders"]
    star = NamespacePolicy(("*",), {"C2": ["orders"]})
    assert star.allows("T", "CANY", "anything") and not star.allows("T", "C2", "anything")
    assert star.defaults_for("T", "CANY") == []
    assert not NamespacePolicy(()).allows("T", "C", "analytics"), "an empty list serves nothing"
    with pytest.raises(ValueError, match="CHANNEL=namespace"):
        Settings.model_validate({"channel_namespaces": "C1"})


# ------------------------------------------------------------------- commands


async def test_commands_naming_a_namespace_not_served_are_refused(w):
    stack = await w.start_bot(**ONLY_ANALYTICS)
    for command in (
        "deployment orders-etl --namespace default-namespace",
        "job 86845d9f-d594-5e53-a632-3a6d41e1dfe2 --namespace default-namespace",
        "watch deployment orders-etl --namespace default-namespace",
        "watch namespace default-namespace",
        "defaults namespace=default-namespace",
    ):
        assert refused(await say(stack, command)), command
    assert sum(w.sim.calls.values()) == 0, "the API was never asked"
    assert await stack.store.watches.list_watches(stack.driver.team_id, CH) == []
    assert await stack.store.channel_defaults.get(stack.driver.team_id, CH) is None
    # a namespace that is served still works
    assert "clickstream-agg" in await say(stack, "deployment clickstream-agg")


async def test_a_channel_default_no_longer_served_is_refused_by_name(w):
    stack = await w.start_bot()
    await say(stack, "defaults namespace=default-namespace")
    await w.stop_bot(stack)
    stack = await w.start_bot(**ONLY_ANALYTICS)
    assert refused(await say(stack, "deployment orders-etl"))


async def test_a_narrowed_channel_searches_and_serves_only_its_namespaces(w):
    stack = await w.start_bot(channel_namespaces={"CNARROW": ["analytics"]})
    assert refused(await say(stack, "deployment orders-etl --namespace default-namespace", channel="CNARROW"))
    # without --namespace only the channel's namespaces are searched
    answer = await say(stack, "deployment orders-etl", channel="CNARROW")
    assert "orders-etl" in answer and "`analytics`" in answer and "default-namespace" not in answer
    # other channels are not narrowed
    assert "Low risk" in await say(
        stack, "deployment orders-etl --namespace default-namespace", channel="CWIDE"
    )


# ------------------------------------------------------------------- buttons


async def test_buttons_on_a_namespace_no_longer_served_are_refused(w):
    stack = await w.start_bot()
    message = await diagnose_and_wait(stack, "deployment orders-etl", channel=CH)
    await w.stop_bot(stack)
    stack = await w.start_bot(**ONLY_ANALYTICS)
    diagnoses, posts = w.sim.calls["GetJobDiagnosis"], w.slack.calls["chat.postMessage"]
    await stack.driver.press(message, find_button(message, "rerun_diagnosis"))
    await stack.settle()
    assert refused(all_text(w.slack.channel_messages(CH)[-1]))
    await stack.driver.press(message, find_button(message, "share_diagnosis"))
    await stack.settle()
    assert refused(all_text(w.slack.channel_messages(CH)[-1]))
    target = Target(
        workspace="ws-demo", namespace="default-namespace", deployment_id=w.dep_id("orders-etl"), job_id=""
    )
    choice = {
        "action_id": "diagnose_choice",
        "value": action_value(target),
        "block_id": "b",
        "text": "orders-etl",
    }
    await stack.driver.press(message, choice)
    await stack.settle()
    assert refused(all_text(w.slack.channel_messages(CH)[-1]))
    assert w.sim.calls["GetJobDiagnosis"] == diagnoses
    assert w.slack.calls["chat.postMessage"] == posts


# ------------------------------------------------------------------- watches and reports


async def test_a_watch_on_a_namespace_no_longer_served_is_not_checked_and_reports_leave_it_out(w):
    stack = await w.start_bot()
    await watch(stack, "orders-etl")
    await watch(stack, "clickstream-agg")
    await say(stack, "watch namespace default-namespace --every 2s")
    await tick(w, stack)
    await w.stop_bot(stack)

    stack = await w.start_bot(**ONLY_ANALYTICS)
    w.set("orders-etl", "HIGH")
    w.set("clickstream-agg", "HIGH")
    posts_before = len(w.posts())
    listed = w.sim.calls["ListDeployments"]
    for _ in range(3):
        await tick(w, stack)
    assert w.alerts("clickstream-agg"), "the served namespace is still watched"
    assert not w.alerts("orders-etl"), "nothing posted about a namespace not served"
    assert w.sim.calls["ListDeployments"] == listed, "the namespace watch is not expanded"
    assert len(w.posts()) > posts_before

    shown = await listing(stack)
    note = all_text(w.slack.channel_messages(CH)[-1])
    assert "orders-etl" in shown
    assert "Not checked" in note and "deployment orders-etl" in note and "namespace default-namespace" in note
    assert "FLINKDIAG_NAMESPACES" in note

    await say(stack, "report now")
    [report] = [m for m in w.posts() if "report" in all_text(m).lower() and "clickstream-agg" in all_text(m)]
    assert "orders-etl" not in all_text(report) and "payments-fraud-scoring" not in all_text(report)

    # unwatch is never refused: the way out of a watch that no longer works
    assert "Stopped watching" in await say(stack, "unwatch deployment orders-etl")
