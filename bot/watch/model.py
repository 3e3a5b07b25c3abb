"""What the watch loop works with: watches, their targets, notices for Slack, and the two
protocols (the store, the Slack sink) it talks through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.diagnosis.report import DiagnosisRun
from bot.diagnosis.risk import Risk
from bot.watch.lifecycle import Action, Change, Reason, Settings
from bot.watch.outage import OutageAction, OutageReason, OutageState
from bot.watch.policy import TargetState

RESTARTS_DEFAULT = 3


class Conditions(BaseModel):
    """What a watch alerts on (`--min-risk`, `--failures`, `--restarts`, `--min-health`).

    `min_risk` is the stored text: a Risk raw value, or "off"."""

    model_config = ConfigDict(frozen=True)

    min_risk: str
    failures: bool = True
    restarts: int | None = RESTARTS_DEFAULT
    min_health: int | None = None

    @property
    def settings(self) -> Settings:
        """The lifecycle policy's settings; a value the policy can't take is off, not a crash."""
        risk = Risk.parse(self.min_risk)
        restarts = self.restarts if self.restarts is not None and self.restarts >= 1 else None
        health = self.min_health if self.min_health is not None and 0 <= self.min_health <= 101 else None
        return Settings(
            min_risk=risk.raw if risk.known else None,
            failures=self.failures,
            restarts=restarts,
            min_health=health,
        )


# Slack's answers that mean "not in this channel until someone acts": the channel is paused.
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
    failures: bool = True
    restarts: int | None = RESTARTS_DEFAULT
    min_health: int | None = None
    interval_seconds: int
    created_by: str | None = None
    created_at: datetime | None = None
    paused_reason: str | None = None
    outage: OutageState = OutageState()

    @property
    def conditions(self) -> Conditions:
        return Conditions(
            min_risk=self.min_risk, failures=self.failures, restarts=self.restarts, min_health=self.min_health
        )

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
    failures: bool = True
    restarts: int | None = RESTARTS_DEFAULT
    min_health: int | None = None
    interval_seconds: int
    state: TargetState = TargetState()
    anchor_ts: str | None = None
    # the anchor is a storm digest shared with other deployments: reply in its thread, never edit it
    anchor_shared: bool = False
    job_id: str | None = None
    top_symptom: str | None = None
    muted: bool = False
    next_check_at: float = 0.0

    @property
    def conditions(self) -> Conditions:
        return Conditions(
            min_risk=self.min_risk, failures=self.failures, restarts=self.restarts, min_health=self.min_health
        )

    @property
    def label(self) -> str:
        return self.deployment_name or self.deployment_id


class JobFacts(BaseModel):
    """What the job list said about the deployment's current job, for the messages."""

    model_config = ConfigDict(frozen=True)

    job_id: str | None = None
    status: str | None = None  # currentJobStatus
    failure_reason: str | None = None
    failure_message: str | None = None
    failed_at: datetime | None = None
    restarts: int | None = None  # running.observedFlinkJobRestarts
    started_at: datetime | None = None
    risk: str | None = None
    health_score: int | None = None


class Delivery(BaseModel):
    """A post recorded before it is made. `key` goes out with the message (Slack metadata)."""

    model_config = ConfigDict(frozen=True)

    key: str
    since: float  # epoch seconds the intent was first recorded: bounds the history look-up
    # An earlier attempt may have been posted (crash, lost answer, database outage): look for it
    # before posting again.
    retry: bool = False
    ts: str | None = None  # that attempt's message, when Slack's answer was recorded
    shared: bool = False  # ts is a storm digest


@dataclass(frozen=True)
class Found:
    """A post an earlier attempt made: adopt it instead of posting again."""

    ts: str
    shared: bool = False  # a storm digest, not a message of this target's own


class Notice(BaseModel):
    """What the engine asks the Slack side to say; the sink renders it.

    `target.state` is the state after the decision: its `incident` names what the root shows."""

    action: Action
    reason: Reason
    target: WatchTarget
    decision_risk: str | None  # the confirmed risk level after this check
    previous_risk: str | None = None  # the highest level announced before this decision
    changes: tuple[Change, ...] = ()  # what a thread reply tells, in order
    job: JobFacts | None = None  # the current job as this check saw it
    window_minutes: int = 60  # the restart window, for "N starts within the last hour"
    run: DiagnosisRun | None = None
    error: str | None = None
    delivery: Delivery | None = None  # posts only: the recorded intent


class OutageNotice(BaseModel):
    """What the engine asks the Slack side to say about a watch's outage."""

    watch: Watch
    reason: OutageReason
    action: OutageAction
    previous: OutageState  # where the note is (EDIT_NOTE, POST_RECOVERY)
    state: OutageState  # the outage as it will be once this is done
    listed: list[WatchTarget]  # the targets `state.listed` names, in its order
    error: str | None = None  # the latest failed check's sentence, when this sweep saw one
    recovery_checks: int = 3
    # The outage state's version this was decided on: the same until the action is recorded, so
    # a retry after a crash carries the same key (Slack metadata) and finds the earlier post.
    version: int = 0


class OutageView(BaseModel):
    """A watch, the version of its outage state (for compare-and-set) and its targets."""

    watch: Watch
    version: int
    targets: list[WatchTarget]


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
        """Carry out the notice; returns the new root ts for POST_ROOT."""
        ...

    async def post_digest(self, channel_id: str, notices: Sequence[Notice]) -> str:
        """Post one message for a storm's alerts; returns its ts."""
        ...

    async def update_digest(self, channel_id: str, ts: str, notices: Sequence[Notice]) -> None: ...

    async def deliver_outage(self, notice: OutageNotice) -> str | None:
        """Post, edit or close a watch's outage note; returns the note's ts for POST_NOTE."""
        ...

    async def find_posted(self, notice: Notice) -> Found | None:
        """The alert an earlier attempt of `notice.delivery` posted, if Slack shows one."""
        ...


class DeliveryLog(Protocol):
    """Durable intents: what is about to be posted, recorded before it is posted."""

    async def begin(self, target_id: int, kind: str, now: float) -> Delivery:
        """The target's unsettled intent of `kind` (a retry), or a new one."""
        ...

    async def posted(self, key: str, ts: str, *, shared: bool = False) -> None:
        """Slack's answer to the post of `key`."""
        ...


class WatchRepo(Protocol):
    lease_seconds: float  # how long a claimed check may run before another replica takes it

    async def claim_due_targets(
        self, now: float, limit: int, *, due_by: float | None = None
    ) -> list[WatchTarget]:
        """A page of targets due by `due_by` (default `now`) with no live lease, leased to this replica."""
        ...

    async def renew_leases(self, target_ids: Sequence[int], now: float) -> set[int]:
        """Extend this replica's leases on checks still queued or running; the ids still held."""
        ...

    async def claim_due_namespace_watches(self, now: float) -> list[Watch]: ...
    async def sync_namespace_targets(
        self, watch: Watch, deployments: list[tuple[str, str | None]], now: float
    ) -> None: ...
    async def record_checks(self, records: Sequence[CheckRecord]) -> set[int]:
        """Persist the records in one transaction; the target ids whose record landed (lease held)."""
        ...

    async def pause_channel(self, team_id: str, channel_id: str, reason: str) -> None: ...
    async def outage_views(self, touched: Sequence[int], relevant: Sequence[int]) -> list[OutageView]:
        """Unpaused watches among `touched` that are `relevant` or in an outage, with their targets."""
        ...

    async def claim_outage(self, watch_id: int, version: int, now: float) -> bool:
        """Take the right to act on the watch's outage, if its state is still at `version`."""
        ...

    async def finish_outage(self, watch_id: int, state: OutageState | None) -> None:
        """Persist the outage state (None: only give the claim back)."""
        ...


@dataclass(frozen=True)
class CheckRecord:
    """What one check leaves in the store: the state to persist and what to show next time."""

    target_id: int
    state: TargetState
    anchor_ts: str | None
    job_id: str | None
    top_symptom: str | None
    anchor_shared: bool = False
    # The intent whose post may or may not have gone out (delivery failed): kept for the next
    # check to look for. Every other intent of the target is settled with this record.
    pending_delivery: str | None = None
