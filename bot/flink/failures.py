"""One API operation and how its failures map to typed errors with a sentence for users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.flink.errors import (
    DeploymentNotFound,
    FlinkAuthError,
    FlinkError,
    FlinkNotFound,
    FlinkPermissionError,
    FlinkRequestRejected,
    FlinkServiceError,
    FlinkThrottled,
    JobNotFound,
)


@dataclass(frozen=True)
class Call:
    """One API operation: what to send, and the words to explain a failure of it."""

    action: str
    path: str  # percent-encoded, as sent
    workspace: str
    namespace: str
    query: Mapping[str, str] | None = None
    job_id: str | None = None
    deployment_id: str | None = None
    deployment_name: str | None = None

    def not_found_sentence(self, code: str | None, kind: type[FlinkNotFound] | None = None) -> str:
        where = f"namespace `{self.namespace}` (workspace `{self.workspace}`)"
        if kind is JobNotFound and self.job_id:
            if self.action == "GetJobDiagnosis" and self.deployment_id:
                return f"Job `{self.job_id}` of deployment `{self.deployment_id}` was not found in {where}."
            return f"Job `{self.job_id}` was not found in {where}."
        if kind is DeploymentNotFound and self.deployment_id:
            return f"Deployment `{self.deployment_id}` was not found in {where}."
        if kind is DeploymentNotFound and self.deployment_name:
            return f"No deployment named `{self.deployment_name}` was found in {where}."
        if code == "NamespaceNotFound":
            return f"Namespace `{self.namespace}` was not found in workspace `{self.workspace}`."
        if code == "WorkspaceNotFound":
            return f"Workspace `{self.workspace}` was not found."
        return f"The Flink API found nothing for {self.action} in {where}" + (
            f" (`{code}`)." if code else "."
        )


def first_of(body: Mapping[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = body.get(k)
        if v not in (None, ""):
            return str(v)
    return None


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    # The vendor SDK reads x-acs-retry-after as milliseconds (positive integers only); the standard
    # Retry-After header is seconds.
    raw = headers.get("x-acs-retry-after")
    if raw:
        try:
            ms = int(raw)
        except ValueError:
            ms = 0
        if ms > 0:
            return ms / 1000
    raw = headers.get("Retry-After")
    if raw:
        try:
            s = float(raw)
        except ValueError:
            return None
        return s if s > 0 else None
    return None


_AUTH_CODES = (
    "Signature",
    "InvalidAccessKeyId",
    "InvalidSecurityToken",
    "IncompleteSignature",
    "RequestTimeTooSkewed",
)
_SERVICE_CODES = ("InternalError", "ServiceUnavailable", "ServerBusy")

# The service's "not found": Alibaba's own Terraform provider (service_alicloud_realtime_compute_v2.go)
# reads errorCode 990301 from a `success: false` body as "not found" for GetJob and GetDeployment,
# with whatever HTTP status came (a 200 included). Which thing was not found follows from the
# operation. The named codes are kept: no public source shows them, but they cost nothing.
NOT_FOUND_CODE = "990301"
_NOT_FOUND_BY_ACTION: dict[str, type[FlinkNotFound]] = {
    "GetJob": JobNotFound,
    "GetJobDiagnosis": JobNotFound,  # unknown job or deployment; the job is what was asked for
    "GetDeployment": DeploymentNotFound,
    "GetDeploymentsByName": DeploymentNotFound,
    "ListJobs": DeploymentNotFound,  # its one required filter is the deployment id
}


def _not_found_kind(call: Call, code: str) -> type[FlinkNotFound] | None:
    if code == NOT_FOUND_CODE:
        return _NOT_FOUND_BY_ACTION.get(call.action, FlinkNotFound)
    if code == "JobNotFound":
        return JobNotFound
    if code == "DeploymentNotFound":
        return DeploymentNotFound
    return None


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_error(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
) -> FlinkError:
    """Turn a failed response into the typed error, by error code first and HTTP status second."""
    body = body or {}
    request_id = first_of(body, "requestId", "RequestId") or headers.get("x-acs-request-id")
    code = first_of(body, "errorCode", "Code", "code")
    message = first_of(body, "errorMessage", "Message", "message") or f"HTTP {status}"
    retry_after = _retry_after_seconds(headers)
    kw: dict[str, Any] = {"request_id": request_id, "error_code": code, "http_status": status}
    text = f"{call.action}: {message}"
    tag = f" (`{code}`)" if code else f" (HTTP {status})"

    c = code or ""
    if any(m in c for m in _AUTH_CODES):
        return FlinkAuthError(text, user_message=_auth_sentence(c), **kw)
    if c.startswith(("Forbidden", "NoPermission")):
        return FlinkPermissionError(text, user_message=_permission_sentence(call, tag), **kw)
    if c.startswith("Throttling"):
        return FlinkThrottled(text, retry_after=retry_after, user_message=_throttle_sentence(tag), **kw)
    kind = _not_found_kind(call, c)
    if kind is not None:
        return kind(text, user_message=call.not_found_sentence(c, kind), **kw)
    if c.endswith("NotFound"):
        return FlinkNotFound(text, user_message=call.not_found_sentence(c), **kw)
    if c.startswith(_SERVICE_CODES):
        return FlinkServiceError(text, user_message=_service_sentence(tag), **kw)

    if status == 401:
        return FlinkAuthError(text, user_message=_auth_sentence(c), **kw)
    if status == 403:
        return FlinkPermissionError(text, user_message=_permission_sentence(call, tag), **kw)
    if status == 429 or retry_after is not None:
        return FlinkThrottled(text, retry_after=retry_after, user_message=_throttle_sentence(tag), **kw)
    if status == 404:
        return FlinkNotFound(text, user_message=call.not_found_sentence(code), **kw)
    if status >= 500:
        return FlinkServiceError(text, user_message=_service_sentence(tag), **kw)
    return FlinkRequestRejected(
        text,
        user_message=f"The Flink API rejected {call.action}{tag}: {_short(message)}",
        **kw,
    )


def _auth_sentence(code: str) -> str:
    if code.startswith("InvalidAccessKeyId"):
        return f"The Flink API does not know the bot's AccessKey id (`{code}`); check its credentials."
    if code.startswith("InvalidSecurityToken"):
        return (
            f"The Flink API refused the bot's STS token (`{code}`); its temporary credentials need renewing."
        )
    if code == "RequestTimeTooSkewed":
        return "The Flink API refused the request because the bot's clock is off; check the host's time."
    if code:
        return f"The Flink API refused the bot's signature (`{code}`); check the bot's AccessKey secret."
    return FlinkAuthError.default_sentence


def _permission_sentence(call: Call, tag: str) -> str:
    return (
        f"The bot's RAM identity may not call {call.action} in workspace `{call.workspace}`{tag}; "
        f"grant it `stream:{call.action}`."
    )


def _throttle_sentence(tag: str) -> str:
    return f"The Flink API is throttling the bot{tag}; try again in a minute."


def _service_sentence(tag: str) -> str:
    return f"The Flink API had an internal error{tag}; try again shortly."
