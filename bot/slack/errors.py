"""The one place listener failures become a Slack answer and a log line.

Known failures (FlinkError and its kin) carry a sentence for the user; anything else becomes
"Something went wrong (ref …)" with the traceback in the log under the same ref.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.flink.errors import FlinkError
from bot.logs import request_id
from bot.namespaces import NamespacePolicy

# What `slack_error` calls an answer that was not Slack's JSON.
UNREADABLE = "unreadable_answer"

log = logging.getLogger("flinkdiag.slack")

Respond = Callable[..., Awaitable[Any]]


class ResponseRejected(Exception):
    """Slack answered a response_url post with an error (slack_sdk returns it, never raises)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"response_url answered {status}: {body[:200]}")
        self.status = status
        self.body = body


class Refused(FlinkError):
    """A request the bot will not carry out (another channel's watch, a namespace not served
    here); nothing has been changed when it is raised. `fields` go to the log line."""

    def __init__(self, kind: str, sentence: str, **fields: Any) -> None:
        super().__init__(sentence, user_message=sentence)
        self.kind = kind
        self.fields = fields


def checked(respond: Respond) -> Respond:
    """`respond` that raises ResponseRejected instead of silently returning an error status."""

    async def call(**kwargs: Any) -> Any:
        resp = await respond(**kwargs)
        status = getattr(resp, "status_code", 200)
        if status >= 400:
            raise ResponseRejected(status, str(getattr(resp, "body", "")))
        return resp

    return call


def describe_failure(exc: BaseException) -> tuple[str, str | None]:
    """(sentence for the user, hint) for an exception."""
    if isinstance(exc, FlinkError):
        hint = f"Flink request id `{exc.request_id}`" if exc.request_id else None
        return exc.user_message, hint
    if isinstance(exc, TimeoutError):
        return (
            "The Flink API did not answer in time, so I gave up on this diagnosis.",
            "Try again in a minute.",
        )
    if isinstance(exc, ResponseRejected):
        return (
            f"Slack refused my answer ({exc.body[:80] or exc.status}), so this short note is all I can show.",
            "Try again, or use `/flinkdiag` in a channel with fewer restrictions.",
        )
    if isinstance(exc, SlackApiError):
        return f"Slack refused the message ({slack_error(exc)}).", None
    return "Something went wrong on my side.", None


def slack_error(e: SlackApiError) -> str:
    """Slack's error code in a refused call; `UNREADABLE` when the answer was not Slack's JSON.

    On a body that is not JSON (a proxy's error page, a cut-off answer) slack_sdk raises
    SlackApiError with aiohttp's own response object in `e.response`, which has no `.get()`:
    reading the code as usual raised AttributeError and crashed the watch check. A reply
    whose body had no usable `error` (an empty or HTML page) is unreadable as well.
    """
    data = getattr(e.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return error[:100] if isinstance(error, str) and error else UNREADABLE


def log_failure(exc: BaseException, **fields: Any) -> str:
    """Log a failure with its ref; return the ref."""
    ref = request_id.get()
    extra: dict[str, Any] = dict(fields)
    if isinstance(exc, ResponseRejected):
        log.error("slack refused a response", extra={**extra, "status": exc.status, "body": exc.body[:200]})
    elif isinstance(exc, Refused):
        log.warning("refused: %s", exc.kind, extra={**extra, **exc.fields})
    elif isinstance(exc, FlinkError):
        extra.update({k: v for k, v in exc.log_fields().items() if v is not None})
        level = (
            logging.ERROR
            if exc.kind in {"unavailable", "service_error", "unreadable", "auth"}
            else logging.INFO
        )
        log.log(level, "listener failed: %s", exc.kind, extra=extra)
    else:
        log.error("listener failed: %s", type(exc).__name__, exc_info=exc, extra=extra)
    return ref


async def report_failure(exc: BaseException, respond: Respond | None, renderer: Any, **fields: Any) -> None:
    """Log `exc` and tell the user what happened through `respond` (ephemeral), as a message of
    its own: a button's failure leaves the message it was pressed on alone."""
    ref = log_failure(exc, **fields)
    if respond is None:
        return
    sentence, hint = describe_failure(exc)
    message = renderer.render_error(sentence, ref=ref, hint=hint)
    try:
        await checked(respond)(**message.to_slack(), response_type="ephemeral", replace_original=False)
    except Exception as e:  # the answer itself failed: the log is all that is left
        log.error("could not deliver the error message", exc_info=e, extra={"ref": ref})


def refuse_unserved(
    policy: NamespacePolicy, team_id: str, channel_id: str, namespaces: Iterable[str]
) -> None:
    """Raise Refused naming the first namespace `policy` does not serve in this channel."""
    refused = policy.refused(team_id, channel_id, namespaces)
    if refused:
        raise Refused(
            "namespace_not_served",
            policy.refusal(refused[0]),
            team=team_id,
            channel=channel_id,
            namespace=refused[0][:80],
        )


def refuse_other_channel(what: str, **fields: Any) -> Refused:
    """A click whose target was made in another channel (or workspace): refused, nothing changed."""
    return Refused(
        "other_channel",
        f"That {what} belongs to another channel, so I can't act on it from here.",
        **fields,
    )
