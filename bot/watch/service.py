"""Watch and report use cases behind the chat commands and the scheduler. No Slack, no SQL.

The store is `bot.store.watches.WatchStore`; the Slack side comes in as a `ReportPublisher`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.commands import ReportCommand, UnwatchCommand, WatchCommand
from bot.diagnosis.resolve import FlinkApi, Scope, find_deployment
from bot.flink.errors import FlinkError
from bot.watch.model import ChannelUnavailable, DeliveryFailed, Watch, WatchTarget
from bot.watch.report import FleetReport, build_report, snapshot_of
from bot.watch.schedules import ReportSchedule, next_due

log = logging.getLogger("flinkdiag.watch")

# A report that Slack did not take is tried again this much later.
REPORT_RETRY_SECONDS = 60.0


class WatchError(FlinkError):
    """A watch command that cannot be done; the sentence says why."""

    kind = "watch_error"


class OtherChannel(WatchError):
    """A click on a watch of another channel or workspace (a tampered button value)."""

    kind = "other_channel"


class ReportPublisher(Protocol):
    async def publish_report(self, channel_id: str, report: FleetReport) -> str: ...


class WatchService:
    def __init__(
        self,
        store: Any,  # bot.store.watches.WatchStore
        api: FlinkApi,
        *,
        default_interval: timedelta,
        min_interval: timedelta,
        failure_threshold: int = 3,
        now: Callable[[], datetime] | None = None,
        namespace_allowed: Callable[[str, str, str], bool] | None = None,
    ) -> None:
        self.store = store
        self.api = api
        self.default_interval = default_interval
        self.min_interval = min_interval
        self.failure_threshold = failure_threshold
        self.now = now or (lambda: datetime.now(UTC))
        # (team, channel, namespace) -> served there; reports leave out what is not
        self.namespace_allowed = namespace_allowed or (lambda team, channel, namespace: True)

    async def add(
        self, team_id: str, channel_id: str, user_id: str, cmd: WatchCommand, scope: Scope
    ) -> Watch:
        from bot.store.watches import DuplicateWatch

        every = cmd.every or self.default_interval
        if every < self.min_interval:
            every = self.min_interval
        if cmd.target_kind == "deployment":
            namespace, deployment = await find_deployment(self.api, scope, cmd.ref)
            dep_id, dep_name = deployment.deployment_id, deployment.name or None
            covering = [
                w
                for w in await self.store.list_watches(team_id, channel_id)
                if w.kind == "namespace" and w.namespace == namespace and w.workspace == scope.workspace
            ]
            if covering:
                raise WatchError(
                    "covered by a namespace watch",
                    user_message=(
                        f"Deployment `{dep_name or dep_id}` is already watched here through the watch on "
                        f"namespace `{namespace}`."
                    ),
                )
        else:
            namespace = cmd.ref
            # Listing it now refuses a namespace that does not exist (or that we may not read).
            await self.api.list_deployments(scope.workspace, namespace)
            dep_id, dep_name = None, None
        try:
            return await self.store.add_watch(
                team_id=team_id,
                channel_id=channel_id,
                kind=cmd.target_kind,
                workspace=scope.workspace,
                namespace=namespace,
                deployment_id=dep_id,
                deployment_name=dep_name,
                min_risk=(cmd.min_risk.raw or "RISK_LEVEL_MID") if cmd.min_risk is not None else "off",
                interval_seconds=int(every.total_seconds()),
                created_by=user_id,
                now=self.now().timestamp(),
                failures=cmd.failures,
                restarts=cmd.restarts,
                min_health=cmd.min_health,
            )
        except DuplicateWatch as e:
            raise WatchError(
                "duplicate watch",
                user_message=f"This channel already watches {e.existing.label} (see `/flinkdiag watches`).",
            ) from None

    async def remove(self, team_id: str, channel_id: str, cmd: UnwatchCommand) -> list[Watch]:
        found = await self.store.find_watches(team_id, channel_id, cmd.target_kind, cmd.ref)
        if not found:
            hint = "see `/flinkdiag watches`"
            if cmd.target_kind == "deployment":
                namespaces = [
                    w.namespace
                    for w in await self.store.list_watches(team_id, channel_id)
                    if w.kind == "namespace"
                ]
                if namespaces:
                    listed = ", ".join(f"`{n}`" for n in namespaces)
                    hint = (
                        f"it may be watched through namespace {listed}: press *Unwatch* on its alert "
                        "to stop just that deployment"
                    )
            raise WatchError(
                "no such watch",
                user_message=f"This channel doesn't watch {cmd.target_kind} `{cmd.ref}` on its own ({hint}).",
            )
        for w in found:
            await self.store.remove_watch(w.id)
        return found

    async def listing(
        self, team_id: str, channel_id: str
    ) -> tuple[list[Watch], dict[int, list[WatchTarget]]]:
        watches = await self.store.list_watches(team_id, channel_id)
        return watches, await self.store.targets_of([w.id for w in watches])

    async def _target_here(self, target_id: int, team_id: str, channel_id: str) -> WatchTarget:
        """The watched target a button names, if it belongs to the channel the click came from."""
        target = await self.store.target(target_id)
        if target is None:
            raise WatchError("target gone", user_message="That watch no longer exists.")
        if (target.team_id, target.channel_id) != (team_id, channel_id):
            log.warning(
                "refused a click on another channel's watch",
                extra={"target_id": target_id, "team": team_id, "channel": channel_id},
            )
            raise OtherChannel(
                "other channel",
                user_message="That watch belongs to another channel, so I can't change it from here.",
            )
        return target

    async def snooze(self, target_id: int, hours: int | None, team_id: str, channel_id: str) -> WatchTarget:
        """Snooze for `hours`, or (None) until the deployment starts a new job. Either way a new
        job ends it: the snooze is bound to the job it is pressed on."""
        before = await self._target_here(target_id, team_id, channel_id)
        until = self.now() + timedelta(hours=hours) if hours is not None else None
        target = await self.store.snooze(
            target_id, until, redeploy=hours is None, job_id=before.state.incident.job_id
        )
        if target is None:
            raise WatchError("target gone", user_message="That watch no longer exists.")
        return target

    async def unwatch_target(
        self, target_id: int, team_id: str, channel_id: str
    ) -> tuple[WatchTarget, Watch | None]:
        """The Unwatch button: a deployment watch is removed; in a namespace watch the deployment is muted."""
        target = await self._target_here(target_id, team_id, channel_id)
        watches = {w.id: w for w in await self.store.list_watches(target.team_id, target.channel_id)}
        watch = watches.get(target.watch_id)
        if watch is not None and watch.kind == "deployment":
            await self.store.remove_watch(watch.id)
            return target, watch
        await self.store.mute(target_id)
        return target, watch

    # ------------------------------------------------------------------ reports
    async def set_report(
        self, team_id: str, channel_id: str, user_id: str, cmd: ReportCommand
    ) -> ReportSchedule:
        if cmd.mode == "off":
            return await self.store.set_report(
                team_id,
                channel_id,
                mode="off",
                hour=None,
                minute=None,
                tz=None,
                next_due_at=None,
                updated_by=user_id,
            )
        assert cmd.at is not None
        due = next_due(cmd.mode, cmd.at.hour, cmd.at.minute, cmd.tz, self.now())
        return await self.store.set_report(
            team_id,
            channel_id,
            mode=cmd.mode,
            hour=cmd.at.hour,
            minute=cmd.at.minute,
            tz=cmd.tz,
            next_due_at=due,
            updated_by=user_id,
        )

    async def build_report(self, team_id: str, channel_id: str) -> FleetReport:
        schedule = await self.store.get_report(team_id, channel_id)
        targets = [
            t
            for t in await self.store.channel_targets(team_id, channel_id)
            if self.namespace_allowed(team_id, channel_id, t.namespace)
        ]
        previous = schedule.last_snapshot if schedule else None
        return build_report(
            channel_id, targets, previous, self.now(), failure_threshold=self.failure_threshold
        )

    async def send_report(self, team_id: str, channel_id: str, publisher: ReportPublisher) -> FleetReport:
        """Build and post a channel's report, then remember it for the next one's "change since"."""
        report = await self.build_report(team_id, channel_id)
        await publisher.publish_report(channel_id, report)
        await self.store.record_report(team_id, channel_id, snapshot_of(report), report.generated_at)
        return report

    async def run_due_reports(self, publisher: ReportPublisher) -> int:
        """Post every report that is due; each is claimed by exactly one replica."""
        now = self.now()
        sent = 0
        for schedule in await self.store.due_reports(now.timestamp()):
            following = next_due(schedule.mode, schedule.hour, schedule.minute, schedule.tz, now)
            if not await self.store.claim_report(schedule, following):
                continue  # another replica took it
            try:
                await self.send_report(schedule.team_id, schedule.channel_id, publisher)
                sent += 1
            except ChannelUnavailable as e:
                log.warning(
                    "report channel unavailable", extra={"channel": schedule.channel_id, "error": e.error}
                )
                await self.store.pause_channel(schedule.team_id, schedule.channel_id, e.error)
                await self._retry_later(schedule, following, now)
            except DeliveryFailed as e:
                log.warning(
                    "report not delivered; retrying", extra={"channel": schedule.channel_id, "error": str(e)}
                )
                await self._retry_later(schedule, following, now)
        return sent

    async def _retry_later(self, schedule: ReportSchedule, claimed_next: float | None, now: datetime) -> None:
        # Put the report back as due shortly (compare-and-set on what we claimed), so it is not lost.
        retry = schedule.model_copy(update={"next_due_at": claimed_next})
        await self.store.claim_report(retry, now.timestamp() + REPORT_RETRY_SECONDS)
