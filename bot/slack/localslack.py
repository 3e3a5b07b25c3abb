"""A local stand-in for Slack: the Web API methods the bot calls, `response_url` webhooks, and
Socket Mode (`apps.connections.open` plus the WebSocket that carries envelopes and their acks).

Used by `flinkdiag console` (as the "Slack" the person sees) and by the tests (which assert how
many requests hit each method, like bolt-python's own mock_web_api_server). It keeps channels,
messages, threads and ephemeral messages in memory, and can be told to fail the next calls the
way Slack does (429 with Retry-After, `channel_not_found`, `not_in_channel`, `is_archived`, ...).

Message metadata and history (what the bot's post-once path relies on). Verified against
slack_sdk's client (this .venv) and Slack's method pages as quoted in the docs: chat.postMessage
and chat.update take `metadata={"event_type", "event_payload"}` (sent as JSON);
conversations.history and conversations.replies are GET methods taking `channel`, `cursor`,
`inclusive`, `include_all_metadata`, `latest`, `limit`, `oldest` (`ts` for replies), booleans as
0/1; history answers newest first, without thread replies, with `has_more` and
`response_metadata.next_cursor`; replies answers the thread's parent first, then the replies
oldest first. Not verified, our reading: that `oldest`/`latest` are exclusive unless `inclusive`
(the reference says so), that a message carries `metadata` only when `include_all_metadata` is
set, that replies keeps the parent even when `oldest` is after it, that an unknown thread is
`thread_not_found`, and the default (100) and ceiling (999) of `limit`. Message ts are epoch
seconds from the stand-in's clock (strictly increasing), as Slack's are, so `oldest` works.

Fault hooks for tests: `on_accepted` runs a test's coroutine after Slack stored a post and before
it answers (e.g. to kill -9 the bot right then), `accept_then_reset` stores a post and drops the
connection without answering, `accept_then_stall` stores it and answers only after a delay (past
the client's timeout), `accept_then_garble` stores it and answers with a body that is not Slack's
JSON, and `garble_next` answers such a body without storing (a proxy's error page; unverified
what real Slack or a proxy in front of it sends, so the body is the test's choice).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)


@dataclass
class LocalMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    ephemeral_to: str | None = None  # user id when only that user sees it
    updates: int = 0
    deleted: bool = False
    metadata: dict[str, Any] | None = None  # chat.postMessage's `metadata` (event_type, event_payload)

    @property
    def ephemeral(self) -> bool:
        return self.ephemeral_to is not None


@dataclass
class _Hook:
    channel: str
    user: str
    # The message a button's response_url may replace or delete; None for a slash command's,
    # which has no original message (see `_response`).
    message: LocalMessage | None
    uses: int = 0
    # The first message posted through this response_url: an ack recorded after it (both race
    # on loopback) is placed before it, where Slack would have shown it.
    first_post: LocalMessage | None = None


@dataclass
class _Failure:
    error: str
    status: int = 200
    retry_after: int | None = None
    body: bytes | None = None  # answer this instead of Slack's JSON
    content_type: str = "application/json"


@dataclass
class _AfterAccept:
    """What to do once a post was stored, before answering (see `LocalSlack.on_accepted`)."""

    match: Callable[[LocalMessage], bool]
    hook: Callable[[LocalMessage], Awaitable[None]] | None = None
    reset: bool = False
    stall: float = 0.0
    garble: _Failure | None = None  # answer this body instead of Slack's JSON


@dataclass
class SocketAck:
    """What the Socket Mode client sent back for one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None  # what `ack()` returned, if anything
    shown: LocalMessage | None = None  # the ack as the user saw it (slash commands only)


@dataclass
class _Envelope:
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool


# Interactive payloads whose ack body Slack uses (a modal's response_action, a menu's options).
# For block_actions and shortcuts Slack sends accepts_response_payload=false (slack_sdk's own
# captured envelopes), although one example in Slack's Socket Mode guide shows true for a button.
_INTERACTIVE_WITH_RESPONSE = {"view_submission", "block_suggestion"}


class _DropConnection(Exception):
    """Raised by a fault hook: close the connection instead of answering."""


class _Garbled(Exception):
    """Raised by a fault hook: answer `failure.body` instead of Slack's JSON."""

    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.error)
        self.failure = failure


Listener = Callable[[str, LocalMessage], None]  # ("posted" | "updated" | "deleted", message)


class LocalSlack:
    """In-memory Slack with a real HTTP front. `await start()` returns the Web API base URL."""

    BOT_TOKEN = "xoxb-local-console"
    APP_TOKEN = "xapp-1-ALOCAL-1-local-console"
    APP_ID = "AFLINKDIAG"
    BOT_USER_ID = "UFLINKBOT"
    BOT_ID = "BFLINKBOT"
    TEAM_ID = "TLOCAL"

    # Methods that take the app-level token (xapp-) instead of the bot token.
    APP_TOKEN_METHODS = frozenset({"apps.connections.open"})

    def __init__(
        self,
        *,
        bot_token: str | None = None,
        app_token: str | None = None,
        response_url_uses: int = 5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.bot_token = bot_token or self.BOT_TOKEN
        self.app_token = app_token or self.APP_TOKEN
        self.response_url_uses = response_url_uses
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[LocalMessage] = []
        self.archived: set[str] = set()
        self.not_member: set[str] = set()
        self.home_views: dict[str, dict[str, Any]] = {}
        self.socket_connections = 0  # WebSockets ever opened (a reconnect adds one)
        self.socket_acks: dict[str, SocketAck] = {}
        self._envelopes: dict[str, _Envelope] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._hooks: dict[str, _Hook] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._clock = clock or time.time  # epoch seconds; message ts are taken from it
        self._last_ts = 0.0
        self._after_accept: dict[str, list[_AfterAccept]] = {}
        self._listeners: list[Listener] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_post("/api/{method}", self._api)
        self.app.router.add_get("/api/{method}", self._api)  # slack_sdk GETs conversations.history
        self.app.router.add_post("/response/{token}", self._response)
        self.app.router.add_get("/link/", self._socket)

    # ----- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self.api_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def stop(self) -> None:
        # Close the WebSockets first: the runner's cleanup would otherwise wait on their handlers.
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- test and console helpers
    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def new_response_url(self, channel: str, user: str, message: LocalMessage | None = None) -> str:
        token = secrets.token_urlsafe(12)
        self._hooks[token] = _Hook(channel=channel, user=user, message=message)
        return f"{self.base_url}/response/{token}"

    def fail_next(self, method: str, error: str, *, times: int = 1, status: int = 200) -> None:
        """The next `times` calls of `method` fail with Slack error `error`."""
        self._failures.setdefault(method, []).extend(_Failure(error, status) for _ in range(times))

    def rate_limit_next(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend(
            _Failure("ratelimited", 429, retry_after) for _ in range(times)
        )

    def garble_next(
        self, method: str, body: bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        """The next call of `method` is answered with `body` (not Slack's JSON) and does nothing."""
        self._failures.setdefault(method, []).append(_Failure("garbled", status, None, body, content_type))

    def accept_then_garble(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        method: str = "chat.postMessage",
        match: Callable[[LocalMessage], bool] = lambda m: True,
    ) -> None:
        """Once: store the next matching post, then answer `body` instead of Slack's JSON."""
        garble = _Failure("garbled", status, None, body, content_type)
        self._after_accept.setdefault(method, []).append(_AfterAccept(match, garble=garble))

    def on_accepted(
        self,
        hook: Callable[[LocalMessage], Awaitable[None]],
        *,
        method: str = "chat.postMessage",
        match: Callable[[LocalMessage], bool] = lambda m: True,
    ) -> None:
        """Once: after the next matching post is stored and before it is answered, await `hook(msg)`."""
        self._after_accept.setdefault(method, []).append(_AfterAccept(match, hook=hook))

    def accept_then_reset(
        self, *, method: str = "chat.postMessage", match: Callable[[LocalMessage], bool] = lambda m: True
    ) -> None:
        """Once: store the next matching post, then drop the connection without an answer."""
        self._after_accept.setdefault(method, []).append(_AfterAccept(match, reset=True))

    def accept_then_stall(
        self,
        seconds: float,
        *,
        method: str = "chat.postMessage",
        match: Callable[[LocalMessage], bool] = lambda m: True,
    ) -> None:
        """Once: store the next matching post and answer only `seconds` later."""
        self._after_accept.setdefault(method, []).append(_AfterAccept(match, stall=seconds))

    def channel_messages(self, channel: str, *, include_ephemeral: bool = True) -> list[LocalMessage]:
        return [
            m
            for m in self.messages
            if m.channel == channel and not m.deleted and (include_ephemeral or not m.ephemeral)
        ]

    def thread(self, channel: str, thread_ts: str) -> list[LocalMessage]:
        return [
            m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    def find(self, channel: str, ts: str) -> LocalMessage | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked on every change); returns its value."""

        async def _wait() -> Any:
            async with self.changed:
                while not (value := predicate()):
                    await self.changed.wait()
                return value

        return await asyncio.wait_for(_wait(), timeout)

    # ----- Socket Mode, as the tests drive it
    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    async def wait_socket_connected(self, timeout: float = 10.0, *, connections: int = 1) -> None:
        """Wait until a client holds an open WebSocket (and `connections` were ever made)."""
        await self.wait_for(lambda: self._sockets and self.socket_connections >= connections, timeout)

    async def socket_send(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
    ) -> str:
        """Push one envelope (`slash_commands`, `interactive` or `events_api`) to the client.

        Returns its envelope_id, for `socket_ack`. Like Slack, the envelope goes to one of the
        open connections (here: the newest). `accepts_response_payload` defaults to what Slack
        sends for that kind of payload.
        """
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected")
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _INTERACTIVE_WITH_RESPONSE
            )
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        self._envelopes[envelope_id] = _Envelope(type, payload, accepts_response_payload)
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def socket_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the client's ack of `envelope_id`; returns its payload ({} when it had none)."""
        ack = await self.wait_for(lambda: self.socket_acks.get(envelope_id), timeout)
        return ack.payload or {}

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected clients to reconnect, as Slack does every few hours."""
        for ws in list(self._sockets):
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "local"}})

    def event_callback(self, event: dict[str, Any]) -> dict[str, Any]:
        """The Events API body (`event_callback`) that carries `event`, as Slack wraps it."""
        now = int(time.time())
        return {
            "token": "legacy-verification-token",
            "team_id": self.TEAM_ID,
            "api_app_id": self.APP_ID,
            "event": {"event_ts": f"{now}.000100", **event},
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.TEAM_ID,
                    "user_id": self.BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    # ----- internals
    def _next_ts(self) -> str:
        # Slack's ts: epoch seconds with six decimals, unique and increasing within a channel.
        self._last_ts = max(round(self._clock(), 6), round(self._last_ts + 0.000001, 6))
        return f"{self._last_ts:.6f}"

    async def _notify(self, kind: str, message: LocalMessage) -> None:
        for listener in self._listeners:
            try:
                listener(kind, message)
            except Exception:  # a console printing bug must not break the fake Slack
                log.exception("local slack listener failed")
        await self._changed()

    async def _changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    @staticmethod
    async def _payload(request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
        form = await request.post()
        out: dict[str, Any] = {}
        for k, v in form.items():
            out[k] = v
            if k in {"blocks", "attachments", "view", "metadata"} and isinstance(v, str):
                try:
                    out[k] = json.loads(v)
                except ValueError:
                    pass
        return out

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if queue:
            return queue.pop(0)
        return None

    @staticmethod
    def _garbled(failure: _Failure) -> web.Response:
        return web.Response(body=failure.body, status=failure.status, content_type=failure.content_type)

    @staticmethod
    def _error(error: str, status: int = 200, retry_after: int | None = None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    async def _api(self, request: web.Request) -> web.Response:
        try:
            return await self._answer(request)
        except _Garbled as g:
            return self._garbled(g.failure)
        except _DropConnection:
            # Accepted, never answered: the client sees its connection reset.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPInternalServerError() from None  # not written: the transport is gone
        finally:
            await self._changed()  # wakes `wait_for` on `calls` and on state no listener sees

    async def _answer(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] += 1
        payload = await self._payload(request)
        self.requests.append((method, payload))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or payload.get("token", "")
        if not token:
            return self._error("not_authed")
        expected = self.app_token if method in self.APP_TOKEN_METHODS else self.bot_token
        if token != expected:
            # Slack tells a known token used in the wrong place apart from an unknown one.
            known = token in {self.app_token, self.bot_token}
            return self._error("not_allowed_token_type" if known else "invalid_auth")
        failure = self._take_failure(method)
        if failure is not None:
            if failure.body is not None:
                return self._garbled(failure)
            return self._error(failure.error, failure.status, failure.retry_after)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return self._error("unknown_method", 404)
        return await handler(payload)

    def _check_channel(self, channel: str | None) -> str | None:
        if not channel:
            return "channel_not_found"
        if channel in self.archived:
            return "is_archived"
        if channel in self.not_member:
            return "not_in_channel"
        return None

    async def _m_auth_test(self, payload: dict[str, Any]) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "url": "https://local.slack/",
                "team": "local",
                "user": "flinkdiag",
                "team_id": self.TEAM_ID,
                "user_id": self.BOT_USER_ID,
                "bot_id": self.BOT_ID,
            }
        )

    def _message_from(self, payload: dict[str, Any], channel: str) -> LocalMessage:
        blocks = payload.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        attachments = payload.get("attachments") or []
        if isinstance(attachments, str):
            attachments = json.loads(attachments)
        return LocalMessage(
            channel=channel,
            ts=self._next_ts(),
            text=str(payload.get("text") or ""),
            blocks=blocks,
            attachments=attachments,
            thread_ts=payload.get("thread_ts") or None,
            metadata=self._metadata(payload),
        )

    @staticmethod
    def _metadata(payload: dict[str, Any]) -> dict[str, Any] | None:
        meta = payload.get("metadata")
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                return None
        if not isinstance(meta, dict) or not isinstance(meta.get("event_type"), str):
            return None
        payload_ = meta.get("event_payload")
        return {
            "event_type": meta["event_type"],
            "event_payload": payload_ if isinstance(payload_, dict) else {},
        }

    async def _m_chat_postMessage(self, payload: dict[str, Any]) -> web.Response:
        channel = payload.get("channel")
        if err := self._check_channel(channel):
            return self._error(err)
        if not payload.get("text") and not payload.get("blocks") and not payload.get("attachments"):
            return self._error("no_text")
        msg = self._message_from(payload, channel)  # type: ignore[arg-type]
        self.messages.append(msg)
        await self._notify("posted", msg)
        await self._after("chat.postMessage", msg)
        return web.json_response(
            {"ok": True, "channel": channel, "ts": msg.ts, "message": self._as_api(msg, with_metadata=True)}
        )

    async def _after(self, method: str, msg: LocalMessage) -> None:
        queue = self._after_accept.get(method) or []
        after = next((a for a in queue if a.match(msg)), None)
        if after is None:
            return
        queue.remove(after)
        if after.hook is not None:
            await after.hook(msg)
        if after.stall:
            await asyncio.sleep(after.stall)
        if after.reset:
            raise _DropConnection
        if after.garble is not None:
            raise _Garbled(after.garble)

    def _as_api(self, msg: LocalMessage, *, with_metadata: bool) -> dict[str, Any]:
        """A message object as the Web API returns it (the fields the bot reads)."""
        out: dict[str, Any] = {
            "type": "message",
            "ts": msg.ts,
            "text": msg.text,
            "bot_id": self.BOT_ID,
            "app_id": self.APP_ID,
            "user": self.BOT_USER_ID,
        }
        if msg.blocks:
            out["blocks"] = msg.blocks
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        if with_metadata and msg.metadata is not None:
            out["metadata"] = msg.metadata
        return out

    @staticmethod
    def _flag(value: Any) -> bool:
        return str(value).lower() in {"1", "true"}

    def _page(self, messages: list[LocalMessage], payload: dict[str, Any]) -> web.Response:
        """One page of `messages` (already in answer order), as history and replies answer."""
        try:
            limit = int(payload.get("limit") or 100)
        except ValueError:
            return self._error("invalid_arguments")
        limit = max(1, min(limit, 999))
        start = 0
        if cursor := payload.get("cursor"):
            try:
                start = int(base64.b64decode(str(cursor)).decode().removeprefix("next:"))
            except ValueError:
                return self._error("invalid_cursor")
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        meta = self._flag(payload.get("include_all_metadata"))
        body: dict[str, Any] = {
            "ok": True,
            "messages": [self._as_api(m, with_metadata=meta) for m in page],
            "has_more": more,
        }
        if more:
            body["response_metadata"] = {
                "next_cursor": base64.b64encode(f"next:{start + limit}".encode()).decode()
            }
        return web.json_response(body)

    def _window(self, payload: dict[str, Any]) -> Callable[[LocalMessage], bool]:
        inclusive = self._flag(payload.get("inclusive"))
        oldest = float(payload.get("oldest") or 0)
        latest = float(payload["latest"]) if payload.get("latest") else None

        def inside(m: LocalMessage) -> bool:
            ts = float(m.ts)
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= latest if inclusive else ts < latest)
            return after and before

        return inside

    async def _m_conversations_history(self, payload: dict[str, Any]) -> web.Response:
        channel = payload.get("channel")
        if err := self._check_channel(channel):
            return self._error(err)
        try:
            inside = self._window(payload)
        except ValueError:
            return self._error("invalid_arguments")
        found = [
            m
            for m in self.channel_messages(str(channel), include_ephemeral=False)
            if m.thread_ts is None and inside(m)
        ]
        return self._page(sorted(found, key=lambda m: float(m.ts), reverse=True), payload)

    async def _m_conversations_replies(self, payload: dict[str, Any]) -> web.Response:
        channel = payload.get("channel")
        if err := self._check_channel(channel):
            return self._error(err)
        parent = self.find(str(channel), str(payload.get("ts") or ""))
        if parent is None or parent.deleted or parent.ephemeral:
            return self._error("thread_not_found")
        try:
            inside = self._window(payload)
        except ValueError:
            return self._error("invalid_arguments")
        replies = [m for m in self.thread(str(channel), parent.ts) if not m.ephemeral and inside(m)]
        return self._page([parent, *sorted(replies, key=lambda m: float(m.ts))], payload)

    async def _m_chat_postEphemeral(self, payload: dict[str, Any]) -> web.Response:
        channel = payload.get("channel")
        if err := self._check_channel(channel):
            return self._error(err)
        if not payload.get("user"):
            return self._error("user_not_in_channel")
        msg = self._message_from(payload, channel)  # type: ignore[arg-type]
        msg.ephemeral_to = payload["user"]
        self.messages.append(msg)
        await self._notify("posted", msg)
        return web.json_response({"ok": True, "message_ts": msg.ts})

    async def _m_chat_update(self, payload: dict[str, Any]) -> web.Response:
        channel = payload.get("channel")
        if err := self._check_channel(channel):
            return self._error(err)
        msg = self.find(channel, str(payload.get("ts")))  # type: ignore[arg-type]
        if msg is None or msg.deleted:
            return self._error("message_not_found")
        if msg.ephemeral:
            return self._error("cant_update_message")
        self._apply_update(msg, payload)
        if "metadata" in payload:
            msg.metadata = self._metadata(payload)
        await self._notify("updated", msg)
        return web.json_response({"ok": True, "channel": channel, "ts": msg.ts})

    async def _m_views_publish(self, payload: dict[str, Any]) -> web.Response:
        view = payload.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        self.home_views[str(payload.get("user_id"))] = view or {}
        return web.json_response({"ok": True, "view": view})

    async def _m_apps_connections_open(self, payload: dict[str, Any]) -> web.Response:
        ticket = secrets.token_urlsafe(12)
        self._tickets.add(ticket)
        ws_base = "ws" + self.base_url.removeprefix("http")
        return web.json_response({"ok": True, "url": f"{ws_base}/link/?ticket={ticket}&app_id={self.APP_ID}"})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """The Socket Mode WebSocket: hello, then envelopes out and acks in."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid_ticket")
        self._tickets.discard(ticket)  # a URL from apps.connections.open is good for one connection
        ws = web.WebSocketResponse()  # autoping: answers the client's keep-alive pings
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {"host": "localslack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.APP_ID},
            }
        )
        self._sockets.append(ws)
        self.socket_connections += 1
        await self._changed()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_socket_text(msg.data)
        finally:
            self._sockets.remove(ws)
            await self._changed()
        return ws

    async def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("socket mode: a frame that is not JSON")
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not envelope_id:
            log.warning("socket mode: a frame without envelope_id")
            return
        if envelope_id in self.socket_acks:  # Slack takes the first ack; later ones change nothing
            log.warning("socket mode: envelope acked twice", extra={"envelope_id": envelope_id})
            return
        payload = message.get("payload")
        ack = SocketAck(envelope_id, payload if isinstance(payload, dict) else None)
        envelope = self._envelopes.get(envelope_id)
        if envelope is None:
            log.warning("socket mode: ack for an unknown envelope", extra={"envelope_id": envelope_id})
        elif (
            envelope.type == "slash_commands"
            and envelope.accepts_response_payload
            and ack.payload
            and (ack.payload.get("text") or ack.payload.get("blocks"))
        ):
            # Like the body of an HTTP ack: Slack shows it to the user as the command's answer.
            p = envelope.payload
            ack.shown = self.add_ack_message(
                str(p.get("response_url", "")),
                str(p.get("channel_id", "")),
                str(p.get("user_id", "")),
                ack.payload,
            )
        # Otherwise a payload is dropped, as Slack drops it when accepts_response_payload is false.
        self.socket_acks[envelope_id] = ack
        await self._changed()

    async def _m_conversations_info(self, payload: dict[str, Any]) -> web.Response:
        channel = str(payload.get("channel"))
        return web.json_response(
            {
                "ok": True,
                "channel": {"id": channel, "is_archived": channel in self.archived, "is_member": True},
            }
        )

    @staticmethod
    def _apply_update(msg: LocalMessage, payload: dict[str, Any]) -> None:
        if "text" in payload:
            msg.text = str(payload.get("text") or "")
        if "blocks" in payload:
            blocks = payload.get("blocks") or []
            msg.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        if "attachments" in payload:
            att = payload.get("attachments") or []
            msg.attachments = json.loads(att) if isinstance(att, str) else att
        msg.updates += 1

    async def _response(self, request: web.Request) -> web.Response:
        """A `response_url` webhook: at most `response_url_uses` uses, like Slack's five.

        A button's response_url acts on the message the button is on: `replace_original` edits it
        and `delete_original` removes it (documented: docs.slack.dev "Modifying messages").
        A slash command's response_url has no original message: every post is a new message and
        the ack stays where it is (verified from reports, not docs: bolt-js#2287 "Using a
        command's response `replace_original` does nothing", bolt-python#1268, where Slack staff
        say the same response_url cannot update the message). That `delete_original` is likewise
        ignored after a slash command is our assumption (unverified).
        """
        self.calls["response_url"] += 1
        hook = self._hooks.get(request.match_info["token"])
        payload = await self._payload(request)
        self.requests.append(("response_url", payload))
        if hook is None:
            return web.Response(status=404, text="no_such_response_url")
        hook.uses += 1
        if hook.uses > self.response_url_uses:
            return web.Response(status=410, text="used_up")
        failure = self._take_failure("response_url")
        if failure is not None:
            return web.Response(status=failure.status if failure.status != 200 else 500, text=failure.error)
        original = hook.message
        if payload.get("delete_original") and original is not None:
            original.deleted = True
            await self._notify("deleted", original)
            return web.Response(text="ok")
        if payload.get("replace_original") and original is not None and not original.deleted:
            self._apply_update(original, payload)
            await self._notify("updated", original)
            return web.Response(text="ok")
        if payload.get("delete_original") and not any(k in payload for k in ("text", "blocks")):
            return web.Response(text="ok")  # nothing to delete, nothing to post
        msg = self._message_from(payload, hook.channel)
        if payload.get("response_type") != "in_channel":
            msg.ephemeral_to = hook.user
        msg.thread_ts = payload.get("thread_ts") or None
        self.messages.append(msg)
        if hook.first_post is None:
            hook.first_post = msg
        await self._notify("posted", msg)
        return web.Response(text="ok")

    def add_ack_message(
        self, response_url: str, channel: str, user: str, body: dict[str, Any]
    ) -> LocalMessage:
        """Record what a slash command's ack showed the user, as Slack would display it: it stays,
        whatever the command posts through its response_url afterwards."""
        token = response_url.rsplit("/", 1)[-1]
        hook = self._hooks.get(token)
        msg = self._message_from(body, channel)
        if body.get("response_type") != "in_channel":
            msg.ephemeral_to = user
        first = hook.first_post if hook is not None else None
        at = next((i for i, m in enumerate(self.messages) if m is first), None)
        if at is not None:  # a response overtook the ack
            self.messages.insert(at, msg)
        else:
            self.messages.append(msg)
        return msg
