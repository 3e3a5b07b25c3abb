"""`flinkdiag serve` in Socket Mode, the way most installs run it (manifest.yml turns it on).

A real `flinkdiag serve` process with SLACK_APP_TOKEN and no signing secret: it opens the
WebSocket that LocalSlack hands out through `apps.connections.open`, receives envelopes, acks
them over the socket and answers through `response_url` and the Web API, all on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import aiohttp
import pytest
from procs import reap, serve_env, start_serve

from bot.flink.sim import Faults, Simulator
from bot.slack.driver import SlackDriver, buttons_of
from bot.slack.localslack import LocalMessage, LocalSlack

T = TypeVar("T")


BOT_TOKEN = "xoxb-socket-test"
APP_TOKEN = "xapp-1-A0SOCKET-1-socket-test"
CHANNEL, USER = "C0SOCKET", "U0SOCKET"


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    log_path: Path
    slack: LocalSlack
    sim: Simulator
    port: int  # $PORT as set: HTTP mode would listen there, Socket Mode must not

    def logs(self) -> str:
        return self.log_path.read_text()

    async def until(self, waiting: Awaitable[T], timeout: float = 15) -> T:
        """Await `waiting`, but fail at once (with the bot's log) if the bot exits meanwhile."""
        task = asyncio.ensure_future(waiting)
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            done, _ = await asyncio.wait({task, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task in done and not isinstance(task.exception(), TimeoutError):
                return task.result()
            if exited in done and task not in done:
                pytest.fail(f"flinkdiag serve exited ({self.proc.returncode}):\n{self.logs()}")
            pytest.fail(f"timed out waiting; the bot's log:\n{self.logs()}")
        finally:
            for t in (task, exited):
                t.cancel()

    async def command(self, text: str) -> str:
        """`/flinkdiag <text>` as a slash_commands envelope; returns its envelope_id."""
        return await self.slack.socket_send("slash_commands", command_payload(self.slack, text))

    async def press(self, message: LocalMessage, button: dict[str, Any]) -> str:
        return await self.slack.socket_send("interactive", block_actions_payload(self.slack, message, button))


# The payloads are the very ones SlackDriver posts in HTTP mode: over the socket Slack sends the
# same fields, parsed, inside an envelope.
def command_payload(slack: LocalSlack, text: str) -> dict[str, Any]:
    body, _ = SlackDriver("http://unused", "unused", slack).command_body(text, channel=CHANNEL, user=USER)
    return dict(parse_qsl(body))


def block_actions_payload(slack: LocalSlack, message: LocalMessage, button: dict[str, Any]) -> dict[str, Any]:
    body = SlackDriver("http://unused", "unused", slack).action_body(message, button, user=USER)
    return json.loads(dict(parse_qsl(body))["payload"])


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, sim: Simulator | None = None, **env: str) -> AsyncIterator[Served]:
    """`flinkdiag serve` in Socket Mode against a fresh LocalSlack and simulator."""
    sim = sim or Simulator()
    await sim.start()
    slack = LocalSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await slack.start()
    full_env = serve_env(tmp_path, sim, slack, **{"SLACK_APP_TOKEN": APP_TOKEN, **env})
    log_path = tmp_path / "serve.log"
    proc = await start_serve(full_env, tmp_path, log_path)
    try:
        yield Served(proc, log_path, slack, sim, int(full_env["PORT"]))
    finally:
        await reap(proc)
        await slack.stop()
        await sim.stop()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as s:
        yield s


def _rerun_message(slack: LocalSlack) -> LocalMessage | None:
    return next(
        (
            m
            for m in slack.channel_messages(CHANNEL)
            if any(b["action_id"] == "rerun_diagnosis" for b in buttons_of(m))
        ),
        None,
    )


async def test_serve_in_socket_mode_end_to_end(served: Served) -> None:
    slack, sim = served.slack, served.sim
    await served.until(slack.wait_socket_connected(timeout=15))
    assert slack.calls["apps.connections.open"] == 1

    # A diagnosis: the ack over the socket carries the "Diagnosing…" note, the answer comes
    # through response_url as a new message below it (Slack cannot replace a command's ack).
    envelope = await served.command("deployment orders-etl")
    ack = await served.until(slack.socket_ack(envelope))
    assert "Diagnosing deployment orders-etl" in json.dumps(ack)
    assert ack.get("response_type") == "ephemeral"
    message = await served.until(slack.wait_for(lambda: _rerun_message(slack)))
    assert message.ephemeral_to == USER
    assert "orders-etl" in json.dumps(message.blocks)
    assert "Diagnosing" not in json.dumps(message.blocks)
    [ack_shown] = [m for m in slack.channel_messages(CHANNEL) if m is not message]
    assert "Diagnosing deployment orders-etl" in ack_shown.text and ack_shown.updates == 0
    assert sim.calls["GetJobDiagnosis"] == 1

    # Re-run: an interactive envelope, acked empty; the message is updated in place.
    updates = message.updates
    rerun = next(b for b in buttons_of(message) if b["action_id"] == "rerun_diagnosis")
    envelope = await served.press(message, rerun)
    assert await served.until(slack.socket_ack(envelope)) == {}
    await served.until(slack.wait_for(lambda: message.updates > updates))
    assert slack.channel_messages(CHANNEL) == [ack_shown, message]
    assert _rerun_message(slack) is message
    assert sim.calls["GetJobDiagnosis"] == 2

    # Help is answered in the ack itself, which Slack shows to the user.
    envelope = await served.command("help")
    ack = await served.until(slack.socket_ack(envelope))
    assert "How to use `/flinkdiag`" in json.dumps(ack)
    shown = slack.socket_acks[envelope].shown
    assert shown is not None and shown.ephemeral_to == USER

    # An Events API envelope: opening the App Home publishes the home view.
    event = slack.event_callback(
        {"type": "app_home_opened", "user": USER, "channel": "D0SOCKET", "tab": "home"}
    )
    envelope = await slack.socket_send("events_api", event)
    assert await served.until(slack.socket_ack(envelope)) == {}
    view = await served.until(slack.wait_for(lambda: slack.home_views.get(USER)))
    assert view["type"] == "home"
    assert "/flinkdiag" in json.dumps(view["blocks"])

    # Slack refreshes connections every few hours: the bot reconnects and keeps answering.
    await slack.socket_disconnect("refresh_requested")
    await served.until(slack.wait_socket_connected(timeout=15, connections=2))
    assert slack.calls["apps.connections.open"] == 2
    envelope = await served.command("help")
    assert "How to use `/flinkdiag`" in json.dumps(await served.until(slack.socket_ack(envelope)))

    # Socket Mode needs no public endpoint: nothing listens on $PORT.
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.close()

    served.proc.send_signal(signal.SIGTERM)
    assert await served.until(served.proc.wait()) == 0
    await asyncio.wait_for(slack.wait_for(lambda: not slack.socket_connected), 5)
    logs = served.logs()
    assert "Traceback" not in logs
    assert APP_TOKEN not in logs and BOT_TOKEN not in logs


async def test_a_refused_app_token_stops_start_up_naming_it(tmp_path: Path) -> None:
    # The SDK alone would retry a rejected token forever, deaf to SIGTERM.
    async with serving(tmp_path, SLACK_APP_TOKEN="xapp-1-A0OTHER-1-not-this-app") as served:
        assert await served.until(served.proc.wait()) == 2
        assert served.slack.calls["apps.connections.open"] == 1
    logs = served.logs()
    assert "flinkdiag: cannot start: Slack refused SLACK_APP_TOKEN (invalid_auth)" in logs
    assert "xapp-1-A0OTHER-1-not-this-app" not in logs
    assert "Traceback" not in logs


async def test_sigterm_while_slack_is_unavailable_still_exits(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        slack = served.slack
        slack.fail_next("apps.connections.open", "internal_error", status=503, times=100)
        # A second attempt means start-up is in the SDK's retry loop, not stopped by the first.
        await served.until(slack.wait_for(lambda: slack.calls["apps.connections.open"] >= 2, timeout=30), 30)
        assert not slack.socket_connected
        served.proc.send_signal(signal.SIGTERM)
        assert await served.until(served.proc.wait()) == 0


async def test_sigterm_lets_a_running_diagnosis_answer(tmp_path: Path) -> None:
    # Each Flink call is slow, so the diagnosis is still running when SIGTERM arrives.
    async with serving(tmp_path, sim=Simulator(faults=Faults(latency_ms=300))) as served:
        slack = served.slack
        await served.until(slack.wait_socket_connected(timeout=15))
        envelope = await served.command("deployment orders-etl")
        assert "Diagnosing" in json.dumps(await served.until(slack.socket_ack(envelope)))
        served.proc.send_signal(signal.SIGTERM)
        # The socket closes first (no new work), then the answer still arrives and the bot exits.
        await served.until(slack.wait_for(lambda: not slack.socket_connected))
        message = await served.until(slack.wait_for(lambda: _rerun_message(slack)))
        assert message.ephemeral_to == USER
        assert await served.until(served.proc.wait()) == 0
    assert "Traceback" not in served.logs()


async def test_local_slack_speaks_socket_mode_as_slack_does() -> None:
    """The stand-in itself, driven by a bare WebSocket client: what the tests above rely on."""
    slack = LocalSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await slack.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def call(method: str, token: str) -> dict[str, Any]:
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(f"{slack.api_url}{method}", headers=headers) as resp:
                    return await resp.json()

            assert await call("apps.connections.open", "xapp-1-A0OTHER-1-x") == {
                "ok": False,
                "error": "invalid_auth",
            }
            assert (await call("apps.connections.open", BOT_TOKEN))["error"] == "not_allowed_token_type"
            assert (await call("chat.postMessage", APP_TOKEN))["error"] == "not_allowed_token_type"
            opened = await call("apps.connections.open", APP_TOKEN)
            assert opened["ok"] and opened["url"].startswith("ws://127.0.0.1:")

            async with http.ws_connect(opened["url"]) as ws:
                assert (await ws.receive_json())["type"] == "hello"
                await slack.wait_socket_connected()
                # Each URL is good for one connection.
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await http.ws_connect(opened["url"])

                # A slash command's ack payload is shown to the user, like an HTTP ack body.
                payload = command_payload(slack, "help")
                envelope_id = await slack.socket_send("slash_commands", payload)
                envelope = await ws.receive_json()
                assert envelope == {
                    "envelope_id": envelope_id,
                    "payload": payload,
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                }
                await ws.send_json({"envelope_id": envelope_id, "payload": {"text": "usage"}})
                assert await slack.socket_ack(envelope_id) == {"text": "usage"}
                shown = slack.socket_acks[envelope_id].shown
                assert shown is not None and shown.text == "usage" and shown.ephemeral_to == USER

                # A button's envelope does not accept a response payload: Slack drops it.
                posted = await slack.wait_for(lambda: slack.channel_messages(CHANNEL))
                button = {"action_id": "rerun_diagnosis", "value": "{}", "text": "Re-run"}
                envelope_id = await slack.socket_send(
                    "interactive", block_actions_payload(slack, posted[0], button)
                )
                assert (await ws.receive_json())["accepts_response_payload"] is False
                await ws.send_json({"envelope_id": envelope_id, "payload": {"text": "dropped"}})
                assert await slack.socket_ack(envelope_id) == {"text": "dropped"}
                assert slack.socket_acks[envelope_id].shown is None
                assert slack.channel_messages(CHANNEL) == posted

                event = slack.event_callback({"type": "app_home_opened", "user": USER, "tab": "home"})
                await slack.socket_send("events_api", event)
                envelope = await ws.receive_json()
                assert envelope["type"] == "events_api" and envelope["retry_attempt"] == 0
                assert envelope["payload"]["type"] == "event_callback"
                assert envelope["payload"]["event"]["type"] == "app_home_opened"

                await slack.socket_disconnect()
                assert (await ws.receive_json()) == {
                    "type": "disconnect",
                    "reason": "refresh_requested",
                    "debug_info": {"host": "local"},
                }
            await slack.wait_for(lambda: not slack.socket_connected)
            with pytest.raises(RuntimeError):
                await slack.socket_send("events_api", event)
    finally:
        await slack.stop()
