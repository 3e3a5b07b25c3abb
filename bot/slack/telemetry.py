"""Slack-side metrics: how fast requests are acked, and which errors the Web API answers with."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot import metrics

# Error codes Slack documents for the methods the bot calls (chat.*, views.publish, auth.test,
# apps.connections.open) and its general ones. The code comes from outside: anything else is
# counted as "other" so a new or odd code cannot grow the number of series.
KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "account_inactive",
        "cant_update_message",
        "channel_not_found",
        "edit_window_closed",
        "ekm_access_denied",
        "fatal_error",
        "internal_error",
        "invalid_arguments",
        "invalid_auth",
        "invalid_blocks",
        "is_archived",
        "message_not_found",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "no_text",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "ratelimited",
        "request_timeout",
        "restricted_action",
        "service_unavailable",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
        "too_many_attachments",
    }
)


def error_label(error: object) -> str:
    return error if isinstance(error, str) and error in KNOWN_ERRORS else "other"


class SlackErrorCounter(AsyncRetryHandler):
    """Counts every error answer of the Web API client; never asks for a retry.

    slack_sdk offers no response hook, but it shows every answer (and every transport error) to
    each retry handler in turn, so the first handler in the list sees all of them, including
    the 429s the rate-limit handler after it waits out.
    """

    def __init__(self) -> None:
        super().__init__(max_retry_count=1 << 30)

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if error is not None:
            metrics.SLACK_ERRORS.labels("connection_error").inc()
        elif response is not None:
            body = response.body if isinstance(response.body, dict) else {}
            if response.status_code >= 400 or body.get("ok") is False:
                metrics.SLACK_ERRORS.labels(error_label(body.get("error"))).inc()
        return False


def request_kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return "command"
    kind = body.get("type")
    if kind in ("block_actions", "interactive_message"):
        return "action"
    if kind in ("event_callback", "app_rate_limited", "url_verification"):
        return "event"
    if kind in ("view_submission", "view_closed", "shortcut", "message_action"):
        return "view"
    return "other"


class TimedAck(AsyncAck):
    """Bolt's ack that notes how long the request waited for it.

    A subclass, not a wrapping function: Bolt's listener runner reads `ack.response` to find
    out whether (and what) the listener acked.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.started = time.perf_counter()

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        if self.response is None:
            metrics.ACK_LATENCY.labels(self.kind).observe(time.perf_counter() - self.started)
        return await super().__call__(*args, **kwargs)


async def time_ack(context: Any, body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
    """Bolt middleware: observe the time from here (after Bolt's signature check) to `ack()`."""
    # Bolt has made a fresh, unused ack already (it builds every middleware argument up front).
    if context.ack.response is None:
        context["ack"] = TimedAck(request_kind(body or {}))
    return await next()
