"""The watch loop, read as a pipeline: claim what is due → check → decide → deliver → record.

* claim: the store hands out due targets atomically (several replicas share one database, so a
  due check is taken by exactly one of them);
* check: resolve the deployment's current job (job ids change at every restart) and diagnose it,
  through the Flink client's limiter; an API failure is an observation, not an exception;
* decide: `bot.watch.policy.decide`, pure;
* deliver: the `Notifier` (Slack side) posts, threads or edits; it may refuse with a
  `ChannelUnavailable` (pause the channel's watches) or a `DeliveryFailed` (try at the next check),
  or report `AnchorNotUpdated` (the reply went out, the alert's edit is redone next check);
* record: the new state, or `state_if_not_done` when delivery failed, so no alert is dropped;
  a sweep's records go to the store in batches (`GroupRecorder`), each check after its delivery.

No Slack and no SQL here: both come in through protocols.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.resolve import FlinkApi, current_job
from bot.diagnosis.risk import Risk
from bot.flink.errors import FlinkError
from bot.flink.models import Deployment, JobDiagnosis
from bot.logs import new_request_id
from bot.watch.model import (
    AnchorNotUpdated,
    ChannelUnavailable,
    CheckRecord,
    DeliveryFailed,
    Notice,
    Notifier,
    WatchRepo,
    WatchTarget,
)
from bot.watch.policy import Action, Decision, Observation, decide
from bot.watch.recorder import GroupRecorder
from bot.watch.storm import StormGate

log = logging.getLogger("flinkdiag.watch")

# Checks started per turn of the event loop when a sweep begins.
START_CHUNK = 64


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
        region: str | None = None,
        storm_limit: int = 5,
        concurrency: int = 256,
        record_linger: float = 0.05,
        record_batch: int = 500,
        namespace_allowed: Callable[[str, str, str], bool] | None = None,
    ) -> None:
        self.repo = repo
        self.api = api
        self.notifier = notifier
        self.now = now or (lambda: datetime.now(UTC))
        self.failure_threshold = failure_threshold
        self.batch = batch
        self.cheap_first_look = cheap_first_look
        self.region = region  # for the alert's console link
        self.storm_limit = storm_limit
        # Checks in progress at once; the Flink client's limiter sets the pace of API calls,
        # this only has to keep it busy. Bounded rather than one task per due target: with
        # thousands alive at once, their objects set off full garbage collections of 75-150 ms
        # that stalled slash-command acks, and peak memory grew with the fleet (bench/sweep.py).
        self.concurrency = concurrency
        self.record_linger = record_linger
        self.record_batch = record_batch
        # (team, channel, namespace) -> still served there; a watch on one no longer served is
        # not checked and posts nothing (bot.namespaces)
        self.namespace_allowed = namespace_allowed or (lambda team, channel, namespace: True)

    async def sweep(self) -> SweepResult:
        """Expand due namespace watches, then check every due target concurrently."""
        new_request_id("s-")
        started = time.perf_counter()
        result = SweepResult()
        now = self.now()
        stamp = now.timestamp()
        for watch in await self.repo.claim_due_namespace_watches(stamp):
            if not self.namespace_allowed(watch.team_id, watch.channel_id, watch.namespace):
                continue
            try:
                deployments = await self.api.list_deployments(watch.workspace, watch.namespace)
            except FlinkError as e:
                log.warning(
                    "namespace listing failed", extra={"namespace": watch.namespace, **e.log_fields()}
                )
                continue
            await self.repo.sync_namespace_targets(watch, _pairs(deployments), stamp)
            result.expanded += 1
        targets = [
            t
            for t in await self.repo.claim_due_targets(stamp, self.batch)
            if self.namespace_allowed(t.team_id, t.channel_id, t.namespace)
        ]
        recorder = GroupRecorder(self.repo, linger=self.record_linger, max_batch=self.record_batch)
        gate = StormGate(self.storm_limit)

        outcomes: list[tuple[Decision, bool] | BaseException | None] = [None] * len(targets)
        queue = iter(enumerate(targets))  # shared: each worker takes the next target

        async def worker() -> None:
            for i, t in queue:
                try:
                    with recorder.running():
                        outcomes[i] = await self.check(t, now, recorder=recorder, gate=gate)
                except asyncio.CancelledError as e:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise  # the sweep itself is cancelled
                    outcomes[i] = e
                except Exception as e:
                    outcomes[i] = e

        workers: list[asyncio.Task[None]] = []
        try:
            for k in range(min(self.concurrency, len(targets))):
                if k and k % START_CHUNK == 0:
                    # A check's first step (signing, opening a request) runs as soon as it is
                    # started: a slash command's ack must not wait behind hundreds of them.
                    await asyncio.sleep(0)
                workers.append(asyncio.create_task(worker()))
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()  # only those still running: the sweep itself was cancelled
            await recorder.aclose()
        await self._finish_digests(gate)
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
            jobs = await self.api.recent_jobs(t.workspace, t.namespace, t.deployment_id)
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
            region=self.region,
        )
        run = DiagnosisRun(target=target, diagnosis=diagnosis, diagnosed_at=now)
        obs = Observation(kind="risk", risk=diagnosis.risk_level, health_score=diagnosis.health_score, at=now)
        return Observed(obs, run=run, full=full)

    async def _finish_digests(self, gate: StormGate) -> None:
        """List in each digest every alert that joined it after it was posted (one edit each)."""
        for channel_id, d in gate.digests.items():
            if d.ts is None or len(d.notices) <= d.shown:
                continue
            try:
                await self.notifier.update_digest(channel_id, d.ts, d.notices)
            except (ChannelUnavailable, DeliveryFailed) as e:
                # each alert's episode is anchored in the digest's thread either way
                log.warning("storm digest not updated", extra={"channel": channel_id, "error": str(e)})

    async def _to_digest(self, gate: StormGate, notice: Notice) -> str:
        """Add an alert to its channel's storm digest (posting the digest first); its ts."""
        d = gate.digest(notice.target.channel_id)
        async with d.lock:
            d.notices.append(notice)
            if d.ts is None:
                try:
                    d.ts = await self.notifier.post_digest(notice.target.channel_id, d.notices)
                except BaseException:
                    d.notices.remove(notice)
                    raise
                d.shown = len(d.notices)
            return d.ts

    async def check(
        self,
        t: WatchTarget,
        now: datetime | None = None,
        *,
        recorder: GroupRecorder | None = None,
        gate: StormGate | None = None,
    ) -> tuple[Decision, bool]:
        """Check one target, deliver what the policy says, record the outcome (with `recorder`'s batch)."""
        now = now or self.now()
        observed = await self.observe(t, now)
        obs, run, error = observed.observation, observed.run, observed.error
        decision = decide(
            t.state, obs, threshold=Risk.parse(t.min_risk), now=now, failure_threshold=self.failure_threshold
        )
        anchor_ts, anchor_shared = t.anchor_ts, t.anchor_shared
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
                if decision.action is Action.POST_ALERT and gate is not None and not gate.admit(t.channel_id):
                    anchor_ts, anchor_shared = await self._to_digest(gate, notice), True
                else:
                    ts = await self.notifier.deliver(notice)
                    if decision.action is Action.POST_ALERT and ts:
                        anchor_ts, anchor_shared = ts, False
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
        record = CheckRecord(
            target_id=t.id,
            state=state,
            anchor_ts=anchor_ts,
            anchor_shared=anchor_shared,
            job_id=run.target.job_id if run else t.job_id,
            # a status-only look has no symptoms: keep the last full diagnosis's
            top_symptom=_top_symptom(run) if run and observed.full else t.top_symptom,
        )
        if recorder is not None:
            await recorder.record(record)
        else:
            await self.repo.record_checks([record])
        return decision, delivered


def _pairs(deployments: list[Deployment]) -> list[tuple[str, str | None]]:
    return [(d.deployment_id, d.name or None) for d in deployments]
