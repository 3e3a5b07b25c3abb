"""`flinkdiag serve`: the bot against real Slack, in Socket Mode or HTTP mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError

from bot.app import ConfigError, build, check_slack_settings, freeze_heap, slack_client, start_limiter
from bot.config import Settings, secret
from bot.probes import Probes
from bot.slack.errors import UNREADABLE, slack_error
from bot.slack.http_edge import BACKLOG, ReplayLog, SlackEdge, connection_limit

log = logging.getLogger("flinkdiag.serve")

EVENTS_PATH = "/slack/events"


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    try:
        mode = check_slack_settings(settings)
    except ConfigError as e:
        log.error(str(e))
        print(f"flinkdiag: {e}", file=sys.stderr)
        return 2
    sock: socket.socket | None = None
    if mode == "http":
        # Bound first: a taken port ends start-up before the store, Slack or the scheduler start.
        try:
            sock = bind("0.0.0.0", settings.port)
        except OSError as e:
            problem = f"cannot start: port {settings.port} is not available ({e.strerror or e})"
            log.error(problem)
            print(f"flinkdiag: {problem}; set PORT to a free port", file=sys.stderr)
            return 2
    try:
        return await _serve(settings, mode, sock, stop)
    finally:
        if sock is not None:
            sock.close()


async def _serve(
    settings: Settings, mode: str, sock: socket.socket | None, stop: asyncio.Event | None
) -> int:
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import DefaultChainCredentials
    from bot.store import Store

    refused = await _check_bot_token(settings)
    if refused:
        log.error(refused)
        print(f"flinkdiag: {refused}", file=sys.stderr)
        return 2
    store = await Store.open(settings.effective_database_url)
    flink = FlinkClient(settings, DefaultChainCredentials(), limiter=await start_limiter(settings, store))
    wiring = build(settings, flink=flink, store=store, socket_mode=mode == "socket")
    app, deps = wiring.app, wiring.deps
    freeze_heap()
    wiring.scheduler.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    http: HttpServer | None = None
    probe_runner: web.AppRunner | None = None
    handler = None
    code = 0
    probes = Probes(settings, engine=store.engine, web=wiring.web)
    try:
        if mode == "socket":
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            # Socket Mode has no HTTP server of its own: the probes get one when a port is set.
            probe_runner = await probes.serve_alone(settings.metrics_port)
            handler = AsyncSocketModeHandler(app, secret(settings.slack_app_token))
            code = await _connect_socket(handler, stop)
            if code == 0 and not stop.is_set():
                log.info("serving in Socket Mode")
        else:
            assert sock is not None
            http = await start_http(http_app(app, settings, store.seen_requests, probes), sock)
            log.info(
                "serving HTTP",
                extra={
                    "port": settings.port,
                    "path": EVENTS_PATH,
                    "max_connections": http.edge.max_connections,
                },
            )
        if code == 0:
            await stop.wait()
    finally:
        log.info("stopping")
        if handler is not None:
            # Take no new envelopes while the work already acked finishes (it answers through
            # response_url and the Web API, not through the socket).
            await handler.close_async()
        await wiring.scheduler.aclose()
        try:
            await asyncio.wait_for(deps.tracker.idle.wait(), 20)
        except TimeoutError:
            log.warning("stopped with work still running", extra={"running": deps.tracker.running})
        if http is not None:
            await http.aclose()
        if probe_runner is not None:
            await probe_runner.cleanup()
        await flink.aclose()
        await store.close()
    return code


def bind(host: str, port: int) -> socket.socket:
    """The listening socket of HTTP mode (raises OSError when the port is taken)."""
    sock = socket.create_server((host, port), backlog=BACKLOG)
    sock.setblocking(False)
    return sock


@dataclass
class HttpApp:
    web_app: web.Application
    edge: SlackEdge


def http_app(
    bolt: Any, settings: Settings, replays: ReplayLog | None, probes: Probes | None = None
) -> HttpApp:
    """HTTP mode's application: Slack's endpoint behind the edge (bot.slack.http_edge), and the
    probes. Every route HTTP mode serves is added here."""
    edge = SlackEdge(
        secret(settings.slack_signing_secret) or "",
        replays,
        events_path=EVENTS_PATH,
        body_timeout=settings.http_body_timeout,
        max_connections=connection_limit(settings.http_max_connections),
    )
    web_app = bolt.web_app(path=EVENTS_PATH)
    web_app.middlewares.append(edge.middleware)
    if probes is not None:
        probes.mount(web_app)  # /healthz, /readyz, /metrics beside /slack/events
    else:
        web_app.router.add_get("/healthz", _healthz)
    return HttpApp(web_app, edge)


@dataclass
class HttpServer:
    runner: web.AppRunner
    server: asyncio.Server
    edge: SlackEdge

    async def aclose(self) -> None:
        self.edge.close()
        self.server.close()
        await self.runner.cleanup()


async def start_http(app: HttpApp, sock: socket.socket) -> HttpServer:
    """Serve `app` on the bound `sock`, each connection through the edge's guard."""
    runner = web.AppRunner(app.web_app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(app.edge.protocol_factory(runner.server), sock=sock, backlog=BACKLOG)
    return HttpServer(runner, server, app.edge)


async def _check_bot_token(settings: Settings) -> str | None:
    """Ask Slack (auth.test) whether the bot token works; the reason when Slack refuses it.

    Bolt would only find out at the first request, so a revoked or mistyped token would surface
    as silence in Slack. Slack being unreachable is not a refusal: the bot starts and retries.
    """
    web = slack_client(secret(settings.slack_bot_token) or "", settings.slack_api_url)
    try:
        await web.auth_test()
    except SlackApiError as e:
        error = slack_error(e)
        if error in {"ratelimited", UNREADABLE}:  # not an answer about the token
            return None
        return f"cannot start: Slack refused SLACK_BOT_TOKEN ({error}); use the app's bot token (xoxb-…)"
    except Exception as e:  # network trouble: say so, start anyway
        log.warning("could not reach Slack to check the bot token", extra={"error": type(e).__name__})
    return None


async def _connect_socket(handler: Any, stop: asyncio.Event) -> int:
    """Open the Socket Mode connection: 0 once connected (or stopped meanwhile), 2 if Slack refuses.

    slack_sdk's `connect()` retries every failure forever, a rejected app token included, and
    SIGTERM cannot stop it while it does. So the first WebSocket URL is asked for here, where
    Slack's refusal (invalid_auth, not_allowed_token_type, ...) ends start-up naming the token,
    and the whole attempt is raced against the stop request.
    """
    connecting = asyncio.ensure_future(_open_socket(handler))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    return 0 if connecting.cancelled() else connecting.result()


async def _open_socket(handler: Any) -> int:
    client = handler.client
    try:
        client.wss_uri = await client.issue_new_wss_url()
    except SlackApiError as e:
        status = getattr(e.response, "status_code", None) or getattr(e.response, "status", 200)
        error = slack_error(e)
        if status < 500 and error != UNREADABLE:  # Slack's answer about the token: it won't change
            problem = f"cannot start: Slack refused SLACK_APP_TOKEN ({error})"
            log.error(problem, extra={"error": error})
            print(
                f"flinkdiag: {problem}; it must be this app's app-level token (xapp-…) "
                "with the connections:write scope",
                file=sys.stderr,
            )
            return 2
        log.warning("Slack is not answering yet; retrying", extra={"status": status})
    except (aiohttp.ClientError, TimeoutError) as e:
        log.warning("cannot reach Slack yet; retrying", extra={"error": type(e).__name__})
    # With the URL set, connect() goes straight to the WebSocket; without, it keeps retrying.
    await handler.connect_async()
    return 0


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
