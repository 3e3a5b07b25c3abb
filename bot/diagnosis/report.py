"""The domain's view of one diagnosis run and of what changed between two runs. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.diagnosis.risk import Risk
from bot.flink.models import JobDiagnosis


class Target(BaseModel):
    """Where a job lives: everything needed to call GetJobDiagnosis again."""

    model_config = ConfigDict(frozen=True)

    workspace: str
    namespace: str
    deployment_id: str
    job_id: str
    deployment_name: str | None = None
    region: str | None = None


class SymptomKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: str
    name: str


class Snapshot(BaseModel):
    """What is kept of a run to compare the next one against."""

    risk: str | None = None
    health_score: int | None = None
    symptoms: list[SymptomKey] = Field(default_factory=list)
    diagnosed_at: datetime

    @classmethod
    def of(cls, diagnosis: JobDiagnosis, diagnosed_at: datetime) -> Snapshot:
        keys: list[SymptomKey] = []
        for category, items in diagnosis.symptoms.by_category().items():
            for s in items:
                k = SymptomKey(category=category, name=s.name or s.description[:80])
                if k not in keys:
                    keys.append(k)
        return cls(
            risk=diagnosis.risk_level,
            health_score=diagnosis.health_score,
            symptoms=keys,
            diagnosed_at=diagnosed_at,
        )


class DiagnosisRun(BaseModel):
    """One diagnosis of one job, with where it came from and when."""

    target: Target
    diagnosis: JobDiagnosis
    diagnosed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def risk(self) -> Risk:
        return Risk.parse(self.diagnosis.risk_level)

    @property
    def service_time(self) -> datetime | None:
        """The service's own diagnoseTime (epoch ms), when present."""
        t = self.diagnosis.diagnose_time
        if t is None:
            return None
        try:
            return datetime.fromtimestamp(t / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None

    def snapshot(self) -> Snapshot:
        return Snapshot.of(self.diagnosis, self.diagnosed_at)


class Change(BaseModel):
    """What changed between a previous run and this one."""

    previous_at: datetime
    risk_before: str | None
    risk_after: str | None
    direction: Literal["up", "down", "same"]
    health_before: int | None
    health_after: int | None
    appeared: list[SymptomKey] = Field(default_factory=list)
    cleared: list[SymptomKey] = Field(default_factory=list)
    job_before: str | None = None  # set when the runs are of the same deployment
    job_after: str | None = None

    @property
    def job_changed(self) -> bool:
        return bool(self.job_before and self.job_after and self.job_before != self.job_after)

    @property
    def health_delta(self) -> int | None:
        if self.health_before is None or self.health_after is None:
            return None
        return self.health_after - self.health_before

    @property
    def nothing_changed(self) -> bool:
        return (
            not self.job_changed
            and self.direction == "same"
            and not self.appeared
            and not self.cleared
            and (self.health_delta in (0, None))
            and (self.health_before is None) == (self.health_after is None)
        )


def compare(previous: Snapshot, current: Snapshot) -> Change:
    """Diff two runs: risk up/down, health delta, symptoms that appeared or cleared."""
    before, after = Risk.parse(previous.risk), Risk.parse(current.risk)
    direction: Literal["up", "down", "same"] = (
        "up" if after > before else "down" if after < before else "same"
    )
    prev_keys, cur_keys = set(previous.symptoms), set(current.symptoms)
    return Change(
        previous_at=previous.diagnosed_at,
        risk_before=previous.risk,
        risk_after=current.risk,
        direction=direction,
        health_before=previous.health_score,
        health_after=current.health_score,
        appeared=[k for k in current.symptoms if k not in prev_keys],
        cleared=[k for k in previous.symptoms if k not in cur_keys],
    )
