"""Re-run diagnosis (in place, with what changed) and Share to channel, pressed as Slack would."""

from __future__ import annotations

import pytest
from e2e import all_text, deployment, diagnose_and_wait, running_stack

from bot.slack.driver import buttons_of, find_button


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


async def test_rerun_updates_in_place_and_shows_what_changed(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl")
    assert "Low" in all_text(message)
    before_updates = message.updates
    shown = len(stack.slack.channel_messages("CTEST"))  # the command's ack and its answer
    dep = deployment(stack.sim, "orders-etl")
    stack.sim.set_diagnosis(
        dep["deploymentId"],
        {
            "riskLevel": "RISK_LEVEL_HIGH",
            "healthScore": 40,
            "symptoms": {
                "runtime": [
                    {
                        "name": "Checkpoint timeout",
                        "description": "cp 42 timed out",
                        "recommendation": "raise the timeout",
                    }
                ]
            },
        },
    )
    reply = await stack.driver.press(message, find_button(message, "rerun_diagnosis"))
    assert reply.status == 200
    await stack.settle()
    assert len(stack.slack.channel_messages("CTEST")) == shown, "updated in place, not a new message"
    assert message.updates == before_updates + 1
    text = all_text(message)
    assert "High" in text and "Checkpoint timeout" in text
    assert "Since" in text  # the change section
    assert "-56" in text  # health 96 -> 40
    # and again: nothing changed this time
    await stack.driver.press(message, find_button(message, "rerun_diagnosis"))
    await stack.settle()
    assert message.updates == before_updates + 2
    assert stack.sim.calls["GetJobDiagnosis"] == 3


async def test_share_posts_the_same_diagnosis_for_everyone(stack):
    message = await diagnose_and_wait(stack, "deployment payments-fraud-scoring", user="UALICE")
    reply = await stack.driver.press(message, find_button(message, "share_diagnosis"), user="UALICE")
    assert reply.status == 200
    await stack.settle()
    assert stack.slack.calls["chat.postMessage"] == 1
    public = [m for m in stack.slack.channel_messages("CTEST") if not m.ephemeral]
    assert len(public) == 1
    text = all_text(public[0])
    assert "payments-fraud-scoring" in text and "UALICE" in text
    assert "share_diagnosis" not in [b["action_id"] for b in buttons_of(public[0])]
    # shared from storage: the API is not asked again
    assert stack.sim.calls["GetJobDiagnosis"] == 1


async def test_share_where_the_bot_is_not_a_member(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl", channel="CPRIVATE")
    stack.slack.not_member.add("CPRIVATE")
    await stack.driver.press(message, find_button(message, "share_diagnosis"))
    await stack.settle()
    last = stack.slack.channel_messages("CPRIVATE")[-1]
    assert "can't post in this channel" in all_text(last) and "/invite" in all_text(last)


async def test_rerun_of_a_shared_message_updates_it_for_everyone(stack):
    dep = deployment(stack.sim, "orders-etl")
    await stack.driver.command(f"job {dep['jobId']} --share", channel="CPUB")
    await stack.settle()
    [public] = [m for m in stack.slack.channel_messages("CPUB") if not m.ephemeral]
    await stack.driver.press(public, find_button(public, "rerun_diagnosis"))
    await stack.settle()
    assert public.updates == 1 and not public.ephemeral
    assert "share_diagnosis" not in [b["action_id"] for b in buttons_of(public)]


async def test_rerun_of_a_deployment_follows_it_to_its_new_job(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl")
    dep = deployment(stack.sim, "orders-etl")
    old_job = dep["jobId"]
    new_job = stack.sim.restart(dep["deploymentId"])
    stack.sim.set_diagnosis(dep["deploymentId"], {"riskLevel": "RISK_LEVEL_MID", "healthScore": 70})
    await stack.driver.press(message, find_button(message, "rerun_diagnosis"))
    await stack.settle()
    text = all_text(message)
    assert new_job in text and "restarted" in text and old_job in text
    assert "Mid" in text


async def test_rerun_of_a_job_stays_on_that_job(stack):
    dep = deployment(stack.sim, "orders-etl")
    message = await diagnose_and_wait(stack, f"job {dep['jobId']}")
    stack.sim.restart(dep["deploymentId"])
    await stack.driver.press(message, find_button(message, "rerun_diagnosis"))
    await stack.settle()
    text = all_text(message)
    assert "restarted" not in text and dep["jobId"] in text
