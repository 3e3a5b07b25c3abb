"""Shared set-up for end-to-end tests: the real bot on loopback (bot.local.LocalStack) with the
Flink API simulator, the local Slack stand-in, SQLite (or PostgreSQL) and signed HTTP into Bolt.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.flink.sim import Faults, Simulator
from bot.local import LocalStack
from bot.slack.localslack import LocalMessage


class Clock:
    """A controllable clock shared by the bot's parts (no sleeping through real intervals)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> datetime:
        self.t += timedelta(**kw)
        return self.t


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "max_retries": 1,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "request_timeout": 5.0,
        "max_calls_per_second": 1000.0,
        "max_concurrency": 16,
        "min_watch_interval": timedelta(seconds=1),
    }
    base.update(overrides)
    return Settings.model_validate(base)


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path,
    *,
    settings: Settings | None = None,
    sim: Simulator | None = None,
    database_url: str | None = None,
    now: Any = None,
    faults: Faults | None = None,
) -> AsyncIterator[LocalStack]:
    own = sim is None
    if sim is None:
        sim = Simulator(faults=faults)
        await sim.start()
    stack = await LocalStack.start(
        settings or make_settings(),
        sim=sim,
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        now=now,
    )
    try:
        yield stack
    finally:
        await stack.aclose()
        if own:
            await sim.stop()


def deployment(sim: Simulator, name: str) -> dict[str, Any]:
    for d in sim.fleet_summary():
        if d["name"] == name:
            return d
    raise LookupError(name)


def all_text(message: LocalMessage) -> str:
    """Every string in a message (text, blocks, attachments), for content assertions."""
    import json

    return json.dumps(
        {"text": message.text, "blocks": message.blocks, "attachments": message.attachments},
        ensure_ascii=False,
    )


async def diagnose_and_wait(
    stack: LocalStack, text: str, channel: str = "CTEST", user: str = "UTEST"
) -> LocalMessage:
    """Run a diagnosing command; return the last message shown (its answer, below the ack)."""
    reply = await stack.driver.command(text, channel=channel, user=user)
    assert reply.status == 200, reply.text
    await stack.settle()
    messages = stack.slack.channel_messages(channel)
    assert messages, "no message at all"
    return messages[-1]
