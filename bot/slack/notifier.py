"""The Slack sink of the watch loop: turns a `Notice` into posts, thread replies and edits.

Slack's errors are sorted into the two the engine understands: `ChannelUnavailable` (the bot
cannot post there until someone acts: pause the channel) and `DeliveryFailed` (try at the next
check); a follow-up whose reply went out but whose edit of the alert failed is
`AnchorNotUpdated` (only the edit is redone). 429s are waited out by the Web API client's retry
handler before they get here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.slack.blocks import Message
from bot.slack.outage_view import checking_again_context, outage_context, outage_over_context
from bot.watch.model import (
    PAUSING_ERRORS,
    AnchorNotUpdated,
    ChannelUnavailable,
    DeliveryFailed,
    Notice,
    OutageNotice,
)
from bot.watch.outage import OutageAction
from bot.watch.policy import Action

log = logging.getLogger("flinkdiag.notify")

# `flinkdiag_slack_posts_total{kind}`; the digests and reports add their own kinds.
POST_KINDS = {
    Action.POST_ALERT: "alert",
    Action.POST_FOLLOWUP: "followup",
    Action.UPDATE_ANCHOR: "alert_update",
    Action.POST_NOTE: "note",
}


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
            error = str(e.response.get("error") or "unknown_error")
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
        t = notice.target
        now = self.now()
        if notice.action is Action.POST_ALERT:
            return await self.post(t.channel_id, self.renderer.render_alert(notice, now=now))
        if notice.action is Action.POST_FOLLOWUP:
            await self.post(
                t.channel_id,
                self.renderer.render_alert_followup(notice, now=now, previous_risk=notice.previous_risk),
                thread_ts=t.anchor_ts,
            )
            if t.anchor_ts and not t.anchor_shared:
                try:
                    await self.update(t.channel_id, t.anchor_ts, self.renderer.render_alert(notice, now=now))
                except (ChannelUnavailable, DeliveryFailed) as e:
                    # The reply is out: failing the whole notice would post it a second time.
                    raise AnchorNotUpdated(str(e)) from e
            return None
        if notice.action is Action.UPDATE_ANCHOR:
            if t.anchor_ts and not t.anchor_shared:
                await self.update(t.channel_id, t.anchor_ts, self.renderer.render_alert(notice, now=now))
            return None
        if notice.action is Action.POST_NOTE:
            thread = t.anchor_ts if t.state.announced_risk is not None else None
            await self.post(
                t.channel_id,
                self.renderer.render_alert_followup(notice, now=now, previous_risk=notice.previous_risk),
                thread_ts=thread,
            )
            return None
        return None

    async def deliver_outage(self, notice: OutageNotice) -> str | None:
        """A watch's outage note: post it, edit it, or close it (reply in its thread, then edit it)."""
        channel, now = notice.watch.channel_id, self.now()
        prev = notice.previous
        if notice.action is OutageAction.POST_NOTE:
            message = self.renderer.render("outage", outage_context(notice, now))
            return await self.post(channel, message, thread_ts=notice.state.thread_ts)
        if notice.action is OutageAction.EDIT_NOTE and prev.note_ts:
            await self.update(
                channel, prev.note_ts, self.renderer.render("outage", outage_context(notice, now))
            )
        if notice.action is OutageAction.POST_RECOVERY:
            reply = self.renderer.render("outage", checking_again_context(notice, now))
            await self.post(channel, reply, thread_ts=prev.thread_ts or prev.note_ts)
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
        ts = await self.post(channel_id, self.renderer.render_alert_digest(notices, now=self.now()))
        metrics.SLACK_POSTS.labels("digest").inc()
        return ts

    async def update_digest(self, channel_id: str, ts: str, notices: Sequence[Notice]) -> None:
        await self.update(channel_id, ts, self.renderer.render_alert_digest(notices, now=self.now()))
        metrics.SLACK_POSTS.labels("digest_update").inc()

    async def publish_report(self, channel_id: str, report: Any) -> str:
        ts = await self.post(channel_id, self.renderer.render_report(report))
        metrics.SLACK_POSTS.labels("report").inc()
        return ts
