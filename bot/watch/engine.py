"""The watch loop, read as a pipeline: claim what is due → check → decide → deliver → record.

* claim: the store hands out due targets atomically (several replicas share one database, so a
  due check is taken by exactly one of them);
* check: resolve the deployment's current job (job ids change at every restart) and diagnose it,
  through the Flink client's limiter; an API failure is an observation, not an exception;
* decide: `bot.watch.lifecycle.decide`, pure, on what the job list shows of the current job
  (status, failure, restarts, risk, health); a failed check only counts toward the outage rule
  (`bot.watch.policy.track_failure`);
* deliver: the `Notifier` (Slack side) posts, threads or edits; it may refuse with a
  `ChannelUnavailable` (pause the channel's watches) or a `DeliveryFailed` (try at the next check),
  or report `AnchorNotUpdated` (the reply went out, the alert's edit is redone next check);
* record: the new state, or `state_if_not_done` when delivery failed, so no alert is dropped;
  a sweep's records go to the store in batches (`GroupRecorder`), each check after its delivery;
* outages: once a sweep's records are in, each watch it touched gets `decide_outage` (pure):
  one can't-check note per watch per outage, edited as the list changes, and one checking-again
  note at its end (see `bot.watch.outage`).

A check that fails in any way is a failed check: whatever an API answer, a bug or the store
throws becomes a failure observation or a failure record, the target's lease is given back
with that record, and what was already posted is kept in it, so it is not posted again.

No Slack and no SQL here: both come in through protocols.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from bot import metrics
from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.resolve import FlinkApi
from bot.diagnosis.risk import Risk
from bot.flink.errors import FlinkError
from bot.flink.models import Deployment, Job, JobDiagnosis
from bot.logs import new_request_id
from bot.watch import lifecycle
from bot.watch.lifecycle import Action, JobObservation
from bot.watch.model import (
    AnchorNotUpdated,
    ChannelUnavailable,
    CheckRecord,
    Delivery,
    DeliveryFailed,
    DeliveryLog,
    JobFacts,
    Notice,
    Notifier,
    OutageNotice,
    OutageView,
    WatchRepo,
    WatchTarget,
)
from bot.watch.outage import DEFAULT_RECOVERY_CHECKS, OutageAction, TargetHealth, decide_outage
from bot.watch.policy import TargetState, track_failure, track_success
from bot.watch.recorder import GroupRecorder
from bot.watch.storm import StormGate

log = logging.getLogger("flinkdiag.watch")

# Checks started per turn of the event loop when a sweep begins.
START_CHUNK = 64


class CheckReason(StrEnum):
    FAILURE_COUNTED = "failure_counted"  # a failed check; the watch's outage rule takes it from here


FAILURE_COUNTED = CheckReason.FAILURE_COUNTED


@dataclass(frozen=True)
class Observed:
    observation: JobObservation | None  # None: the check failed (see error)
    run: DiagnosisRun | None = None
    error: str | None = None
    error_kind: str | None = None
    full: bool = False  # the run holds a full GetJobDiagnosis, not just the job status
    facts: JobFacts | None = None  # the current job as the list showed it (a successful check)


@dataclass(frozen=True)
class Checked:
    """One check's outcome: the policy's reason and action, and the target state to persist."""

    reason: StrEnum  # lifecycle.Reason, or CheckReason for a failed check
    action: Action
    state: TargetState
    state_if_not_done: TargetState
    decision: lifecycle.Decision | None = None  # None for a failed check

    @property
    def posts(self) -> bool:
        return self.action in (Action.POST_ROOT, Action.POST_FOLLOWUP)


@dataclass
class SweepResult:
    checked: int = 0
    failures: int = 0
    delivered: int = 0
    undelivered: int = 0
    expanded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    outages: dict[str, int] = field(default_factory=dict)  # OutageReason of each watch decided on
    seconds: float = 0.0


def _top_symptom(run: DiagnosisRun) -> str | None:
    for items in run.diagnosis.symptoms.by_category().values():
        for s in items:
            if s.name or s.description:
                return (s.name or s.description)[:200]
    return None


def _crash_sentence(e: BaseException) -> str:
    # The class name only: an exception's text may quote the API answer (log ids, not payloads).
    return f"The check failed unexpectedly ({type(e).__name__}); the details are in the bot's log."


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
        page: int = 50,
        cheap_first_look: bool = True,
        region: str | None = None,
        storm_limit: int = 5,
        recovery_checks: int = DEFAULT_RECOVERY_CHECKS,
        concurrency: int = 256,
        record_linger: float = 0.05,
        record_batch: int = 500,
        deliveries: DeliveryLog | None = None,
        namespace_allowed: Callable[[str, str, str], bool] | None = None,
    ) -> None:
        self.repo = repo
        # Posts are recorded before they are made, so none is repeated after a crash or a lost
        # answer (see bot.store.deliveries); without a log, a post is made blind.
        self.deliveries = deliveries
        self.api = api
        self.notifier = notifier
        self.now = now or (lambda: datetime.now(UTC))
        self.failure_threshold = failure_threshold
        # Targets claimed at a time. Small, so that replicas sweeping at once split the work and
        # no sweep holds (in memory, and by lease) more than it is about to check.
        self.page = page
        self.cheap_first_look = cheap_first_look
        self.region = region  # for the alert's console link
        self.storm_limit = storm_limit
        self.recovery_checks = recovery_checks
        # The latest failure sentence per watch in this process, for the outage note.
        self._errors: dict[int, str] = {}
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
        """Expand due namespace watches, then check every target due now, a page of claims at a time."""
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
        run = _SweepRun(self, now, result)
        try:
            await run.go()
        finally:
            await run.recorder.aclose()
        await self._finish_digests(run.gate)
        try:
            result.outages = await self.settle_outages(run.touched, run.relevant, now)
        except Exception:
            # The next sweep decides again from the store; checks are recorded either way.
            log.exception("outage notes not settled")
        result.seconds = time.perf_counter() - started
        metrics.sweep_done(result.seconds)
        if result.checked:
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

    def _tally(
        self, result: SweepResult, t: WatchTarget, outcome: tuple[Checked, bool] | BaseException
    ) -> bool:
        """Count one check into the sweep's result; whether its watch may need an outage note."""
        result.checked += 1
        if isinstance(outcome, BaseException):
            metrics.check_done("crashed")
            log.error("check crashed", exc_info=outcome, extra={"deployment_id": t.deployment_id})
            return True  # lost: it may have failed or be proving a recovery
        decision, delivered = outcome
        result.reasons[decision.reason.value] = result.reasons.get(decision.reason.value, 0) + 1
        if decision.action is not Action.NONE:
            if delivered:
                result.delivered += 1
            else:
                result.undelivered += 1
        if decision.state.last_kind == "failure":
            result.failures += 1
        return self._lately_failed(decision.state)

    def _needs_full_diagnosis(self, t: WatchTarget, obs: JobObservation, now: datetime) -> bool:
        """Whether this check needs GetJobDiagnosis, or the job status's own reading will do.

        A job's status carries riskLevel/healthScore (flink-openapi.md), so a deployment with
        nothing wrong costs one call (ListJobs) instead of two: the policy is asked first on the
        status alone, and only a check that may post or edit (or a running job whose status
        lacks a reading the watch needs: it is unverified that the service always fills
        riskLevel and healthScore there) gets the diagnosis, whose symptoms the messages show. A
        job that is not running is not diagnosed: the root shows the last diagnosis's top
        symptom instead.
        """
        if not obs.running:
            return False
        settings = t.conditions.settings
        if not self.cheap_first_look:
            return True
        if (obs.risk is None and settings.min_risk is not None) or (
            obs.health_score is None and settings.min_health is not None
        ):
            return True
        return lifecycle.decide(t.state.incident, obs, settings, now=now).action is not Action.NONE

    async def observe(self, t: WatchTarget, now: datetime) -> Observed:
        """One check of a deployment's current job; failures become observations."""
        try:
            jobs = await self.api.recent_jobs(t.workspace, t.namespace, t.deployment_id)
            job = latest_job(jobs)
            if job is None:
                return Observed(JobObservation(at=now), facts=JobFacts())
            facts = job_facts(job)
            obs = _observation(facts, now)
            full = self._needs_full_diagnosis(t, obs, now)
            if full:
                diagnosis = await self.api.get_job_diagnosis(
                    t.workspace, t.namespace, t.deployment_id, job.job_id
                )
                # The diagnosis is the fuller reading; the status's fills what it leaves out.
                facts = facts.model_copy(
                    update={
                        "risk": Risk.parse(diagnosis.risk_level).raw or facts.risk,
                        "health_score": diagnosis.health_score
                        if diagnosis.health_score is not None
                        else facts.health_score,
                    }
                )
                obs = _observation(facts, now)
            else:
                diagnosis = JobDiagnosis(risk_level=facts.risk, health_score=facts.health_score)
        except FlinkError as e:
            log.info("check failed", extra={"deployment_id": t.deployment_id, **e.log_fields()})
            return Observed(None, error=e.user_message, error_kind=e.kind)
        except Exception as e:
            # An answer the models can't take, a bug: still a failed check, counted toward the
            # watch's can't-check note, never a crash that keeps the target's lease.
            log.error("check crashed", exc_info=e, extra={"deployment_id": t.deployment_id})
            return self._failed(e)
        target = Target(
            workspace=t.workspace,
            namespace=t.namespace,
            deployment_id=t.deployment_id,
            deployment_name=t.deployment_name,
            job_id=job.job_id,
            region=self.region,
        )
        run = DiagnosisRun(target=target, diagnosis=diagnosis, diagnosed_at=now)
        return Observed(obs, run=run, full=full, facts=facts)

    @staticmethod
    def _failed(e: BaseException) -> Observed:
        return Observed(None, error=_crash_sentence(e), error_kind=type(e).__name__[:80])

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

    async def _posted(self, delivery: Delivery | None, ts: str, *, shared: bool = False) -> None:
        if delivery is None or self.deliveries is None:
            return
        try:
            await self.deliveries.posted(delivery.key, ts, shared=shared)
        except Exception as e:
            # Only saves the next attempt a look-up in Slack's history: not worth failing the check.
            log.warning("post not noted", extra={"key": delivery.key, "error": type(e).__name__})

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

    def _decide(self, t: WatchTarget, observed: Observed, now: datetime) -> Checked:
        if observed.observation is None:
            state = track_failure(t.state, error_kind=observed.error_kind, at=now)
            return Checked(reason=FAILURE_COUNTED, action=Action.NONE, state=state, state_if_not_done=state)
        obs = observed.observation
        d = lifecycle.decide(t.state.incident, obs, t.conditions.settings, now=now)
        return Checked(
            reason=d.reason,
            action=d.action,
            state=track_success(t.state, obs, d.state),
            state_if_not_done=track_success(t.state, obs, d.state_if_not_done),
            decision=d,
        )

    async def check(
        self,
        t: WatchTarget,
        now: datetime | None = None,
        *,
        recorder: GroupRecorder | None = None,
        gate: StormGate | None = None,
    ) -> tuple[Checked, bool]:
        """Check one target, deliver what the policy says, record the outcome (with `recorder`'s batch).

        Whatever goes wrong is recorded as a failed check, which also gives the lease back.
        """
        now = now or self.now()
        observed = await self.observe(t, now)
        try:
            decision = self._decide(t, observed, now)
        except Exception as e:
            log.error("check crashed", exc_info=e, extra={"deployment_id": t.deployment_id})
            observed = self._failed(e)
            decision = self._decide(t, observed, now)
        run, error = observed.run, observed.error
        anchor_ts, anchor_shared = t.anchor_ts, t.anchor_shared
        delivered = True
        state = decision.state
        pending: str | None = None
        if decision.action is not Action.NONE:
            delivery = None
            if decision.posts and self.deliveries is not None:
                delivery = await self.deliveries.begin(t.id, decision.reason.value, now.timestamp())
            notice = Notice(
                action=decision.action,
                reason=decision.reason,
                target=t.model_copy(update={"state": decision.state}),
                decision_risk=decision.state.incident.confirmed_risk,
                previous_risk=t.state.incident.announced_risk,
                changes=decision.decision.changes if decision.decision else (),
                job=observed.facts,
                window_minutes=int(t.conditions.settings.restart_window.total_seconds() // 60),
                run=run,
                error=error,
                delivery=delivery,
            )
            try:
                found = None
                if decision.action is Action.POST_ROOT and delivery is not None and delivery.retry:
                    found = await self.notifier.find_posted(notice)
                    # looked already: the post below need not look again
                    notice = notice.model_copy(
                        update={"delivery": delivery.model_copy(update={"retry": False})}
                    )
                if found is not None:
                    anchor_ts, anchor_shared = found.ts, found.shared
                elif (
                    decision.action is Action.POST_ROOT and gate is not None and not gate.admit(t.channel_id)
                ):
                    anchor_ts, anchor_shared = await self._to_digest(gate, notice), True
                    await self._posted(delivery, anchor_ts, shared=True)
                else:
                    ts = await self.notifier.deliver(notice)
                    if decision.action is Action.POST_ROOT and ts:
                        anchor_ts, anchor_shared = ts, False
                        await self._posted(delivery, ts)
            except ChannelUnavailable as e:
                pending = delivery.key if delivery else None
                delivered = False
                state = decision.state_if_not_done
                log.warning(
                    "channel unavailable; pausing its watches",
                    extra={"channel": t.channel_id, "error": e.error},
                )
                await self.repo.pause_channel(t.team_id, t.channel_id, e.error)
            except DeliveryFailed as e:
                pending = delivery.key if delivery else None
                delivered = False
                state = decision.state_if_not_done
                log.warning(
                    "delivery failed; will retry at the next check",
                    extra={"channel": t.channel_id, "error": str(e)},
                )
            except AnchorNotUpdated as e:
                # Recording the reply as not done would post it again at the next check. Keep
                # what the root showed before instead, so the policy finds the edit still due.
                if state.incident.incident_open:
                    before = t.state.incident
                    incident = state.incident.model_copy(
                        update={"root": before.root, "root_level": before.root_level}
                    )
                    state = state.model_copy(update={"incident": incident})
                log.warning(
                    "alert not updated; will retry the edit at the next check",
                    extra={"channel": t.channel_id, "error": str(e)},
                )
            except Exception as e:
                # Rendering or the sink broke: not known to be posted, so it stays due; and a
                # failed check, so a message that can never be posted ends in a can't-check
                # note rather than in silence.
                delivered = False
                log.error("check crashed while posting", exc_info=e, extra={"deployment_id": t.deployment_id})
                failed = self._failed(e)
                error = failed.error
                state = self._decide(t, failed, now).state
        if state.last_kind == "failure" and error:
            self._errors[t.watch_id] = error
        job_id = observed.facts.job_id if observed.facts is not None else None
        log.info(
            "checked",
            extra={
                "deployment_id": t.deployment_id,
                "job_id": job_id,
                "job_status": observed.facts.status if observed.facts is not None else None,
                "reason": decision.reason.value,
                "action": decision.action.value,
                "risk": state.incident.confirmed_risk,
            },
        )
        try:
            top = _top_symptom(run) if run and observed.full else t.top_symptom
        except Exception:
            top = t.top_symptom
        record = CheckRecord(
            target_id=t.id,
            state=state,
            anchor_ts=anchor_ts,
            anchor_shared=anchor_shared,
            job_id=job_id if observed.facts is not None else t.job_id,
            # a status-only look has no symptoms: keep the last full diagnosis's
            top_symptom=top,
            pending_delivery=pending,
        )
        try:
            await self._record(record, recorder)
        except Exception as e:
            # The store refused the record (a value it cannot hold, a constraint): record a
            # failed check built from what the store already holds plus what was announced, so
            # the lease is given back and nothing posted is posted again.
            log.error("check not recorded", exc_info=e, extra={"deployment_id": t.deployment_id})
            failed = self._failed(e)
            self._errors[t.watch_id] = failed.error or ""
            tracked = self._decide(t, failed, now).state
            kept = tracked.model_copy(update={"incident": state.incident})
            fallback = CheckRecord(
                target_id=t.id,
                state=kept,
                anchor_ts=anchor_ts,
                anchor_shared=anchor_shared,
                job_id=t.job_id,
                top_symptom=t.top_symptom,
            )
            await self._record(fallback, recorder)
            state = kept
        if state is not decision.state:
            decision = replace(decision, state=state)
        metrics.check_done(state.last_kind or "failure")
        return decision, delivered

    async def _record(self, record: CheckRecord, recorder: GroupRecorder | None) -> None:
        if recorder is not None:
            await recorder.record(record)
        else:
            await self.repo.record_checks([record])

    # ------------------------------------------------------------------ outages
    async def settle_outages(self, touched: Set[int], relevant: Set[int], now: datetime) -> dict[str, int]:
        """Decide, for each watch a sweep checked (`touched`), whether its channel is told about an
        outage; returns how many watches got each reason.

        `relevant`: the watches with a target that failed lately or is being proven again (a
        lost check may be either); the store adds those already in an outage. Two sets of
        watch ids rather than every check's state: a sweep's memory stays bounded by its watches.
        """
        if not touched:
            return {}
        views = await self.repo.outage_views(sorted(touched), sorted(relevant))
        counts: dict[str, int] = {}
        for view in views:
            reason = await self._settle_outage(view, now)
            counts[reason] = counts.get(reason, 0) + 1
        return counts

    def _lately_failed(self, s: TargetState) -> bool:
        return s.checks_since_failure is not None and s.checks_since_failure <= self.recovery_checks

    async def _settle_outage(self, view: OutageView, now: datetime) -> str:
        w = view.watch
        health = [
            TargetHealth(
                deployment_id=t.deployment_id,
                failure_streak=t.state.failure_streak,
                checks_since_failure=t.state.checks_since_failure,
                snoozed=t.state.snoozed_until is not None and t.state.snoozed_until > now,
                episode_anchor_ts=t.anchor_ts if t.state.episode_open else None,
            )
            for t in view.targets
        ]
        d = decide_outage(
            w.outage,
            health,
            kind=w.kind,
            now=now,
            failure_threshold=self.failure_threshold,
            recovery_checks=self.recovery_checks,
        )
        if d.action is OutageAction.NONE:
            return d.reason.value
        if not await self.repo.claim_outage(w.id, view.version, now.timestamp()):
            return "claimed_elsewhere"  # another replica or sweep acts on the same state
        by_id = {t.deployment_id: t for t in view.targets}
        notice = OutageNotice(
            watch=w,
            reason=d.reason,
            action=d.action,
            previous=w.outage,
            state=d.state,
            listed=[by_id[i] for i in d.state.listed if i in by_id],
            error=self._errors.get(w.id),
            recovery_checks=self.recovery_checks,
            version=view.version,
        )
        try:
            ts = await self.notifier.deliver_outage(notice)
        except ChannelUnavailable as e:
            await self.repo.finish_outage(w.id, None)
            log.warning("channel unavailable; pausing its watches", extra={"channel": w.channel_id})
            await self.repo.pause_channel(w.team_id, w.channel_id, e.error)
            return "undelivered"
        except Exception as e:
            await self.repo.finish_outage(w.id, None)  # still due: decided again next sweep
            log.warning("outage note not delivered", exc_info=e, extra={"channel": w.channel_id})
            return "undelivered"
        state = d.state
        if d.action is OutageAction.POST_NOTE:
            state = state.model_copy(update={"note_ts": ts})
        await self.repo.finish_outage(w.id, state)
        log.info("outage", extra={"watch_id": w.id, "reason": d.reason.value, "listed": len(state.listed)})
        if not state.open:
            self._errors.pop(w.id, None)
        return d.reason.value


class _SweepRun:
    """One sweep's checks: a feeder claims due targets a page at a time into a bounded queue, a
    fixed set of workers checks them, and a renewer keeps the leases of every claimed target not
    yet recorded. Only counters and the ids of what is in flight are kept, never a whole sweep's
    targets or outcomes, so memory does not grow with the fleet (issue 9)."""

    def __init__(self, sweeper: Sweeper, now: datetime, result: SweepResult) -> None:
        self.s = sweeper
        self.now = now
        self.due_by = now.timestamp()
        self.result = result
        self.recorder = GroupRecorder(
            sweeper.repo, linger=sweeper.record_linger, max_batch=sweeper.record_batch
        )
        self.gate = StormGate(sweeper.storm_limit)
        self.touched: set[int] = set()
        self.relevant: set[int] = set()
        # claimed and not yet recorded: at most a page being queued, the queue and the workers
        self.held: set[int] = set()
        self.queue: asyncio.Queue[WatchTarget | None] = asyncio.Queue(maxsize=max(1, sweeper.page))

    async def go(self) -> None:
        s = self.s
        workers: list[asyncio.Task[None]] = []
        renewer = asyncio.create_task(self._renew())
        try:
            for k in range(max(1, s.concurrency)):
                if k and k % START_CHUNK == 0:
                    # A check's first step (signing, opening a request) runs as soon as it is
                    # started: a slash command's ack must not wait behind hundreds of them.
                    await asyncio.sleep(0)
                workers.append(asyncio.create_task(self._work()))
            try:
                await self._feed()
            except Exception:
                # The store failed between pages: the checks already claimed still run and
                # record; the rest stay due for the next sweep.
                log.exception("claiming due checks failed")
            for _ in workers:
                await self.queue.put(None)  # each worker stops once the queue is drained
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()  # only those still running: the sweep itself was cancelled
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _feed(self) -> None:
        s = self.s
        while True:
            # The lease starts at the claim (now), the due test at the sweep's start: what falls
            # due while this sweep runs is left to the next one.
            page = await s.repo.claim_due_targets(s.now().timestamp(), s.page, due_by=self.due_by)
            for t in page:
                if not s.namespace_allowed(t.team_id, t.channel_id, t.namespace):
                    continue  # not checked, posts nothing; its lease runs out
                self.held.add(t.id)
                await self.queue.put(t)
            if len(page) < s.page:
                return

    async def _work(self) -> None:
        s = self.s
        while (t := await self.queue.get()) is not None:
            outcome: tuple[Checked, bool] | BaseException
            try:
                with self.recorder.running():
                    outcome = await s.check(t, self.now, recorder=self.recorder, gate=self.gate)
            except asyncio.CancelledError as e:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # the sweep itself is cancelled
                outcome = e
            except Exception as e:
                outcome = e
            finally:
                self.held.discard(t.id)
            self.touched.add(t.watch_id)
            if s._tally(self.result, t, outcome):
                self.relevant.add(t.watch_id)

    async def _renew(self) -> None:
        """Renew the leases of claimed checks a few times per lease, so a slow check (or one
        waiting in the queue behind the limiter) is never taken over by another replica."""
        every = self.s.repo.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            if not self.held:
                continue
            ids = list(self.held)
            try:
                kept = await self.s.repo.renew_leases(ids, self.s.now().timestamp())
            except Exception as e:
                log.warning("leases not renewed", extra={"error": type(e).__name__, "targets": len(ids)})
                continue
            lost = len([i for i in ids if i not in kept and i in self.held])
            if lost:
                # Their records will be refused: another replica has taken them over.
                log.warning("leases lost", extra={"targets": lost})


def latest_job(jobs: list[Job]) -> Job | None:
    """The deployment's current job: the newest one started, whatever its state (a FAILED job is
    the current one until another starts)."""
    if not jobs:
        return None
    return max(jobs, key=lambda j: j.start_time or 0)


def _at(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def job_facts(job: Job) -> JobFacts:
    """The job list's facts about one job (the models have already cleaned every value)."""
    st = job.status
    failure, running = st.failure, st.running
    return JobFacts(
        job_id=job.job_id,
        status=(st.current_job_status or "").upper() or None,
        failure_reason=failure.reason if failure else None,
        failure_message=failure.message if failure else None,
        failed_at=_at(failure.failed_at) if failure else None,
        restarts=running.observed_flink_job_restarts if running else None,
        started_at=_at(job.start_time),
        risk=Risk.parse(st.risk_level).raw,
        health_score=st.health_score,
    )


def _observation(f: JobFacts, now: datetime) -> JobObservation:
    return JobObservation(
        at=now,
        job_id=f.job_id,
        status=f.status,
        restarts=f.restarts,
        risk=f.risk,
        health_score=f.health_score,
        job_started_at=f.started_at,
    )


def _pairs(deployments: list[Deployment]) -> list[tuple[str, str | None]]:
    return [(d.deployment_id, d.name or None) for d in deployments]
