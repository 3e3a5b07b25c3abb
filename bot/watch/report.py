"""A channel's fleet report: rows worst first, a summary line, change since the last report. Pure."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from bot.diagnosis.risk import Risk
from bot.watch.model import WatchTarget


class ReportRow(BaseModel):
    deployment_id: str
    deployment_name: str | None = None
    namespace: str
    risk: str | None = None  # last observed level (raw), None when never checked / no job
    health_score: int | None = None
    top_symptom: str | None = None
    # failed | restarting | ok | no_job | cannot_check | not_checked | paused
    status: str = "ok"
    job_status: str | None = None  # currentJobStatus at the last check (CANCELLED is not a failure)
    last_checked_at: datetime | None = None
    previous_risk: str | None = None  # as of the last report
    previous_health: int | None = None
    previous_status: str | None = None
    new_since_last: bool = False  # not in the last report
    in_last_report: bool = False  # there is a previous value to compare with

    @property
    def label(self) -> str:
        return self.deployment_name or self.deployment_id

    @property
    def change(self) -> str | None:
        """'up', 'down', 'same' or None when there is nothing to compare with."""
        if not self.in_last_report or (self.previous_risk is None and self.risk is None):
            return None
        before, after = Risk.parse(self.previous_risk), Risk.parse(self.risk)
        return "up" if after > before else "down" if after < before else "same"

    @property
    def status_change(self) -> str | None:
        """The status of the last report when it differs (e.g. `failed` for a job running again)."""
        if not self.in_last_report or self.previous_status is None or self.previous_status == self.status:
            return None
        return self.previous_status

    @property
    def health_delta(self) -> int | None:
        if not self.in_last_report or self.health_score is None or self.previous_health is None:
            return None
        return self.health_score - self.previous_health


class FleetReport(BaseModel):
    channel_id: str
    generated_at: datetime
    rows: list[ReportRow] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many at each level, for the summary line ("2 high, 5 mid, 41 low")."""
        out: dict[str, int] = {}
        for r in self.rows:
            key = Risk.parse(r.risk).label.lower() if r.status == "ok" else r.status.replace("_", " ")
            out[key] = out.get(key, 0) + 1
        return out

    def summary(self) -> str:
        order = ["failed", "restarting", "high", "mid", "low"]
        counts = self.counts()
        keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
        return ", ".join(f"{counts[k]} {k}" for k in keys) or "nothing watched"


_FIRST = {"failed": 0, "restarting": 1}
_JUDGED = frozenset({"ok", "failed", "restarting"})


def _sort_key(r: ReportRow) -> tuple[int, int, int, int, str]:
    # Worst first: failed jobs, restart loops, then highest risk, then lowest health; rows we
    # could not judge right after the risky ones.
    first = _FIRST.get(r.status, 2)
    rank = Risk.parse(r.risk).rank if r.status in _JUDGED else 0
    unknown = 0 if r.status in _JUDGED else 1
    return (first, -rank, unknown, r.health_score if r.health_score is not None else 101, r.label)


def build_report(
    channel_id: str,
    targets: list[WatchTarget],
    previous: dict[str, dict[str, object]] | None,
    now: datetime,
    *,
    failure_threshold: int = 3,
) -> FleetReport:
    """One row per watched deployment (deduplicated across the channel's watches)."""
    previous = previous or {}
    rows: dict[str, ReportRow] = {}
    for t in targets:
        if t.muted or t.deployment_id in rows:
            continue
        s = t.state
        if s.last_checked_at is None:
            status = "not_checked"
        elif s.failure_streak >= failure_threshold:
            status = "cannot_check"
        elif s.last_kind == "no_job":
            status = "no_job"
        elif s.incident.failed:
            status = "failed"
        elif s.incident.restarting:
            status = "restarting"
        else:
            status = "ok"
        judged = status in _JUDGED
        prev = previous.get(t.deployment_id)
        rows[t.deployment_id] = ReportRow(
            deployment_id=t.deployment_id,
            deployment_name=t.deployment_name,
            namespace=t.namespace,
            risk=s.last_observed_risk if judged else None,
            health_score=s.last_health_score if judged else None,
            top_symptom=t.top_symptom if judged else None,
            status=status,
            job_status=s.last_job_status,
            last_checked_at=s.last_checked_at,
            previous_risk=prev.get("risk") if prev else None,  # type: ignore[arg-type]
            previous_health=prev.get("health") if prev else None,  # type: ignore[arg-type]
            previous_status=prev.get("status") if prev else None,  # type: ignore[arg-type]
            new_since_last=bool(previous) and prev is None,
            in_last_report=prev is not None,
        )
    ordered = sorted(rows.values(), key=_sort_key)
    return FleetReport(channel_id=channel_id, generated_at=now, rows=ordered)


def snapshot_of(report: FleetReport) -> dict[str, dict[str, object]]:
    """What to keep of this report to compare the next one against."""
    return {
        r.deployment_id: {"risk": r.risk, "health": r.health_score, "status": r.status} for r in report.rows
    }
