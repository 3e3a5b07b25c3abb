"""The watch loop, read as a pipeline: claim what is due → check → decide → deliver → record.

* claim: the store hands out due targets atomically (several replicas share one database, so a
  due check is taken by exactly one of them);
* check: resolve the deployment's current job (job ids change at every restart) and diagnose it,
  through the Flink client's limiter; an API failure is an observation, not an exception;
* decide: `bot.watch.policy.decide`, pure;
* deliver: the `Notifier` (Slack side) posts, threads or edits; it may refuse with a
  `ChannelUnavailable` (pause the channel's watches) or a `DeliveryFailed` (try at the next check),
  or report `AnchorNotUpdated` (the reply went out, the alert's edit is redone next check);
* record: the new state, or `state_if_not_done` when delivery failed, so no alert is dropped.

No Slack and no SQL here: both come in through protocols.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.resolve import FlinkApi, current_job
from bot.diagnosis.risk import Risk
from bot.flink.errors import FlinkError
from bot.flink.models import Deployment, JobDiagnosis
from bot.logs import new_request_id
from bot.watch.policy import Action, Decision, Observation, Reason, TargetState, decide

log = logging.getLogger("flinkdiag.watch")

PAUSING_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


class Watch(BaseModel):
    """A channel's request to watch one deployment or a whole namespace."""

    model_config = ConfigDict(frozen=True)

    id: int
    team_id: str
    channel_id: str
    kind: Literal["deployment", "namespace"]
    workspace: str
    namespace: str
    deployment_id: str | None = None
    deployment_name: str | None = None
    min_risk: str
    interval_seconds: int
    created_by: str | None = None
    created_at: datetime | None = None
    paused_reason: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "namespace":
            return f"namespace {self.namespace}"
        return f"deployment {self.deployment_name or self.deployment_id}"


class WatchTarget(BaseModel):
    """One deployment watched for one channel (a namespace watch has one per deployment)."""

    model_config = ConfigDict(frozen=True)

    id: int
    watch_id: int
    team_id: str
    channel_id: str
    workspace: str
    namespace: str
    deployment_id: str
    deployment_name: str | None = None
    min_risk: str
    interval_seconds: int
    state: TargetState = TargetState()
    anchor_ts: str | None = None
    job_id: str | None = None
    top_symptom: str | None = None
    muted: bool = False
    next_check_at: float = 0.0

    @property
    def label(self) -> str:
        return self.deployment_name or self.deployment_id


class Notice(BaseModel):
    """What the engine asks the Slack side to say; the sink renders it."""

    action: Action
    reason: Reason
    target: WatchTarget
    decision_risk: str | None
    previous_risk: str | None = None  # the highest level announced before this decision
    run: DiagnosisRun | None = None
    error: str | None = None


class ChannelUnavailable(Exception):
    """Slack will not take messages for this channel (archived, bot not in it, gone)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class DeliveryFailed(Exception):
    """Slack did not take the message this time (rate limit exhausted, outage): try next check."""


class AnchorNotUpdated(Exception):
    """The thread reply went out but the edit of the alert did not: redo only the edit."""


class Notifier(Protocol):
    async def deliver(self, notice: Notice) -> str | None:
        """Carry out the notice; returns the new anchor ts for POST_ALERT."""
        ...


class WatchRepo(Protocol):
    async def claim_due_targets(self, now: float, limit: int) -> list[WatchTarget]: ...
    async def claim_due_namespace_watches(self, now: float) -> list[Watch]: ...
    async def sync_namespace_targets(
        self, watch: Watch, deployments: list[tuple[str, str | None]], now: float
    ) -> None: ...
    async def record_check(
        self,
        target_id: int,
        *,
        state: TargetState,
        anchor_ts: str | None,
        job_id: str | None,
        top_symptom: str | None,
    ) -> None: ...
    async def pause_channel(self, team_id: str, channel_id: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Observed:
    observation: Observation
    run: DiagnosisRun | None = None
    error: str | None = None
    full: bool = False  # the run holds a full GetJobDiagnosis, not just the job status


@dataclass
class SweepResult:
    checked: int = 0
    failures: int = 0
    delivered: int = 0
    undelivered: int = 0
    expanded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _top_symptom(run: DiagnosisRun) -> str | None:
    for items in run.diagnosis.symptoms.by_category().values():
        for s in items:
            if s.name or s.description:
                return (s.name or s.description)[:200]
    return None


class Sweeper:
    """Runs due checks; `sweep()` is what the scheduler calls on every tick."""

    def __init__(
        self,
        repo: WatchRepo,
        api: FlinkApi,
        notifier: Notifier,
        *,
        now: Callable[[], datetime] | None = None,
        failure_threshold: int = 3,
        batch: int = 5000,
        cheap_first_look: bool = True,
    ) -> None:
        self.repo = repo
        self.api = api
        self.notifier = notifier
        self.now = now or (lambda: datetime.now(UTC))
        self.failure_threshold = failure_threshold
        self.batch = batch
        self.cheap_first_look = cheap_first_look

    async def sweep(self) -> SweepResult:
        """Expand due namespace watches, then check every due target concurrently."""
        new_request_id("s-")
        started = time.perf_counter()
        result = SweepResult()
        now = self.now()
        stamp = now.timestamp()
        for watch in await self.repo.claim_due_namespace_watches(stamp):
            try:
                deployments = await self.api.list_deployments(watch.workspace, watch.namespace)
            except FlinkError as e:
                log.warning(
                    "namespace listing failed", extra={"namespace": watch.namespace, **e.log_fields()}
                )
                continue
            await self.repo.sync_namespace_targets(watch, _pairs(deployments), stamp)
            result.expanded += 1
        targets = await self.repo.claim_due_targets(stamp, self.batch)
        outcomes = await asyncio.gather(*(self.check(t, now) for t in targets), return_exceptions=True)
        for t, outcome in zip(targets, outcomes, strict=True):
            result.checked += 1
            if isinstance(outcome, BaseException):
                log.error("check crashed", exc_info=outcome, extra={"deployment_id": t.deployment_id})
                continue
            decision, delivered = outcome
            result.reasons[decision.reason.value] = result.reasons.get(decision.reason.value, 0) + 1
            if decision.action is not Action.NONE:
                if delivered:
                    result.delivered += 1
                else:
                    result.undelivered += 1
            if decision.state.last_kind == "failure":
                result.failures += 1
        result.seconds = time.perf_counter() - started
        if targets:
            log.info(
                "sweep",
                extra={
                    "checked": result.checked,
                    "delivered": result.delivered,
                    "undelivered": result.undelivered,
                    "failures": result.failures,
                    "seconds": round(result.seconds, 3),
                },
            )
        return result

    def _needs_full_diagnosis(self, t: WatchTarget, status_risk: str | None) -> bool:
        """Whether this check needs GetJobDiagnosis, or the job status's own risk level will do.

        A job's status carries riskLevel/healthScore (flink-openapi.md), so a deployment that is
        below its threshold with nothing pending or announced costs one call (ListJobs) instead
        of two. Anything that may lead to a post, or a status without a level (it is unverified
        that the service always fills it), gets the full diagnosis: alerts need its symptoms.
        """
        if not self.cheap_first_look or status_risk is None:
            return True
        threshold = Risk.parse(t.min_risk)
        s = t.state
        return (
            Risk.parse(status_risk) >= threshold
            or s.announced_risk is not None
            or (s.pending_risk is not None and Risk.parse(s.pending_risk) >= threshold)
            or (s.confirmed_risk is not None and Risk.parse(s.confirmed_risk) >= threshold)
        )

    async def observe(self, t: WatchTarget, now: datetime) -> Observed:
        """One check of a deployment's current job; failures become observations."""
        try:
            jobs = await self.api.list_jobs(t.workspace, t.namespace, t.deployment_id)
            job = current_job(jobs)
            if job is None:
                return Observed(Observation(kind="no_job", at=now))
            full = self._needs_full_diagnosis(t, job.status.risk_level)
            if full:
                diagnosis = await self.api.get_job_diagnosis(
                    t.workspace, t.namespace, t.deployment_id, job.job_id
                )
            else:
                diagnosis = JobDiagnosis(
                    risk_level=job.status.risk_level, health_score=job.status.health_score
                )
        except FlinkError as e:
            log.info("check failed", extra={"deployment_id": t.deployment_id, **e.log_fields()})
            return Observed(Observation(kind="failure", error_kind=e.kind, at=now), error=e.user_message)
        target = Target(
            workspace=t.workspace,
            namespace=t.namespace,
            deployment_id=t.deployment_id,
            deployment_name=t.deployment_name,
            job_id=job.job_id,
        )
        run = DiagnosisRun(target=target, diagnosis=diagnosis, diagnosed_at=now)
        obs = Observation(kind="risk", risk=diagnosis.risk_level, health_score=diagnosis.health_score, at=now)
        return Observed(obs, run=run, full=full)

    async def check(self, t: WatchTarget, now: datetime | None = None) -> tuple[Decision, bool]:
        """Check one target, deliver what the policy says, record the outcome."""
        now = now or self.now()
        observed = await self.observe(t, now)
        obs, run, error = observed.observation, observed.run, observed.error
        decision = decide(
            t.state, obs, threshold=Risk.parse(t.min_risk), now=now, failure_threshold=self.failure_threshold
        )
        anchor_ts = t.anchor_ts
        delivered = True
        state = decision.state
        if decision.action is not Action.NONE:
            notice = Notice(
                action=decision.action,
                reason=decision.reason,
                target=t.model_copy(update={"state": decision.state}),
                decision_risk=decision.risk,
                previous_risk=t.state.announced_risk,
                run=run,
                error=error,
            )
            try:
                ts = await self.notifier.deliver(notice)
                if decision.action is Action.POST_ALERT and ts:
                    anchor_ts = ts
            except ChannelUnavailable as e:
                delivered = False
                state = decision.state_if_not_done
                log.warning(
                    "channel unavailable; pausing its watches",
                    extra={"channel": t.channel_id, "error": e.error},
                )
                await self.repo.pause_channel(t.team_id, t.channel_id, e.error)
            except DeliveryFailed as e:
                delivered = False
                state = decision.state_if_not_done
                log.warning(
                    "delivery failed; will retry at the next check",
                    extra={"channel": t.channel_id, "error": str(e)},
                )
            except AnchorNotUpdated as e:
                # Recording the reply as not done would post it again at the next check. Keep
                # the anchor's old level instead, so the policy finds the edit still due.
                if state.episode_open:
                    state = state.model_copy(update={"anchor_risk": t.state.anchor_risk})
                log.warning(
                    "alert not updated; will retry the edit at the next check",
                    extra={"channel": t.channel_id, "error": str(e)},
                )
        log.info(
            "checked",
            extra={
                "deployment_id": t.deployment_id,
                "job_id": run.target.job_id if run else None,
                "reason": decision.reason.value,
                "action": decision.action.value,
                "risk": decision.risk,
            },
        )
        await self.repo.record_check(
            t.id,
            state=state,
            anchor_ts=anchor_ts,
            job_id=run.target.job_id if run else t.job_id,
            # a status-only look has no symptoms: keep the last full diagnosis's
            top_symptom=_top_symptom(run) if run and observed.full else t.top_symptom,
        )
        return decision, delivered


def _pairs(deployments: list[Deployment]) -> list[tuple[str, str | None]]:
    return [(d.deployment_id, d.name or None) for d in deployments]
