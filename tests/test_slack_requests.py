"""Requests into the Bolt app: forged or stale signatures are refused before any work is done;
hostile API text cannot ping anyone once it reaches Slack."""

from __future__ import annotations

import time

import pytest
from e2e import all_text, deployment, diagnose_and_wait, running_stack


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


async def test_forged_signature_is_refused(stack):
    body, _ = stack.driver.command_body("deployment orders-etl", channel="C1", user="U1")
    headers = stack.driver.signed_headers(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    reply = await stack.driver.post(body, headers)
    assert reply.status == 401
    assert sum(stack.sim.calls.values()) == 0
    assert stack.slack.calls["response_url"] == 0


async def test_stale_timestamp_is_refused(stack):
    body, _ = stack.driver.command_body("deployment orders-etl", channel="C1", user="U1")
    reply = await stack.driver.post(body, stack.driver.signed_headers(body, timestamp=int(time.time()) - 600))
    assert reply.status == 401
    assert sum(stack.sim.calls.values()) == 0


async def test_missing_signature_is_refused(stack):
    body, _ = stack.driver.command_body("help", channel="C1", user="U1")
    reply = await stack.driver.post(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 401


async def test_body_tampered_after_signing_is_refused(stack):
    body, _ = stack.driver.command_body("help", channel="C1", user="U1")
    headers = stack.driver.signed_headers(body)
    reply = await stack.driver.post(body.replace("help", "deployment+orders-etl"), headers)
    assert reply.status == 401


async def test_hostile_symptom_text_is_escaped_end_to_end(stack):
    dep = deployment(stack.sim, "orders-etl")
    stack.sim.set_diagnosis(
        dep["deploymentId"],
        {
            "riskLevel": "RISK_LEVEL_MID",
            "healthScore": 70,
            "symptoms": {
                "runtime": [
                    {
                        "name": "<!channel> wake up",
                        "description": "ping <@U0ADMIN> & see <https://evil.example|docs>",
                        "recommendation": "<!here>",
                    }
                ]
            },
        },
    )
    message = await diagnose_and_wait(stack, "deployment orders-etl")
    text = all_text(message)
    for raw in ("<!channel>", "<@U0ADMIN>", "<https://evil.example", "<!here>"):
        assert raw not in text
    assert "&lt;!channel&gt;" in text and "&amp;" in text


async def test_an_answer_slack_refuses_is_replaced_by_a_short_note_and_logged(stack, caplog):
    import logging

    caplog.set_level(logging.INFO)
    stack.slack.fail_next("response_url", "invalid_blocks", status=400)
    reply = await stack.driver.command("deployment orders-etl", channel="CREF", user="U1")
    assert reply.status == 200
    await stack.settle()
    last = stack.slack.channel_messages("CREF")[-1]
    assert "Slack refused my answer" in all_text(last) and "invalid_blocks" in all_text(last)
    assert any(r.getMessage() == "slack refused a response" for r in caplog.records)
