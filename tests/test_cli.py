"""The `flinkdiag` command line as an operator meets it: real processes, real exit codes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import FLINKDIAG, clean_env, serve_env, serving_http, start_serve

from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Simulator
from bot.slack.driver import SlackDriver
from bot.slack.localslack import LocalSlack

FLEET = {d["name"]: d for d in Simulator().fleet_summary()}
HIGH_JOB = FLEET["payments-fraud-scoring"]["jobId"]
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


def flinkdiag(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLINKDIAG, *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, db_name="cli.db", **env),
        cwd=tmp_path,
        timeout=30,
    )


# ----------------------------------------------------------------------------- diagnose


def test_diagnose_without_endpoint_uses_built_in_simulator(tmp_path):
    proc = flinkdiag(tmp_path, "diagnose", HIGH_JOB)
    assert proc.returncode == 0, proc.stderr
    assert "using the built-in simulator at http://127.0.0.1:" in proc.stderr
    out = proc.stdout
    assert out.startswith("Risk: High   Health score: 42 (unhealthy)\n")
    assert f"Job: {HIGH_JOB}" in out
    assert "Deployment: payments-fraud-scoring" in out
    for symptom in ("Backpressure", "Frequent failover", "Checkpoint failures"):
        assert f"  - {symptom}\n" in out
    assert "Recommendation: " in out
    assert "{" not in out.splitlines()[0]
    # Info logs would bury the answer in a terminal; they are off unless asked for.
    assert "level=info" not in proc.stderr


def test_diagnose_json(tmp_path):
    proc = flinkdiag(tmp_path, "diagnose", HIGH_JOB, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["target"]["job_id"] == HIGH_JOB
    assert doc["target"]["deployment_name"] == "payments-fraud-scoring"
    assert doc["diagnosis"]["riskLevel"] == "RISK_LEVEL_HIGH"
    assert doc["diagnosis"]["healthScore"] == 42
    names = [s["name"] for items in doc["diagnosis"]["symptoms"].values() for s in items]
    assert "Backpressure" in names


def test_diagnose_unknown_job_names_it(tmp_path):
    proc = flinkdiag(tmp_path, "diagnose", UNKNOWN_JOB)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"Job `{UNKNOWN_JOB}` was not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_diagnose_malformed_id_is_a_usage_error(tmp_path):
    proc = flinkdiag(tmp_path, "diagnose", "nope!")
    assert proc.returncode == 2
    assert "`nope!` doesn't look like a job id" in proc.stderr
    assert "simulator" not in proc.stderr  # refused before anything starts


def test_comma_separated_namespaces_setting(tmp_path):
    # The README documents FLINKDIAG_NAMESPACES as comma separated (not a JSON list).
    proc = flinkdiag(tmp_path, "diagnose", HIGH_JOB, FLINKDIAG_NAMESPACES="analytics, default-namespace")
    assert proc.returncode == 0, proc.stderr
    assert "Namespace: default-namespace" in proc.stdout
    proc = flinkdiag(tmp_path, "diagnose", HIGH_JOB, FLINKDIAG_NAMESPACES="analytics")
    assert proc.returncode == 1
    assert "not found in namespace" in proc.stderr and "analytics" in proc.stderr


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`flinkdiag sim` in its own process, with the default key pair; yields the URL it prints."""
    tmp = tmp_path_factory.mktemp("sim")
    # Port 0: the OS picks a free port (no race with other tests) and the simulator prints it.
    proc = subprocess.Popen(
        [*FLINKDIAG, "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(tmp),
        cwd=tmp,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+) \(access key ids: flinkdiag-sim-ak\)", line)
        assert m, f"unexpected first line from the simulator: {line!r}"
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()  # type: ignore[union-attr]


def test_diagnose_against_separate_simulator(tmp_path, sim_url):
    proc = flinkdiag(
        tmp_path,
        "diagnose",
        HIGH_JOB,
        "--workspace",
        "ws-demo",
        "--namespace",
        "default-namespace",
        FLINKDIAG_ENDPOINT=sim_url,
        ALIBABA_CLOUD_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY_ID,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=DEFAULT_ACCESS_KEY_SECRET,
    )
    assert proc.returncode == 0, proc.stderr
    assert "built-in simulator" not in proc.stderr
    assert proc.stdout.startswith("Risk: High")


def test_diagnose_with_wrong_secret_is_an_auth_error(tmp_path, sim_url):
    proc = flinkdiag(
        tmp_path,
        "diagnose",
        HIGH_JOB,
        FLINKDIAG_ENDPOINT=sim_url,
        FLINKDIAG_WORKSPACE="ws-demo",
        FLINKDIAG_NAMESPACES="default-namespace",
        ALIBABA_CLOUD_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY_ID,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET="not-the-secret",
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "refused the bot's signature" in proc.stderr
    assert "AccessKey secret" in proc.stderr
    assert "not-the-secret" not in proc.stderr


def test_diagnose_against_endpoint_without_scope_says_which_is_missing(tmp_path):
    proc = flinkdiag(
        tmp_path, "diagnose", HIGH_JOB, "--workspace", "ws-demo", FLINKDIAG_ENDPOINT="http://127.0.0.1:9"
    )
    assert proc.returncode == 2
    assert "--namespace (or FLINKDIAG_NAMESPACES)" in proc.stderr
    assert "--workspace" not in proc.stderr


# ----------------------------------------------------------------------------- serve start-up


def test_serve_without_settings_names_each_missing_variable(tmp_path):
    proc = flinkdiag(tmp_path, "serve")
    assert proc.returncode == 2
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "FLINKDIAG_REGION", "FLINKDIAG_ENDPOINT"):
        assert name in proc.stderr
    assert proc.stdout == ""


def test_serve_names_a_token_of_the_wrong_kind(tmp_path):
    proc = flinkdiag(
        tmp_path,
        "serve",
        SLACK_APP_TOKEN="xoxb-1-not-an-app-token",
        SLACK_BOT_TOKEN="xoxb-1-bot",
        FLINKDIAG_REGION="cn-hangzhou",
    )
    assert proc.returncode == 2
    assert "SLACK_APP_TOKEN must be an app-level token starting with xapp-" in proc.stderr
    assert "xoxb-1-not-an-app-token" not in proc.stderr
    assert "SLACK_BOT_TOKEN" not in proc.stderr  # that one is fine


def test_serve_refuses_an_unknown_region(tmp_path):
    proc = flinkdiag(
        tmp_path, "serve", FLINKDIAG_REGION="mars-1", SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s"
    )
    assert proc.returncode == 2
    assert "FLINKDIAG_REGION='mars-1' is not a region" in proc.stderr
    assert "FLINKDIAG_ENDPOINT" in proc.stderr  # the way out
    assert "Traceback" not in proc.stderr


def test_invalid_values_are_listed_by_variable(tmp_path):
    proc = flinkdiag(
        tmp_path,
        "serve",
        FLINKDIAG_MAX_CONCURRENCY="0",
        FLINKDIAG_MIN_WATCH_INTERVAL="often",
        FLINKDIAG_ENDPOINT="http://host/with/path",
        PORT="eighty",
    )
    assert proc.returncode == 2
    err = proc.stderr
    assert "FLINKDIAG_MAX_CONCURRENCY: " in err
    assert "FLINKDIAG_MIN_WATCH_INTERVAL: `often` is not a duration" in err
    assert "FLINKDIAG_ENDPOINT" in err
    assert "PORT: " in err
    assert "Traceback" not in err


async def test_serve_http_mode_end_to_end(tmp_path):
    signing = "serve-test-signing-secret"
    async with serving_http(tmp_path, bot_token="xoxb-serve-test", signing=signing) as bot:
        sim, slack, proc = bot.sim, bot.slack, bot.proc
        async with SlackDriver(f"{bot.base}/slack/events", signing, slack) as driver:
            reply = await driver.command("help", channel="C1", user="U1")
            assert reply.status == 200
            assert "How to use `/flinkdiag`" in json.dumps(reply.body)

            body, _ = driver.command_body("help", channel="C1", user="U1")
            unsigned = await driver.post(body, {"Content-Type": "application/x-www-form-urlencoded"})
            assert unsigned.status == 401

            # A diagnosis goes all the way: env credentials sign the call, the answer reaches Slack.
            reply = await driver.command(f"job {HIGH_JOB}", channel="C1", user="U1")
            assert reply.status == 200
            await slack.wait_for(
                lambda: any("High risk" in json.dumps(m.blocks) for m in slack.channel_messages("C1")),
                timeout=15,
            )
        assert sim.calls["GetJobDiagnosis"] == 1
        assert slack.calls["auth.test"] >= 1

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    logs = bot.logs()
    assert "Traceback" not in logs
    assert "will be unused" not in logs  # Bolt's warning when given a client and a token
    assert signing not in logs and slack.bot_token not in logs


async def test_serve_refuses_a_bot_token_slack_does_not_accept(tmp_path):
    slack = LocalSlack(bot_token="xoxb-the-right-one")
    await slack.start()
    try:
        env = serve_env(tmp_path, None, slack, SLACK_BOT_TOKEN="xoxb-a-revoked-one", SLACK_SIGNING_SECRET="s")
        proc = await start_serve(env, tmp_path)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2
        assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in err.decode()
        assert "xoxb-a-revoked-one" not in (out + err).decode()
        assert slack.calls["auth.test"] == 1
    finally:
        await slack.stop()
