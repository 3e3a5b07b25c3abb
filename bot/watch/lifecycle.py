"""One incident per (watch channel, deployment): job failed, restart loop, risk, health. Pure.

The watch loop's only policy (`bot.watch.policy` keeps the stored state around it and counts
failed checks). It reconciles every
condition a cheap look at the job list shows (the job's `status`: `currentJobStatus`, `failure`,
`running.observedFlinkJobRestarts`, `riskLevel`, `healthScore`) into a single incident thread.
It is alertmanager's dedup stage: `decide(state, observation, settings, now)`
returns a `Decision` with a named `Reason`, one `Action`, the `changes` to tell, the state to
persist when the action is done and `state_if_not_done` when it could not be. No clock, no I/O.

An observation is always a *successful* look at the deployment (possibly "no job"); failed API
calls are another module's business and never reach `decide`.

Facts (tracked on every check, snoozed or not, whatever was announced):

* FAILED: the current job's `currentJobStatus` is FAILED. A failure is a fact, not a reading that
  flaps: it is true at once. It stays true while a new job is STARTING (or CANCELLING) and ends
  when the deployment runs a job again (RUNNING: "running again"), or is stopped (CANCELLED,
  FINISHED, no job). CANCELLED and FINISHED are never failures. `settings.failures` off: never.
* RESTARTING (`settings.restarts` = N, off with None): opens when `observedFlinkJobRestarts` grew
  by at least N since the last check of the same job (a new job's counter starts at 0, so its
  whole count is growth; first sight is a baseline, not growth), or when the deployment started
  N or more new jobs (job id changes) within `settings.restart_window` (an hour). It stays open
  until a check sees a running job with no new restart (or no active job) and fewer than N
  starts in the window: a loop that slows down is still a loop.
* RISK (`settings.min_risk`, off with None): the confirmed level (two consecutive sightings of
  a new level, or at once on a rise to HIGH), from running jobs only; a
  stopped job or no job leaves the confirmed level alone (the risk is unknown, not low). A new
  job id is a different run, so a pending sighting does not carry over. Open while the confirmed
  level ranks at or above the threshold.
* HEALTH (`settings.min_health` = S, off with None): opens when a running job's health score is
  below S on two consecutive checks that reported a score; closes at the first score >= S.
  `band(score)` gives the service's bands (above 80 healthy, 60-80 degraded, below 60 unhealthy).
* job starts: each job id change (and a job appearing after "no job") is a start, kept in a
  bounded list of the last hour's starts (`MAX_STARTS`).

Announcements (what the thread was told) are reconciled with the facts at every check that is
not snoozed, all at once: every difference becomes one `Change`, ordered worst condition first,
and the whole list goes out as one message, so the thread shows each change in order and a check
never leaves something it knows about untold.

* No incident open and some condition true: a new incident (a new root message; its thread is the
  incident's). A condition that opens while an incident is open, a risk or health level worse
  than any announced in this incident, or a condition ending: a reply in the thread, and the root
  is edited to match. A level that falls back within what was announced only edits the root.
* The root shows the worst open condition: FAILED, then RESTARTING, then RISK and HEALTH by level
  (risk ranks LOW < MID < HIGH, health bands healthy < degraded < unhealthy; on a tie, risk).
* The last condition ending closes the incident with exactly one back-to-normal note (the note
  carries what ended, e.g. "running again"). Anything after that is a new incident, a new thread.
* An open incident whose deployment has no active job (no job, CANCELLED, FINISHED) says so once.
* Snooze (`snooze`: 1h, 24h, or until redeploy): while it is on, nothing is posted or edited,
  but facts are tracked, so the first check after it does what is then still true (what opened
  and closed again during the snooze is never posted). Every snooze ends by itself when the
  deployment starts a new job (a restart or a redeploy, which may be the fix or may not): then
  the thread gets a snooze-ended note, together with whatever else changed. A timed snooze that
  simply runs out ends quietly.
* First sight (`IncidentState()`): no baseline; a FAILED job alerts at once, HIGH risk alerts at
  once, MID needs a second sighting. Restarts and job ids are only remembered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from bot.diagnosis.risk import HIGH, MID, HealthBand, Risk, health_band

DEFAULT_RESTARTS = 3
# Two consecutive sightings make a risk level (or a low health score) confirmed: no flapping.
CONFIRMATIONS = 2
RESTART_WINDOW = timedelta(hours=1)
# Job starts remembered; more than this in one window reads as "at least MAX_STARTS".
MAX_STARTS = 20

FAILED = "FAILED"
RUNNING = "RUNNING"
# A job in these states is (or is about to be) running; anything else, or no job, is stopped.
ACTIVE_STATUSES = frozenset({"STARTING", RUNNING, "CANCELLING"})
STOPPED_STATUSES = frozenset({"CANCELLED", "FINISHED"})

_BAND_RANK = {"healthy": 1, "degraded": 2, "unhealthy": 3}


def band(score: int | None) -> HealthBand:
    """The service's health bands: above 80 healthy, 60-80 degraded, below 60 unhealthy."""
    return health_band(score)


class Condition(StrEnum):
    """What can be wrong with a deployment; declared worst first."""

    FAILED = "failed"
    RESTARTING = "restarting"
    RISK = "risk"
    HEALTH = "health"


class ChangeKind(StrEnum):
    """One thing the thread is told. The sink words each one."""

    JOB_FAILED = "job_failed"  # the current job FAILED
    RUNNING_AGAIN = "running_again"  # a failed deployment runs a job again
    FAILURE_ENDED = "failure_ended"  # a failed deployment was stopped (CANCELLED, FINISHED, no job)
    RESTARTING = "restarting"  # a restart loop: see Change.restarts / Change.starts
    RESTARTS_STOPPED = "restarts_stopped"
    RISK_RAISED = "risk_raised"  # the risk condition opened at Change.level
    RISK_ROSE = "risk_rose"  # rose above every level announced in this incident
    RISK_CLEARED = "risk_cleared"
    HEALTH_LOW = "health_low"  # below min_health twice; Change.level is the band
    HEALTH_WORSE = "health_worse"  # a worse band than announced in this incident
    HEALTH_RECOVERED = "health_recovered"
    NO_RUNNING_JOB = "no_running_job"  # once per incident
    SNOOZE_ENDED = "snooze_ended"  # the deployment started a new job during a snooze


class Reason(StrEnum):
    """Why a decision was taken; logged with every check and asserted by the tests."""

    NEW_INCIDENT = "new_incident"  # a condition opened and no incident was open: new root and thread
    CHANGED = "changed"  # the open incident changed: a reply in its thread, the root edited
    BACK_TO_NORMAL = "back_to_normal"  # the last open condition ended: the incident closes
    ROOT_UPDATE = "root_update"  # only what the root shows changed (a level fell back)
    UNCHANGED = "unchanged"  # an incident is open and everything is told
    QUIET = "quiet"  # nothing wrong, no incident
    SNOOZED = "snoozed"  # something was due but the deployment is snoozed; see Decision.suppressed


class Action(StrEnum):
    """What the sink does; exactly one per check."""

    NONE = "none"
    POST_ROOT = "post_root"  # a new top-level message (the root); its thread is the incident's
    POST_FOLLOWUP = "post_followup"  # one reply in the incident's thread, then edit the root
    UPDATE_ROOT = "update_root"  # edit the root only; nobody is notified


class Change(BaseModel):
    """One line of a message: what changed, with what a sink needs to word it."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    condition: Condition | None = None
    level: str | None = None  # Risk.raw for risk, the band label for health
    restarts: int | None = None  # growth since the last check (RESTARTING)
    starts: int | None = None  # job starts within the window (RESTARTING)


class Settings(BaseModel):
    """A watch's conditions (`--min-risk`, `--failures`, `--restarts`, `--min-health`)."""

    model_config = ConfigDict(frozen=True)

    min_risk: str | None = MID.raw  # a known Risk.raw; None = off
    failures: bool = True
    restarts: int | None = Field(default=DEFAULT_RESTARTS, ge=1)  # None = off
    min_health: int | None = Field(default=None, ge=0, le=101)  # None = off
    restart_window: timedelta = RESTART_WINDOW

    @field_validator("min_risk")
    @classmethod
    def _known_risk(cls, v: str | None) -> str | None:
        if v is None:
            return None
        r = Risk.parse(v)
        if not r.known:
            raise ValueError(f"min_risk must be a known risk level, not {v!r}")
        return r.raw


def _utc(v: object) -> object:
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)  # the store hands naive UTC back on some dialects
    return v


class IncidentState(BaseModel):
    """What the store persists per (watch channel, deployment). `IncidentState()` is first sight.

    Built from anything: a field that cannot be read falls back to its default, so a damaged or
    older row costs at most a re-announcement, never a crash. `dump()` is the compact JSON form.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Facts.
    checked_at: datetime | None = None  # None: never checked (first sight)
    job_id: str | None = None  # current job at the last check; None = no job
    restarts: int | None = None  # its observedFlinkJobRestarts
    starts: tuple[datetime, ...] = ()  # job starts within the restart window, oldest first
    failed: bool = False
    restarting: bool = False
    restart_growth: int | None = None  # for messages: growth at the check that opened it
    confirmed_risk: str | None = None  # hysteresis: see _confirm
    pending_risk: str | None = None
    pending_count: int = 0
    health_score: int | None = None  # last reported by a running job
    health_low_count: int = 0  # consecutive reported scores below min_health
    health_low: bool = False
    # Announcements; an incident is open exactly when `announced` is not empty.
    announced: tuple[Condition, ...] = ()
    announced_risk: str | None = None  # highest risk told in this incident
    announced_band: str | None = None  # worst health band told in this incident
    root: Condition | None = None  # what the root message shows now
    root_level: str | None = None
    no_job_announced: bool = False
    # Snooze.
    snoozed_until: datetime | None = None
    snoozed_until_redeploy: bool = False
    snooze_ended: bool = False  # a new job ended a snooze; the note is due

    @field_validator("*", mode="wrap")
    @classmethod
    def _or_default(cls, v: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return _utc(handler(v))
        except (ValidationError, ValueError, TypeError):
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)  # type: ignore[index]

    @field_validator("restarts", "pending_count", "health_low_count", "restart_growth")
    @classmethod
    def _not_negative(cls, v: int | None) -> int | None:
        return v if v is None or v >= 0 else 0

    @field_validator("confirmed_risk", "pending_risk", "announced_risk")
    @classmethod
    def _risk(cls, v: str | None) -> str | None:
        return Risk.parse(v).raw

    @field_validator("announced_band")
    @classmethod
    def _band(cls, v: str | None) -> str | None:
        return v if v in _BAND_RANK else None

    @field_validator("starts", mode="before")
    @classmethod
    def _starts(cls, v: object) -> object:
        if not isinstance(v, list | tuple):
            return ()
        out = []
        for item in v:
            try:
                out.append(_as_datetime(item))
            except (TypeError, ValueError):
                continue
        return tuple(sorted(out)[-MAX_STARTS:])

    @field_validator("announced", mode="before")
    @classmethod
    def _conditions(cls, v: object) -> object:
        if not isinstance(v, list | tuple):
            return ()
        known = {c.value for c in Condition}
        seen = {str(c) for c in v if str(c) in known}
        return tuple(c for c in Condition if c.value in seen)  # one each, worst first

    @property
    def incident_open(self) -> bool:
        return bool(self.announced)

    @property
    def snoozed(self) -> bool:
        """Whether a snooze was set (it may have run out by the clock; `decide` knows `now`)."""
        return self.snoozed_until is not None or self.snoozed_until_redeploy

    def dump(self) -> str:
        """Compact JSON for the store: defaults are left out."""
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def load(cls, raw: object) -> IncidentState:
        """From a stored value (JSON text, a dict, None or anything else): never raises."""
        if isinstance(raw, str | bytes):
            try:
                raw = json.loads(raw)
            except ValueError:
                return cls()
        if not isinstance(raw, dict):
            return cls()
        return cls.model_validate(raw)


def _as_datetime(v: object) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, str):
        return _as_datetime(datetime.fromisoformat(v))
    raise TypeError("not a datetime")


class JobObservation(BaseModel):
    """One successful look at a deployment: its current job's `status`, or no job at all.

    Normalised at construction: statuses upper-cased, negative or odd counts dropped.
    """

    model_config = ConfigDict(frozen=True)

    at: datetime
    job_id: str | None = None  # None = the deployment has no job
    status: str | None = None  # currentJobStatus
    restarts: int | None = None  # running.observedFlinkJobRestarts
    risk: str | None = None  # riskLevel, any spelling Risk.parse reads
    health_score: int | None = None
    job_started_at: datetime | None = None  # the job's startTime, when known; else `at` is used

    @field_validator("at", "job_started_at", mode="before")
    @classmethod
    def _aware(cls, v: object) -> object:
        return _utc(v)

    @field_validator("job_id", "status", mode="before")
    @classmethod
    def _text(cls, v: object) -> str | None:
        s = str(v).strip() if v is not None else ""
        return s or None

    @field_validator("status")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.upper() if v else None

    @field_validator("restarts", "health_score", mode="before")
    @classmethod
    def _count(cls, v: object) -> int | None:
        if v is None or isinstance(v, bool):
            return None
        try:
            n = int(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
        return n if n >= 0 else None

    @field_validator("risk", mode="before")
    @classmethod
    def _risk(cls, v: object) -> str | None:
        return Risk.parse(v if isinstance(v, str) else None).raw

    @property
    def has_job(self) -> bool:
        return self.job_id is not None

    @property
    def running(self) -> bool:
        return self.has_job and self.status == RUNNING

    @property
    def active(self) -> bool:
        return self.has_job and self.status in ACTIVE_STATUSES


class Decision(BaseModel):
    """The outcome of one check: why, what to do, what to say, and the state to persist."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    action: Action
    changes: tuple[Change, ...] = ()  # what the message tells, in order (empty unless posting)
    # What the root shows after this decision: the worst announced condition, its level; None
    # once the incident is closed (or none was open).
    root: Condition | None = None
    root_level: str | None = None
    open_conditions: tuple[Condition, ...] = ()  # every condition the incident shows, worst first
    state: IncidentState
    state_if_not_done: IncidentState
    suppressed: Reason | None = None  # with Reason.SNOOZED: what would have happened

    @property
    def posts(self) -> bool:
        return self.action in (Action.POST_ROOT, Action.POST_FOLLOWUP)

    @property
    def kind(self) -> ChangeKind | None:
        """The follow-up kind that leads the message (the first change)."""
        return self.changes[0].kind if self.changes else None


def snooze(
    state: IncidentState | None, *, until: datetime | None = None, redeploy: bool = False
) -> IncidentState:
    """The state with a snooze set: until a time (1h, 24h), or `redeploy=True` until a new job.

    Either way a new job ends it (see `decide`).
    """
    if until is None and not redeploy:
        raise ValueError("a snooze needs `until` or `redeploy=True`")
    state = state or IncidentState()
    return state.model_copy(
        update={
            "snoozed_until": _utc(until) if until is not None else None,
            "snoozed_until_redeploy": redeploy,
            "snooze_ended": False,
        }
    )


def unsnooze(state: IncidentState) -> IncidentState:
    """The state with any snooze lifted by hand (no note: the user knows)."""
    return state.model_copy(
        update={"snoozed_until": None, "snoozed_until_redeploy": False, "snooze_ended": False}
    )


def decide(
    state: IncidentState | None,
    obs: JobObservation,
    settings: Settings | None = None,
    *,
    now: datetime,
) -> Decision:
    """Decide what one successful look at a deployment means for its incident. Pure.

    `state` is None on first sight. `now` decides whether a timed snooze is still on and which
    job starts are within the window (use timezone-aware datetimes). Persist `Decision.state`
    once the action succeeded, `Decision.state_if_not_done` if it failed.
    """
    settings = settings or Settings()
    state = state or IncidentState()
    now = _as_datetime(now)
    tracked = _track(state, obs, settings, now)
    snoozed = _snoozed(tracked, now)
    if not snoozed and tracked.snoozed_until is not None:
        tracked = tracked.model_copy(update={"snoozed_until": None})  # ran out: ends quietly

    reason, action, changes, announced = _announce(tracked, _facts(tracked, settings), obs)

    if action is not Action.NONE and snoozed:
        # Announcement fields stay as they were, so the catch-up happens after the snooze.
        return Decision(
            reason=Reason.SNOOZED,
            action=Action.NONE,
            root=tracked.root,
            root_level=tracked.root_level,
            open_conditions=tracked.announced,
            state=tracked,
            state_if_not_done=tracked,
            suppressed=reason,
        )
    return Decision(
        reason=reason,
        action=action,
        changes=changes,
        root=announced.root,
        root_level=announced.root_level,
        open_conditions=announced.announced,
        state=announced,
        state_if_not_done=tracked if action is not Action.NONE else announced,
    )


def _snoozed(s: IncidentState, now: datetime) -> bool:
    return s.snoozed_until_redeploy or (s.snoozed_until is not None and s.snoozed_until > now)


# --- facts


def _track(state: IncidentState, obs: JobObservation, settings: Settings, now: datetime) -> IncidentState:
    """Everything a check changes whatever was announced: job, restarts, starts, conditions."""
    first_sight = state.checked_at is None
    new_job = not first_sight and obs.has_job and obs.job_id != state.job_id
    update: dict[str, Any] = {"checked_at": obs.at, "job_id": obs.job_id, "restarts": obs.restarts}

    starts = [t for t in state.starts if t > now - settings.restart_window]
    if new_job:
        starts.append(obs.job_started_at or obs.at)
        if state.snoozed_until_redeploy or (state.snoozed_until is not None and state.snoozed_until > now):
            update |= {"snoozed_until": None, "snoozed_until_redeploy": False}
            # Only a thread can carry the note; without an open incident the snooze ends quietly.
            update["snooze_ended"] = state.incident_open
    starts = sorted(starts)[-MAX_STARTS:]
    update["starts"] = tuple(starts)

    # FAILED
    if not settings.failures:
        update["failed"] = False
    elif obs.has_job and obs.status == FAILED:
        update["failed"] = True
    elif not obs.has_job or obs.status == RUNNING or obs.status in STOPPED_STATUSES:
        update["failed"] = False
    # else STARTING, CANCELLING or a status never seen: a failure stays a failure until settled

    # RESTARTING
    growth: int | None = None
    if obs.running and obs.restarts is not None:
        if new_job:
            growth = obs.restarts  # a new job's counter started at 0 since the last check
        elif not first_sight and obs.job_id == state.job_id and state.restarts is not None:
            growth = max(obs.restarts - state.restarts, 0)  # a lower count is a reset, not growth
    n = settings.restarts
    recent = len([t for t in starts if t > now - settings.restart_window])
    if n is None:
        update |= {"restarting": False, "restart_growth": None}
    elif (growth is not None and growth >= n) or recent >= min(n, MAX_STARTS):
        update |= {"restarting": True, "restart_growth": growth}
    elif state.restarting and (growth == 0 or not obs.active):
        update |= {"restarting": False, "restart_growth": None}

    # RISK and HEALTH: readings of a running job only.
    if new_job or not obs.running:
        # A stopped job and the one started later are different runs: their readings are not
        # "two consecutive sightings" of anything.
        update |= {"pending_risk": None, "pending_count": 0, "health_low_count": 0}
    if obs.running:
        if obs.risk is not None:
            base = state.model_copy(
                update={k: update[k] for k in ("pending_risk", "pending_count") if k in update}
            )
            update |= _confirm(base, obs.risk)
        if obs.health_score is not None:
            update["health_score"] = obs.health_score
            s = settings.min_health
            if s is None or obs.health_score >= s:
                update |= {"health_low_count": 0, "health_low": False}
            else:
                count = update.get("health_low_count", state.health_low_count) + 1
                update["health_low_count"] = count
                if count >= CONFIRMATIONS:
                    update["health_low"] = True
    if settings.min_health is None:
        update |= {"health_low": False, "health_low_count": 0}

    return state.model_copy(update=update)


def _confirm(s: IncidentState, observed: str) -> dict[str, Any]:
    confirmed = s.confirmed_risk
    if observed == confirmed:
        return {"pending_risk": None, "pending_count": 0}
    if Risk(observed).rank >= HIGH.rank and Risk(observed).rank > Risk(confirmed).rank:
        # A jump to HIGH is not waited on: one sweep of delay is what the on-call pays for.
        return {"confirmed_risk": observed, "pending_risk": None, "pending_count": 0}
    count = s.pending_count + 1 if observed == s.pending_risk else 1
    if count >= CONFIRMATIONS:
        return {"confirmed_risk": observed, "pending_risk": None, "pending_count": 0}
    return {"pending_risk": observed, "pending_count": count}


def _facts(s: IncidentState, settings: Settings) -> dict[Condition, str | None]:
    """The conditions true now, worst first, each with its level (risk raw, health band)."""
    out: dict[Condition, str | None] = {}
    if s.failed:
        out[Condition.FAILED] = None
    if s.restarting:
        out[Condition.RESTARTING] = None
    # Derived rather than stored: the threshold may change between two checks.
    if settings.min_risk is not None and Risk(s.confirmed_risk).rank >= Risk(settings.min_risk).rank:
        out[Condition.RISK] = s.confirmed_risk
    if s.health_low:
        out[Condition.HEALTH] = band(s.health_score).label
    return out


def _level_rank(condition: Condition, level: str | None) -> int:
    if condition is Condition.RISK:
        return Risk(level).rank
    if condition is Condition.HEALTH:
        return _BAND_RANK.get(level or "", 0)
    return 0


_CLASS_RANK = {Condition.FAILED: 3, Condition.RESTARTING: 2, Condition.RISK: 1, Condition.HEALTH: 1}


def worst(conditions: dict[Condition, str | None]) -> tuple[Condition | None, str | None]:
    """The condition a root shows: failed, restarting, then risk and health by level (tie: risk)."""
    if not conditions:
        return None, None
    c = max(
        conditions,
        key=lambda c: (_CLASS_RANK[c], _level_rank(c, conditions[c]), c is Condition.RISK),
    )
    return c, conditions[c]


# --- announcements

_OPENS = {
    Condition.FAILED: ChangeKind.JOB_FAILED,
    Condition.RESTARTING: ChangeKind.RESTARTING,
    Condition.RISK: ChangeKind.RISK_RAISED,
    Condition.HEALTH: ChangeKind.HEALTH_LOW,
}
_ENDS = {
    Condition.RESTARTING: ChangeKind.RESTARTS_STOPPED,
    Condition.RISK: ChangeKind.RISK_CLEARED,
    Condition.HEALTH: ChangeKind.HEALTH_RECOVERED,
}
_CLOSED = {
    "announced": (),
    "announced_risk": None,
    "announced_band": None,
    "root": None,
    "root_level": None,
    "no_job_announced": False,
}


def _announce(
    s: IncidentState, facts: dict[Condition, str | None], obs: JobObservation
) -> tuple[Reason, Action, tuple[Change, ...], IncidentState]:
    was_open = s.incident_open
    told = set(s.announced)
    update: dict[str, Any] = {}
    changes: list[Change] = []
    if s.snooze_ended:
        update["snooze_ended"] = False
        if was_open:
            changes.append(Change(kind=ChangeKind.SNOOZE_ENDED))

    for c in Condition:
        level = facts.get(c)
        if c in facts and c not in told:
            told.add(c)
            changes.append(_change(_OPENS[c], c, level, s))
            if c is Condition.RISK:
                update["announced_risk"] = level
            elif c is Condition.HEALTH:
                update["announced_band"] = level
        elif c in facts and c is Condition.RISK and Risk(level).rank > Risk(s.announced_risk).rank:
            update["announced_risk"] = level
            changes.append(_change(ChangeKind.RISK_ROSE, c, level, s))
        elif (
            c in facts and c is Condition.HEALTH and _level_rank(c, level) > _level_rank(c, s.announced_band)
        ):
            update["announced_band"] = level
            changes.append(_change(ChangeKind.HEALTH_WORSE, c, level, s))
        elif c not in facts and c in told:
            told.discard(c)
            if c is Condition.FAILED:
                kind = ChangeKind.RUNNING_AGAIN if obs.running else ChangeKind.FAILURE_ENDED
            else:
                kind = _ENDS[c]
            changes.append(Change(kind=kind, condition=c))
            if c is Condition.RISK:
                update["announced_risk"] = None
            elif c is Condition.HEALTH:
                update["announced_band"] = None

    open_now = tuple(c for c in Condition if c in told)
    # A failed job is plainly not running: the note would only repeat the failure.
    if open_now and not obs.active and not s.no_job_announced and Condition.FAILED not in told:
        update["no_job_announced"] = True
        changes.append(Change(kind=ChangeKind.NO_RUNNING_JOB))

    root, root_level = worst({c: facts[c] for c in open_now})
    shown = {"announced": open_now, "root": root, "root_level": root_level}
    if not was_open and open_now:
        return Reason.NEW_INCIDENT, Action.POST_ROOT, tuple(changes), s.model_copy(update=update | shown)
    if was_open and not open_now:
        return (
            Reason.BACK_TO_NORMAL,
            Action.POST_FOLLOWUP,
            tuple(changes),
            s.model_copy(update=update | _CLOSED),
        )
    if changes:
        return Reason.CHANGED, Action.POST_FOLLOWUP, tuple(changes), s.model_copy(update=update | shown)
    after = s.model_copy(update=update)
    if was_open and (s.root, s.root_level) != (root, root_level):
        return Reason.ROOT_UPDATE, Action.UPDATE_ROOT, (), after.model_copy(update=shown)
    return (Reason.UNCHANGED if was_open else Reason.QUIET), Action.NONE, (), after


def _change(kind: ChangeKind, c: Condition, level: str | None, s: IncidentState) -> Change:
    if c is Condition.RESTARTING:
        return Change(kind=kind, condition=c, restarts=s.restart_growth, starts=len(s.starts))
    return Change(kind=kind, condition=c, level=level)
