"""`/flinkdiag job|deployment` end to end: signed slash command → Bolt → simulator → response_url."""

from __future__ import annotations

import json

import pytest
from e2e import all_text, deployment, diagnose_and_wait, make_settings, running_stack

from bot.flink.sim import Faults, Simulator
from bot.slack.driver import buttons_of


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


async def test_deployment_by_name_acks_then_answers_below(stack):
    reply = await stack.driver.command("deployment orders-etl", channel="CTEST", user="UTEST")
    assert reply.status == 200
    assert "Diagnosing" in json.dumps(reply.body)
    await stack.settle()
    # As in Slack: a slash command's response_url cannot replace the ack; the answer is new.
    [ack, message] = stack.slack.channel_messages("CTEST")
    assert ack is reply.message and ack.updates == 0 and "the answer follows below" in all_text(ack)
    assert message.updates == 0 and message.ephemeral and message.ephemeral_to == "UTEST"
    text = all_text(message)
    dep = deployment(stack.sim, "orders-etl")
    assert dep["jobId"] in text and dep["deploymentId"] in text
    assert "Low" in text  # orders-etl is low risk in the default fleet
    actions = [b["action_id"] for b in buttons_of(message)]
    assert actions[:2] == ["rerun_diagnosis", "share_diagnosis"]
    assert stack.sim.calls["GetJobDiagnosis"] == 1


async def test_deployment_by_id(stack):
    dep = deployment(stack.sim, "payments-fraud-scoring")
    message = await diagnose_and_wait(stack, f"deployment {dep['deploymentId']}")
    text = all_text(message)
    assert "payments-fraud-scoring" in text and "High" in text
    assert stack.sim.calls["GetDeployment"] >= 1


async def test_job_is_found_in_the_namespace_that_has_it(stack):
    dep = deployment(stack.sim, "clickstream-agg")  # lives in `analytics`
    message = await diagnose_and_wait(stack, f"job {dep['jobId']}")
    text = all_text(message)
    assert "analytics" in text and "clickstream-agg" in text
    # both configured namespaces were asked (concurrently), the diagnosis fetched once
    assert stack.sim.calls["GetJob"] == 2
    assert stack.sim.calls["GetJobDiagnosis"] == 1


async def test_namespace_option_limits_the_search(stack):
    dep = deployment(stack.sim, "clickstream-agg")
    await diagnose_and_wait(stack, f"job {dep['jobId']} --namespace analytics")
    assert stack.sim.calls["GetJob"] == 1


async def test_share_flag_posts_in_channel_without_share_button(stack):
    dep = deployment(stack.sim, "orders-etl")
    reply = await stack.driver.command(f"job {dep['jobId']} --share", channel="CTEST", user="UTEST")
    assert reply.status == 200
    await stack.settle()
    shared = [m for m in stack.slack.channel_messages("CTEST") if not m.ephemeral]
    assert len(shared) == 1
    assert "share_diagnosis" not in [b["action_id"] for b in buttons_of(shared[0])]
    assert "UTEST" in all_text(shared[0])  # "Shared by <@UTEST>"


async def test_channel_defaults_are_used_and_shown(stack):
    reply = await stack.driver.command("defaults namespace=analytics workspace=ws-demo", channel="CDEF")
    assert reply.status == 200
    await stack.settle()
    shown = all_text(stack.slack.channel_messages("CDEF")[-1])
    assert "analytics" in shown and "ws-demo" in shown
    dep = deployment(stack.sim, "clickstream-agg")
    await diagnose_and_wait(stack, f"job {dep['jobId']}", channel="CDEF")
    assert stack.sim.calls["GetJob"] == 1, "only the channel's default namespace is searched"


async def test_defaults_alone_shows_current_defaults(stack):
    await stack.driver.command("defaults namespace=analytics", channel="CDEF2")
    await stack.settle()
    await stack.driver.command("defaults", channel="CDEF2")
    await stack.settle()
    last = all_text(stack.slack.channel_messages("CDEF2")[-1])
    assert "analytics" in last


async def test_ack_comes_before_a_slow_diagnosis(tmp_path):
    """Slack's 3-second rule: the ack must not wait for the Flink API."""
    sim = Simulator()
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            sim.faults = Faults(latency_ms=1500)
            reply = await stack.driver.command("deployment orders-etl", channel="CSLOW", user="U1")
            assert reply.status == 200 and "Diagnosing" in json.dumps(reply.body)
            # the answer is not there yet when the ack arrives: the work runs after it
            [ack] = stack.slack.channel_messages("CSLOW")
            assert ack.updates == 0
            assert stack.deps.tracker.running == 1
            await stack.settle()
            [_, answer] = stack.slack.channel_messages("CSLOW")
            assert ack.updates == 0 and answer is not ack and "Re-run diagnosis" in all_text(answer)
    finally:
        await sim.stop()


async def test_a_diagnosis_that_outlives_the_deadline_still_ends_in_a_message(tmp_path):
    sim = Simulator()
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            stack.deps.diagnoser.deadline = 0.5
            sim.faults = Faults(latency_ms=2000)
            await stack.driver.command("deployment orders-etl", channel="CLATE", user="U1")
            await stack.settle()
            last = stack.slack.channel_messages("CLATE")[-1]
            assert "did not answer in time" in all_text(last)
    finally:
        await sim.stop()


async def test_console_link_only_with_region(tmp_path):
    async with running_stack(tmp_path, settings=make_settings(region="cn-hangzhou")) as stack:
        message = await diagnose_and_wait(stack, "deployment orders-etl")
        links = [b for b in buttons_of(message) if b["action_id"] == "open_console"]
        assert links and links[0]["url"].startswith("https://")
        reply = await stack.driver.press(message, links[0], user="UTEST")
        assert reply.status == 200  # a link button is acked too
    async with running_stack(tmp_path / "b") as stack:
        message = await diagnose_and_wait(stack, "deployment orders-etl")
        assert "open_console" not in [b["action_id"] for b in buttons_of(message)]
