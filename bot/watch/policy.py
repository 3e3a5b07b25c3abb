"""Should a watch post, edit or stay quiet? A pure function of the persisted state and one check.

Modelled on alertmanager's dedup stage: `decide` takes the last persisted `TargetState`, the new
`Observation` and `now`, and returns a `Decision` with a named `Reason`, the `Action` to take and
the new state to persist. It reads no clock and does no I/O, so every rule below is table-tested.

Semantics, per (watch channel, deployment):

* observed level: the risk a successful check reported. Levels are compared by rank (LOW < MID <
  HIGH; an unknown level ranks like HIGH) and identified by their raw string.
* confirmed level: changes only when the same new level is observed on two consecutive successful
  checks, or at once when the level rises to HIGH rank. A failed check sits between two checks
  without breaking "consecutive"; a check that finds no running job does break it.
* episode: opened by the first alert (a new top-level message, "the anchor"), closed by the
  back-to-normal note. `announced_risk` is the highest level announced in the open episode; a
  confirmed level above it is a further rise and is posted in the thread. Returning to a level
  already announced in the episode (HIGH → MID → HIGH) only edits the anchor: the on-call engineer
  was already told about that level.
* reconciliation, not transitions: each successful check compares the confirmed level with what
  was announced and does the single most important thing that is out of sync (post > edit). What
  a snooze held back is therefore done at the first check after the snooze ends, and what is no
  longer true (a rise that fell back during the snooze) is never posted.
* snooze: while `snoozed_until > now` nothing is posted or edited, not even the back-to-normal
  note (the user asked for quiet; good news can wait until the snooze ends), but the state is
  tracked so the first check after the snooze posts what is then still true.
* failures: a failed check (an API failure or anything else that went wrong) is not a risk
  change. It never touches the confirmed or pending level and posts nothing here: whether the
  channel is told that checks fail is decided per watch, not per deployment
  (`bot.watch.outage`), from `failure_streak` and `checks_since_failure`.
* no running job: a successful check, not a failure. It does not change the confirmed level (the
  risk is unknown, not low). If an episode is open, one note per episode says so; otherwise it is
  quiet and the watches listing shows it through `last_kind`.
* first sight (no state): as if the confirmed level were below the threshold and nothing were
  announced, so MID needs a second MID and HIGH alerts at once. State is persisted, so a restart
  is not a first sight.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.diagnosis.risk import HIGH, MID, Risk

# Two consecutive sightings make a level confirmed (the "no flapping" rule).
CONFIRMATIONS = 2
# checks_since_failure stops counting here: the outage rule only needs "a few in a row".
_SINCE_FAILURE_CAP = 1000


class Reason(StrEnum):
    """Why a decision was taken; logged with every check and asserted by the tests."""

    FIRST_ALERT = "first_alert"  # confirmed level reached the threshold; a new episode opens
    FURTHER_RISE = "further_rise"  # confirmed level rose above everything announced in the episode
    BACK_TO_NORMAL = "back_to_normal"  # confirmed level fell below the threshold; the episode closes
    UPDATE_ONLY = "update_only"  # confirmed level changed within the announced range: edit the anchor
    PENDING_CONFIRMATION = "pending_confirmation"  # a new level was seen once; wait for a second sighting
    UNCHANGED = "unchanged"  # at or above the threshold and everything already announced
    BELOW_THRESHOLD = "below_threshold"  # below the threshold, no episode open
    NOT_REPORTED = "not_reported"  # the check succeeded but reported no risk level; nothing learned
    SNOOZED = "snoozed"  # something was due but the target is snoozed; see Decision.suppressed
    FAILURE_COUNTED = "failure_counted"  # a failed check; the watch's outage rule takes it from here
    NO_RUNNING_JOB = "no_running_job"  # an open episode's deployment has no running job (note once)
    NO_RUNNING_JOB_QUIET = "no_running_job_quiet"  # no running job, nothing to tell


class Action(StrEnum):
    """What the sink does. Exactly one per check; anything else due is done at a later check."""

    NONE = "none"
    POST_ALERT = "post_alert"  # new top-level message: the anchor of a new episode
    POST_FOLLOWUP = "post_followup"  # reply in the episode's thread and edit the anchor to match
    UPDATE_ANCHOR = "update_anchor"  # edit the anchor only; nobody is notified
    POST_NOTE = "post_note"  # a note that leaves the anchor alone: in its thread if an episode is open


_POSTS = frozenset({Action.POST_ALERT, Action.POST_FOLLOWUP, Action.POST_NOTE})


class TargetState(BaseModel):
    """What the store persists per (watch channel, deployment). `TargetState()` is first sight."""

    model_config = ConfigDict(frozen=True)

    # Hysteresis.
    confirmed_risk: str | None = None  # Risk.raw; None = never confirmed (ranks below every threshold)
    pending_risk: str | None = None  # a level seen but not yet confirmed
    pending_count: int = 0
    # Announcements. announced_risk is None exactly when no episode is open.
    announced_risk: str | None = None  # highest level posted in the open episode
    anchor_risk: str | None = None  # the level the anchor message currently shows
    no_job_announced: bool = False  # the no-running-job note went out in this episode
    # Failures.
    failure_streak: int = 0
    # successful checks since the last failed one; None = never failed (bot.watch.outage)
    checks_since_failure: int | None = None
    # For the watches listing.
    last_kind: Literal["risk", "failure", "no_job"] | None = None
    last_observed_risk: str | None = None  # from the last check that reported a risk
    last_health_score: int | None = None
    last_error_kind: str | None = None  # of the current failure streak
    last_checked_at: datetime | None = None  # any check, failed or not
    last_success_at: datetime | None = None
    snoozed_until: datetime | None = None

    @property
    def episode_open(self) -> bool:
        return self.announced_risk is not None


class Observation(BaseModel):
    """One check of one deployment, as the scheduler saw it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["risk", "failure", "no_job"]
    risk: str | None = None  # any spelling Risk.parse accepts; None = not reported
    health_score: int | None = None
    error_kind: str | None = None  # for failures, e.g. the FlinkError class name
    at: datetime


class Decision(BaseModel):
    """The outcome of one check: why, what to do, and the state to persist once it is done."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    action: Action
    state: TargetState
    risk: str | None  # the confirmed level after this check: what an alert or anchor should show
    suppressed: Reason | None = None  # with Reason.SNOOZED: what would have happened
    # To persist when the action could not be carried out (Slack down): the check itself is kept,
    # the announcement is not, so the next check finds it still due and tries again.
    state_if_not_done: TargetState

    @property
    def posts(self) -> bool:
        """Whether the sink sends a new message (as opposed to editing one or doing nothing)."""
        return self.action in _POSTS


def decide(
    state: TargetState | None,
    obs: Observation,
    *,
    threshold: Risk = MID,
    now: datetime,
) -> Decision:
    """Decide what one check means for a watch. Pure: same inputs, same decision.

    `state` is None on first sight. `threshold` is the watch's `min_risk`. `now` only decides
    whether a snooze is still on (use timezone-aware datetimes throughout). Persist
    `Decision.state` once the action succeeded, `Decision.state_if_not_done` if it failed.
    """
    if not threshold.known:
        raise ValueError(f"threshold must be a known risk level, not {threshold.raw!r}")
    state = state or TargetState()
    snoozed = state.snoozed_until is not None and state.snoozed_until > now
    tracked = _track(state, obs, snoozed=snoozed)

    if obs.kind == "failure":
        reason, action, announced = Reason.FAILURE_COUNTED, Action.NONE, tracked
    elif obs.kind == "no_job":
        reason, action, announced = _announce_no_job(tracked)
    else:
        reason, action, announced = _announce_risk(tracked, threshold)

    if action is not Action.NONE and snoozed:
        # Keep the announcement fields as they were, so the catch-up happens after the snooze.
        return Decision(
            reason=Reason.SNOOZED,
            action=Action.NONE,
            state=tracked,
            risk=tracked.confirmed_risk,
            suppressed=reason,
            state_if_not_done=tracked,
        )
    return Decision(
        reason=reason,
        action=action,
        state=announced,
        risk=announced.confirmed_risk,
        state_if_not_done=tracked if action is not Action.NONE else announced,
    )


def _rank(raw: str | None) -> int:
    return Risk(raw).rank


def _track(state: TargetState, obs: Observation, *, snoozed: bool) -> TargetState:
    """Everything a check changes regardless of what is announced: levels, streaks, listing fields."""
    update: dict[str, object] = {"last_kind": obs.kind, "last_checked_at": obs.at}
    if not snoozed and state.snoozed_until is not None:
        update["snoozed_until"] = None  # expired; snoozes end by themselves
    if obs.kind == "failure":
        update["failure_streak"] = state.failure_streak + 1
        update["checks_since_failure"] = 0
        update["last_error_kind"] = obs.error_kind
        return state.model_copy(update=update)

    since = state.checks_since_failure
    update |= {"failure_streak": 0, "last_error_kind": None, "last_success_at": obs.at}
    update["checks_since_failure"] = None if since is None else min(since + 1, _SINCE_FAILURE_CAP)
    if obs.kind == "no_job":
        # A stopped job and the one started later are different runs: their levels are not
        # "two consecutive sightings" of anything.
        update |= {"pending_risk": None, "pending_count": 0}
        return state.model_copy(update=update)

    observed = Risk.parse(obs.risk).raw
    update |= {"last_observed_risk": observed, "last_health_score": obs.health_score}
    if observed is None:
        return state.model_copy(update=update)  # nothing learned about the level
    update |= _confirm(state, observed)
    return state.model_copy(update=update)


def _confirm(state: TargetState, observed: str) -> dict[str, object]:
    confirmed = state.confirmed_risk
    if observed == confirmed:
        return {"pending_risk": None, "pending_count": 0}
    if _rank(observed) >= HIGH.rank and _rank(observed) > _rank(confirmed):
        # A jump to HIGH is not waited on: one sweep of delay is what the on-call pays for.
        return {"confirmed_risk": observed, "pending_risk": None, "pending_count": 0}
    count = state.pending_count + 1 if observed == state.pending_risk else 1
    if count >= CONFIRMATIONS:
        return {"confirmed_risk": observed, "pending_risk": None, "pending_count": 0}
    return {"pending_risk": observed, "pending_count": count}


_CLOSED_EPISODE = {"announced_risk": None, "anchor_risk": None, "no_job_announced": False}


def _announce_risk(s: TargetState, threshold: Risk) -> tuple[Reason, Action, TargetState]:
    confirmed = s.confirmed_risk
    in_range = _rank(confirmed) >= threshold.rank

    if in_range and not s.episode_open:
        update = {"announced_risk": confirmed, "anchor_risk": confirmed}
        return Reason.FIRST_ALERT, Action.POST_ALERT, s.model_copy(update=update)
    if in_range and _rank(confirmed) > _rank(s.announced_risk):
        update = {"announced_risk": confirmed, "anchor_risk": confirmed}
        return Reason.FURTHER_RISE, Action.POST_FOLLOWUP, s.model_copy(update=update)
    if not in_range and s.episode_open:
        return Reason.BACK_TO_NORMAL, Action.POST_FOLLOWUP, s.model_copy(update=_CLOSED_EPISODE)
    if in_range and s.anchor_risk != confirmed:
        return Reason.UPDATE_ONLY, Action.UPDATE_ANCHOR, s.model_copy(update={"anchor_risk": confirmed})
    if s.pending_risk is not None:
        return Reason.PENDING_CONFIRMATION, Action.NONE, s
    if s.last_observed_risk is None:
        return Reason.NOT_REPORTED, Action.NONE, s
    return (Reason.UNCHANGED if in_range else Reason.BELOW_THRESHOLD), Action.NONE, s


def _announce_no_job(s: TargetState) -> tuple[Reason, Action, TargetState]:
    # Risk reconciliation waits for a running job: alerting about a level nobody can see now
    # would be stale news.
    if s.episode_open and not s.no_job_announced:
        return Reason.NO_RUNNING_JOB, Action.POST_NOTE, s.model_copy(update={"no_job_announced": True})
    return Reason.NO_RUNNING_JOB_QUIET, Action.NONE, s
