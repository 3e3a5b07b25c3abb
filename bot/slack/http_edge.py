"""HTTP mode's edge: what stands between the open port and Bolt's request handler.

* Connections are bounded (below the process's file limit) and a request must arrive whole
  within `body_timeout`: 375 half-sent bodies at a 256-file limit used to starve every real
  command and make asyncio log an `accept()` error per attempt (300,000 lines in 25 s). When the
  bound is reached, the oldest connection still sending its request makes room for the new one,
  so a flood of slow senders churns among itself while a real request gets in and is answered.
* Slack's signature is checked here first, tolerating what Bolt does not (a timestamp like `abc`
  made slack_sdk raise, and Bolt parses `payload=` before it checks anything): refused with 401.
* Signed but malformed bodies (`payload=` not a JSON object, `actions: [{}]`) get 400.
* A signed request seen before (same signature: same timestamp and body) is acknowledged and
  not processed again; the record is in the database every replica shares.
* Event retries (`X-Slack-Retry-Num`) are acknowledged without processing them again.

aiohttp offers neither a connection limit nor a request-read timeout, and no maintained library
adds them to an aiohttp server, hence the hand-written guard around its (public) `web.Server`.
Bolt keeps its own signature check behind this one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger("flinkdiag.http")

# File descriptors kept for everything else (database, Flink and Slack clients, logs), plus the
# connections one accept() burst can take before the guard sees them (the listen backlog).
BACKLOG = 64
RESERVED_FDS = 64
# Slack refuses requests whose timestamp is older than this; so does slack_sdk's verifier.
SIGNATURE_MAX_AGE = 300


class ReplayLog(Protocol):
    async def first_sight(self, key: str, now: float) -> bool: ...


def connection_limit(configured: int) -> int:
    """`configured`, lowered so that open connections can never exhaust the file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(8, min(configured, soft - BACKLOG - RESERVED_FDS))


def _bad(status: int, reason: str) -> web.Response:
    log.info("request refused", extra={"status": status, "reason": reason})
    return web.json_response({"ok": False, "error": reason}, status=status)


def body_problem(content_type: str, body: bytes) -> str | None:
    """Why a signed body cannot be a Slack request Bolt can handle; None when it can."""
    try:
        text = body.decode("utf-8")
        if content_type == "application/json":
            return None if isinstance(json.loads(text), dict) else "body is not a JSON object"
        form = parse_qs(text, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return "unreadable body"
    if "payload" not in form:
        return None
    try:
        payload = json.loads(form["payload"][0])
    except ValueError:
        return "payload is not JSON"
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    actions = payload.get("actions")
    if actions is not None and not (
        isinstance(actions, list)
        and all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
    ):
        return "actions without action_id"
    return None


class SlackEdge:
    """The aiohttp middleware and the connection guard of HTTP mode."""

    def __init__(
        self,
        signing_secret: str,
        replays: ReplayLog | None,
        *,
        events_path: str,
        body_timeout: float,
        max_connections: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.replays = replays
        self.events_path = events_path
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.clock = clock
        # connections whose request is being handled (never evicted) / that sent one whole request
        self._busy: set[Any] = set()
        self._arrived: set[Any] = set()
        self._born: dict[Any, float] = {}
        self._server: web.Server | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self.evicted = 0

    # ------------------------------------------------------------------ requests
    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        conn = request.protocol
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except TimeoutError:
            log.info("request body timed out", extra={"seconds": self.body_timeout})
            timed_out = web.Response(status=408)
            timed_out.force_close()  # the rest of that body is never read
            return timed_out
        except (ConnectionError, RuntimeError):
            # The client went, or the guard or shut-down closed the connection under the read
            # (aiohttp then raises RuntimeError("Connection closed.")).
            gone = web.Response(status=400)
            gone.force_close()
            return gone
        self._arrived.add(conn)
        self._busy.add(conn)
        try:
            if request.method == "POST" and request.path == self.events_path:
                refused = await self._screen(request, body)
                if refused is not None:
                    return refused
            return await handler(request)
        finally:
            self._busy.discard(conn)

    async def _screen(self, request: web.Request, body: bytes) -> web.Response | None:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or len(timestamp) > 12 or not signature:
            return _bad(401, "invalid_request")
        if abs(self.clock() - int(timestamp)) > SIGNATURE_MAX_AGE:
            return _bad(401, "invalid_request")
        text = body.decode("utf-8", errors="replace")
        if not self.verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            return _bad(401, "invalid_request")
        problem = body_problem(request.content_type, body)
        if problem is not None:
            return _bad(400, problem)
        if "X-Slack-Retry-Num" in request.headers:
            # Slack retries an event it thinks we missed; the first delivery was acked and is
            # being handled, so a second run would do the work twice.
            log.info("event retry acknowledged", extra={"retry": request.headers["X-Slack-Retry-Num"][:8]})
            return web.Response(status=200, headers={"X-Slack-No-Retry": "1"})
        if self.replays is not None:
            key = hashlib.sha256(signature.encode()).hexdigest()
            try:
                first = await self.replays.first_sight(key, self.clock())
            except Exception as e:  # the database is down: a lost command is worse than a replay
                log.warning("replay check unavailable", extra={"error": type(e).__name__})
                first = True
            if not first:
                log.warning("replayed request ignored", extra={"timestamp": timestamp})
                return web.Response(status=200)
        return None

    # ------------------------------------------------------------------ connections
    def protocol_factory(self, server: web.Server) -> Callable[[], Any]:
        """What `loop.create_server` calls per accepted connection, bounding how many stay open."""
        self._server = server
        loop = asyncio.get_running_loop()
        self._reaper = loop.call_later(1.0, self._reap)

        def accept() -> asyncio.Protocol:
            # Counted here, not by server.connections: asyncio accepts a burst of connections
            # before any of them reaches connection_made, and all of them must be counted.
            if len(self._born) >= self.max_connections:
                victim = next((h for h in self._born if h not in self._busy), None)
                if victim is not None:
                    self._evict(victim)
                else:  # every connection is doing real work: this one waits its turn elsewhere
                    handler = server()
                    loop.call_soon(handler.force_close)
                    return handler
            handler = server()
            self._born[handler] = loop.time()
            return _Counted(handler, self)

        return accept

    def _evict(self, handler: Any) -> None:
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:  # one line per thousand, not a flood
            log.warning(
                "connection limit reached; closing the oldest idle connections",
                extra={"limit": self.max_connections, "evicted": self.evicted},
            )
        self._forget(handler)
        if handler.transport is None:  # accepted in the same burst, not connected yet
            asyncio.get_running_loop().call_soon(handler.force_close)
        else:
            handler.force_close()

    def _forget(self, handler: Any) -> None:
        self._born.pop(handler, None)
        self._arrived.discard(handler)

    def _reap(self) -> None:
        """Close connections that have not sent one whole request in time (slow headers)."""
        server = self._server
        if server is None:
            return
        loop = asyncio.get_running_loop()
        self._arrived &= set(self._born)
        deadline = loop.time() - self.body_timeout
        for handler, born in list(self._born.items()):
            if born < deadline and handler not in self._arrived and handler not in self._busy:
                self._forget(handler)
                handler.force_close()
        self._reaper = loop.call_later(1.0, self._reap)

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one connection, telling the edge when the connection is gone."""

    def __init__(self, handler: Any, edge: SlackEdge) -> None:
        self.handler, self.edge = handler, edge

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge._forget(self.handler)
        self.handler.connection_lost(exc)
