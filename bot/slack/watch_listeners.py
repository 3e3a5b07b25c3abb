"""Slack side of watching: `watch`, `unwatch`, `watches`, `report …` and the alert buttons."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.commands import ReportCommand, UnwatchCommand, WatchCommand, WatchesCommand, format_duration
from bot.config import Settings
from bot.diagnosis.report import Target
from bot.diagnosis.resolve import pick_scope
from bot.logs import new_request_id
from bot.namespaces import CHANGED_BY, NamespacePolicy
from bot.slack.errors import refuse_unserved
from bot.slack.notifier import SlackNotifier
from bot.watch.model import ChannelUnavailable, DeliveryFailed
from bot.watch.service import WatchError, WatchService

log = logging.getLogger("flinkdiag.slack.watch")

Respond = Callable[..., Awaitable[Any]]


def _target_id(value: str | None) -> int:
    try:
        return int(json.loads(value or "{}")["t"])
    except (ValueError, KeyError, TypeError):
        raise WatchError(
            "bad button", user_message="I can't read that button; run `/flinkdiag watches`."
        ) from None


def _alerts_on(watch: Any) -> str:
    """What a new watch alerts on, in a phrase."""
    s = watch.conditions.settings
    bits = []
    if s.failures:
        bits.append("when a job fails")
    if s.restarts is not None:
        bits.append(f"when it restarts {s.restarts} times or more")
    if s.min_risk is not None:
        bits.append(f"when risk rises to {'High' if s.min_risk == 'RISK_LEVEL_HIGH' else 'Mid'} or above")
    if s.min_health is not None:
        bits.append(f"when health stays below {s.min_health}")
    if not bits:
        return "nothing (every condition is off; `unwatch` it or watch again with one on)"
    return ", ".join(bits[:-1]) + (" or " if len(bits) > 1 else "") + bits[-1]


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """The workspace and channel a click came from."""
    return (body.get("team") or {}).get("id", ""), (body.get("channel") or {}).get("id", "")


class WatchCommands:
    def __init__(
        self,
        service: WatchService,
        notifier: SlackNotifier,
        renderer: Any,
        settings: Settings,
        defaults: Any,
        namespaces: NamespacePolicy,
    ) -> None:
        self.service = service
        self.notifier = notifier
        self.renderer = renderer
        self.settings = settings
        self.defaults = defaults
        self.namespaces = namespaces

    async def watched_here(self, team_id: str, channel_id: str, target: Target) -> bool:
        """Whether this channel watches `target`'s deployment (an alert's buttons act only there)."""
        return any(
            (t.workspace, t.namespace, t.deployment_id)
            == (target.workspace, target.namespace, target.deployment_id)
            for t in await self.service.store.channel_targets(team_id, channel_id)
        )

    async def _say(self, respond: Respond, text: str) -> None:
        await respond(
            **self.renderer.render_text(text).to_slack(), response_type="ephemeral", replace_original=False
        )

    async def handle(self, cmd: Any, command: dict[str, Any], respond: Respond) -> None:
        team, channel, user = (
            command.get("team_id", ""),
            command.get("channel_id", ""),
            command.get("user_id", ""),
        )
        listing = None
        if isinstance(cmd, WatchesCommand):
            # Read before resuming: the listing is where people learn why alerts stopped.
            listing = await self.service.listing(team, channel)
        # A command from the channel is the cue to try posting there again after a pause.
        resumed = await self.service.store.resume_channel(team, channel)
        if resumed:
            log.info("channel resumed", extra={"channel": channel, "watches": resumed})
        if listing is not None:
            watches, targets = listing
            message = self.renderer.render_watches(watches, targets, now=self.service.now())
            await respond(**message.to_slack(), response_type="ephemeral", replace_original=False)
            if resumed:
                await self._say(
                    respond,
                    "I'll try posting here again at the next check; if Slack still refuses, "
                    "these watches pause again.",
                )
            off = [w for w in watches if not self.namespaces.allows(team, channel, w.namespace)]
            if off:
                names = ", ".join(f"{w.label} (namespace `{w.namespace}`)" for w in off)
                await self._say(
                    respond,
                    f"Not checked, and nothing posted about them: {names}. I don't serve "
                    f"{'that namespace' if len({w.namespace for w in off}) == 1 else 'those namespaces'} "
                    f"in this channel any more; {CHANGED_BY}, or `unwatch` them.",
                )
        elif isinstance(cmd, WatchCommand):
            await self._watch(cmd, team, channel, user, respond)
        elif isinstance(cmd, UnwatchCommand):
            removed = await self.service.remove(team, channel, cmd)
            names = ", ".join(w.label for w in removed)
            await self._say(respond, f"Stopped watching {names} in this channel.")
        elif isinstance(cmd, ReportCommand):
            await self._report(cmd, team, channel, user, respond)

    async def _watch(self, cmd: WatchCommand, team: str, channel: str, user: str, respond: Respond) -> None:
        current = await self.defaults.get(team, channel)
        scope = pick_scope(
            workspace=cmd.workspace,
            namespace=cmd.namespace,
            channel_workspace=current.workspace if current else None,
            channel_namespace=current.namespace if current else None,
            configured_workspace=self.settings.workspace,
            configured_namespaces=self.namespaces.defaults_for(team, channel),
            region=self.settings.region,
        )
        refuse_unserved(self.namespaces, team, channel, scope.namespaces)
        watch = await self.service.add(team, channel, user, cmd, scope)
        every = format_duration(timedelta(seconds=watch.interval_seconds))
        what = (
            watch.label
            if watch.kind == "namespace"
            else f"deployment {watch.deployment_name or watch.deployment_id}"
        )
        extra = " (every deployment in it, including new ones)" if watch.kind == "namespace" else ""
        await self._say(
            respond,
            f"Watching {what}{extra} in this channel: I'll post {_alerts_on(watch)}, "
            f"checking every {every}. Make sure I'm in this channel (`/invite @flinkdiag`).",
        )

    async def _report(self, cmd: ReportCommand, team: str, channel: str, user: str, respond: Respond) -> None:
        if cmd.mode == "now":
            try:
                report = await self.service.send_report(team, channel, self.notifier)
            except ChannelUnavailable as e:
                raise WatchError(
                    "cannot post",
                    user_message=f"I can't post in this channel ({e.error}). Invite me with `/invite @flinkdiag`.",
                ) from None
            except DeliveryFailed as e:
                raise WatchError(
                    "not delivered", user_message=f"Slack did not take the report ({e}); try again."
                ) from None
            await self._say(respond, f"Posted the report ({report.summary()}).")
            return
        schedule = await self.service.set_report(team, channel, user, cmd)
        if cmd.mode == "off":
            await self._say(respond, "Scheduled reports are off for this channel.")
        else:
            await self._say(respond, f"This channel gets a fleet report {schedule.describe()}.")

    def register_actions(self, app: AsyncApp, run_after_ack: Callable[..., Awaitable[None]]) -> None:
        async def snooze(
            hours: int | None, ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Respond
        ) -> None:
            await ack()
            new_request_id("a-")

            async def work() -> None:
                team, channel = _where(body)
                target = await self.service.snooze(_target_id(action.get("value")), hours, team, channel)
                if hours is None:
                    text = (
                        f"Alerts for {target.label} are snoozed here until the deployment starts a "
                        "new job (a restart or a redeploy); I'll say so here when it does."
                    )
                    said = f"Snoozed {target.label} until a new job starts."
                else:
                    until = target.state.snoozed_until
                    when = until.strftime("%Y-%m-%d %H:%M UTC") if until else "?"
                    text = (
                        f"Alerts for {target.label} are snoozed here for {hours}h (until {when}), "
                        "or until the deployment starts a new job."
                    )
                    said = f"Snoozed {target.label} for {hours}h."
                if target.anchor_ts:
                    await self.notifier.post(
                        target.channel_id, self.renderer.render_text(text), thread_ts=target.anchor_ts
                    )
                await self._say(respond, said)

            await run_after_ack(work(), respond)

        @app.action("snooze_redeploy")
        async def on_snooze_redeploy(
            ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Respond
        ) -> None:
            await snooze(None, ack, action, body, respond)

        @app.action("snooze_1h")
        async def on_snooze_1h(
            ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Respond
        ) -> None:
            await snooze(1, ack, action, body, respond)

        @app.action("snooze_24h")
        async def on_snooze_24h(
            ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Respond
        ) -> None:
            await snooze(24, ack, action, body, respond)

        @app.action("unwatch_target")
        async def on_unwatch_target(
            ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Respond
        ) -> None:
            await ack()
            new_request_id("a-")

            async def work() -> None:
                team, channel = _where(body)
                target, watch = await self.service.unwatch_target(
                    _target_id(action.get("value")), team, channel
                )
                if watch is not None and watch.kind == "namespace":
                    text = f"Stopped alerting on {target.label} here (the watch on namespace {watch.namespace} stays)."
                else:
                    text = f"Stopped watching {target.label} in this channel."
                await self._say(respond, text)

            await run_after_ack(work(), respond)
