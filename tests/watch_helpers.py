"""Helpers for the watch tests that outlive one bot: restarts, replicas, Slack errors.

A `World` is what stays when a bot process goes away: the Flink simulator, the Slack workspace
(one LocalSlack), the database and the clock. Bots (`LocalStack`s) are started and stopped in
it, one after another (a restart) or side by side (replicas).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from e2e import Clock, all_text, deployment, make_settings

from bot.flink.sim import Simulator
from bot.local import LocalStack
from bot.slack.localslack import LocalMessage, LocalSlack
from bot.watch.engine import SweepResult

CH = "CWATCH"
HEALTH = {"LOW": 95, "MID": 70, "HIGH": 30}


def risk(level: str, symptom: str = "Backpressure") -> dict[str, Any]:
    """A GetJobDiagnosis body at `level` (LOW/MID/HIGH) with one runtime symptom."""
    return {
        "riskLevel": f"RISK_LEVEL_{level}",
        "healthScore": HEALTH[level],
        "symptoms": {
            "runtime": [
                {"name": symptom, "description": f"{symptom} seen", "recommendation": f"fix {symptom}"}
            ]
        },
    }


class World:
    """One simulator, one Slack, one database and one clock, shared by every bot started in it."""

    def __init__(self, sim: Simulator, slack: LocalSlack, clock: Clock, database_url: str) -> None:
        self.sim, self.slack, self.clock, self.database_url = sim, slack, clock, database_url
        self.bots: list[LocalStack] = []

    async def start_bot(self, **settings: Any) -> LocalStack:
        """A bot on this world's database, simulator and Slack; checks every 2 s are allowed."""
        stack = await LocalStack.start(
            make_settings(max_retries=0, **settings),
            sim=self.sim,
            database_url=self.database_url,
            now=self.clock,
            slack=self.slack,
        )
        self.bots.append(stack)
        return stack

    async def stop_bot(self, stack: LocalStack) -> None:
        self.bots.remove(stack)
        await stack.aclose()

    def dep_id(self, name: str) -> str:
        return str(deployment(self.sim, name)["deploymentId"])

    def job_id(self, name: str) -> str:
        return str(deployment(self.sim, name)["jobId"])

    def set(self, name: str, level: str, symptom: str = "Backpressure") -> None:
        self.sim.set_diagnosis(self.dep_id(name), risk(level, symptom))

    def checks(self) -> int:
        """Deployment checks the simulator has seen: every check starts with one ListJobs."""
        return self.sim.calls["ListJobs"]

    def posts(self, channel: str = CH) -> list[LocalMessage]:
        """What everyone in the channel sees (no ephemeral answers)."""
        return self.slack.channel_messages(channel, include_ephemeral=False)

    def alerts(self, name: str | None = None, channel: str = CH) -> list[LocalMessage]:
        """Top-level posts (episode anchors and notes outside an episode), optionally about `name`."""
        return [
            m for m in self.posts(channel) if m.thread_ts is None and (name is None or name in all_text(m))
        ]

    def replies(self, anchor: LocalMessage) -> list[LocalMessage]:
        return self.slack.thread(anchor.channel, anchor.ts)


@contextlib.asynccontextmanager
async def world(database_url: str, *, slack_on_clock: bool = False) -> AsyncIterator[World]:
    """`slack_on_clock`: Slack stamps messages (ts) with the world's clock, as history look-ups
    by time need; otherwise with the real time."""
    sim = Simulator()
    await sim.start()
    clock = Clock()
    slack = LocalSlack(clock=lambda: clock().timestamp()) if slack_on_clock else LocalSlack()
    await slack.start()
    w = World(sim, slack, clock, database_url)
    try:
        yield w
    finally:
        for stack in reversed(w.bots):
            await stack.aclose()
        await slack.stop()
        await sim.stop()


async def say(stack: LocalStack, text: str, channel: str = CH) -> str:
    """Run a slash command in `channel`; returns the text of the last message there."""
    reply = await stack.driver.command(text, channel=channel, user="UOPS")
    assert reply.status == 200, reply.text
    await stack.settle()
    return all_text(stack.slack.channel_messages(channel)[-1])


async def watch(stack: LocalStack, name: str, channel: str = CH, extra: str = "") -> None:
    answer = await say(stack, f"watch deployment {name} --every 2s {extra}".strip(), channel)
    assert f"Watching deployment {name}" in answer, answer


async def tick(w: World, stack: LocalStack, seconds: float = 2) -> SweepResult:
    """Let one interval pass and sweep once on `stack`."""
    w.clock.advance(seconds=seconds)
    return await stack.wiring.sweeper.sweep()


async def listing(stack: LocalStack, channel: str = CH) -> str:
    """Run `/flinkdiag watches`; returns the listing's text (a note may follow it)."""
    await say(stack, "watches", channel)
    shown = [m for m in stack.slack.channel_messages(channel) if "Watches in this channel" in all_text(m)]
    return all_text(shown[-1])
