"""Each alert is posted once, even when the bot dies, Slack's answer is lost or the database is
gone between Slack accepting a post and the bot recording it (issue 7, item 3).

The post is recorded as an intent before it is made and carries the intent's key as Slack
message metadata; a check that finds an intent without a result reads the channel's recent
history (or the thread) for that key before posting again. History that cannot be read means
posting anyway: never lose an alert.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from e2e import all_text, deployment
from procs import reap, serve_env, start_serve, until_healthy
from slack_sdk.models.blocks import Block
from sqlalchemy import text
from sqlalchemy.engine import make_url
from watch_helpers import CH, World, risk, say, tick, watch, world

import bot.store.db
from bot.flink.sim import Faults, Simulator
from bot.local import LocalStack
from bot.slack.driver import SlackDriver
from bot.slack.localslack import LocalMessage, LocalSlack
from bot.store import Store


def tagged(message: LocalMessage) -> bool:
    """A post of the watch loop (alerts, follow-ups, notes, digests carry metadata)."""
    return message.metadata is not None


def assert_valid_blocks(messages: list[LocalMessage]) -> None:
    for m in messages:
        for b in m.blocks:
            parsed = Block.parse(b)
            assert parsed is not None and parsed.to_dict() == b


@pytest.fixture
async def ow(db_url: str) -> AsyncIterator[World]:
    """A watch world on each engine, whose Slack stamps messages (ts) with the world's clock."""
    async with world(db_url, slack_on_clock=True) as w:
        yield w


async def anchor_of(bot: LocalStack) -> str | None:
    [target] = await bot.store.watches.channel_targets(LocalSlack.TEAM_ID, CH)
    return target.anchor_ts


async def test_alert_accepted_then_connection_reset_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    ow.slack.accept_then_reset(match=tagged)
    result = await bot.wiring.sweeper.sweep()
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    [alert] = ow.alerts()
    assert alert.metadata and alert.metadata["event_type"] == "flinkdiag_alert"
    assert ow.slack.calls["conversations.history"] == 1  # looked before posting again: found it
    assert await anchor_of(bot) == alert.ts
    assert (await tick(ow, bot)).reasons == {"unchanged": 1}
    ow.set("orders-etl", "LOW")
    await tick(ow, bot)
    assert (await tick(ow, bot)).reasons == {"back_to_normal": 1}
    assert ow.alerts() == [alert]  # the adopted alert is the episode's anchor
    [reply] = ow.replies(alert)
    assert "Back to normal" in all_text(reply)
    assert_valid_blocks(ow.posts())


GARBLED = [
    pytest.param(b"<html><body>502 Bad Gateway</body></html>", "text/html", id="html-page"),
    pytest.param(b'{"ok": true, "ts": "17', "application/json", id="cut-off-json"),
]


@pytest.mark.parametrize(("body", "content_type"), GARBLED)
async def test_alert_accepted_then_answered_with_garbage_is_posted_once(
    ow: World, body: bytes, content_type: str
):
    # Before: slack_sdk put aiohttp's response object in the error, reading its code raised
    # AttributeError, the check crashed and the alert came two minutes (a lease) late.
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    ow.slack.accept_then_garble(body, content_type=content_type, match=tagged)
    result = await bot.wiring.sweeper.sweep()
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    [alert] = ow.alerts()
    assert ow.slack.calls["conversations.history"] == 1  # looked before posting again: found it
    assert await anchor_of(bot) == alert.ts
    assert (await tick(ow, bot)).reasons == {"unchanged": 1}
    assert ow.alerts() == [alert]


@pytest.mark.parametrize(("body", "content_type"), GARBLED)
async def test_alert_refused_with_garbage_is_posted_in_the_same_check(
    ow: World, body: bytes, content_type: str
):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    ow.slack.garble_next("chat.postMessage", body, status=502, content_type=content_type)
    result = await bot.wiring.sweeper.sweep()
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    [alert] = ow.alerts()  # not found in history, so posted again at once: not a lease later
    assert await anchor_of(bot) == alert.ts
    assert_valid_blocks(ow.posts())


async def test_alert_accepted_then_answer_timed_out_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    bot.wiring.web.timeout = 0.5
    ow.slack.accept_then_stall(2.0, match=tagged)
    first = await bot.wiring.sweeper.sweep()
    assert first.reasons == {"new_incident": 1} and first.undelivered == 1
    [alert] = ow.alerts()
    second = await tick(ow, bot)
    assert second.reasons == {"new_incident": 1} and second.delivered == 1
    assert ow.alerts() == [alert] and ow.slack.calls["conversations.history"] == 1
    assert await anchor_of(bot) == alert.ts
    assert (await tick(ow, bot)).reasons == {"unchanged": 1}
    assert ow.alerts() == [alert]


async def test_follow_up_accepted_then_connection_reset_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "MID")
    await bot.wiring.sweeper.sweep()
    assert (await tick(ow, bot)).reasons == {"new_incident": 1}
    [alert] = ow.alerts()
    ow.set("orders-etl", "HIGH")
    ow.slack.accept_then_reset(match=tagged)
    assert (await tick(ow, bot)).reasons == {"changed": 1}
    [reply] = ow.replies(alert)
    assert "High" in all_text(reply) and ow.slack.calls["conversations.replies"] == 1
    assert (await tick(ow, bot)).reasons == {"unchanged": 1}
    assert ow.replies(alert) == [reply] and ow.alerts() == [alert]


async def test_history_unreadable_still_posts_the_alert(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    ow.slack.fail_next("chat.postMessage", "internal_error")  # the first attempt: outcome kept open
    assert (await bot.wiring.sweeper.sweep()).undelivered == 1
    assert ow.alerts() == []
    ow.slack.fail_next("conversations.history", "missing_scope")
    result = await tick(ow, bot)
    assert result.reasons == {"new_incident": 1} and result.delivered == 1
    assert ow.slack.calls["conversations.history"] == 1
    [alert] = ow.alerts()
    assert await anchor_of(bot) == alert.ts


class _Proxy:
    """A TCP relay to PostgreSQL that a test can stop (the database is gone) and start again."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for wr in self._writers:
            wr.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self.host, self.port)
        self._writers += [writer, up_w]

        async def pipe(r: asyncio.StreamReader, wr: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    wr.write(data)
                    await wr.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                wr.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


async def test_database_lost_between_post_and_record_posts_once(
    ow: World, db_url: str, monkeypatch: pytest.MonkeyPatch
):
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        # The database refuses writes: another connection holds SQLite's write lock, and the bot
        # gives up waiting for it quickly.
        monkeypatch.setattr(bot.store.db, "SQLITE_BUSY_TIMEOUT_MS", 100)
        holder = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False)

        async def lose() -> None:
            holder.execute("BEGIN IMMEDIATE")

        async def restore() -> None:
            holder.execute("ROLLBACK")

        stack = await ow.start_bot()
    else:
        proxy = _Proxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        lose, restore = proxy.stop, proxy.start
        ow.database_url = url.set(port=proxy.listen_port).render_as_string(False)
        stack = await ow.start_bot()
    try:
        await watch(stack, "orders-etl")
        ow.set("orders-etl", "HIGH")

        async def database_gone(_: LocalMessage) -> None:
            await lose()

        ow.slack.on_accepted(database_gone, match=tagged)
        result = await stack.wiring.sweeper.sweep()
        assert result.delivered == 0  # the check could not be recorded
        [alert] = ow.alerts()
        await restore()
        # the lease of the check that could not be recorded runs out; then it is checked again
        again = await tick(ow, stack, seconds=stack.store.watches.lease_seconds + 1)
        assert again.reasons == {"new_incident": 1} and again.delivered == 1
        assert ow.alerts() == [alert] and await anchor_of(stack) == alert.ts
        assert (await tick(ow, stack)).reasons == {"unchanged": 1}
        assert ow.alerts() == [alert]
    finally:
        if url.get_backend_name() == "sqlite":
            holder.close()


# --- a real bot process, killed with SIGKILL -------------------------------------------------


async def _serve(tmp_path: Path, env: dict[str, str], name: str) -> asyncio.subprocess.Process:
    """`flinkdiag serve` (HTTP mode), once it answers /healthz."""
    log_path = tmp_path / f"{name}.log"
    proc = await start_serve(env, tmp_path, log_path)
    await until_healthy(proc, env["PORT"], log_path, timeout=30)
    return proc


def alerts(slack: LocalSlack) -> list[LocalMessage]:
    """What the watch posted in the channel (not the command's confirmation)."""
    return [
        m for m in slack.channel_messages(CH, include_ephemeral=False) if "Watching deployment" not in m.text
    ]


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll a condition nothing signals (another process's progress)."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.05)


async def test_bot_killed_between_slack_accepting_the_alert_and_recording_it_posts_once(
    tmp_path: Path, db_url: str
):
    sim = Simulator()
    await sim.start()
    slack = LocalSlack()
    await slack.start()
    store = await Store.open(db_url)
    signing = "alert-once-signing-secret"
    env = serve_env(
        tmp_path,
        sim,
        slack,
        SLACK_SIGNING_SECRET=signing,
        FLINKDIAG_WORKSPACE=str(deployment(sim, "orders-etl")["workspace"]),
        FLINKDIAG_NAMESPACES=str(deployment(sim, "orders-etl")["namespace"]),
        FLINKDIAG_DATABASE_URL=db_url,
        FLINKDIAG_MIN_WATCH_INTERVAL="1s",
        FLINKDIAG_SWEEP_TICK_SECONDS="0.2",
    )
    port = int(env["PORT"])
    sim.set_diagnosis(str(deployment(sim, "orders-etl")["deploymentId"]), risk("HIGH"))
    procs: list[asyncio.subprocess.Process] = []
    try:
        first = await _serve(tmp_path, env, "first")
        procs.append(first)
        killed = asyncio.Event()

        async def kill(_: LocalMessage) -> None:
            first.kill()  # SIGKILL: Slack has the alert, the bot never hears back
            await first.wait()
            killed.set()

        slack.on_accepted(kill, match=lambda m: m.channel == CH)  # the first post: the alert
        async with SlackDriver(f"http://127.0.0.1:{port}/slack/events", signing, slack) as driver:
            reply = await driver.command("watch deployment orders-etl --every 1s", channel=CH, user="UOPS")
            assert reply.status == 200
        await asyncio.wait_for(killed.wait(), 30)
        [alert] = alerts(slack)

        # The dead bot's lease on the check runs out (a real minute or two: skipped here).
        async with store.engine.begin() as conn:
            # (while leased, a target is next due when its lease ends: bot.store.watches)
            await conn.execute(text("UPDATE watch_targets SET lease_until = 0, next_check_at = 0"))
        second = await _serve(tmp_path, env, "second")
        procs.append(second)

        # Two checks by the new bot: the first one adopted the alert (or posted), the second
        # one ran after the first was recorded (its record releases the lease).
        checks = sim.calls["ListJobs"]
        await _until(lambda: sim.calls["ListJobs"] >= checks + 2)
        [target] = await store.watches.channel_targets(LocalSlack.TEAM_ID, CH)
        assert target.anchor_ts == alert.ts
        posts = alerts(slack)
        assert posts == [alert], [all_text(m) for m in posts]
        assert slack.calls["conversations.history"] == 1
        assert_valid_blocks(posts)
        second.terminate()
        assert await asyncio.wait_for(second.wait(), 20) == 0
    finally:
        for p in procs:
            await reap(p)
        await store.close()
        await slack.stop()
        await sim.stop()


# --- outage notes (one per watch per outage) are posted once too ----------------------------


async def outage_world(ow: World) -> LocalStack:
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "LOW")
    await bot.wiring.sweeper.sweep()
    ow.sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    return bot


def outage_notes(ow: World) -> list[LocalMessage]:
    return [m for m in ow.alerts() if "check" in all_text(m)]


async def test_outage_note_accepted_then_connection_reset_is_posted_once(ow: World):
    bot = await outage_world(ow)
    ow.slack.accept_then_reset(match=tagged)
    for _ in range(5):
        await tick(ow, bot)
    [note] = outage_notes(ow)
    assert note.metadata and note.metadata["event_type"] == "flinkdiag_note"
    ow.sim.faults = Faults()
    ow.slack.accept_then_reset(match=tagged)  # the recovery reply's answer is lost too
    for _ in range(5):
        await tick(ow, bot)
    assert outage_notes(ow) == [note]
    [again] = ow.replies(note)
    assert "again" in all_text(again)
    assert_valid_blocks(ow.posts())


async def test_bot_dying_between_slack_taking_the_outage_note_and_recording_it_posts_once(ow: World):
    # Before: the note was not tagged and never looked for; the next claim, a lease later,
    # posted it a second time.
    bot = await outage_world(ow)
    for _ in range(2):
        await tick(ow, bot)
    assert outage_notes(ow) == []
    ow.clock.advance(seconds=2)
    sweep = asyncio.ensure_future(bot.wiring.sweeper.sweep())

    async def die(message: LocalMessage) -> None:
        sweep.cancel()  # the process is gone: nothing after the post runs

    ow.slack.on_accepted(die, match=tagged)
    with pytest.raises(asyncio.CancelledError):
        await sweep
    [note] = outage_notes(ow)
    await ow.stop_bot(bot)
    bot = await ow.start_bot()
    for _ in range(40):  # past the dead replica's claim (60 s) and its targets' lease
        await tick(ow, bot, seconds=5)
    assert outage_notes(ow) == [note]
    assert await anchor_of(bot) is None  # no alert episode: the outage note stands alone


# --- reports ------------------------------------------------------------------------------------


async def test_a_report_whose_answer_is_lost_is_posted_once(ow: World):
    # Before: the Web API client's connection retry sent the report a second time.
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    await bot.wiring.sweeper.sweep()

    def report(m: LocalMessage) -> bool:
        return m.metadata is not None and m.metadata["event_type"] == "flinkdiag_report"

    ow.slack.accept_then_reset(match=lambda m: "Fleet report" in m.text)
    answer = await say(bot, "report now")
    assert "Posted the report" in answer
    reports = [m for m in ow.posts() if "Fleet report" in m.text]
    assert len(reports) == 1 and report(reports[0])
    assert ow.slack.calls["conversations.history"] == 1  # looked for it, found it
    assert_valid_blocks(reports)
