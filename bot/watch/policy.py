"""What the store keeps per (watch channel, deployment), and the bookkeeping of failed checks.

The decisions about a deployment's incident (failed job, restart loop, risk, health; posts,
thread replies, root edits, snoozes) are `bot.watch.lifecycle.decide`, the only policy: a
`TargetState` carries its `IncidentState` in `incident`. Around it this module keeps what the
rest of the watch loop needs and lifecycle does not decide:

* failures: a failed check (an API failure or anything else that went wrong) never reaches the
  lifecycle policy. `track_failure` counts it (`failure_streak`, `checks_since_failure`), and
  `bot.watch.outage` decides per watch, not per deployment, whether the channel is told.
* the listing fields (`last_*`) `watches` and the reports show.
* the snooze: owned by the Snooze buttons in their own columns, so a snooze pressed during a
  check is never overwritten by the check's record; the store copies it into `incident` when it
  still applies (see `bot.store.watches`).

`TargetState.load` reads every older form of the stored JSON: the risk-only state of the first
watch policy (`confirmed_risk`, `announced_risk`, `anchor_risk`, …) becomes an open risk
incident, so an alert posted before the upgrade keeps its thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from bot.watch.lifecycle import Condition, IncidentState, JobObservation

# checks_since_failure stops counting here: the outage rule only needs "a few in a row".
_SINCE_FAILURE_CAP = 1000

# Keys of the risk-only state stored before lifecycle incidents (migrated on load).
_LEGACY = (
    "confirmed_risk",
    "pending_risk",
    "pending_count",
    "announced_risk",
    "anchor_risk",
    "no_job_announced",
)


class TargetState(BaseModel):
    """What the store persists per (watch channel, deployment). `TargetState()` is first sight."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    incident: IncidentState = IncidentState()
    # Failures.
    failure_streak: int = 0
    # successful checks since the last failed one; None = never failed (bot.watch.outage)
    checks_since_failure: int | None = None
    # For the watches listing and the reports. "risk": a job was seen (the name predates jobs).
    last_kind: Literal["risk", "failure", "no_job"] | None = None
    last_job_status: str | None = None  # currentJobStatus at the last successful check
    last_observed_risk: str | None = None  # from the last check that reported a risk
    last_health_score: int | None = None
    last_error_kind: str | None = None  # of the current failure streak
    last_checked_at: datetime | None = None  # any check, failed or not
    last_success_at: datetime | None = None
    # The snooze as the buttons set it, when it still applies (filled by the store, never stored).
    snoozed_until: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "incident" in raw or not any(k in raw for k in _LEGACY):
            return raw
        announced = raw.get("announced_risk")
        incident: dict[str, Any] = {
            "confirmed_risk": raw.get("confirmed_risk"),
            "pending_risk": raw.get("pending_risk"),
            "pending_count": raw.get("pending_count") or 0,
            "checked_at": raw.get("last_success_at"),
            "health_score": raw.get("last_health_score"),
        }
        if announced:
            incident |= {
                "announced": [Condition.RISK.value],
                "announced_risk": announced,
                "root": Condition.RISK.value,
                "root_level": raw.get("anchor_risk") or announced,
                "no_job_announced": bool(raw.get("no_job_announced")),
            }
        return {k: v for k, v in raw.items() if k not in _LEGACY} | {"incident": incident}

    @field_validator("*", mode="wrap")
    @classmethod
    def _or_default(cls, v: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        # A damaged field costs its default, never the whole row (and never the outage fields).
        try:
            return handler(v)
        except (ValidationError, ValueError, TypeError):
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)  # type: ignore[index]

    @classmethod
    def load(cls, raw: object) -> TargetState:
        """From a stored value (a dict, None or anything else): never raises."""
        return cls.model_validate(raw if isinstance(raw, dict) else {})

    @property
    def episode_open(self) -> bool:
        """Whether an incident is open (its root is the target's anchor)."""
        return self.incident.incident_open

    @property
    def announced_risk(self) -> str | None:
        return self.incident.announced_risk

    @property
    def snoozed_until_redeploy(self) -> bool:
        return self.incident.snoozed_until_redeploy


def track_failure(state: TargetState, *, error_kind: str | None, at: datetime) -> TargetState:
    """A failed check: counted for the watch's outage rule; the incident is left as it was."""
    return state.model_copy(
        update={
            "last_kind": "failure",
            "last_checked_at": at,
            "failure_streak": state.failure_streak + 1,
            "checks_since_failure": 0,
            "last_error_kind": error_kind,
        }
    )


def track_success(state: TargetState, obs: JobObservation, incident: IncidentState) -> TargetState:
    """A successful look at the deployment, with the incident state lifecycle decided on."""
    since = state.checks_since_failure
    update: dict[str, Any] = {
        "incident": incident,
        # A stopped job (CANCELLED, FINISHED) is "no running job", not a failure; a FAILED one
        # is the incident's business.
        "last_kind": "risk" if obs.active or obs.status == "FAILED" else "no_job",
        "last_job_status": obs.status if obs.has_job else None,
        "last_checked_at": obs.at,
        "last_success_at": obs.at,
        "failure_streak": 0,
        "last_error_kind": None,
        "checks_since_failure": None if since is None else min(since + 1, _SINCE_FAILURE_CAP),
    }
    if obs.risk is not None:
        update["last_observed_risk"] = obs.risk
    if obs.health_score is not None:
        update["last_health_score"] = obs.health_score
    return state.model_copy(update=update)
