"""Can a watch check its deployments? One note per watch per outage, a pure decision.

`decide_outage` takes the watch's persisted `OutageState` and the health of each of its targets
(from their `TargetState`s) and returns an `OutageDecision`: a named reason, the action for the
Slack side and the state to persist once it is done. It reads no clock and does no I/O; the
engine calls it after a sweep's checks are recorded, for each watch they touched.

Semantics, per watch:

* a target's check *failed* when the API failed or anything else went wrong in it; a target is
  *proven* again after `recovery_checks` successful checks in a row (`checks_since_failure`).
* an outage opens when a target that is not snoozed has failed `failure_threshold` checks in a
  row. Its note lists every target (not snoozed) whose last check failed.
* while it is open, the list is every target (not snoozed) whose last check failed, plus the
  listed ones not proven yet. Answers that flap (fail, work, fail) keep a target listed, so they
  never end the outage; the note is edited when the list changes (an edit notifies nobody).
* it ends when the list is empty: one checking-again note, and the note is edited to say so.
* snoozed targets neither open an outage nor join one (the user asked for quiet); a target
  listed before its snooze stays listed until proven, so a snooze never fakes a recovery.
* where it goes: a deployment watch whose deployment has an open alert episode gets the note in
  that alert's thread, where on-call is already reading about that deployment (a second
  top-level message about it would split the conversation). Otherwise the note goes at the top
  level of the channel, so it is seen. The checking-again note goes in the thread the note is in
  (or the note's own thread), so an outage is one place in the channel.
* a paused channel is never posted to: the engine only decides for watches that are not paused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

DEFAULT_RECOVERY_CHECKS = 3


class OutageState(BaseModel):
    """What the store keeps per watch. `OutageState()` is "no outage"."""

    model_config = ConfigDict(frozen=True)

    since: datetime | None = None  # when the outage (and its note) began
    note_ts: str | None = None  # the note, edited as the list changes
    thread_ts: str | None = None  # the thread the note was posted in; None = top level
    listed: tuple[str, ...] = ()  # deployment ids the note lists

    @property
    def open(self) -> bool:
        return self.since is not None


class TargetHealth(BaseModel):
    """What the outage rule needs of one target."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    failure_streak: int = 0
    checks_since_failure: int | None = None
    snoozed: bool = False
    episode_anchor_ts: str | None = None  # the open alert episode's anchor, if one is open


class OutageReason(StrEnum):
    NO_OUTAGE = "no_outage"  # nothing failing past the threshold
    CANNOT_CHECK = "cannot_check"  # an outage begins: post the note
    CANNOT_CHECK_CHANGED = "cannot_check_changed"  # the list changed: edit the note
    STILL_CANNOT_CHECK = "still_cannot_check"  # the same list: nothing to do
    CHECKING_AGAIN = "checking_again"  # every listed target is proven again: the outage is over


class OutageAction(StrEnum):
    NONE = "none"
    POST_NOTE = "post_note"
    EDIT_NOTE = "edit_note"
    POST_RECOVERY = "post_recovery"  # in the note's thread; the note is edited to say it is over


class OutageDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: OutageReason
    action: OutageAction
    # To persist once the action is done (for POST_NOTE the engine adds the note's ts). On
    # failure nothing is persisted, so the next decision finds the same thing still due.
    state: OutageState


def decide_outage(
    state: OutageState | None,
    targets: Sequence[TargetHealth],
    *,
    kind: Literal["deployment", "namespace"],
    now: datetime,
    failure_threshold: int = 3,
    recovery_checks: int = DEFAULT_RECOVERY_CHECKS,
) -> OutageDecision:
    """Decide what a watch's channel should be told about checks failing. Pure."""
    if failure_threshold < 1 or recovery_checks < 1:
        raise ValueError("failure_threshold and recovery_checks must be at least 1")
    state = state or OutageState()
    previously = set(state.listed)

    def unproven(t: TargetHealth) -> bool:
        return t.checks_since_failure is not None and t.checks_since_failure < recovery_checks

    listed = tuple(
        t.deployment_id
        for t in targets
        if (t.failure_streak >= 1 and not t.snoozed) or (t.deployment_id in previously and unproven(t))
    )

    if not state.open:
        if not any(t.failure_streak >= failure_threshold and not t.snoozed for t in targets):
            return OutageDecision(reason=OutageReason.NO_OUTAGE, action=OutageAction.NONE, state=state)
        thread = None
        if kind == "deployment":
            thread = next((t.episode_anchor_ts for t in targets if t.episode_anchor_ts), None)
        opened = OutageState(since=now, thread_ts=thread, listed=listed)
        return OutageDecision(reason=OutageReason.CANNOT_CHECK, action=OutageAction.POST_NOTE, state=opened)

    if not listed:
        return OutageDecision(
            reason=OutageReason.CHECKING_AGAIN, action=OutageAction.POST_RECOVERY, state=OutageState()
        )
    if set(listed) != previously:
        return OutageDecision(
            reason=OutageReason.CANNOT_CHECK_CHANGED,
            action=OutageAction.EDIT_NOTE,
            state=state.model_copy(update={"listed": listed}),
        )
    return OutageDecision(reason=OutageReason.STILL_CANNOT_CHECK, action=OutageAction.NONE, state=state)
