"""HTTP mode's edge holds: slow or half-sent requests cannot starve real commands, odd headers
and bodies get 400/401 without a traceback, a replayed signed request and an event retry are
processed once, and `serve` on a taken port stops before anything starts."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import time

import aiohttp
import pytest
from e2e import all_text, make_settings, running_stack
from procs import serve_env, start_serve, until_healthy

from bot.flink.sim import Simulator
from bot.slack.driver import SlackDriver
from bot.slack.localslack import LocalSlack
from bot.store import Store

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


def tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


# ------------------------------------------------------------------- bad input


async def test_bad_timestamps_and_bodies_get_4xx_without_a_traceback(stack, caplog):
    caplog.set_level(logging.INFO)
    d = stack.driver
    body, _ = d.command_body("report now", channel="C1", user="U1")
    headers = d.signed_headers(body)
    headers["X-Slack-Request-Timestamp"] = "abc"
    assert (await d.post(body, headers)).status == 401
    assert (await d.post("payload=%7Bbad", {"Content-Type": FORM})).status == 401
    assert (await d.post("payload=%7Bbad", d.signed_headers("payload=%7Bbad"))).status == 400
    for payload in ([1], "text", {"type": "block_actions", "actions": [{}]}, {"actions": "x"}):
        body = "payload=" + aiohttp.helpers.quote(json.dumps(payload), safe="")
        reply = await d.post(body, d.signed_headers(body))
        assert reply.status == 400, payload
    body = '["not", "an", "event"]'
    headers = d.signed_headers(body)
    headers["Content-Type"] = "application/json"
    assert (await d.post(body, headers)).status == 400
    await stack.settle()
    assert tracebacks(caplog) == []
    assert sum(stack.sim.calls.values()) == 0
    assert stack.slack.calls["response_url"] == 0 and stack.slack.calls["chat.postMessage"] == 0


async def test_an_absurd_every_is_a_usage_error(stack):
    for every in ("1000000000d", "99999999999999999999d"):
        reply = await stack.driver.command(f"watch deployment orders-etl --every {every}", channel="C1")
        assert reply.status == 200
        assert "duration" in json.dumps(reply.body), reply.body


# ------------------------------------------------------------------- processed once


async def test_a_replayed_signed_request_is_processed_once(stack):
    body, _ = stack.driver.command_body("deployment orders-etl --share", channel="CREPLAY", user="U1")
    headers = stack.driver.signed_headers(body)
    replies = [await stack.driver.post(body, headers) for _ in range(4)]
    assert [r.status for r in replies] == [200] * 4
    await stack.settle()
    assert stack.sim.calls["GetJobDiagnosis"] == 1
    assert len(stack.slack.channel_messages("CREPLAY", include_ephemeral=False)) == 1


async def test_the_replay_record_is_shared_by_replicas(pg_url):
    """Two replicas on one database: the second to see a signature refuses it. (SQLite serves one
    process, which keeps the record in memory: see the test below.)"""
    a, b = await Store.open(pg_url), await Store.open(pg_url)
    try:
        now = time.time()
        assert await a.seen_requests.first_sight("sig-1", now)
        assert not await b.seen_requests.first_sight("sig-1", now + 1)
        assert await b.seen_requests.first_sight("sig-2", now + 1)
        # far past Slack's 5-minute window the old record is pruned; a new key is still new
        assert await a.seen_requests.first_sight("sig-3", now + 3600)
    finally:
        await a.close()
        await b.close()


async def test_on_sqlite_the_replay_record_is_the_processs_own(tmp_path):
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    try:
        now = time.time()
        assert await store.seen_requests.first_sight("sig-1", now)
        assert not await store.seen_requests.first_sight("sig-1", now + 1)
        assert await store.seen_requests.first_sight("sig-3", now + 3600)  # pruned, still new
        assert await store.seen_requests.first_sight("sig-1", now + 3600)  # past Slack's window
        async with store.engine.connect() as conn:  # nothing written on the ack's path
            assert (await conn.exec_driver_sql("SELECT count(*) FROM seen_requests")).scalar() == 0
    finally:
        await store.close()


async def test_event_retries_are_acked_without_processing_again(stack):
    event = {
        "token": "t",
        "team_id": stack.driver.team_id,
        "api_app_id": "AFLINKDIAG",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"},
    }
    body = json.dumps(event)
    retry = stack.driver.signed_headers(body)
    retry.update(
        {"Content-Type": "application/json", "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert (await stack.driver.post(body, retry)).status == 200
    await asyncio.sleep(0.2)  # give a wrongly dispatched event the time to call Slack
    assert stack.slack.calls["views.publish"] == 0
    first = stack.driver.signed_headers(body, timestamp=int(time.time()) - 1)
    first["Content-Type"] = "application/json"
    assert (await stack.driver.post(body, first)).status == 200
    await stack.slack.wait_for(lambda: stack.slack.calls["views.publish"] == 1)


# ------------------------------------------------------------------- slow senders


async def half_sent(port: int, n: int) -> list[asyncio.StreamWriter]:
    """`n` connections that send their headers and a tenth of the body they announce."""
    writers = []
    for _ in range(n):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            break
        w.write(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"a" * 100
        )
        writers.append(w)
    await asyncio.gather(*(w.drain() for w in writers), return_exceptions=True)
    return writers


async def test_a_half_sent_body_times_out(tmp_path):
    async with running_stack(tmp_path, settings=make_settings(http_body_timeout=0.3)) as stack:
        port = int(stack.events_url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 408")
        assert await asyncio.wait_for(reader.read(), 10) is not None  # and the connection ends
        writer.close()


async def test_real_commands_are_answered_through_a_flood_of_half_sent_bodies(tmp_path):
    """Over a real `flinkdiag serve` whose file limit is 256: 375 half-sent bodies used to make
    every real command time out and asyncio log an accept() error per attempt."""
    sim, slack = Simulator(), LocalSlack(bot_token="xoxb-edge-test")
    await sim.start()
    await slack.start()
    signing = "edge-test-signing-secret"
    env = serve_env(tmp_path, sim, slack, SLACK_SIGNING_SECRET=signing)
    port = int(env["PORT"])
    log_path = tmp_path / "serve.log"
    proc = await start_serve(
        env,
        tmp_path,
        log_path,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)),
    )
    flood: list[asyncio.StreamWriter] = []
    try:
        await until_healthy(proc, port, log_path, timeout=20)
        async with SlackDriver(f"http://127.0.0.1:{port}/slack/events", signing, slack) as driver:
            flood = await half_sent(port, 375)
            answered = []
            for i in range(5):
                reply = await asyncio.wait_for(driver.command("help", channel=f"C{i}"), 5)
                answered.append(reply.status)
                flood += await half_sent(port, 20)
            assert answered == [200] * 5
            reply = await asyncio.wait_for(driver.command("deployment orders-etl", channel="CREAL"), 5)
            assert reply.status == 200
            await slack.wait_for(
                lambda: any("orders-etl" in all_text(m) for m in slack.channel_messages("CREAL")), timeout=15
            )
    finally:
        for w in flood:
            w.close()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
        await slack.stop()
        await sim.stop()
    logs = log_path.read_text()
    assert "Traceback" not in logs and "accept" not in logs.lower()
    assert len(logs.splitlines()) < 50, "no log flood"


# ------------------------------------------------------------------- start-up


async def test_serve_on_a_taken_port_stops_before_anything_starts(tmp_path):
    slack = LocalSlack(bot_token="xoxb-port-test")
    await slack.start()
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        env = serve_env(tmp_path, None, slack, SLACK_SIGNING_SECRET="s", PORT=str(port))
        proc = await start_serve(env, tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        taken.close()
        await slack.stop()
    assert proc.returncode == 2
    shown = [line for line in err.decode().splitlines() if line.startswith("flinkdiag:")]
    assert len(shown) == 1
    assert f"port {port} is not available" in shown[0] and "PORT" in shown[0]
    assert "Traceback" not in err.decode()
    assert slack.calls["auth.test"] == 0, "stopped before talking to Slack"
    assert not (tmp_path / "bot.db").exists(), "stopped before opening the database"
