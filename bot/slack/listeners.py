"""Bolt listeners: parse, call the domain, render. Nothing else lives here.

Every listener acknowledges first (Slack's 3-second rule) and delivers the result afterwards
through `respond` (the request's response_url) or the Web API. Transport (HTTP, Socket Mode,
the local console) is chosen elsewhere; these functions never see it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.commands import (
    DefaultsCommand,
    DeploymentCommand,
    HelpCommand,
    JobCommand,
    ReportCommand,
    UnwatchCommand,
    UsageError,
    WatchCommand,
    WatchesCommand,
    parse_command,
)
from bot.config import Settings
from bot.diagnosis.resolve import Ambiguous, Scope, pick_scope
from bot.diagnosis.service import DiagnosisService, Requester, RunResult
from bot.flink.errors import FlinkError
from bot.logs import new_request_id
from bot.namespaces import NamespacePolicy
from bot.slack.buttons import ActionValue, parse_action_value
from bot.slack.errors import checked, refuse_other_channel, refuse_unserved, report_failure, slack_error

log = logging.getLogger("flinkdiag.slack")


@dataclass
class Tracker:
    """Counts work still running after an ack, so the console (and shutdown) can wait for it."""

    running: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def start(self) -> None:
        self.running += 1
        self.idle.clear()

    def done(self) -> None:
        self.running -= 1
        if self.running <= 0:
            self.running = 0
            self.idle.set()


@dataclass
class SlackDeps:
    settings: Settings
    diagnoser: DiagnosisService
    defaults: Any  # ChannelDefaultsRepo
    renderer: Any  # bot.slack.render.Renderer
    watch_commands: Any  # bot.slack.watch_listeners.WatchCommands
    namespaces: NamespacePolicy
    runs: Any  # bot.store.runs.RunRepo: where a Re-run's or Share's run was made
    tracker: Tracker = field(default_factory=Tracker)


def _button_value(value: str) -> ActionValue:
    try:
        return parse_action_value(value)
    except ValueError:
        raise StaleButton() from None


class StaleButton(FlinkError):
    kind = "stale_button"
    default_sentence = (
        "I can't read that button (it may come from an older version of me); run the command again."
    )


def _requester(body: dict[str, Any]) -> Requester:
    """Who pressed a button, and where (from a block_actions payload)."""
    return Requester(
        (body.get("team") or {}).get("id", ""),
        (body.get("channel") or {}).get("id", ""),
        (body.get("user") or {}).get("id", ""),
    )


def _describe(cmd: Any) -> str:
    if isinstance(cmd, JobCommand):
        return f"job {cmd.job_id}"
    if isinstance(cmd, DeploymentCommand):
        return f"deployment {cmd.ref}"
    return "your request"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Attach every flinkdiag listener to `app`."""
    settings, renderer = deps.settings, deps.renderer

    @app.middleware
    async def checked_respond(context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
        # slack_sdk returns a response_url's error status instead of raising: without this an
        # answer Slack refused (invalid_blocks, msg_too_long, expired url) would vanish silently.
        if context.response_url:
            context["respond"] = checked(context.respond)
        return await next()

    async def run_after_ack(
        work: Awaitable[None],
        respond: Callable[..., Awaitable[Any]],
        **log_fields: Any,
    ) -> None:
        deps.tracker.start()
        try:
            await work
        except Exception as exc:
            await report_failure(exc, respond, renderer, **log_fields)
        finally:
            deps.tracker.done()

    async def scope_for(team_id: str, channel_id: str, namespace: str | None, workspace: str | None) -> Scope:
        channel = await deps.defaults.get(team_id, channel_id)
        scope = pick_scope(
            workspace=workspace,
            namespace=namespace,
            channel_workspace=channel.workspace if channel else None,
            channel_namespace=channel.namespace if channel else None,
            configured_workspace=settings.workspace,
            configured_namespaces=deps.namespaces.defaults_for(team_id, channel_id),
            region=settings.region,
        )
        refuse_unserved(deps.namespaces, team_id, channel_id, scope.namespaces)
        return scope

    async def run_made_here(who: Requester, run_id: str | None, what: str) -> Any:
        """The stored run a button names, refused unless it was made in the presser's channel."""
        stored = await deps.runs.get(run_id) if run_id else None
        if stored is not None and (stored.team_id, stored.channel_id) != (who.team_id, who.channel_id):
            raise refuse_other_channel(what, team=who.team_id, channel=who.channel_id, run=run_id)
        return stored

    async def deliver(
        result: RunResult,
        respond: Callable[..., Awaitable[Any]],
        *,
        share: bool,
        user: str,
        replace: bool = False,
    ) -> None:
        """Answer with the diagnosis. `replace` takes the place of the message a button was on;
        after a slash command Slack posts a new message whatever is asked (slack.md)."""
        message = renderer.render_diagnosis(
            result.run,
            change=result.change,
            run_id=result.run_id,
            ephemeral=not share,
            shared_by=user if share else None,
            follow=result.follow,
        )
        await respond(
            **message.to_slack(),
            response_type="in_channel" if share else "ephemeral",
            replace_original=replace,
        )

    async def diagnose_cmd(
        cmd: JobCommand | DeploymentCommand, command: dict[str, Any], respond: Any
    ) -> None:
        who = Requester(command.get("team_id", ""), command.get("channel_id", ""), command.get("user_id", ""))
        scope = await scope_for(who.team_id, who.channel_id, cmd.namespace, cmd.workspace)
        try:
            if isinstance(cmd, JobCommand):
                result = await deps.diagnoser.diagnose_job(who, scope, cmd.job_id)
            else:
                result = await deps.diagnoser.diagnose_deployment(who, scope, cmd.ref)
        except Ambiguous as amb:
            await respond(
                **renderer.render_job_choice(amb.user_message, amb.candidates, share=cmd.share).to_slack()
            )
            return
        log.info(
            "diagnosed",
            extra={
                "job_id": result.run.target.job_id,
                "risk": result.run.diagnosis.risk_level,
                "run": result.run_id,
            },
        )
        await deliver(result, respond, share=cmd.share, user=who.user_id)

    async def defaults_cmd(cmd: DefaultsCommand, command: dict[str, Any], respond: Any) -> None:
        team, channel = command.get("team_id", ""), command.get("channel_id", "")
        if cmd.namespace is not None:
            refuse_unserved(deps.namespaces, team, channel, [cmd.namespace])
        if not cmd.is_query:
            await deps.defaults.set(
                team,
                channel,
                namespace=cmd.namespace,
                workspace=cmd.workspace,
                updated_by=command.get("user_id", ""),
            )
        current = await deps.defaults.get(team, channel)
        message = renderer.render_defaults(
            {
                "namespace": current.namespace if current else None,
                "workspace": current.workspace if current else None,
            },
            {
                "namespaces": deps.namespaces.defaults_for(team, channel),
                "workspace": settings.workspace,
                "region": settings.region,
            },
        )
        await respond(**message.to_slack(), response_type="ephemeral")

    @app.command("/flinkdiag")
    async def on_flinkdiag_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        rid = new_request_id("c-")
        text = command.get("text", "") or ""
        log.info(
            "command",
            extra={
                "user": command.get("user_id"),
                "channel": command.get("channel_id"),
                "text_len": len(text),
            },
        )
        try:
            cmd = parse_command(text, min_interval=settings.min_watch_interval)
        except UsageError as e:
            log.info("usage error", extra={"mistake": str(e)})
            await ack(**renderer.render_usage(str(e)).to_slack(), response_type="ephemeral")
            return
        if isinstance(cmd, HelpCommand):
            await ack(**renderer.render_usage().to_slack(), response_type="ephemeral")
            return
        if isinstance(cmd, JobCommand | DeploymentCommand):
            await ack(
                **renderer.render_progress(_describe(cmd), share=cmd.share).to_slack(),
                response_type="ephemeral",
            )
            await run_after_ack(diagnose_cmd(cmd, command, respond), respond, rid=rid)
            return
        if isinstance(cmd, DefaultsCommand):
            await ack()
            await run_after_ack(defaults_cmd(cmd, command, respond), respond, rid=rid)
            return
        if isinstance(cmd, WatchCommand | UnwatchCommand | WatchesCommand | ReportCommand):
            await ack()
            await run_after_ack(deps.watch_commands.handle(cmd, command, respond), respond, rid=rid)
            return
        await ack(**renderer.render_usage(f"unsupported command `{cmd.kind}`").to_slack())  # pragma: no cover

    @app.action("rerun_diagnosis")
    async def on_rerun_diagnosis(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        new_request_id("a-")
        who = _requester(body)
        ephemeral = bool((body.get("container") or {}).get("is_ephemeral", True))

        async def work() -> None:
            pressed = _button_value(action.get("value") or "{}")
            refuse_unserved(deps.namespaces, who.team_id, who.channel_id, [pressed.target.namespace])
            stored = await run_made_here(who, pressed.run, "diagnosis")
            if stored is not None and (stored.target.workspace, stored.target.deployment_id) != (
                pressed.target.workspace,
                pressed.target.deployment_id,
            ):
                raise refuse_other_channel("diagnosis", channel=who.channel_id, run=pressed.run)
            result = await deps.diagnoser.rerun(who, pressed.target, pressed.run, follow=pressed.follow)
            message = renderer.render_diagnosis(
                result.run,
                change=result.change,
                run_id=result.run_id,
                ephemeral=ephemeral,
                follow=result.follow,
            )
            await respond(**message.to_slack(), replace_original=True)

        await run_after_ack(work(), respond)

    @app.action("share_diagnosis")
    async def on_share_diagnosis(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        new_request_id("a-")
        who = _requester(body)
        channel, user = who.channel_id, who.user_id

        async def work() -> None:
            pressed = _button_value(action.get("value") or "{}")
            run_id = pressed.run
            # Only what was diagnosed in this channel is shared into it.
            stored = await run_made_here(who, run_id, "diagnosis")
            if stored is not None:
                refuse_unserved(deps.namespaces, who.team_id, channel, [stored.target.namespace])
            run = await deps.diagnoser.load(run_id) if stored is not None and run_id else None
            if run is None:
                await respond(
                    **renderer.render_error(
                        "That diagnosis is no longer stored, so I can't share it. Press Re-run and share the new one."
                    ).to_slack(),
                    replace_original=False,
                )
                return
            message = renderer.render_diagnosis(
                run, run_id=run_id, ephemeral=False, shared_by=user, follow=pressed.follow
            )
            try:
                await client.chat_postMessage(channel=channel, **message.to_slack())
            except SlackApiError as e:
                error = slack_error(e)
                if error in {"not_in_channel", "channel_not_found", "is_archived"}:
                    await respond(
                        **renderer.render_error(
                            f"I can't post in this channel ({error}).",
                            hint="Invite me with `/invite @flinkdiag`, or use `--share` in a channel I'm in.",
                        ).to_slack(),
                        replace_original=False,
                    )
                    return
                raise
            await respond(**renderer.render_text("Shared to the channel.").to_slack(), replace_original=False)

        await run_after_ack(work(), respond)

    @app.action("diagnose_choice")
    async def on_diagnose_choice(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        new_request_id("a-")
        try:
            choice = parse_action_value(action.get("value") or "{}")
        except ValueError:
            await report_failure(StaleButton(), respond, renderer)
            return
        target = choice.target
        who = _requester(body)

        async def work() -> None:
            refuse_unserved(deps.namespaces, who.team_id, who.channel_id, [target.namespace])
            result = await deps.diagnoser.diagnose_target(who, target)
            await deliver(result, respond, share=choice.share, user=who.user_id, replace=not choice.share)

        await run_after_ack(work(), respond, deployment_id=target.deployment_id)

    @app.action("rerun_alert")
    async def on_rerun_alert(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """Re-run from an alert: a fresh diagnosis of the deployment's current job, just for the
        presser; the alert itself belongs to the watch and is kept as it is."""
        await ack()
        new_request_id("a-")
        who = _requester(body)

        async def work() -> None:
            target = _button_value(action.get("value") or "{}").target
            refuse_unserved(deps.namespaces, who.team_id, who.channel_id, [target.namespace])
            if not await deps.watch_commands.watched_here(who.team_id, who.channel_id, target):
                raise refuse_other_channel("alert", team=who.team_id, channel=who.channel_id)
            result = await deps.diagnoser.diagnose_target(who, target.model_copy(update={"job_id": ""}))
            message = renderer.render_diagnosis(result.run, run_id=result.run_id, ephemeral=True, follow=True)
            await respond(**message.to_slack(), response_type="ephemeral", replace_original=False)

        await run_after_ack(work(), respond)

    @app.action("open_console")
    async def on_open_console(ack: Any) -> None:
        # A link button still sends block_actions; Slack shows a warning unless it is acked.
        await ack()

    @app.event("app_home_opened")
    async def on_app_home_opened(event: dict[str, Any], client: Any) -> None:
        if event.get("tab") not in (None, "home"):
            return
        usage = renderer.render_usage()
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": usage.blocks})

    deps.watch_commands.register_actions(app, run_after_ack)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        await report_failure(error, respond if body.get("response_url") else None, renderer)
