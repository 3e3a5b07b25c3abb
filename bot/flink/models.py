"""Typed models of the Flink OpenAPI (product `ververica`, version 2022-07-18).

Tolerant by design: the service's own documentation example is not valid JSON, so fields may be
missing, null, of a slightly different shape, or new. Unknown fields are kept (extra="allow") so
nothing the service sends is silently lost when a model is re-serialised.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return str(v)


class Symptom(WireModel):
    name: str = ""
    description: str = ""
    recommendation: str = ""

    @field_validator("name", "description", "recommendation", mode="before")
    @classmethod
    def _coerce(cls, v: object) -> str:
        return _text(v)


SYMPTOM_CATEGORIES: tuple[str, ...] = (
    "startup",
    "runtime",
    "troubleshooting",
    "state",
    "autopilot",
    "others",
)


def _symptom_list(v: object) -> list[Any]:
    if v is None or v == "":
        return []
    if isinstance(v, dict):
        return [v]
    if isinstance(v, list):
        return [s for s in v if isinstance(s, dict)]
    return []


class Symptoms(WireModel):
    startup: list[Symptom] = Field(default_factory=list)
    runtime: list[Symptom] = Field(default_factory=list)
    troubleshooting: list[Symptom] = Field(default_factory=list)
    state: list[Symptom] = Field(default_factory=list)
    # The page documents autopilot as one object, not a list; it may be absent.
    autopilot: Symptom | None = None
    others: list[Symptom] = Field(default_factory=list)

    @field_validator("startup", "runtime", "troubleshooting", "state", "others", mode="before")
    @classmethod
    def _lists(cls, v: object) -> list[Any]:
        return _symptom_list(v)

    @field_validator("autopilot", mode="before")
    @classmethod
    def _autopilot(cls, v: object) -> object:
        if isinstance(v, list):  # tolerate a list where one object is documented
            v = next((s for s in v if isinstance(s, dict)), None)
        if not isinstance(v, dict) or not any(v.get(k) for k in ("name", "description", "recommendation")):
            return None
        return v

    def by_category(self) -> dict[str, list[Symptom]]:
        """Every category in display order, autopilot as a 0/1-item list."""
        return {
            c: ([self.autopilot] if self.autopilot else []) if c == "autopilot" else list(getattr(self, c))
            for c in SYMPTOM_CATEGORIES
        }

    def count(self) -> int:
        return sum(len(v) for v in self.by_category().values())


class JobDiagnosis(WireModel):
    risk_level: str | None = None
    health_score: int | None = None
    diagnose_id: str | None = None
    diagnose_time: int | None = Field(default=None, description="epoch milliseconds")
    namespace: str | None = None
    workspace: str | None = None
    symptoms: Symptoms = Field(default_factory=Symptoms)

    @field_validator("symptoms", mode="before")
    @classmethod
    def _symptoms(cls, v: object) -> object:
        return v if isinstance(v, dict | Symptoms) else {}

    @field_validator("risk_level", mode="before")
    @classmethod
    def _risk(cls, v: object) -> object:
        if v is None:
            return None
        s = _text(v).strip()
        return s or None

    @field_validator("health_score", "diagnose_time", mode="before")
    @classmethod
    def _int(cls, v: object) -> object:
        if v is None or v == "":
            return None
        try:
            return int(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None


class JobStatus(WireModel):
    current_job_status: str | None = None
    failure: dict[str, Any] | None = None
    health_score: int | None = None
    risk_level: str | None = None
    running: dict[str, Any] | None = None


class Job(WireModel):
    job_id: str
    deployment_id: str | None = None
    deployment_name: str | None = None
    namespace: str | None = None
    workspace: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    status: JobStatus = Field(default_factory=JobStatus)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: object) -> object:
        return v if isinstance(v, dict | JobStatus) else {}

    @property
    def state(self) -> str | None:
        return self.status.current_job_status


class JobSummary(WireModel):
    starting: int = 0
    running: int = 0
    cancelling: int = 0
    cancelled: int = 0
    finished: int = 0
    failed: int = 0


class Deployment(WireModel):
    deployment_id: str
    name: str = ""
    namespace: str | None = None
    workspace: str | None = None
    labels: dict[str, Any] | None = None
    engine_version: str | None = None
    execution_mode: str | None = None
    job_summary: JobSummary | None = None


class Envelope(WireModel, Generic[T]):
    """The response envelope every operation shares; `success` tells the outcome, not the status."""

    request_id: str | None = None
    success: bool | None = None
    http_code: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    data: T | None = None
    access_denied_detail: Any = None
    # list operations
    page_index: int | None = None
    page_size: int | None = None
    total_size: int | None = None
