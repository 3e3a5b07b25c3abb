"""The Slack sink of the watch loop: turns a `Notice` into posts, thread replies and edits.

Slack's errors are sorted into the two the engine understands: `ChannelUnavailable` (the bot
cannot post there until someone acts: pause the channel) and `DeliveryFailed` (try at the next
check); a follow-up whose reply went out but whose edit of the alert failed is
`AnchorNotUpdated` (only the edit is redone). 429s are waited out by the Web API client's retry
handler before they get here.

Posts once, even across a crash. Every post of the watch loop carries its delivery intent's key
as Slack message metadata (`event_type` flinkdiag_alert / flinkdiag_note / flinkdiag_digest,
`event_payload.key`, or `keys` for a digest). When an earlier attempt's outcome is unknown (the
intent was recorded, its result was not), the channel's recent history (or the thread's replies)
is read first, and a message carrying the key is adopted instead of posting again. History that
cannot be read (missing_scope, not_in_channel, any error) means posting: a duplicate is better
than a lost alert. Tagged posts are sent without the client's connection-error retry: a retry
of a post Slack had already accepted would itself be the duplicate; a reset connection is
followed by a look-up and, only when nothing is found, one more post, and a timeout leaves the
look-up to the next check (Slack may still be handling the first request).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.slack.blocks import Message
from bot.slack.errors import UNREADABLE, slack_error
from bot.slack.outage_view import checking_again_context, outage_context, outage_over_context
from bot.watch.lifecycle import Action
from bot.watch.model import (
    PAUSING_ERRORS,
    AnchorNotUpdated,
    ChannelUnavailable,
    Delivery,
    DeliveryFailed,
    Found,
    Notice,
    OutageNotice,
)
from bot.watch.outage import OutageAction

log = logging.getLogger("flinkdiag.notify")

# `flinkdiag_slack_posts_total{kind}`; the digests and reports add their own kinds.
POST_KINDS = {
    Action.POST_ROOT: "alert",
    Action.POST_FOLLOWUP: "followup",
    Action.UPDATE_ROOT: "alert_update",
}

ALERT_EVENT = "flinkdiag_alert"  # an incident's root
NOTE_EVENT = "flinkdiag_note"  # follow-ups and notes
DIGEST_EVENT = "flinkdiag_digest"  # a storm digest: the anchor of several episodes
REPORT_EVENT = "flinkdiag_report"  # a channel report
_EVENTS = frozenset({ALERT_EVENT, NOTE_EVENT, DIGEST_EVENT, REPORT_EVENT})

# How far before an intent's recording the look-up reads: Slack's clock (the ts) and ours differ.
LOOKBACK_SECONDS = 600.0
# Recent history only: pages of this many messages, at most this many pages. Slack suggests
# limits of 200 or less for conversations.history; three pages cover a busy channel's last minutes.
HISTORY_PAGE = 200
HISTORY_PAGES = 3


class _Unanswered(Exception):
    """The post went out and no answer came back: Slack may or may not have taken it."""

    def __init__(self, error: str, *, timed_out: bool) -> None:
        super().__init__(error)
        self.timed_out = timed_out


def _found(message: Any, key: str) -> Found | None:
    """`message` (a Web API message object, any shape) if it carries `key` in our metadata."""
    if not isinstance(message, dict) or not isinstance(message.get("ts"), str):
        return None
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") not in _EVENTS:
        return None
    payload = meta.get("event_payload")
    if not isinstance(payload, dict):
        return None
    keys = payload.get("keys") if isinstance(payload.get("keys"), list) else [payload.get("key")]
    if key not in keys:
        return None
    return Found(ts=message["ts"], shared=meta["event_type"] == DIGEST_EVENT)


class SlackNotifier:
    def __init__(
        self, web: AsyncWebClient, renderer: Any, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.web = web
        self.renderer = renderer
        self.now = now or (lambda: datetime.now(UTC))

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> str:
        """Post a message; returns its ts. Raises ChannelUnavailable / DeliveryFailed."""
        kwargs = message.to_slack()
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        resp = await self._call(self.web.chat_postMessage, channel=channel, unfurl_links=False, **kwargs)
        return str(resp["ts"])

    async def post_once(
        self,
        channel: str,
        message: Message,
        delivery: Delivery | None,
        *,
        event_type: str,
        thread_ts: str | None = None,
    ) -> str:
        """Post `message` tagged with `delivery`'s key, unless an earlier attempt is found."""
        if delivery is None:
            return await self.post(channel, message, thread_ts=thread_ts)
        if delivery.retry:
            if delivery.ts:
                return delivery.ts
            if found := await self.find(channel, delivery, thread_ts=thread_ts):
                return found.ts
        metadata = {"event_type": event_type, "event_payload": {"key": delivery.key}}
        try:
            return await self._post_tagged(channel, message, metadata, thread_ts=thread_ts)
        except _Unanswered as e:
            if e.timed_out:
                raise DeliveryFailed(str(e)) from e
            log.info("post unanswered; looking for it", extra={"channel": channel, "key": delivery.key})
            if found := await self.find(channel, delivery, thread_ts=thread_ts):
                return found.ts
        try:
            return await self._post_tagged(channel, message, metadata, thread_ts=thread_ts)
        except _Unanswered as e:
            raise DeliveryFailed(str(e)) from e

    async def _post_tagged(
        self, channel: str, message: Message, metadata: dict[str, Any], *, thread_ts: str | None
    ) -> str:
        kwargs = message.to_slack()
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            resp = await self._call(
                self._poster().chat_postMessage,
                channel=channel,
                unfurl_links=False,
                metadata=metadata,
                **kwargs,
            )
        except DeliveryFailed as e:
            cause = e.__cause__
            if isinstance(cause, TimeoutError):
                raise _Unanswered(type(cause).__name__, timed_out=True) from cause
            if isinstance(cause, aiohttp.ClientConnectionError) or str(e) == UNREADABLE:
                # Sent, and the answer lost or garbled: Slack may have taken it.
                raise _Unanswered(str(e) or type(cause).__name__, timed_out=False) from cause
            raise
        return str(resp["ts"])

    def _poster(self) -> AsyncWebClient:
        """The client without its connection-error retry (a retried post may be a second post)."""
        client = copy.copy(self.web)
        client.retry_handlers = [
            h for h in self.web.retry_handlers if not isinstance(h, AsyncConnectionErrorRetryHandler)
        ]
        return client

    async def find(self, channel: str, delivery: Delivery, *, thread_ts: str | None = None) -> Found | None:
        """The message carrying `delivery`'s key in the channel's recent history (or the thread)."""
        oldest = f"{max(0.0, delivery.since - LOOKBACK_SECONDS):.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            args: dict[str, Any] = {
                "channel": channel,
                "oldest": oldest,
                "limit": HISTORY_PAGE,
                "include_all_metadata": True,
            }
            if cursor:
                args["cursor"] = cursor
            try:
                if thread_ts:
                    resp = await self.web.conversations_replies(ts=thread_ts, **args)
                else:
                    resp = await self.web.conversations_history(**args)
            except SlackApiError as e:
                error = slack_error(e)
                log.warning("history unreadable; posting", extra={"channel": channel, "error": error})
                return None
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                log.warning(
                    "history unreadable; posting", extra={"channel": channel, "error": type(e).__name__}
                )
                return None
            messages = resp.get("messages")
            for m in messages if isinstance(messages, list) else []:
                if found := _found(m, delivery.key):
                    log.info("earlier post found", extra={"channel": channel, "key": delivery.key})
                    return found
            meta = resp.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not resp.get("has_more") or not isinstance(cursor, str) or not cursor:
                return None
        return None

    async def find_posted(self, notice: Notice) -> Found | None:
        d = notice.delivery
        if d is None or not d.retry:
            return None
        if d.ts:
            return Found(ts=d.ts, shared=d.shared)
        return await self.find(notice.target.channel_id, d)

    async def update(self, channel: str, ts: str, message: Message) -> None:
        try:
            await self._call(self.web.chat_update, channel=channel, ts=ts, **message.to_slack())
        except DeliveryFailed as e:
            if str(e) in {"message_not_found", "cant_update_message", "edit_window_closed"}:
                # The anchor was deleted or can't be edited: the thread reply already told people.
                log.info("anchor not editable", extra={"channel": channel, "error": str(e)})
                return
            raise

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except SlackApiError as e:
            error = slack_error(e)
            if error in PAUSING_ERRORS:
                raise ChannelUnavailable(error) from e
            raise DeliveryFailed(error) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryFailed(type(e).__name__) from e

    async def deliver(self, notice: Notice) -> str | None:
        ts = await self._deliver(notice)
        metrics.SLACK_POSTS.labels(POST_KINDS.get(notice.action, "other")).inc()
        return ts

    async def _deliver(self, notice: Notice) -> str | None:
        """Root post (returns its ts), thread reply then root edit, or root edit."""
        t = notice.target
        now = self.now()
        if notice.action is Action.POST_ROOT:
            return await self.post_once(
                t.channel_id,
                self.renderer.render_alert(notice, now=now),
                notice.delivery,
                event_type=ALERT_EVENT,
            )
        if notice.action is Action.POST_FOLLOWUP:
            await self.post_once(
                t.channel_id,
                self.renderer.render_alert_followup(notice, now=now, previous_risk=notice.previous_risk),
                notice.delivery,
                event_type=NOTE_EVENT,
                thread_ts=t.anchor_ts,
            )
            if t.anchor_ts and not t.anchor_shared:
                try:
                    await self.update(t.channel_id, t.anchor_ts, self.renderer.render_alert(notice, now=now))
                except (ChannelUnavailable, DeliveryFailed) as e:
                    # The reply is out: failing the whole notice would post it a second time.
                    raise AnchorNotUpdated(str(e)) from e
            return None
        if notice.action is Action.UPDATE_ROOT:
            if t.anchor_ts and not t.anchor_shared:
                await self.update(t.channel_id, t.anchor_ts, self.renderer.render_alert(notice, now=now))
            return None
        return None

    async def deliver_outage(self, notice: OutageNotice) -> str | None:
        """A watch's outage note: post it, edit it, or close it (reply in its thread, then edit it)."""
        channel, now = notice.watch.channel_id, self.now()
        prev = notice.previous
        if notice.action is OutageAction.POST_NOTE:
            message = self.renderer.render("outage", outage_context(notice, now))
            return await self.post_once(
                channel,
                message,
                _outage_delivery(notice, "note", now),
                event_type=NOTE_EVENT,
                thread_ts=notice.state.thread_ts,
            )
        if notice.action is OutageAction.EDIT_NOTE and prev.note_ts:
            await self.update(
                channel, prev.note_ts, self.renderer.render("outage", outage_context(notice, now))
            )
        if notice.action is OutageAction.POST_RECOVERY:
            reply = self.renderer.render("outage", checking_again_context(notice, now))
            await self.post_once(
                channel,
                reply,
                _outage_delivery(notice, "recovery", now),
                event_type=NOTE_EVENT,
                thread_ts=prev.thread_ts or prev.note_ts,
            )
            if prev.note_ts:
                try:
                    await self.update(
                        channel,
                        prev.note_ts,
                        self.renderer.render("outage", outage_over_context(notice, now)),
                    )
                except (ChannelUnavailable, DeliveryFailed) as e:
                    # The reply is out: failing the whole notice would post it a second time.
                    log.info("outage note not closed", extra={"channel": channel, "error": str(e)})
        return None

    async def post_digest(self, channel_id: str, notices: Sequence[Notice]) -> str:
        message = self.renderer.render_alert_digest(notices, now=self.now())
        try:
            ts = await self._post_tagged(channel_id, message, _digest_metadata(notices), thread_ts=None)
        except _Unanswered as e:
            # Each alert's intent stays pending: the next check finds the digest by its key.
            raise DeliveryFailed(str(e)) from e
        metrics.SLACK_POSTS.labels("digest").inc()
        return ts

    async def update_digest(self, channel_id: str, ts: str, notices: Sequence[Notice]) -> None:
        message = self.renderer.render_alert_digest(notices, now=self.now())
        try:
            await self._call(
                self.web.chat_update,
                channel=channel_id,
                ts=ts,
                metadata=_digest_metadata(notices),
                **message.to_slack(),
            )
        except DeliveryFailed as e:
            if str(e) in {"message_not_found", "cant_update_message", "edit_window_closed"}:
                log.info("digest not editable", extra={"channel": channel_id, "error": str(e)})
                return
            raise
        metrics.SLACK_POSTS.labels("digest_update").inc()

    async def publish_report(self, channel_id: str, report: Any) -> str:
        # Tagged and sent without the connection retry, like the watch loop's posts: a report
        # whose answer was lost is looked for before it is posted again. (No intent row: a
        # crash between the report's claim and its post loses that one report instead.)
        now = self.now().timestamp()
        delivery = Delivery(key=f"report:{channel_id}:{now:.3f}", since=now)
        message = self.renderer.render_report(report)
        ts = await self.post_once(channel_id, message, delivery, event_type=REPORT_EVENT)
        metrics.SLACK_POSTS.labels("report").inc()
        return ts


def _outage_delivery(notice: OutageNotice, kind: str, now: datetime) -> Delivery:
    """An outage note or its recovery, tagged, and always looked for before it is posted.

    The key is the outage state's version, which moves only once the outcome is recorded
    (bot.store.watches.claim_outage), so a replica that dies after Slack took the note leaves
    the next claim the same key. Such posts are rare (a pair per outage per watch): one history
    read before each is cheap, and no intent row is needed to know when to look.
    """
    return Delivery(
        key=f"outage:{notice.watch.id}:{notice.version}:{kind}", since=now.timestamp(), retry=True
    )


def _digest_metadata(notices: Sequence[Notice]) -> dict[str, Any]:
    keys = [n.delivery.key for n in notices if n.delivery is not None]
    return {"event_type": DIGEST_EVENT, "event_payload": {"keys": keys}}
