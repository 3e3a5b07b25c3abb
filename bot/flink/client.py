"""Async client of the Flink OpenAPI (product `ververica`, version 2022-07-18, ROA style).

Why not the vendor SDK's transport: its async path builds a new aiohttp session, connector and SSL
context for every call and sleeps with a blocking `time.sleep` between retries (measured in
reference/flink-openapi.md). Here one `aiohttp.ClientSession` lives as long as the client, requests
are signed with `bot.flink.signer`, retries are tenacity's (non-blocking) and every call of the
client goes through one limiter (concurrency and rate) per endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, TypeVar

import aiohttp
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from bot.config import Settings
from bot.flink import signer
from bot.flink.credentials import CredentialsProvider
from bot.flink.errors import (
    DeploymentNotFound,
    FlinkAuthError,
    FlinkError,
    FlinkNotFound,
    FlinkPermissionError,
    FlinkRequestRejected,
    FlinkServiceError,
    FlinkThrottled,
    FlinkTimeout,
    FlinkUnavailable,
    FlinkUnreadable,
    InvalidInput,
    JobNotFound,
)
from bot.flink.models import Deployment, Envelope, Job, JobDiagnosis

log = logging.getLogger(__name__)

API_VERSION = "2022-07-18"
PAGE_SIZE = 100  # the service's maximum
# A runaway paging loop (a server that never says "last page") stops here.
MAX_PAGES = 1000
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256

M = TypeVar("M", bound=BaseModel)


def _user_agent() -> str:
    try:
        version = metadata.version("flinkdiag")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"flinkdiag/{version}"


USER_AGENT = _user_agent()


# --------------------------------------------------------------------------- input checking


def check_path_value(value: object, field: str, *, max_length: int) -> str:
    """Refuse a value that would change the request path instead of naming one thing in it.

    Percent-encoding alone is not enough: some gateways decode `%2F` and normalise `..`.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field} is a {type(value).__name__}", user_message=f"The {field} is missing.")
    if not value.strip():
        raise InvalidInput(f"{field} is empty", user_message=f"The {field} is empty.")
    if len(value) > max_length:
        raise InvalidInput(
            f"{field} too long ({len(value)} > {max_length})",
            user_message=f"The {field} is too long ({len(value)} characters; at most {max_length}).",
        )
    if value in (".", ".."):
        raise InvalidInput(f"{field} is a dot path", user_message=f"The {field} cannot be `{value}`.")
    for ch in value:
        if ch in "/\\?#":
            raise InvalidInput(
                f"{field} contains {ch!r}", user_message=f"The {field} must not contain `{ch}`."
            )
        # Cc: control characters (\x00, \n, \r, \t, DEL, C1); Cs: lone surrogates, which cannot
        # be UTF-8 encoded; Zl/Zp: line and paragraph separators.
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise InvalidInput(
                f"{field} contains control character U+{ord(ch):04X}",
                user_message=f"The {field} must not contain control characters.",
            )
    return value


# --------------------------------------------------------------------------- limiter


@dataclass(frozen=True)
class LimiterStats:
    """What the endpoint limiter has seen; for tests and diagnostics."""

    max_concurrency: int
    max_calls_per_second: float
    in_flight: int
    peak_in_flight: int
    started: int


class EndpointLimiter:
    """Caps concurrent calls (a semaphore) and calls per second (a leaky bucket) for one endpoint."""

    def __init__(self, max_concurrency: int, max_calls_per_second: float) -> None:
        self.max_concurrency = max_concurrency
        self.max_calls_per_second = max_calls_per_second
        self._semaphore = asyncio.Semaphore(max_concurrency)
        # AsyncLimiter cannot hand out a whole token from a bucket smaller than one, so a rate
        # under 1/s becomes "1 per 1/rate seconds".
        capacity = max(1.0, max_calls_per_second)
        self._rate = AsyncLimiter(capacity, capacity / max_calls_per_second)
        self._in_flight = 0
        self._peak = 0
        self._started = 0

    async def __aenter__(self) -> EndpointLimiter:
        # Wait for a rate token before taking a concurrency slot, so a call held back by the rate
        # does not also hold a slot.
        await self._rate.acquire()
        await self._semaphore.acquire()
        self._in_flight += 1
        self._started += 1
        self._peak = max(self._peak, self._in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._in_flight -= 1
        self._semaphore.release()

    def stats(self) -> LimiterStats:
        return LimiterStats(
            self.max_concurrency, self.max_calls_per_second, self._in_flight, self._peak, self._started
        )


# --------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class _Call:
    """One API operation: what to send, and the words to explain a failure of it."""

    action: str
    path: str  # percent-encoded, as sent
    workspace: str
    namespace: str
    query: Mapping[str, str] | None = None
    job_id: str | None = None
    deployment_id: str | None = None
    deployment_name: str | None = None

    def not_found_sentence(self, code: str | None) -> str:
        where = f"namespace `{self.namespace}` (workspace `{self.workspace}`)"
        if code == "JobNotFound" and self.job_id:
            return f"Job `{self.job_id}` was not found in {where}."
        if code == "DeploymentNotFound" and self.deployment_id:
            return f"Deployment `{self.deployment_id}` was not found in {where}."
        if code == "DeploymentNotFound" and self.deployment_name:
            return f"No deployment named `{self.deployment_name}` was found in {where}."
        if code == "NamespaceNotFound":
            return f"Namespace `{self.namespace}` was not found in workspace `{self.workspace}`."
        if code == "WorkspaceNotFound":
            return f"Workspace `{self.workspace}` was not found."
        return f"The Flink API found nothing for {self.action} in {where}" + (
            f" (`{code}`)." if code else "."
        )


def _first(body: Mapping[str, Any], *keys: str) -> str | None:
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


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_error(
    call: _Call,
    status: int,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
) -> FlinkError:
    """Turn a failed response into the typed error, by error code first and HTTP status second."""
    body = body or {}
    request_id = _first(body, "requestId", "RequestId") or headers.get("x-acs-request-id")
    code = _first(body, "errorCode", "Code", "code")
    message = _first(body, "errorMessage", "Message", "message") or f"HTTP {status}"
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
    if c == "JobNotFound":
        return JobNotFound(text, user_message=call.not_found_sentence(c), **kw)
    if c == "DeploymentNotFound":
        return DeploymentNotFound(text, user_message=call.not_found_sentence(c), **kw)
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


def _permission_sentence(call: _Call, tag: str) -> str:
    return (
        f"The bot's RAM identity may not call {call.action} in workspace `{call.workspace}`{tag}; "
        f"grant it `stream:{call.action}`."
    )


def _throttle_sentence(tag: str) -> str:
    return f"The Flink API is throttling the bot{tag}; try again in a minute."


def _service_sentence(tag: str) -> str:
    return f"The Flink API had an internal error{tag}; try again shortly."


# --------------------------------------------------------------------------- the client


class FlinkClient:
    """The Flink OpenAPI operations flinkdiag needs, as typed async methods.

    One client per process: it owns (or borrows) one aiohttp session for its whole life.
    """

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsProvider,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], datetime] | None = None,
        nonce: Callable[[], str] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        base_url = settings.base_url
        if not base_url:
            raise ValueError(
                "No Flink API endpoint: set FLINKDIAG_REGION (e.g. cn-hangzhou) or FLINKDIAG_ENDPOINT "
                "(e.g. http://127.0.0.1:8081 for the simulator)"
            )
        self._settings = settings
        self._credentials = credentials
        self.base_url = base_url.rstrip("/")
        url = URL(self.base_url)
        # What aiohttp would put in Host (port only when not the scheme's default); we send it
        # ourselves so the signed value and the sent value are the same string.
        self._host = url.host_port_subcomponent or ""
        self._https = url.scheme == "https"
        # Built once: loading a CA bundle costs tens of ms of CPU (the SDK pays it per call).
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            self._ssl = ssl.create_default_context()
            if settings.ca_file:
                self._ssl.load_verify_locations(cafile=settings.ca_file)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._clock = clock or (lambda: datetime.now(UTC))
        self._nonce = nonce or (lambda: str(uuid.uuid4()))
        self._sleep = sleep or asyncio.sleep
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._limiter = EndpointLimiter(settings.max_concurrency, settings.max_calls_per_second)
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_base_delay,
            max=settings.retry_max_delay,
            jitter=settings.retry_base_delay,
        )

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FlinkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client created it."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def limiter_stats(self) -> LimiterStats:
        return self._limiter.stats()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("FlinkClient is closed")
        if self._session is None:
            # Created on first use so it binds to the running loop (aiohttp warns otherwise).
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else True,
                limit=self._settings.max_concurrency,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    # ----------------------------------------------------------------- operations

    async def get_job_diagnosis(
        self, workspace: str, namespace: str, deployment_id: str, job_id: str
    ) -> JobDiagnosis:
        """The service's diagnosis of one job (GetJobDiagnosis)."""
        ws, ns = self._scope(workspace, namespace)
        dep = check_path_value(deployment_id, "deployment id", max_length=MAX_ID_LENGTH)
        job = check_path_value(job_id, "job id", max_length=MAX_ID_LENGTH)
        call = _Call(
            "GetJobDiagnosis",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/{_enc(dep)}/jobs/{_enc(job)}/job-diagnoses/lite",
            ws,
            ns,
            job_id=job,
            deployment_id=dep,
        )
        body = await self._request(call)
        # An empty diagnosis (data null or "") is a diagnosis with nothing in it, e.g. a job that
        # has just started; `JobDiagnosis` renders it as "no risk level reported".
        if body.get("data") in (None, ""):
            body = {**body, "data": {}}
        return self._one(call, body, JobDiagnosis)

    async def get_job(self, workspace: str, namespace: str, job_id: str) -> Job:
        """One job instance (GetJob); `JobNotFound` when the id is unknown."""
        ws, ns = self._scope(workspace, namespace)
        job = check_path_value(job_id, "job id", max_length=MAX_ID_LENGTH)
        call = _Call("GetJob", f"/api/v2/namespaces/{_enc(ns)}/jobs/{_enc(job)}", ws, ns, job_id=job)
        return self._one(call, await self._request(call), Job)

    def _list_jobs_call(self, workspace: str, namespace: str, deployment_id: str) -> _Call:
        ws, ns = self._scope(workspace, namespace)
        dep = check_path_value(deployment_id, "deployment id", max_length=MAX_ID_LENGTH)
        return _Call(
            "ListJobs",
            f"/api/v2/namespaces/{_enc(ns)}/jobs",
            ws,
            ns,
            query={"deploymentId": dep},
            deployment_id=dep,
        )

    async def list_jobs(self, workspace: str, namespace: str, deployment_id: str) -> list[Job]:
        """Every job of a deployment, all pages (ListJobs)."""
        call = self._list_jobs_call(workspace, namespace, deployment_id)
        return await self._all_pages(call, Job, key=lambda j: j.job_id)

    async def recent_jobs(self, workspace: str, namespace: str, deployment_id: str) -> list[Job]:
        """The jobs that can hold a deployment's current one, in at most two calls (ListJobs).

        A deployment that restarts often collects hundreds of jobs; walking them all on every
        watch check would spend the API quota on history. The service's default order is not
        documented, so the first and the last page are read: the newest jobs are on one of them.
        """
        call = self._list_jobs_call(workspace, namespace, deployment_id)
        call = replace(call, query={**(call.query or {}), "pageIndex": "1", "pageSize": str(PAGE_SIZE)})
        jobs, env = self._page(call, await self._request(call), Job)
        total = env.total_size or 0
        last = -(-total // PAGE_SIZE)  # ceiling
        if last > 1 and len(env.data or []) >= PAGE_SIZE:
            last_call = replace(call, query={**(call.query or {}), "pageIndex": str(last)})
            more, _ = self._page(last_call, await self._request(last_call), Job)
            seen = {j.job_id for j in jobs}
            jobs += [j for j in more if j.job_id not in seen]
        return jobs

    async def get_deployment(self, workspace: str, namespace: str, deployment_id: str) -> Deployment:
        """One deployment (GetDeployment); `DeploymentNotFound` when the id is unknown."""
        ws, ns = self._scope(workspace, namespace)
        dep = check_path_value(deployment_id, "deployment id", max_length=MAX_ID_LENGTH)
        call = _Call(
            "GetDeployment",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/{_enc(dep)}",
            ws,
            ns,
            deployment_id=dep,
        )
        return self._one(call, await self._request(call), Deployment)

    async def get_deployments_by_name(self, workspace: str, namespace: str, name: str) -> list[Deployment]:
        """Deployments with exactly this name (GetDeploymentsByName); [] when none."""
        ws, ns = self._scope(workspace, namespace)
        nm = check_path_value(name, "deployment name", max_length=MAX_NAME_LENGTH)
        call = _Call(
            "GetDeploymentsByName",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/name/{_enc(nm)}",
            ws,
            ns,
            deployment_name=nm,
        )
        return self._many(call, await self._request(call), Deployment)

    async def list_deployments(
        self, workspace: str, namespace: str, *, name: str | None = None
    ) -> list[Deployment]:
        """Every deployment of a namespace (optionally filtered by name), all pages (ListDeployments)."""
        ws, ns = self._scope(workspace, namespace)
        query: dict[str, str] = {}
        if name is not None:
            # A query value cannot change the path, but the same limits keep odd input out of logs.
            query["name"] = check_path_value(name, "deployment name", max_length=MAX_NAME_LENGTH)
        call = _Call("ListDeployments", f"/api/v2/namespaces/{_enc(ns)}/deployments", ws, ns, query=query)
        return await self._all_pages(call, Deployment, key=lambda d: d.deployment_id)

    # ----------------------------------------------------------------- parsing

    @staticmethod
    def _scope(workspace: str, namespace: str) -> tuple[str, str]:
        return (
            check_path_value(workspace, "workspace", max_length=MAX_ID_LENGTH),
            check_path_value(namespace, "namespace", max_length=MAX_NAME_LENGTH),
        )

    def _one(self, call: _Call, body: dict[str, Any], model: type[M]) -> M:
        try:
            env = Envelope[model].model_validate(body)  # type: ignore[valid-type]
        except ValidationError as e:
            raise self._unreadable(call, body, f"shape: {e.error_count()} validation errors") from None
        if env.data is None:
            raise self._unreadable(call, body, "no data")
        return env.data

    def _many(self, call: _Call, body: dict[str, Any], model: type[M]) -> list[M]:
        items, _ = self._page(call, body, model)
        return items

    def _page(self, call: _Call, body: dict[str, Any], model: type[M]) -> tuple[list[M], Envelope[Any]]:
        try:
            env = Envelope[list[Any]].model_validate({**body, "data": body.get("data") or []})
        except ValidationError as e:
            raise self._unreadable(call, body, f"shape: {e.error_count()} validation errors") from None
        raw = env.data or []
        items: list[M] = []
        for i, item in enumerate(raw):
            try:
                items.append(model.model_validate(item))
            except ValidationError:
                # One odd entry should not hide the rest of the list; say so in the log.
                log.warning(
                    "flink skipped unreadable item action=%s index=%d request_id=%s",
                    call.action,
                    i,
                    env.request_id,
                )
        if raw and not items:
            raise self._unreadable(call, body, "no readable item")
        return items, env

    async def _all_pages(self, call: _Call, model: type[M], *, key: Callable[[M], str]) -> list[M]:
        seen: dict[str, M] = {}
        fetched = 0
        for page_index in range(1, MAX_PAGES + 1):
            page_call = replace(
                call, query={**(call.query or {}), "pageIndex": str(page_index), "pageSize": str(PAGE_SIZE)}
            )
            body = await self._request(page_call)
            items, env = self._page(page_call, body, model)
            # Entries can shift between pages while we walk them; keep the first sight of each.
            for item in items:
                seen.setdefault(key(item), item)
            raw_count = len(env.data or [])
            fetched += raw_count
            if raw_count == 0:
                break
            if env.total_size is not None:
                if fetched >= env.total_size:
                    break
            elif raw_count < (env.page_size or PAGE_SIZE):
                break
        else:
            log.warning("flink paging stopped action=%s pages=%d", call.action, MAX_PAGES)
        return list(seen.values())

    @staticmethod
    def _unreadable(call: _Call, body: Mapping[str, Any], why: str) -> FlinkUnreadable:
        return FlinkUnreadable(
            f"{call.action}: unreadable response ({why})",
            request_id=_first(body, "requestId", "RequestId"),
            http_status=200,
            user_message=f"The Flink API sent an answer to {call.action} the bot could not read.",
        )

    # ----------------------------------------------------------------- transport

    async def _request(self, call: _Call) -> dict[str, Any]:
        """Send `call` with retries; the successful response's JSON body."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, FlinkError) and e.retryable),
            before_sleep=lambda rs: self._log_retry(call, rs),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(call, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _wait(self, rs: RetryCallState) -> float:
        delay = self._backoff(rs)
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, FlinkThrottled) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, self._settings.retry_max_delay))
        return delay

    @staticmethod
    def _log_retry(call: _Call, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        fields = exc.log_fields() if isinstance(exc, FlinkError) else {"error_kind": type(exc).__name__}
        log.warning(
            "flink retry action=%s attempt=%d error_kind=%s error_code=%s request_id=%s wait_s=%.3f",
            call.action,
            rs.attempt_number,
            fields.get("error_kind"),
            fields.get("error_code"),
            fields.get("request_id"),
            rs.upcoming_sleep,
        )

    def _signed_headers(
        self, call: _Call, access_key_id: str, secret: str, token: str | None
    ) -> dict[str, str]:
        headers = {
            "host": self._host,
            "x-acs-action": call.action,
            "x-acs-version": API_VERSION,
            "x-acs-date": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": self._nonce(),
            "x-acs-content-sha256": signer.EMPTY_SHA256,
            "accept": "application/json",
            "user-agent": USER_AGENT,
            "workspace": call.workspace,
        }
        if token is not None:
            headers["x-acs-accesskey-id"] = access_key_id
            headers["x-acs-security-token"] = token
        signed = signer.sign(
            method="GET",
            path=call.path,
            query=call.query,
            headers=headers.items(),
            payload_hash=signer.EMPTY_SHA256,
            access_key_id=access_key_id,
            access_key_secret=secret,
        )
        headers["authorization"] = signed.authorization
        return headers

    async def _attempt(self, call: _Call, attempt: int) -> dict[str, Any]:
        credential = await self._credentials.get()
        token = credential.security_token.get_secret_value() if credential.security_token else None
        query = signer.canonical_query(call.query)
        # encoded=True: path and query are already encoded exactly as signed; yarl must not
        # re-encode them.
        url = URL(f"{self.base_url}{call.path}" + (f"?{query}" if query else ""), encoded=True)
        session = self._get_session()
        async with self._limiter:
            # Signed after the limiter wait so x-acs-date is the time of sending.
            headers = self._signed_headers(
                call, credential.access_key_id, credential.access_key_secret.get_secret_value(), token
            )
            started = time.monotonic()
            status: int | str = "-"
            request_id: str | None = None
            try:
                status, resp_headers, raw = await self._exchange(session, call, url, headers)
                request_id = resp_headers.get("x-acs-request-id")
                body = self._decode(call, status, resp_headers, raw)
                request_id = _first(body, "requestId", "RequestId") or request_id
                return body
            except FlinkError as e:
                request_id = e.request_id or request_id
                if isinstance(status, str):
                    status = e.kind
                raise
            finally:
                log.info(
                    "flink call action=%s status=%s latency_ms=%.1f request_id=%s attempt=%d",
                    call.action,
                    status,
                    (time.monotonic() - started) * 1000,
                    request_id,
                    attempt,
                )

    async def _exchange(
        self, session: aiohttp.ClientSession, call: _Call, url: URL, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with session.get(
                url,
                headers=headers,
                # Everything sent is signed; aiohttp's own Accept-Encoding would not be.
                skip_auto_headers=("Accept-Encoding",),
                ssl=self._ssl or True,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError:
            raise FlinkTimeout(
                f"{call.action}: no answer within {self._settings.request_timeout:g}s",
                user_message=(
                    f"The Flink API at `{self._host}` did not answer within "
                    f"{self._settings.request_timeout:g} s."
                ),
            ) from None
        except aiohttp.ClientConnectorCertificateError as e:
            err = FlinkUnavailable(
                f"{call.action}: TLS certificate not trusted: {e.certificate_error}",
                user_message=(
                    f"The TLS certificate of `{self._host}` is not trusted; for a private endpoint "
                    "set FLINKDIAG_CA_FILE."
                ),
            )
            err.retryable = False  # a certificate does not fix itself between retries
            raise err from None
        except aiohttp.ClientError as e:
            raise FlinkUnavailable(
                f"{call.action}: {type(e).__name__}",
                user_message=f"The Flink API at `{self._host}` could not be reached.",
            ) from None

    def _decode(self, call: _Call, status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            if status < 300:
                raise FlinkUnreadable(
                    f"{call.action}: body is not a JSON object",
                    request_id=headers.get("x-acs-request-id"),
                    http_status=status,
                    user_message=f"The Flink API sent an answer to {call.action} the bot could not read.",
                )
            # A proxy's HTML error page and the like: the status is all there is to go on.
            raise classify_error(call, status, headers, None)
        ok = status < 300 and (body.get("success") is True or ("success" not in body and "data" in body))
        if not ok:
            raise classify_error(call, status, headers, body)
        return body


def _enc(value: str) -> str:
    return signer.percent_encode(value)
