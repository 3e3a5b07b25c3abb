"""Turning what a user knows (a job id, a deployment name or id) into a diagnosis.

Talks to the Flink API only through the `FlinkApi` protocol, so it never sees HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from bot.commands import looks_like_uuid
from bot.diagnosis.report import DiagnosisRun, Target
from bot.flink.errors import DeploymentNotFound, FlinkError, FlinkNotFound, JobNotFound
from bot.flink.models import Deployment, Job, JobDiagnosis

# A job in one of these states is the deployment's "current" job.
ACTIVE_STATES = frozenset({"RUNNING", "STARTING", "RESTARTING", "CREATED", "INITIALIZING", "RECONCILING"})


class FlinkApi(Protocol):
    async def get_job_diagnosis(
        self, workspace: str, namespace: str, deployment_id: str, job_id: str
    ) -> JobDiagnosis: ...
    async def get_job(self, workspace: str, namespace: str, job_id: str) -> Job: ...
    async def list_jobs(self, workspace: str, namespace: str, deployment_id: str) -> list[Job]: ...
    async def recent_jobs(self, workspace: str, namespace: str, deployment_id: str) -> list[Job]: ...
    async def get_deployment(self, workspace: str, namespace: str, deployment_id: str) -> Deployment: ...
    async def get_deployments_by_name(
        self, workspace: str, namespace: str, name: str
    ) -> list[Deployment]: ...
    async def list_deployments(
        self, workspace: str, namespace: str, *, name: str | None = None
    ) -> list[Deployment]: ...


class Scope(BaseModel):
    """Where to look: one workspace, one or more namespaces (searched concurrently)."""

    workspace: str
    namespaces: list[str]
    region: str | None = None

    def describe(self) -> str:
        ns = ", ".join(f"`{n}`" for n in self.namespaces)
        word = "namespace" if len(self.namespaces) == 1 else "namespaces"
        return f"{word} {ns} (workspace `{self.workspace}`)"


class ScopeMissing(FlinkError):
    kind = "scope_missing"
    default_sentence = "I don't know which workspace and namespace to look in."


class Ambiguous(FlinkError):
    """Several matches: the user must choose."""

    kind = "ambiguous"

    def __init__(self, what: str, candidates: Sequence[Target]) -> None:
        self.candidates = list(candidates)
        where = ", ".join(f"`{c.namespace}`" for c in self.candidates)
        super().__init__(
            f"ambiguous {what}",
            user_message=f"{what} matches {len(self.candidates)} deployments (in {where}); pick one.",
        )


class NoRunningJob(FlinkError):
    kind = "no_running_job"

    def __init__(self, deployment: Deployment, namespace: str, last_job: Job | None) -> None:
        self.deployment = deployment
        self.namespace = namespace
        self.last_job = last_job
        label = deployment.name or deployment.deployment_id
        if last_job is not None:
            tail = f" Its last job `{last_job.job_id}` is {last_job.state or 'in an unknown state'}."
        else:
            tail = " It has never run a job."
        super().__init__(
            "no running job",
            user_message=f"Deployment `{label}` in namespace `{namespace}` has no running job.{tail}",
        )


def pick_scope(
    *,
    workspace: str | None,
    namespace: str | None,
    channel_workspace: str | None,
    channel_namespace: str | None,
    configured_workspace: str | None,
    configured_namespaces: Sequence[str],
    region: str | None,
) -> Scope:
    """Options first, then the channel's defaults, then the configured defaults."""
    ws = workspace or channel_workspace or configured_workspace
    if namespace:
        nss = [namespace]
    elif channel_namespace:
        nss = [channel_namespace]
    else:
        nss = list(dict.fromkeys(configured_namespaces))
    missing = [n for n, v in (("workspace", ws), ("namespace", nss)) if not v]
    if missing:
        what = " and ".join(missing)
        raise ScopeMissing(
            f"no {what}",
            user_message=(
                f"I don't know which {what} to use: pass `--{missing[0]} …`, or set this channel's "
                f"defaults with `/flinkdiag defaults namespace=N workspace=W`."
            ),
        )
    return Scope(workspace=ws, namespaces=nss, region=region)  # type: ignore[arg-type]


async def _each_namespace(
    scope: Scope, call: Callable[[str], Any]
) -> tuple[list[tuple[str, Any]], list[FlinkError]]:
    """Run `call(ns)` in every namespace concurrently: (answers, failures); not-found drops out."""
    results = await asyncio.gather(*(call(ns) for ns in scope.namespaces), return_exceptions=True)
    found: list[tuple[str, Any]] = []
    errors: list[FlinkError] = []
    for ns, r in zip(scope.namespaces, results, strict=True):
        if isinstance(r, FlinkNotFound):
            continue
        if isinstance(r, FlinkError):
            errors.append(r)
            continue
        if isinstance(r, BaseException):
            raise r
        found.append((ns, r))
    return found, errors


async def find_job(api: FlinkApi, scope: Scope, job_id: str) -> Target:
    """Find which namespace holds the job and which deployment it belongs to (GetJob)."""
    found, errors = await _each_namespace(scope, lambda ns: api.get_job(scope.workspace, ns, job_id))
    if not found and errors:
        raise errors[0]  # a namespace we could not search may hold it: not "not found"
    if not found:
        raise JobNotFound(
            f"job {job_id} not found",
            user_message=f"Job `{job_id}` was not found in {scope.describe()}.",
        )
    targets = [
        Target(
            workspace=scope.workspace,
            namespace=ns,
            deployment_id=job.deployment_id or "",
            deployment_name=job.deployment_name,
            job_id=job.job_id or job_id,
            region=scope.region,
        )
        for ns, job in found
    ]
    if any(not t.deployment_id for t in targets):
        raise JobNotFound(
            "job has no deployment id",
            user_message=f"Job `{job_id}` was found but the API did not say which deployment it belongs to.",
        )
    if len(targets) > 1:
        raise Ambiguous(f"Job `{job_id}`", targets)
    return targets[0]


async def find_deployment(api: FlinkApi, scope: Scope, ref: str) -> tuple[str, Deployment]:
    """A deployment by id (when it looks like one) or by name, in every namespace of the scope."""

    async def lookup(ns: str) -> list[Deployment]:
        if looks_like_uuid(ref):
            try:
                return [await api.get_deployment(scope.workspace, ns, ref)]
            except FlinkNotFound:
                pass  # a name may look like a UUID too
        return await api.get_deployments_by_name(scope.workspace, ns, ref)

    found, errors = await _each_namespace(scope, lookup)
    matches = [(ns, d) for ns, ds in found for d in ds]
    if not matches and errors:
        raise errors[0]  # a namespace we could not search may hold it: not "not found"
    if not matches:
        raise DeploymentNotFound(
            f"deployment {ref} not found",
            user_message=f"No deployment named or with id `{ref}` in {scope.describe()}.",
        )
    if len(matches) > 1:
        raise Ambiguous(
            f"Deployment `{ref}`",
            [
                Target(
                    workspace=scope.workspace,
                    namespace=ns,
                    deployment_id=d.deployment_id,
                    deployment_name=d.name,
                    job_id="",
                    region=scope.region,
                )
                for ns, d in matches
            ],
        )
    return matches[0]


def current_job(jobs: Sequence[Job]) -> Job | None:
    """The deployment's running job: the newest one in an active state."""
    active = [j for j in jobs if (j.state or "").upper() in ACTIVE_STATES]
    if not active:
        return None
    return max(active, key=lambda j: j.start_time or 0)


async def deployment_target(api: FlinkApi, scope: Scope, namespace: str, deployment: Deployment) -> Target:
    """The target for a deployment's current job; NoRunningJob when there is none."""
    jobs = await api.recent_jobs(scope.workspace, namespace, deployment.deployment_id)
    job = current_job(jobs)
    if job is None:
        last = max(jobs, key=lambda j: j.start_time or 0) if jobs else None
        raise NoRunningJob(deployment, namespace, last)
    return Target(
        workspace=scope.workspace,
        namespace=namespace,
        deployment_id=deployment.deployment_id,
        deployment_name=deployment.name or job.deployment_name,
        job_id=job.job_id,
        region=scope.region,
    )


async def diagnose(
    api: FlinkApi, target: Target, *, now: Callable[[], datetime] | None = None
) -> DiagnosisRun:
    """Call GetJobDiagnosis for a resolved target."""
    diagnosis = await api.get_job_diagnosis(
        target.workspace, target.namespace, target.deployment_id, target.job_id
    )
    clock = now or (lambda: datetime.now(UTC))
    return DiagnosisRun(target=target, diagnosis=diagnosis, diagnosed_at=clock())
