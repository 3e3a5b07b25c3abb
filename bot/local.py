"""The whole bot on loopback with no accounts: simulator, local Slack, store, Bolt over HTTP.

`flinkdiag console` runs on it, and so do the end-to-end tests: one composition of the real
parts, started and stopped in one place.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from bot.config import Settings
from bot.flink.client import FlinkClient
from bot.flink.credentials import StaticCredentials
from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Simulator
from bot.slack.driver import SlackDriver
from bot.slack.localslack import LocalSlack
from bot.store import Store

EVENTS_PATH = "/slack/events"


def sim_settings(settings: Settings, sim: Simulator) -> Settings:
    """Point settings at a running simulator, with its fleet's workspace and namespaces as defaults."""
    fleet = sim.fleet_summary()
    workspaces = list(dict.fromkeys(d["workspace"] for d in fleet))
    namespaces = list(dict.fromkeys(d["namespace"] for d in fleet))
    return settings.model_copy(
        update={
            "endpoint": sim.base_url,
            "workspace": settings.workspace or (workspaces[0] if workspaces else None),
            "namespaces": settings.namespaces or namespaces,
        }
    )


@dataclass
class LocalStack:
    settings: Settings
    slack: LocalSlack
    store: Any
    flink: FlinkClient
    app: Any
    deps: Any
    driver: SlackDriver
    events_url: str
    sim: Simulator | None = None
    wiring: Any = None
    extras: list[Any] = field(default_factory=list)
    _runner: Any = None  # bot.serve.HttpServer

    @classmethod
    async def start(
        cls,
        settings: Settings | None = None,
        *,
        sim: Simulator | None = None,
        start_sim: bool = True,
        database_url: str | None = None,
        credentials: Any = None,
        now: Any = None,
        start_scheduler: bool = False,
        slack: LocalSlack | None = None,
    ) -> LocalStack:
        """Start every part on 127.0.0.1 (ports chosen by the OS).

        `slack`: a running LocalSlack to share (several bots on one workspace, or one that
        outlives a bot's restart); it is left running by `aclose()`.
        """
        from bot.app import build, start_limiter  # late: keeps `bot.local` importable for the CLI's help

        settings = settings or Settings()
        own_sim = False
        if sim is None and start_sim and settings.base_url is None:
            sim = Simulator()
            await sim.start()
            own_sim = True
        if sim is not None:
            settings = sim_settings(settings, sim)
            credentials = credentials or StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
        own_slack = slack is None
        if slack is None:
            slack = LocalSlack()
            await slack.start()
        api_url = slack.api_url
        signing = secrets.token_hex(16)
        settings = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.bot_token),
                "slack_signing_secret": SecretStr(signing),
                "slack_app_token": None,
                "slack_api_url": api_url,
                "database_url": database_url or settings.database_url,
            }
        )
        store = await Store.open(settings.effective_database_url, **({"clock": now} if now else {}))
        if credentials is None:
            from bot.flink.credentials import DefaultChainCredentials

            credentials = DefaultChainCredentials()
        flink = FlinkClient(settings, credentials, limiter=await start_limiter(settings, store))
        wiring = build(settings, flink=flink, store=store, now=now)
        app, deps = wiring.app, wiring.deps
        if start_scheduler:
            wiring.scheduler.start()
        from bot.serve import bind, http_app, start_http

        sock = bind("127.0.0.1", 0)
        runner = await start_http(http_app(app, settings, store.seen_requests), sock)
        port = sock.getsockname()[1]
        events_url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        stack = cls(
            settings=settings,
            slack=slack,
            store=store,
            flink=flink,
            app=app,
            deps=deps,
            driver=SlackDriver(events_url, signing, slack),
            events_url=events_url,
            sim=sim,
            wiring=wiring,
            _runner=runner,
        )
        stack._own_sim = own_sim  # type: ignore[attr-defined]
        stack._own_slack = own_slack  # type: ignore[attr-defined]
        return stack

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every acked request has delivered its answer."""
        import asyncio

        await asyncio.wait_for(self.deps.tracker.idle.wait(), timeout)

    async def aclose(self) -> None:
        if self.wiring is not None:
            await self.wiring.scheduler.aclose()
        for extra in reversed(self.extras):
            await extra.aclose()
        await self.driver.aclose()
        if self._runner is not None:
            await self._runner.aclose()
        await self.flink.aclose()
        await self.store.close()
        if getattr(self, "_own_slack", True):
            await self.slack.stop()
        if self.sim is not None and getattr(self, "_own_sim", False):
            await self.sim.stop()
