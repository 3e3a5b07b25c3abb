"""Typed models of the Flink OpenAPI (product `ververica`, version 2022-07-18).

Tolerant by design: the service's own documentation example is not valid JSON, so fields may be
missing, null, of a slightly different shape, or new. Unknown fields are kept (extra="allow") so
nothing the service sends is silently lost when a model is re-serialised.

Odd data is data: this is the one boundary where what the API sends is made safe for everything
after it. Every model strips from text what PostgreSQL (NUL) or UTF-8 (lone surrogates) cannot
hold, turns numbers JSON cannot carry (NaN, ±Infinity from `1e400`) into nothing, keeps scores and
times inside ranges that fit the database's columns, and shows values of the wrong type as text
(JSON, never a Python repr) — recursively, unknown fields included, because `to_wire()` output is
stored as JSON(B) and rendered into Slack messages.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")

# C0 controls other than tab, newline and carriage return (NUL is refused by PostgreSQL text and
# JSONB; the others only garble a chat message), and UTF-16 surrogates: json.loads pairs up
# proper pairs, so any left are lone and cannot be encoded as UTF-8 at all.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Deeper than this, unknown nested content is dropped: nothing the bot reads is nested this far,
# and a hostile nesting depth must not become a RecursionError further on.
MAX_DEPTH = 32
HEALTH_MIN, HEALTH_MAX = 0, 100  # the service's score, as its console shows it
# Epoch milliseconds between 2000-01-01 and 2200-01-01: anything else is not a time this API
# can mean (seconds sent as ms, 1e400, negative) and would break date conversion later.
EPOCH_MS_MIN, EPOCH_MS_MAX = 946_684_800_000, 7_258_118_400_000
# Counts and sizes fit a 32-bit integer column and never drive a loop past it.
COUNT_MAX = 2**31 - 1


def clean_text(s: str) -> str:
    """`s` without the characters a database or Slack cannot hold."""
    return _UNSAFE.sub("", s) if _UNSAFE.search(s) else s


def clean_json(v: Any, depth: int = 0) -> Any:
    """A JSON value that PostgreSQL's JSONB, SQLite's JSON and `json.dumps(allow_nan=False)` accept."""
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        if depth >= MAX_DEPTH:
            return None
        return {clean_text(str(k)): clean_json(x, depth + 1) for k, x in v.items()}
    if isinstance(v, list | tuple):
        if depth >= MAX_DEPTH:
            return None
        return [clean_json(x, depth + 1) for x in v]
    return v  # None, bool, int, and already-validated models


def as_text(v: object) -> str:
    """Any JSON value as text a person can read: strings as they are, the rest as JSON."""
    if v is None:
        return ""
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format(v, "g") if math.isfinite(v) else ""
    if isinstance(v, list | tuple):
        return ", ".join(t for t in (as_text(x) for x in v) if t)
    if isinstance(v, dict):
        return json.dumps(clean_json(v), ensure_ascii=False, allow_nan=False, default=str)
    return clean_text(str(v))


def _opt_text(v: object) -> str | None:
    if v is None:
        return None
    s = as_text(v).strip()
    return s or None


def _number(v: object) -> float | None:
    """A finite number from a number or numeric text; bools and anything else are no number."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if isinstance(v, int):
        return float(v) if abs(v) < 2**63 else None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return None


def as_score(v: object) -> int | None:
    """A health score 0–100, or None: a value outside it is not a score the service can mean."""
    n = _number(v)
    if n is None or not HEALTH_MIN <= n <= HEALTH_MAX:
        return None
    return int(n)


def as_epoch_ms(v: object) -> int | None:
    n = _number(v)
    if n is None or not EPOCH_MS_MIN <= n < EPOCH_MS_MAX:
        return None
    return int(n)


def as_count(v: object) -> int:
    n = _number(v)
    if n is None:
        return 0
    return int(min(max(n, 0), COUNT_MAX))


def as_opt_count(v: object) -> int | None:
    n = _number(v)
    if n is None:
        return None
    return int(min(max(n, 0), COUNT_MAX))


def as_object(v: object) -> dict[str, Any] | None:
    return v if isinstance(v, dict) else None


def as_opt_bool(v: object) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


Text = Annotated[str, BeforeValidator(as_text)]
OptText = Annotated[str | None, BeforeValidator(_opt_text)]
Score = Annotated[int | None, BeforeValidator(as_score)]
EpochMs = Annotated[int | None, BeforeValidator(as_epoch_ms)]
Count = Annotated[int, BeforeValidator(as_count)]
OptCount = Annotated[int | None, BeforeValidator(as_opt_count)]
Object = Annotated[dict[str, Any] | None, BeforeValidator(as_object)]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept, everything cleaned."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return clean_json(data) if isinstance(data, dict) else data

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _shown(v: object) -> str:
    """A short rendering of an odd value for a note to the user."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("-" if v < 0 else "") + "Infinity"
    text = as_text(v) if not isinstance(v, str) else json.dumps(clean_text(v), ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


class Symptom(WireModel):
    name: Text = ""
    description: Text = ""
    recommendation: Text = ""


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
    risk_level: OptText = None
    health_score: Score = None
    diagnose_id: OptText = None
    diagnose_time: EpochMs = Field(default=None, description="epoch milliseconds")
    namespace: OptText = None
    workspace: OptText = None
    symptoms: Symptoms = Field(default_factory=Symptoms)
    # What the service sent as healthScore when it was no score (1e30, NaN, "n/a"), so the user
    # sees that something odd came rather than a plain "not reported". Ours, never sent on.
    odd_health_score: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _note_odd_score(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        raw = data.get("healthScore", data.get("health_score"))
        odd = None if raw is None or raw == "" or as_score(raw) is not None else _shown(raw)
        return {**data, "oddHealthScore": odd}

    @field_validator("symptoms", mode="before")
    @classmethod
    def _symptoms(cls, v: object) -> object:
        return v if isinstance(v, dict | Symptoms) else {}


class JobFailure(WireModel):
    """`failure` of the SDK's JobStatus: "valid when currentJobStatus is FAILED"."""

    failed_at: EpochMs = None
    message: OptText = None
    reason: OptText = None


class JobStatusRunning(WireModel):
    """`running` of the SDK's JobStatus: "valid when currentJobStatus is RUNNING"."""

    observed_flink_job_restarts: OptCount = None
    observed_flink_job_status: OptText = None


def _sub_object(v: object) -> object:
    return v if isinstance(v, dict | BaseModel) else None


class JobStatus(WireModel):
    current_job_status: OptText = None
    failure: Annotated[JobFailure | None, BeforeValidator(_sub_object)] = None
    health_score: Score = None
    risk_level: OptText = None
    running: Annotated[JobStatusRunning | None, BeforeValidator(_sub_object)] = None


class Job(WireModel):
    job_id: Text
    deployment_id: OptText = None
    deployment_name: OptText = None
    namespace: OptText = None
    workspace: OptText = None
    start_time: EpochMs = None
    end_time: EpochMs = None
    status: JobStatus = Field(default_factory=JobStatus)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: object) -> object:
        return v if isinstance(v, dict | JobStatus) else {}

    @property
    def state(self) -> str | None:
        return self.status.current_job_status


class JobSummary(WireModel):
    starting: Count = 0
    running: Count = 0
    cancelling: Count = 0
    cancelled: Count = 0
    finished: Count = 0
    failed: Count = 0


class Deployment(WireModel):
    deployment_id: Text
    name: Text = ""
    namespace: OptText = None
    workspace: OptText = None
    labels: Object = None
    engine_version: OptText = None
    execution_mode: OptText = None
    job_summary: JobSummary | None = None

    @field_validator("job_summary", mode="before")
    @classmethod
    def _summary(cls, v: object) -> object:
        return v if isinstance(v, dict | JobSummary) else None


class Envelope(WireModel, Generic[T]):
    """The response envelope every operation shares; `success` tells the outcome, not the status."""

    request_id: OptText = None
    success: Annotated[bool | None, BeforeValidator(as_opt_bool)] = None
    http_code: OptCount = None
    error_code: OptText = None
    error_message: OptText = None
    data: T | None = None
    access_denied_detail: Any = None
    # list operations
    page_index: OptCount = None
    page_size: OptCount = None
    total_size: OptCount = None

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        # `data` is cleaned by its own model; walking it here as well would do the work twice.
        if not isinstance(data, dict):
            return data
        return {k: (v if k == "data" else clean_json(v)) for k, v in data.items()}
