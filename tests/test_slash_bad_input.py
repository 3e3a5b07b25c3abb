"""Every bad input gets a clear, specific answer in Slack — never a stack trace, never silence."""

from __future__ import annotations

import json
import logging

import pytest
from e2e import all_text, deployment, diagnose_and_wait, make_settings, running_stack

from bot.flink.sim import Faults, Simulator
from bot.flink.sim_fleet import load_scenario
from bot.slack.blocks import unescape_mrkdwn
from bot.slack.driver import buttons_of, find_button


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


def ack_text(reply) -> str:
    return unescape_mrkdwn(json.dumps(reply.body, ensure_ascii=False))


@pytest.mark.parametrize(
    ("text", "mistake"),
    [
        ("frobnicate", "I don't know the command `frobnicate`"),
        ("job", "missing argument"),
        ("job not/an/id", "doesn't look like a job id"),
        ("job ../../etc", "doesn't look like a job id"),
        ("job abc def", "unexpected `def`"),
        ("job abc --nope 1", "unknown option `--nope"),
        ("job abc --namespace", "`--namespace` needs a value"),
        ('job "unterminated', "couldn't read that command"),
        ("defaults colour=blue", "use `defaults namespace=N workspace=W`"),
        ("watch pod x", "`watch deployment <name-or-id>`"),
        ("watch deployment x --every 1ms", "is not a duration"),
        ("watch deployment x --min-risk extreme", "use mid, high or off"),
        ("watch deployment x --failures maybe", "use on or off"),
        ("watch deployment x --restarts 0", "use a number of restarts (1-1000) or off"),
        ("watch deployment x --min-health lots", "use a health score (1-100, e.g. 60) or off"),
        ("report daily 25:00", "is not a time of day"),
        ("report daily 09:00 Mars/Olympus", "is not a time zone"),
    ],
)
async def test_malformed_commands_name_the_mistake_in_the_ack(stack, text, mistake):
    reply = await stack.driver.command(text, channel="CBAD")
    assert reply.status == 200
    body = ack_text(reply)
    assert mistake in body, body
    assert "/flinkdiag job" in body  # followed by the usage
    assert sum(stack.sim.calls.values()) == 0, "nothing reaches the API"


async def test_help_and_empty_text_show_usage(stack):
    for text in ("help", ""):
        reply = await stack.driver.command(text)
        assert "deployment <name-or-id>" in ack_text(reply)


async def test_unknown_job(stack):
    message = await diagnose_and_wait(stack, "job 00000000-0000-0000-0000-000000000000")
    text = all_text(message)
    assert "00000000-0000-0000-0000-000000000000" in text and "was not found" in text
    assert "default-namespace" in text and "analytics" in text  # says where it looked


async def test_unknown_deployment(stack):
    message = await diagnose_and_wait(stack, "deployment no-such-thing")
    assert "No deployment named or with id `no-such-thing`" in all_text(message)


async def test_deployment_without_running_job(stack):
    message = await diagnose_and_wait(stack, "deployment notification-dispatcher")
    text = all_text(message)
    assert "has no running job" in text and "CANCELLED" in text
    never = await diagnose_and_wait(stack, "deployment daily-kpi-backfill")
    assert "never run a job" in all_text(never)


async def test_several_matches_offer_a_choice_that_works(tmp_path):
    scenario = {
        "workspaces": [
            {
                "id": "ws-two",
                "namespaces": [
                    {
                        "name": ns,
                        "deployments": [
                            {
                                "name": "etl",
                                "jobs": [{"status": "RUNNING"}],
                                "diagnosis": {"riskLevel": risk, "healthScore": score},
                            }
                        ],
                    }
                    for ns, risk, score in (
                        ("team-a", "RISK_LEVEL_LOW", 95),
                        ("team-b", "RISK_LEVEL_HIGH", 30),
                    )
                ],
            }
        ]
    }
    path = tmp_path / "two.json"
    path.write_text(json.dumps(scenario))
    sim = Simulator(fleet=load_scenario(path))
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            choice = await diagnose_and_wait(stack, "deployment etl")
            text = all_text(choice)
            assert "matches 2 deployments" in text and "team-a" in text and "team-b" in text
            buttons = [b for b in buttons_of(choice) if b["action_id"] == "diagnose_choice"]
            assert len(buttons) == 2
            b_button = next(b for b in buttons if "team-b" in b["value"])
            reply = await stack.driver.press(choice, b_button)
            assert reply.status == 200
            await stack.settle()
            result = stack.slack.channel_messages("CTEST")[-1]
            assert "High" in all_text(result) and "team-b" in all_text(result)
            # with --share, the chosen diagnosis is posted for everyone
            choice = await diagnose_and_wait(stack, "deployment etl --share", channel="CSHARE")
            button = next(b for b in buttons_of(choice) if "team-a" in (b["value"] or ""))
            await stack.driver.press(choice, button)
            await stack.settle()
            public = [m for m in stack.slack.channel_messages("CSHARE") if not m.ephemeral]
            assert len(public) == 1 and "team-a" in all_text(public[0])
    finally:
        await sim.stop()


async def test_api_refusing_our_credentials(tmp_path, caplog):
    sim = Simulator(access_keys={"other-ak": "other-secret"})
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            caplog.set_level(logging.INFO)
            message = await diagnose_and_wait(stack, "deployment orders-etl")
            text = all_text(message)
            assert "AccessKey" in text and "InvalidAccessKeyId.NotFound" in text
            assert "ref" in text.lower()
            # the log carries the service's code and request id, never the secret
            assert any("InvalidAccessKeyId" in str(getattr(r, "error_code", "")) for r in caplog.records)
            assert "flinkdiag-sim-secret" not in caplog.text
    finally:
        await sim.stop()


async def test_service_down(tmp_path):
    sim = Simulator()
    await sim.start()
    async with running_stack(tmp_path, sim=sim) as stack:
        await sim.stop()
        message = await diagnose_and_wait(stack, "deployment orders-etl")
        assert "could not be reached" in all_text(message)


async def test_service_errors_and_garbage_answers(tmp_path):
    sim = Simulator()
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim, settings=make_settings(max_retries=0)) as stack:
            sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
            assert "internal error" in all_text(await diagnose_and_wait(stack, "deployment orders-etl"))
            sim.faults = Faults(error_rate=1.0, error_kinds=["throttle"], retry_after_ms=10)
            assert "throttling" in all_text(await diagnose_and_wait(stack, "deployment orders-etl"))
            sim.faults = Faults(fail_next=1, error_kinds=["malformed"])
            assert "could not read" in all_text(await diagnose_and_wait(stack, "deployment orders-etl"))
    finally:
        await sim.stop()


async def test_unknown_workspace(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl --workspace ws-nope")
    assert "No deployment named or with id `orders-etl`" in all_text(message)
    assert "ws-nope" in all_text(message)


async def test_stale_button_value(stack):
    message = await diagnose_and_wait(stack, "deployment orders-etl")
    rerun = dict(find_button(message, "rerun_diagnosis"))
    rerun["value"] = "not json"
    reply = await stack.driver.press(message, rerun)
    assert reply.status == 200
    await stack.settle()
    assert "can't read that button" in all_text(stack.slack.channel_messages("CTEST")[-1])


async def test_unknown_job_in_scenario_less_namespace(tmp_path):
    # `*`: every namespace is served, so the API is asked (a namespace not served is refused
    # before that: tests/test_namespace_allowlist.py)
    async with running_stack(tmp_path, settings=make_settings(namespaces=["*"])) as stack:
        dep = deployment(stack.sim, "orders-etl")
        message = await diagnose_and_wait(
            stack, f"job {dep['jobId']} --namespace nowhere --workspace ws-demo"
        )
        assert "was not found" in all_text(message)
