"""Each alert is posted once, even when the bot dies, Slack's answer is lost or the database is
gone between Slack accepting a post and the bot recording it (issue 7, item 3).

The post is recorded as an intent before it is made and carries the intent's key as Slack
message metadata; a check that finds an intent without a result reads the channel's recent
history (or the thread) for that key before posting again. History that cannot be read means
posting anyway: never lose an alert.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from e2e import Clock, all_text
from slack_sdk.models.blocks import Block
from sqlalchemy import text
from sqlalchemy.engine import make_url
from watch_helpers import CH, World, tick, watch

import bot.store.db
from bot.flink.sim import Simulator
from bot.local import LocalStack
from bot.slack.localslack import LocalMessage, LocalSlack


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
    sim = Simulator()
    await sim.start()
    clock = Clock()
    slack = LocalSlack(clock=lambda: clock().timestamp())
    await slack.start()
    w = World(sim, slack, clock, db_url)
    try:
        yield w
    finally:
        for stack in reversed(w.bots):
            await stack.aclose()
        await slack.stop()
        await sim.stop()


async def anchor_of(bot: LocalStack) -> str | None:
    [target] = await bot.store.watches.channel_targets(LocalSlack.TEAM_ID, CH)
    return target.anchor_ts


async def test_alert_accepted_then_connection_reset_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    ow.slack.accept_then_reset(match=tagged)
    result = await bot.wiring.sweeper.sweep()
    assert result.reasons == {"first_alert": 1} and result.delivered == 1
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


async def test_alert_accepted_then_answer_timed_out_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "HIGH")
    bot.wiring.web.timeout = 0.5
    ow.slack.accept_then_stall(2.0, match=tagged)
    first = await bot.wiring.sweeper.sweep()
    assert first.reasons == {"first_alert": 1} and first.undelivered == 1
    [alert] = ow.alerts()
    second = await tick(ow, bot)
    assert second.reasons == {"first_alert": 1} and second.delivered == 1
    assert ow.alerts() == [alert] and ow.slack.calls["conversations.history"] == 1
    assert await anchor_of(bot) == alert.ts
    assert (await tick(ow, bot)).reasons == {"unchanged": 1}
    assert ow.alerts() == [alert]


async def test_follow_up_accepted_then_connection_reset_is_posted_once(ow: World):
    bot = await ow.start_bot()
    await watch(bot, "orders-etl")
    ow.set("orders-etl", "MID")
    await bot.wiring.sweeper.sweep()
    assert (await tick(ow, bot)).reasons == {"first_alert": 1}
    [alert] = ow.alerts()
    ow.set("orders-etl", "HIGH")
    ow.slack.accept_then_reset(match=tagged)
    assert (await tick(ow, bot)).reasons == {"further_rise": 1}
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
    assert result.reasons == {"first_alert": 1} and result.delivered == 1
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
        assert again.reasons == {"first_alert": 1} and again.delivered == 1
        assert ow.alerts() == [alert] and await anchor_of(stack) == alert.ts
        assert (await tick(ow, stack)).reasons == {"unchanged": 1}
        assert ow.alerts() == [alert]
    finally:
        if url.get_backend_name() == "sqlite":
            holder.close()


def _unused(_: Any) -> None:  # keeps `text` imported for the process tests below
    text("")
