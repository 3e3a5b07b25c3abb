"""The simulator's world: workspaces → namespaces → deployments → jobs, and their wire shapes.

A scenario file is this model in JSON (or YAML) with camelCase keys; everything that can be
derived (ids, start times, job risk) may be left out. Ids are uuid5 of the names, so a scenario
always yields the same ids and demos and tests can refer to them.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.alias_generators import to_camel

from bot.flink.models import JobDiagnosis

# Fixed so ids are stable across runs and machines.
SIM_ID_NAMESPACE = uuid.UUID("5f0c2a4e-8d3b-5a7e-9c41-f1a7d1a9e2b0")

ACTIVE_STATUSES = frozenset({"STARTING", "RUNNING", "CANCELLING"})
JOB_STATUSES = ("STARTING", "RUNNING", "CANCELLING", "CANCELLED", "FINISHED", "FAILED")
HOUR_MS = 3_600_000


def deployment_id_for(workspace: str, namespace: str, name: str) -> str:
    """The id the simulator gives a deployment that has none in its scenario."""
    return str(uuid.uuid5(SIM_ID_NAMESPACE, f"deployment/{workspace}/{namespace}/{name}"))


def job_id_for(deployment_id: str, seq: int) -> str:
    """The id of a deployment's `seq`-th job (1-based), also for jobs started by a restart."""
    return str(uuid.uuid5(SIM_ID_NAMESPACE, f"job/{deployment_id}/{seq}"))


def now_ms() -> int:
    return int(time.time() * 1000)


class RawJson(str):
    """JSON text served exactly as it was given: `1e400`, NaN, `\\u0000` and lone surrogates would
    not survive a round trip through Python's json (1e400 comes back as Infinity, a lone
    surrogate cannot be encoded at all), and tests need the client to see what the service sent."""


class _SimModel(BaseModel):
    # extra="forbid": a typo in a hand-written scenario file should fail loudly, not be ignored.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SimJob(_SimModel):
    """One job (run) of a deployment."""

    job_id: str = ""
    status: Literal["STARTING", "RUNNING", "CANCELLING", "CANCELLED", "FINISHED", "FAILED"] = "RUNNING"
    start_time: int | None = None
    end_time: int | None = None
    restarts: int = Field(default=0, ge=0, description="running.observedFlinkJobRestarts")
    failure: dict[str, Any] | None = Field(
        default=None, description="{reason, message, failedAt} when FAILED"
    )
    risk_level: str | None = None
    health_score: int | None = None
    diagnosis: dict[str, Any] | None = Field(
        default=None, description="wire JobDiagnosis kept for a job that is no longer current"
    )
    _diagnosis_raw: RawJson | None = PrivateAttr(default=None)
    observed_flink_job_status: str = Field(default="RUNNING", description="running.observedFlinkJobStatus")

    @model_validator(mode="before")
    @classmethod
    def _wire_status(cls, data: Any) -> Any:
        # A scenario may spell a job's status the way the API does: a wire JobStatus object.
        if isinstance(data, dict) and isinstance(data.get("status"), dict):
            return {**data, **status_fields(WireJobStatus.model_validate(data["status"]))}
        return data


class WireJobFailure(_SimModel):
    """`failure` of the SDK's JobStatus (JobFailure: failedAt int, message, reason)."""

    failed_at: int | None = None
    message: str | None = None
    reason: str | None = None


class WireJobStatusRunning(_SimModel):
    """`running` of the SDK's JobStatus (JobStatusRunning)."""

    observed_flink_job_restarts: int | None = Field(default=None, ge=0)
    observed_flink_job_status: str | None = None


class WireJobStatus(_SimModel):
    """The body of `PUT /_sim/deployments/{id}/status`: a wire JobStatus, every field optional.

    Checked against alibabacloud_ververica20220718 1.14.0, models/_job_status.py, _job_failure.py
    and _job_status_running.py (field names and types). Unknown keys are refused (a typo in a
    test should fail, not be ignored).
    """

    current_job_status: (
        Literal["STARTING", "RUNNING", "CANCELLING", "CANCELLED", "FINISHED", "FAILED"] | None
    ) = None
    failure: WireJobFailure | None = None
    running: WireJobStatusRunning | None = None
    risk_level: str | None = None
    health_score: int | None = None


def status_fields(wire: WireJobStatus) -> dict[str, Any]:
    """The SimJob fields a wire JobStatus sets: only those it carries (a partial update)."""
    given = wire.model_fields_set
    out: dict[str, Any] = {}
    if "current_job_status" in given and wire.current_job_status is not None:
        out["status"] = wire.current_job_status
    if wire.running is not None:
        if "observed_flink_job_restarts" in wire.running.model_fields_set:
            out["restarts"] = wire.running.observed_flink_job_restarts or 0
        if "observed_flink_job_status" in wire.running.model_fields_set:
            out["observed_flink_job_status"] = wire.running.observed_flink_job_status or "RUNNING"
    if wire.failure is not None:
        out["failure"] = wire.failure.model_dump(by_alias=True, exclude_unset=True)
    if "risk_level" in given:
        out["risk_level"] = wire.risk_level
    if "health_score" in given:
        out["health_score"] = wire.health_score
    return out


class SimDeployment(_SimModel):
    """A deployment; its last job is its current one."""

    name: str
    deployment_id: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    engine_version: str = "vvr-8.0.11-flink-1.17"
    execution_mode: Literal["STREAMING", "BATCH"] = "STREAMING"
    description: str = ""
    creator: str = "flinkdiag-sim"
    created_at: int | None = None
    jobs: list[SimJob] = Field(default_factory=list, description="oldest first; the last is current")
    diagnosis: dict[str, Any] | None = Field(default=None, description="wire JobDiagnosis of the current job")
    _diagnosis_raw: RawJson | None = PrivateAttr(default=None)

    @property
    def current_job(self) -> SimJob | None:
        return self.jobs[-1] if self.jobs else None


class SimNamespace(_SimModel):
    name: str
    deployments: list[SimDeployment] = Field(default_factory=list)


class SimWorkspace(_SimModel):
    id: str
    namespaces: list[SimNamespace] = Field(default_factory=list)


@dataclass(frozen=True)
class Placed:
    """A deployment with the workspace and namespace it lives in."""

    workspace: str
    namespace: str
    deployment: SimDeployment


def _risk_and_health(wire: dict[str, Any] | None) -> tuple[str | None, int | None]:
    if not isinstance(wire, dict):
        return None, None
    # The project's own tolerant model reads odd shapes the same way the bot will.
    d = JobDiagnosis.model_validate(wire)
    return d.risk_level, d.health_score


class Fleet(_SimModel):
    """Everything the simulator serves. Build with `Fleet.model_validate(...)`; ids are filled in."""

    workspaces: list[SimWorkspace] = Field(default_factory=list)

    _deployments: dict[str, Placed] = PrivateAttr(default_factory=dict)
    _jobs: dict[str, tuple[Placed, SimJob]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _normalise(self) -> Fleet:
        self.normalise()
        return self

    def normalise(self, now: int | None = None) -> None:
        """Fill derived fields, check the fleet is coherent and rebuild the indexes."""
        now = now_ms() if now is None else now
        self._deployments.clear()
        self._jobs.clear()
        seen_ws: set[str] = set()
        for ws in self.workspaces:
            if ws.id in seen_ws:
                raise ValueError(f"workspace {ws.id!r} appears twice")
            seen_ws.add(ws.id)
            seen_ns: set[str] = set()
            for ns in ws.namespaces:
                if ns.name in seen_ns:
                    raise ValueError(f"namespace {ns.name!r} appears twice in workspace {ws.id!r}")
                seen_ns.add(ns.name)
                names: set[str] = set()
                for dep in ns.deployments:
                    if dep.name in names:
                        raise ValueError(f"deployment {dep.name!r} appears twice in {ws.id}/{ns.name}")
                    names.add(dep.name)
                    self._normalise_deployment(Placed(ws.id, ns.name, dep), now)

    def _normalise_deployment(self, placed: Placed, now: int) -> None:
        dep = placed.deployment
        if not dep.deployment_id:
            dep.deployment_id = deployment_id_for(placed.workspace, placed.namespace, dep.name)
        if dep.deployment_id in self._deployments:
            raise ValueError(f"deployment id {dep.deployment_id} appears twice")
        self._deployments[dep.deployment_id] = placed
        n = len(dep.jobs)
        for i, job in enumerate(dep.jobs):
            current = i == n - 1
            if not current and job.status in ACTIVE_STATUSES:
                raise ValueError(f"{dep.name}: only the last job of a deployment may be {job.status}")
            if not job.job_id:
                job.job_id = job_id_for(dep.deployment_id, i + 1)
            if job.job_id in self._jobs:
                raise ValueError(f"job id {job.job_id} appears twice")
            # Older jobs ran a day each, back to back, before the current one.
            if job.start_time is None:
                job.start_time = now - (n - i) * 24 * HOUR_MS + HOUR_MS
            if job.end_time is None and job.status not in ACTIVE_STATUSES:
                job.end_time = job.start_time + (20 * HOUR_MS if not current else HOUR_MS)
            source = dep.diagnosis if current else job.diagnosis
            risk, health = _risk_and_health(source)
            if job.risk_level is None:
                job.risk_level = risk
            if job.health_score is None:
                job.health_score = health
            self._jobs[job.job_id] = (placed, job)
        if dep.created_at is None:
            first = dep.jobs[0].start_time if dep.jobs else now
            dep.created_at = (first or now) - 2 * HOUR_MS

    # --- lookups

    def workspace(self, workspace_id: str) -> SimWorkspace | None:
        return next((w for w in self.workspaces if w.id == workspace_id), None)

    def namespace(self, workspace_id: str, namespace: str) -> SimNamespace | None:
        ws = self.workspace(workspace_id)
        return next((n for n in ws.namespaces if n.name == namespace), None) if ws else None

    def deployment(self, deployment_id: str) -> Placed | None:
        return self._deployments.get(deployment_id)

    def job(self, job_id: str) -> tuple[Placed, SimJob] | None:
        return self._jobs.get(job_id)

    def placed_deployments(self) -> list[Placed]:
        return list(self._deployments.values())

    # --- changes (the control API)

    def set_diagnosis(self, deployment_id: str, wire: dict[str, Any] | str) -> None:
        """Serve `wire` as the diagnosis of the deployment's current job (and of the next ones).

        `wire` as text (a JSON object) is served byte for byte, whatever Python's json would make of it.
        """
        raw = None
        if isinstance(wire, str):
            raw = RawJson(wire)
            wire = json.loads(wire)
        if not isinstance(wire, dict):
            raise TypeError("a diagnosis must be a JSON object")
        placed = self._require(deployment_id)
        placed.deployment.diagnosis = copy.deepcopy(wire)
        placed.deployment._diagnosis_raw = raw
        job = placed.deployment.current_job
        if job is not None:
            job.risk_level, job.health_score = _risk_and_health(wire)

    def restart(self, deployment_id: str, now: int | None = None) -> str:
        """Cancel the current job if it is active and start a new one; returns the new job id."""
        now = now_ms() if now is None else now
        placed = self._require(deployment_id)
        dep = placed.deployment
        old = dep.current_job
        if old is not None:
            if old.status in ACTIVE_STATUSES:
                old.status = "CANCELLED"
                old.end_time = now
            if old.diagnosis is None:
                old.diagnosis = copy.deepcopy(dep.diagnosis)
                old._diagnosis_raw = dep._diagnosis_raw
        risk, health = _risk_and_health(dep.diagnosis)
        job = SimJob(
            job_id=job_id_for(dep.deployment_id, len(dep.jobs) + 1),
            status="RUNNING",
            start_time=now,
            risk_level=risk,
            health_score=health,
        )
        if job.job_id in self._jobs:  # only when a scenario spelled out colliding ids
            job.job_id = str(uuid.uuid4())
        dep.jobs.append(job)
        self._jobs[job.job_id] = (placed, job)
        return job.job_id

    def set_status(self, deployment_id: str, wire: dict[str, Any], now: int | None = None) -> str:
        """What the current job reports from now on (ListJobs, GetJob): fields in `wire` replace
        those fields, `failure` and `running` key by key, the rest keep their values. Returns the
        job id. KeyError if the deployment is unknown, ValueError if it has no job (restart it)
        or `wire` is not a JobStatus."""
        now = now_ms() if now is None else now
        job = self._require(deployment_id).deployment.current_job
        if job is None:
            raise ValueError(f"deployment {deployment_id} has no job; start one with /restart")
        fields = status_fields(WireJobStatus.model_validate(wire))
        if "failure" in fields:
            fields["failure"] = {**(job.failure or {}), **fields["failure"]}
        for name, value in fields.items():
            setattr(job, name, value)
        if "status" in fields:
            job.end_time = None if job.status in ACTIVE_STATUSES else (job.end_time or now)
        if job.status == "FAILED" and (job.failure or {}).get("failedAt") is None:
            job.failure = {"reason": "JobFailed", "message": "The job failed."} | (job.failure or {})
            job.failure["failedAt"] = job.end_time
        return job.job_id

    def _require(self, deployment_id: str) -> Placed:
        placed = self._deployments.get(deployment_id)
        if placed is None:
            raise KeyError(deployment_id)
        return placed

    def summary(self) -> list[dict[str, Any]]:
        """One item per deployment: workspace, namespace, deploymentId, name, jobId, jobStatus."""
        out = []
        for p in self._deployments.values():
            job = p.deployment.current_job
            out.append(
                {
                    "workspace": p.workspace,
                    "namespace": p.namespace,
                    "deploymentId": p.deployment.deployment_id,
                    "name": p.deployment.name,
                    "jobId": job.job_id if job else None,
                    "jobStatus": job.status if job else None,
                }
            )
        return out


# --- wire shapes (what the API returns)


def job_summary_wire(dep: SimDeployment) -> dict[str, int]:
    counts = {s.lower(): 0 for s in JOB_STATUSES}
    for job in dep.jobs:
        counts[job.status.lower()] += 1
    return counts


def deployment_wire(placed: Placed, *, with_job_summary: bool = True) -> dict[str, Any]:
    dep = placed.deployment
    out: dict[str, Any] = {
        "deploymentId": dep.deployment_id,
        "name": dep.name,
        "namespace": placed.namespace,
        "workspace": placed.workspace,
        "labels": dict(dep.labels),
        "engineVersion": dep.engine_version,
        "executionMode": dep.execution_mode,
        "description": dep.description,
        "creator": dep.creator,
        "creatorName": dep.creator,
        "modifier": dep.creator,
        "modifierName": dep.creator,
        # The SDK types these two as strings (epoch milliseconds).
        "createdAt": str(dep.created_at),
        "modifiedAt": str(dep.created_at),
        "deploymentHasChanged": False,
        "deploymentTarget": {"mode": "PER_JOB", "name": "default-queue"},
        "artifact": {"kind": "SQLSCRIPT", "sqlArtifact": {"sqlScript": f"-- {dep.name}\nINSERT INTO ..."}},
    }
    if with_job_summary:
        out["jobSummary"] = job_summary_wire(dep)
    return out


def job_wire(placed: Placed, job: SimJob) -> dict[str, Any]:
    dep = placed.deployment
    status: dict[str, Any] = {"currentJobStatus": job.status}
    if job.risk_level is not None:
        status["riskLevel"] = job.risk_level
    if job.health_score is not None:
        status["healthScore"] = job.health_score
    if job.status == "RUNNING":
        status["running"] = {
            "observedFlinkJobRestarts": job.restarts,
            "observedFlinkJobStatus": job.observed_flink_job_status,
        }
    if job.status == "FAILED":
        status["failure"] = job.failure or {
            "reason": "JobFailed",
            "message": "The job failed.",
            "failedAt": job.end_time,
        }
    out: dict[str, Any] = {
        "jobId": job.job_id,
        "deploymentId": dep.deployment_id,
        "deploymentName": dep.name,
        "namespace": placed.namespace,
        "workspace": placed.workspace,
        "engineVersion": dep.engine_version,
        "executionMode": dep.execution_mode,
        "startTime": job.start_time,
        "createdAt": str(job.start_time),
        "modifiedAt": str(job.end_time or job.start_time),
        "creator": dep.creator,
        "status": status,
    }
    if job.end_time is not None:
        out["endTime"] = job.end_time
    return out


def diagnosis_wire(placed: Placed, job: SimJob) -> dict[str, Any] | RawJson | None:
    """The stored wire diagnosis for `job`, exactly as stored (tests rely on odd shapes surviving):
    the very text it was set as, when it was set as text."""
    dep = placed.deployment
    owner: SimDeployment | SimJob = dep if dep.current_job is job else job
    if owner._diagnosis_raw is not None:
        return owner._diagnosis_raw
    return copy.deepcopy(owner.diagnosis)


# --- scenario files


def load_scenario(path: str | Path) -> Fleet:
    """Read a fleet from a JSON or YAML scenario file (camelCase keys, ids optional)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if p.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    return Fleet.model_validate(data)


# --- the default fleet

_SymptomT = dict[str, str]


def _s(name: str, description: str, recommendation: str) -> _SymptomT:
    return {"name": name, "description": description, "recommendation": recommendation}


_SYMPTOMS: dict[str, _SymptomT] = {
    "jm_memory": _s(
        "Startup speed analysis",
        "Slow job startup caused by insufficient JobManager resource allocation: building the "
        "execution graph took 94 s, 61 s of it in full GC.",
        "Increase the JobManager memory from 1 GiB to 4 GiB.",
    ),
    "backpressure": _s(
        "Backpressure",
        "Operator `Join[orders, payments]` was back-pressured for 27 of the last 30 minutes "
        "(busy ratio 0.97). Lag of source `kafka_payments` grew from 12,000 to 1.8 million records.",
        "Raise the parallelism of the join from 4 to 8, or enable mini-batch "
        "(`table.exec.mini-batch.enabled: true`, `table.exec.mini-batch.allow-latency: 2s`).",
    ),
    "checkpoint_failures": _s(
        "Checkpoint failures",
        "7 of the last 10 checkpoints failed with `Checkpoint expired before completing` "
        "(timeout 10 min). The last successful checkpoint completed 38 minutes ago.",
        "Enable unaligned checkpoints (`execution.checkpointing.unaligned: true`) and resolve the "
        "backpressure first; a restart now would replay 38 minutes of input.",
    ),
    "restarts": _s(
        "Frequent failover",
        "The job restarted 6 times in the last 30 minutes. Last cause: "
        "`java.util.concurrent.TimeoutException: Heartbeat of TaskManager with id "
        "payments-fraud-scoring-taskmanager-1-4 timed out.`",
        "Check the TaskManager logs around the failovers; raise `heartbeat.timeout` only after "
        "ruling out long GC pauses.",
    ),
    "tm_oom": _s(
        "TaskManager out of memory",
        "TaskManager `recommendation-features-taskmanager-1-3` was killed by the OOM killer (exit code "
        "137) 4 times in the last 30 minutes; managed memory usage 99%.",
        "Increase TaskManager memory from 4 GiB to 8 GiB, or lower `taskmanager.memory.managed.fraction` "
        "from 0.4 to 0.3 if the job keeps little RocksDB state.",
    ),
    "gc": _s(
        "Frequent GC",
        "Garbage collection takes 38% of TaskManager CPU time; the average old-generation pause is 2.4 s.",
        "Give the TaskManager heap more room (`taskmanager.memory.task.heap.size: 3g`) or reduce "
        "the size of the per-record feature map.",
    ),
    "state_growth": _s(
        "State size growth",
        "Keyed state of operator `GroupAggregate(groupBy=[sku_id, warehouse_id])` grew from 18 GiB "
        "to 64 GiB in 24 hours; no state TTL is set.",
        "Set `table.exec.state.ttl: 36 h` if keys older than a day and a half never change again.",
    ),
    "large_checkpoint": _s(
        "Large checkpoints",
        "Checkpoints are 120 GiB and take 6 minutes on average; incremental checkpoints are disabled.",
        "Enable incremental checkpoints (`state.backend.incremental: true`).",
    ),
    "skew": _s(
        "Data skew",
        "Subtask 3 of `GlobalWindowAggregate` processes 71% of all records; most of them have the "
        "key `null`.",
        "Filter or salt null keys before the aggregation and enable two-phase aggregation "
        "(`table.optimizer.agg-phase-strategy: TWO_PHASE`).",
    ),
    "skew_zh": _s(
        "数据倾斜",
        "算子 `LocalWindowAggregate` 的子任务 5 处理了 68% 的数据，热点 key 为 `page_id=home`。",
        "建议开启两阶段聚合（`table.optimizer.agg-phase-strategy: TWO_PHASE`），或对热点 key 加盐打散。",
    ),
    "watermark": _s(
        "Watermark lag",
        "The watermark of source `kafka_sessions` lags processing time by 47 minutes; 3 of 12 "
        "partitions have received no data for an hour.",
        "Set `table.exec.source.idle-timeout: 30 s` so idle partitions stop holding back the watermark.",
    ),
    "late_data": _s(
        "Late records dropped",
        "About 12,480 records per minute arrive after their session window closed and are dropped.",
        "Fix the watermark lag first; then consider a larger allowed lateness.",
    ),
    "binlog_lag": _s(
        "Binlog read lag",
        "The MySQL CDC source is 23 minutes behind the binlog head (currentFetchEventTimeLag).",
        "Give the source a wider `server-id` range and raise its parallelism from 2 to 4.",
    ),
    "sink_latency": _s(
        "Sink write latency",
        "Hologres sink flushes take 4.2 s at p99; the sink is the slowest operator of the job.",
        "Raise `jdbcWriteBatchSize` from 256 to 1024 and enable `jdbcWriteFlushInterval: 1s`.",
    ),
    "class_not_found": _s(
        "Job failed: ClassNotFoundException",
        "java.lang.ClassNotFoundException: com.example.logistics.GeoHashUdf. The UDF JAR is not among "
        "the deployment's additional dependencies.",
        "Upload `logistics-udf-2.3.1.jar`, add it under Additional dependencies and start the "
        "deployment again.",
    ),
    "kafka_auth": _s(
        "Kafka authentication failed",
        "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism PLAIN.",
        "Rotate the password stored in the namespace variable `kafka-logistics-password`.",
    ),
    "autopilot_down": _s(
        "Resource tuning suggestion",
        "CPU utilisation of all TaskManagers stayed below 15% for 7 days.",
        "Autopilot recommends lowering the parallelism from 16 to 6, which saves about 10 CU.",
    ),
    "autopilot_up": _s(
        "Resource tuning plan pending",
        "Autopilot runs in monitoring mode and has a plan it has not applied.",
        "Apply the plan: parallelism 8 → 12, TaskManager memory 4 GiB → 6 GiB.",
    ),
    "engine_eol": _s(
        "Engine version near end of support",
        "The deployment runs vvr-6.0.7-flink-1.15, which is no longer maintained.",
        "Upgrade to vvr-8.0.11-flink-1.17; check the state compatibility notes before restarting.",
    ),
    "deprecated_option": _s(
        "Deprecated connector option <scan.startup.mode>",
        "Table `ad_impressions` uses `'scan.startup.mode' = 'latest-offset'` & a *deprecated* option "
        "`properties.auto.offset.reset`; both are set, the second is ignored.",
        "Remove `properties.auto.offset.reset` from the DDL (see <https://example.com/docs?a=1&b=2>).",
    ),
    "long_text": _s(
        "Slow operator analysis",
        "The operator `Calc(select=[user_id, features, UDF_EMBED(features) AS embedding])` is the slowest "
        "in the job. Over the last 30 minutes its average processing time per record was 41 ms, while "
        "every other operator stayed under 1 ms. Its input queue was full for 88% of that time and its "
        "output queue empty for 93%, which means the UDF itself, not the downstream, limits throughput. "
        "Profiling samples show 72% of the CPU time inside `EmbeddingClient.call`, a synchronous HTTP "
        "call made once per record, and 19% in JSON serialisation of the feature map. The external "
        "service answered within 35-60 ms. With a parallelism of 8, the operator cannot process more "
        "than about 195 records per second, while the source receives about 1,400 per second, so the "
        "lag keeps growing and will not recover on its own.",
        "Replace the per-record call with an asynchronous lookup (Async I/O with a capacity of 100), "
        "batch the embedding requests, or cache embeddings of recently seen users. Raising the "
        "parallelism alone would need about 64 slots.",
    ),
}


@dataclass(frozen=True)
class _Spec:
    namespace: str
    name: str
    labels: dict[str, str]
    risk: str | None
    health: int | None
    symptoms: dict[str, list[str]]  # category -> symptom keys; "autopilot" takes one key
    jobs: tuple[str, ...]  # statuses, oldest first
    engine: str = "vvr-8.0.11-flink-1.17"
    restarts: int = 0
    failure: tuple[str, str] | None = None  # (reason, message)
    uptime_hours: int = 30


_DEFAULT_WORKSPACE = "ws-demo"

_DEFAULT_SPECS: tuple[_Spec, ...] = (
    _Spec("default-namespace", "orders-etl", {"team": "orders", "tier": "critical"},
          "RISK_LEVEL_LOW", 96, {}, ("CANCELLED", "RUNNING"), uptime_hours=72),
    _Spec("default-namespace", "payments-fraud-scoring", {"team": "payments", "tier": "critical"},
          "RISK_LEVEL_HIGH", 42,
          {"runtime": ["backpressure"], "state": ["checkpoint_failures"], "troubleshooting": ["restarts"]},
          ("CANCELLED", "CANCELLED", "RUNNING"), restarts=6, uptime_hours=5),
    _Spec("default-namespace", "inventory-sync", {"team": "supply"},
          "RISK_LEVEL_MID", 71, {"state": ["state_growth"], "autopilot": ["autopilot_up"]}, ("RUNNING",)),
    _Spec("default-namespace", "user-profile-enricher", {"team": "growth"},
          "RISK_LEVEL_LOW", 88, {"autopilot": ["autopilot_down"], "others": ["engine_eol"]}, ("RUNNING",),
          engine="vvr-6.0.7-flink-1.15", uptime_hours=400),
    _Spec("default-namespace", "cdc-mysql-to-hologres", {"team": "data-platform", "source": "mysql"},
          "RISK_LEVEL_MID", 65, {"startup": ["jm_memory"], "runtime": ["binlog_lag", "sink_latency"]},
          ("RUNNING",), uptime_hours=2),
    _Spec("default-namespace", "logistics-tracking", {"team": "logistics"},
          "RISK_LEVEL_HIGH", 35, {"troubleshooting": ["class_not_found", "kafka_auth"]},
          ("CANCELLED", "FAILED"),
          failure=("ClassNotFoundException",
                   "java.lang.ClassNotFoundException: com.example.logistics.GeoHashUdf")),
    _Spec("default-namespace", "notification-dispatcher", {"team": "messaging"},
          "RISK_LEVEL_LOW", 100, {}, ("CANCELLED",)),
    _Spec("default-namespace", "recommendation-features", {"team": "ml", "tier": "critical"},
          "RISK_LEVEL_HIGH", 55, {"runtime": ["tm_oom", "gc"], "others": ["long_text"]}, ("RUNNING",),
          restarts=4, uptime_hours=11),
    _Spec("analytics", "clickstream-agg", {"team": "analytics"},
          "RISK_LEVEL_MID", 74, {"runtime": ["skew", "skew_zh"]}, ("CANCELLED", "RUNNING")),
    _Spec("analytics", "ad-impressions-rollup", {"team": "ads"},
          "RISK_LEVEL_LOW", 92, {"others": ["deprecated_option"]}, ("RUNNING",), uptime_hours=150),
    _Spec("analytics", "session-windowing", {"team": "analytics"},
          "RISK_LEVEL_HIGH", 48,
          {"runtime": ["watermark", "late_data"], "state": ["large_checkpoint"]}, ("RUNNING",), restarts=1),
    _Spec("analytics", "daily-kpi-backfill", {"team": "analytics", "kind": "backfill"}, None, None, {}, ()),
)  # fmt: skip


def _diagnosis_for(spec: _Spec, deployment_id: str, now: int) -> dict[str, Any] | None:
    if spec.risk is None:
        return None
    symptoms: dict[str, Any] = {c: [] for c in ("startup", "runtime", "troubleshooting", "state", "others")}
    for category, keys in spec.symptoms.items():
        if category == "autopilot":
            symptoms["autopilot"] = dict(_SYMPTOMS[keys[0]])
        else:
            symptoms[category] = [dict(_SYMPTOMS[k]) for k in keys]
    return {
        "riskLevel": spec.risk,
        "healthScore": spec.health,
        "diagnoseId": str(uuid.uuid5(SIM_ID_NAMESPACE, f"diagnosis/{deployment_id}")),
        "diagnoseTime": now - 2 * 60_000,
        "namespace": spec.namespace,
        "workspace": _DEFAULT_WORKSPACE,
        "symptoms": symptoms,
    }


def default_fleet(now: int | None = None) -> Fleet:
    """The demo fleet: workspace `ws-demo`, namespaces `default-namespace` and `analytics`, 12 deployments.

    Levels LOW/MID/HIGH with health scores in the console's bands; `logistics-tracking` (FAILED),
    `notification-dispatcher` (CANCELLED) and `daily-kpi-backfill` (never started) have no running job.
    """
    now = now_ms() if now is None else now
    namespaces: dict[str, list[SimDeployment]] = {}
    for spec in _DEFAULT_SPECS:
        dep_id = deployment_id_for(_DEFAULT_WORKSPACE, spec.namespace, spec.name)
        jobs: list[SimJob] = []
        n = len(spec.jobs)
        current_start = now - spec.uptime_hours * HOUR_MS
        for i, status in enumerate(spec.jobs):
            # Older runs: two days each, back to back, ending shortly before the current one started.
            start = current_start - (n - 1 - i) * 48 * HOUR_MS
            job = SimJob(
                status=status,  # type: ignore[arg-type]
                start_time=start,
                end_time=None
                if status in ACTIVE_STATUSES
                else start + (HOUR_MS if i == n - 1 else 47 * HOUR_MS),
                restarts=spec.restarts if i == n - 1 else 0,
            )
            if status == "FAILED" and spec.failure:
                job.failure = {
                    "reason": spec.failure[0],
                    "message": spec.failure[1],
                    "failedAt": job.end_time,
                }
            jobs.append(job)
        dep = SimDeployment(
            name=spec.name,
            deployment_id=dep_id,
            labels=spec.labels,
            engine_version=spec.engine,
            description=f"{spec.name} (flinkdiag demo fleet)",
            created_at=(jobs[0].start_time if jobs else now) - 2 * HOUR_MS,  # type: ignore[operator]
            jobs=jobs,
            diagnosis=_diagnosis_for(spec, dep_id, now),
        )
        # Earlier runs were as healthy as the current one when they stopped.
        for job in jobs[:-1]:
            job.diagnosis = copy.deepcopy(dep.diagnosis)
        namespaces.setdefault(spec.namespace, []).append(dep)
    return Fleet(
        workspaces=[
            SimWorkspace(
                id=_DEFAULT_WORKSPACE,
                namespaces=[SimNamespace(name=ns, deployments=deps) for ns, deps in namespaces.items()],
            )
        ]
    )
