"""The diagnosis use cases: resolve what the user typed, diagnose, remember the run, compare.

No Slack and no SQL here: the Flink API and the run history come in through protocols.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.diagnosis.report import Change, DiagnosisRun, Snapshot, Target, compare
from bot.diagnosis.resolve import (
    FlinkApi,
    Scope,
    deployment_target,
    diagnose,
    find_deployment,
    find_job,
)
from bot.flink.models import JobDiagnosis


@dataclass(frozen=True)
class Requester:
    team_id: str
    channel_id: str
    user_id: str


class StoredRunLike(Protocol):
    id: str
    target: Target
    snapshot: Snapshot
    diagnosis: dict[str, Any] | None


class RunHistory(Protocol):
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
    ) -> str: ...
    async def get(self, run_id: str) -> Any: ...


@dataclass(frozen=True)
class RunResult:
    run: DiagnosisRun
    run_id: str
    change: Change | None = None
    follow: bool = False  # asked for by deployment: a re-run diagnoses its current job


class DiagnosisService:
    """Everything `/flinkdiag job|deployment` and the Re-run/Share buttons need."""

    def __init__(
        self,
        api: FlinkApi,
        history: RunHistory,
        *,
        deadline: float = 60.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.api = api
        self.history = history
        self.deadline = deadline
        self.now = now or (lambda: datetime.now(UTC))

    async def _finish(
        self, who: Requester, target: Target, previous_id: str | None = None, *, follow: bool = False
    ) -> RunResult:
        run = await diagnose(self.api, target, now=self.now)
        change = None
        if previous_id:
            previous = await self.history.get(previous_id)
            if previous is not None:
                change = compare(previous.snapshot, run.snapshot())
                if previous.target.deployment_id == target.deployment_id:
                    change = change.model_copy(
                        update={"job_before": previous.target.job_id, "job_after": target.job_id}
                    )
        run_id = await self.history.save(
            team_id=who.team_id,
            channel_id=who.channel_id,
            user_id=who.user_id,
            target=target,
            snapshot=run.snapshot(),
            previous_run_id=previous_id,
            diagnosis=run.diagnosis.to_wire(),
        )
        return RunResult(run=run, run_id=run_id, change=change, follow=follow)

    async def diagnose_job(self, who: Requester, scope: Scope, job_id: str) -> RunResult:
        async with asyncio.timeout(self.deadline):
            target = await find_job(self.api, scope, job_id)
            return await self._finish(who, target)

    async def diagnose_deployment(self, who: Requester, scope: Scope, ref: str) -> RunResult:
        async with asyncio.timeout(self.deadline):
            namespace, deployment = await find_deployment(self.api, scope, ref)
            target = await deployment_target(self.api, scope, namespace, deployment)
            return await self._finish(who, target, follow=True)

    async def _current(self, target: Target) -> Target:
        """The same deployment's current job (it gets a new job id at every restart)."""
        scope = Scope(workspace=target.workspace, namespaces=[target.namespace], region=target.region)
        deployment = await self.api.get_deployment(target.workspace, target.namespace, target.deployment_id)
        return await deployment_target(self.api, scope, target.namespace, deployment)

    async def diagnose_target(self, who: Requester, target: Target) -> RunResult:
        """A target picked from a list of choices: it may name a deployment without a job yet."""
        async with asyncio.timeout(self.deadline):
            follow = not target.job_id
            if follow:
                target = await self._current(target)
            return await self._finish(who, target, follow=follow)

    async def rerun(
        self, who: Requester, target: Target, previous_run_id: str | None, *, follow: bool = False
    ) -> RunResult:
        """Diagnose again; with `follow`, the deployment's current job rather than `target`'s."""
        async with asyncio.timeout(self.deadline):
            if follow:
                target = await self._current(target)
            return await self._finish(who, target, previous_run_id, follow=follow)

    async def load(self, run_id: str) -> DiagnosisRun | None:
        """A stored run as it was shown (for Share)."""
        stored = await self.history.get(run_id)
        if stored is None or stored.diagnosis is None:
            return None
        return DiagnosisRun(
            target=stored.target,
            diagnosis=JobDiagnosis.model_validate(stored.diagnosis),
            diagnosed_at=stored.snapshot.diagnosed_at,
        )
