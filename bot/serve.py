"""`flinkdiag serve`: the bot against real Slack, in Socket Mode or HTTP mode."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from bot.app import ConfigError, build, check_slack_settings
from bot.config import Settings, secret

log = logging.getLogger("flinkdiag.serve")

EVENTS_PATH = "/slack/events"


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    try:
        mode = check_slack_settings(settings)
    except ConfigError as e:
        log.error(str(e))
        print(f"flinkdiag: {e}", file=sys.stderr)
        return 2
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import DefaultChainCredentials
    from bot.store import Store

    store = await Store.open(settings.effective_database_url)
    flink = FlinkClient(settings, DefaultChainCredentials())
    wiring = build(settings, flink=flink, store=store, socket_mode=mode == "socket")
    app, deps = wiring.app, wiring.deps
    wiring.scheduler.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    runner: web.AppRunner | None = None
    handler = None
    try:
        if mode == "socket":
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            handler = AsyncSocketModeHandler(app, secret(settings.slack_app_token))
            await handler.connect_async()
            log.info("serving in Socket Mode")
        else:
            web_app = app.web_app(path=EVENTS_PATH)
            web_app.router.add_get("/healthz", _healthz)
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", settings.port).start()
            log.info("serving HTTP", extra={"port": settings.port, "path": EVENTS_PATH})
        await stop.wait()
    finally:
        log.info("stopping")
        await wiring.scheduler.aclose()
        try:
            await asyncio.wait_for(deps.tracker.idle.wait(), 20)
        except TimeoutError:
            log.warning("stopped with work still running", extra={"running": deps.tracker.running})
        if handler is not None:
            await handler.close_async()
        if runner is not None:
            await runner.cleanup()
        await flink.aclose()
        await store.close()
    return 0


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
