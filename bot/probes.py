"""`/healthz`, `/readyz` and `/metrics`: what an orchestrator and Prometheus ask the bot.

HTTP mode mounts them beside Bolt's `/slack/events` on `$PORT`; Socket Mode has no HTTP server
of its own, so they get one on `FLINKDIAG_METRICS_PORT` (none when it is unset).

* `/healthz`: 200 whenever the process and its event loop answer (the handler runs on the loop).
* `/readyz`: 200 when the database answers, Slack has not refused the bot token, and the watch
  loop completed a check or a sweep recently; else 503. The JSON body names each check's state.
* `/metrics`: the Prometheus text format of `bot.metrics.REGISTRY`; the database-backed gauges
  are read at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.config import Settings
from bot.slack.errors import UNREADABLE, slack_error
from bot.store import health

log = logging.getLogger("flinkdiag.probes")

DB_TIMEOUT = 3.0  # a probe must answer well within a kubelet's default 1 s.. 10 s timeouts
SLACK_TIMEOUT = 5.0
# auth.test is cheap but still a call to Slack: once a minute is enough to notice a revoked token.
SLACK_RECHECK_SECONDS = 60.0


def watch_overdue_after(settings: Settings) -> float:
    """Seconds without a completed check or sweep after which the watch loop counts as stuck.

    Three ticks, plus the longest a single healthy check can take (two API calls, each with all
    its retries and backoff), because a sweep of a large fleet completes its first check only then.
    """
    call = (
        settings.max_retries + 1
    ) * settings.request_timeout + settings.max_retries * settings.retry_max_delay
    return 3 * settings.sweep_tick_seconds + 2 * call


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class Probes:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Any,
        web: Any,
        now: Callable[[], datetime] | None = None,
        slack_recheck_seconds: float = SLACK_RECHECK_SECONDS,
    ) -> None:
        self.engine = engine
        self.web = web  # the bot's AsyncWebClient
        self.now = now or (lambda: datetime.now(UTC))
        self.overdue_after = watch_overdue_after(settings)
        self.slack_recheck_seconds = slack_recheck_seconds
        self._slack: tuple[float, Check] | None = None
        self._slack_lock = asyncio.Lock()

    # ----------------------------------------------------------------- mounting

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)

    async def serve_alone(self, port: int | None, host: str = "0.0.0.0") -> web.AppRunner | None:
        """A server of its own for the probes (Socket Mode); None when no port is set."""
        if port is None:
            log.info("no probes or metrics: FLINKDIAG_METRICS_PORT is not set")
            return None
        app = web.Application()
        self.mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        log.info("serving probes and metrics", extra={"port": port})
        return runner

    # ----------------------------------------------------------------- handlers

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        database, slack = await asyncio.gather(self.check_database(), self.check_slack())
        checks = {"database": database, "slack": slack, "watch": self.check_watch_loop()}
        ready = all(c.ok for c in checks.values())
        if not ready:
            log.warning("not ready", extra={name: c.detail for name, c in checks.items() if not c.ok})
        body = {"ready": ready, "checks": {name: c.detail for name, c in checks.items()}}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        await self.refresh_store_gauges()
        return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})

    # ----------------------------------------------------------------- checks

    async def check_database(self) -> Check:
        try:
            await asyncio.wait_for(health.ping(self.engine), DB_TIMEOUT)
        except TimeoutError:
            return Check(False, f"database did not answer within {DB_TIMEOUT:g} s")
        except Exception as e:
            # The driver's message can hold the URL; the type says enough for a probe.
            return Check(False, f"database unreachable ({type(e).__name__})")
        return Check(True, "ok")

    async def check_slack(self) -> Check:
        async with self._slack_lock:
            if self._slack is not None and time.monotonic() - self._slack[0] < self.slack_recheck_seconds:
                return self._slack[1]
            check = await self._ask_slack()
            self._slack = (time.monotonic(), check)
            return check

    async def _ask_slack(self) -> Check:
        try:
            await asyncio.wait_for(self.web.auth_test(), SLACK_TIMEOUT)
        except SlackApiError as e:
            error = slack_error(e)
            status = getattr(e.response, "status_code", None) or getattr(e.response, "status", 200)
            if error not in {"ratelimited", UNREADABLE} and status < 500:
                return Check(False, f"Slack refused the bot token ({error})")
            return Check(True, f"unchecked: Slack answered {error}")
        except Exception as e:
            # Slack being unreachable says nothing about this replica; restarting it won't help.
            return Check(True, f"unchecked: Slack not reachable ({type(e).__name__})")
        return Check(True, "ok")

    def check_watch_loop(self) -> Check:
        age = metrics.seconds_since_watch_progress()
        if age > self.overdue_after:
            return Check(
                False,
                f"watch sweep overdue: nothing completed for {age:.0f} s (limit {self.overdue_after:.0f} s)",
            )
        return Check(True, "ok")

    async def refresh_store_gauges(self) -> None:
        """Read the database-backed gauges; on failure they keep their last values."""
        try:
            figures = await asyncio.wait_for(
                health.watch_figures(self.engine, self.now().timestamp()), DB_TIMEOUT
            )
        except Exception as e:
            log.warning("metrics: watch figures not read", extra={"error": type(e).__name__})
            return
        metrics.OLDEST_OVERDUE.set(figures.oldest_overdue_seconds)
        metrics.WATCHED.labels("active").set(figures.active_deployments)
        metrics.WATCHED.labels("paused").set(figures.paused_deployments)
