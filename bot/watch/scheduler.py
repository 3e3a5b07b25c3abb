"""APScheduler glue: one interval job ticks; each tick sweeps due checks and due reports.

What is due lives in the store (next_check_at, next_due_at), not in APScheduler's job list, so
a restart or a second replica needs no schedule of its own: on start the first tick picks up
everything that fell due while the bot was down.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.watch.engine import Sweeper
from bot.watch.service import ReportPublisher, WatchService

log = logging.getLogger("flinkdiag.scheduler")


class WatchScheduler:
    def __init__(
        self, sweeper: Sweeper, service: WatchService, publisher: ReportPublisher, *, tick_seconds: float
    ) -> None:
        self.sweeper = sweeper
        self.service = service
        self.publisher = publisher
        self.tick_seconds = tick_seconds
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: asyncio.Future[None] | None = None

    async def tick(self) -> None:
        # APScheduler cancels a running job at shutdown. A sweep cancelled inside a database
        # transaction can leave the store unable to close (the process then hangs at exit), so
        # the sweep runs shielded and aclose() waits for it instead.
        self._running = asyncio.ensure_future(self._tick())
        try:
            await asyncio.shield(self._running)
        except asyncio.CancelledError:
            if not self.scheduler.running:
                return  # shutting down: aclose() waits for the sweep
            raise

    async def _tick(self) -> None:
        try:
            await self.sweeper.sweep()
        except Exception:  # one bad sweep must not stop the next
            log.exception("sweep failed")
        try:
            await self.service.run_due_reports(self.publisher)
        except Exception:
            log.exception("reports failed")

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
            id="flinkdiag-tick",
            max_instances=1,  # a sweep longer than a tick is not run twice at once
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        log.info("scheduler started", extra={"tick_seconds": self.tick_seconds})

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop ticking and let a sweep in progress finish (cancelled after `timeout` seconds)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        running = self._running
        if running is not None and not running.done():
            done, _ = await asyncio.wait({running}, timeout=timeout)
            if not done:
                log.warning("sweep still running at shutdown; cancelling it")
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
