"""Diagnosis runs: what each diagnosis found, kept to tell the next one what changed."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import RowMapping, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.diagnosis.report import Snapshot, SymptomKey, Target
from bot.flink.models import clean_json
from bot.store.models import DiagnosisRunRow

_t = DiagnosisRunRow.__table__
# health_score is a 32-bit INTEGER on PostgreSQL; SQLite refuses integers past 64 bits.
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _int32(v: int | None) -> int | None:
    return v if v is not None and _INT32_MIN <= v <= _INT32_MAX else None


def new_run_id() -> str:
    """A short URL-safe id: 12 characters, 72 random bits (collisions are not a practical concern)."""
    return secrets.token_urlsafe(9)


class StoredRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    target: Target
    snapshot: Snapshot
    previous_run_id: str | None = None
    team_id: str
    channel_id: str
    user_id: str
    diagnosis: dict[str, Any] | None = None  # wire format, as shown (None for runs before 0002)


class RunRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def save(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        target: Target,
        snapshot: Snapshot,
        previous_run_id: str | None,
        diagnosis: dict[str, Any] | None = None,
    ) -> str:
        """Store one run and return its new id."""
        if snapshot.diagnosed_at.tzinfo is None:
            raise ValueError("snapshot.diagnosed_at must be tz-aware")
        run_id = new_run_id()
        stmt = insert(_t).values(
            id=run_id,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            workspace=target.workspace,
            namespace=target.namespace,
            deployment_id=target.deployment_id,
            deployment_name=target.deployment_name,
            job_id=target.job_id,
            region=target.region,
            risk=snapshot.risk,
            # The models already keep both in range and clean; a run built some other way must
            # still not make the insert fail, or the command answers "something went wrong".
            health_score=_int32(snapshot.health_score),
            symptoms=clean_json([k.model_dump() for k in snapshot.symptoms]),
            diagnosed_at=snapshot.diagnosed_at,
            previous_run_id=previous_run_id,
            diagnosis=clean_json(diagnosis),
        )
        async with self._sessions.begin() as session:
            await session.execute(stmt)
        return run_id

    async def get(self, run_id: str) -> StoredRun | None:
        """The run with this id, None when there is none."""
        async with self._sessions() as session:
            row = (await session.execute(select(*_t.c).where(_t.c.id == run_id))).one_or_none()
        return _stored(row._mapping) if row else None

    async def latest_for(self, target: Target) -> StoredRun | None:
        """The newest run of the same job (workspace, namespace, deployment and job id)."""
        stmt = (
            select(*_t.c)
            .where(
                _t.c.workspace == target.workspace,
                _t.c.namespace == target.namespace,
                _t.c.deployment_id == target.deployment_id,
                _t.c.job_id == target.job_id,
            )
            .order_by(_t.c.diagnosed_at.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.execute(stmt)).one_or_none()
        return _stored(row._mapping) if row else None


def _stored(m: RowMapping) -> StoredRun:
    return StoredRun(
        id=m["id"],
        team_id=m["team_id"],
        channel_id=m["channel_id"],
        user_id=m["user_id"],
        previous_run_id=m["previous_run_id"],
        diagnosis=m["diagnosis"],
        target=Target(
            workspace=m["workspace"],
            namespace=m["namespace"],
            deployment_id=m["deployment_id"],
            job_id=m["job_id"],
            deployment_name=m["deployment_name"],
            region=m["region"],
        ),
        snapshot=Snapshot(
            risk=m["risk"],
            health_score=m["health_score"],
            symptoms=[SymptomKey.model_validate(s) for s in m["symptoms"]],
            diagnosed_at=m["diagnosed_at"],
        ),
    )
