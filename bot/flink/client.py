"""Async client of the Flink OpenAPI (product `ververica`, version 2022-07-18, ROA style).

Why not the vendor SDK's transport: its async path builds a new aiohttp session, connector and SSL
context for every call and sleeps with a blocking `time.sleep` between retries (measured in
reference/flink-openapi.md). Here one `aiohttp.ClientSession` lives as long as the client, requests
are signed with `bot.flink.signer`, retries wait as tenacity's backoff says (non-blocking) and every call of the
client goes through one limiter (concurrency and rate) per endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from bot import metrics
from bot.config import Settings
from bot.flink import signer
from bot.flink.credentials import CredentialsProvider
from bot.flink.errors import (
    FlinkError,
    FlinkThrottled,
    FlinkTimeout,
    FlinkUnavailable,
    FlinkUnreadable,
)
from bot.flink.failures import Call, classify_error, first_of
from bot.flink.limiter import EndpointLimiter, LimiterStats
from bot.flink.models import Deployment, Envelope, Job, JobDiagnosis
from bot.flink.paths import check_path_value

__all__ = ["Call", "EndpointLimiter", "FlinkClient", "LimiterStats", "check_path_value", "classify_error"]

log = logging.getLogger(__name__)

API_VERSION = "2022-07-18"
PAGE_SIZE = 100  # the service's maximum
# A runaway paging loop (a server that never says "last page") stops here.
MAX_PAGES = 1000
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


def _user_agent() -> str:
    try:
        version = metadata.version("flinkdiag")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"flinkdiag/{version}"


USER_AGENT = _user_agent()


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
        limiter: EndpointLimiter | None = None,
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
        # Given (and then owned) when replicas share the quota: see bot.app.start_limiter.
        self._limiter = limiter or EndpointLimiter(settings.max_concurrency, settings.max_calls_per_second)
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
        await self._limiter.aclose()
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
        call = Call(
            "GetJobDiagnosis",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/{_enc(dep)}/jobs/{_enc(job)}/job-diagnoses/lite",
            ws,
            ns,
            job_id=job,
            deployment_id=dep,
        )

        def parse(body: dict[str, Any]) -> JobDiagnosis:
            # An empty diagnosis (data null or "") is a diagnosis with nothing in it, e.g. a job that
            # has just started; `JobDiagnosis` renders it as "no risk level reported".
            if body.get("data") in (None, ""):
                body = {**body, "data": {}}
            return self._one(call, body, JobDiagnosis)

        return await self._request(call, parse)

    async def get_job(self, workspace: str, namespace: str, job_id: str) -> Job:
        """One job instance (GetJob); `JobNotFound` when the id is unknown."""
        ws, ns = self._scope(workspace, namespace)
        job = check_path_value(job_id, "job id", max_length=MAX_ID_LENGTH)
        call = Call("GetJob", f"/api/v2/namespaces/{_enc(ns)}/jobs/{_enc(job)}", ws, ns, job_id=job)
        return await self._request(call, lambda body: self._one(call, body, Job))

    def _list_jobs_call(self, workspace: str, namespace: str, deployment_id: str) -> Call:
        ws, ns = self._scope(workspace, namespace)
        dep = check_path_value(deployment_id, "deployment id", max_length=MAX_ID_LENGTH)
        return Call(
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
        jobs, env = await self._request(call, lambda body: self._page(call, body, Job))
        total = env.total_size or 0
        last = -(-total // PAGE_SIZE)  # ceiling
        if last > 1 and len(env.data or []) >= PAGE_SIZE:
            last_call = replace(call, query={**(call.query or {}), "pageIndex": str(last)})
            more, _ = await self._request(last_call, lambda body: self._page(last_call, body, Job))
            seen = {j.job_id for j in jobs}
            jobs += [j for j in more if j.job_id not in seen]
        return jobs

    async def get_deployment(self, workspace: str, namespace: str, deployment_id: str) -> Deployment:
        """One deployment (GetDeployment); `DeploymentNotFound` when the id is unknown."""
        ws, ns = self._scope(workspace, namespace)
        dep = check_path_value(deployment_id, "deployment id", max_length=MAX_ID_LENGTH)
        call = Call(
            "GetDeployment",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/{_enc(dep)}",
            ws,
            ns,
            deployment_id=dep,
        )
        return await self._request(call, lambda body: self._one(call, body, Deployment))

    async def get_deployments_by_name(self, workspace: str, namespace: str, name: str) -> list[Deployment]:
        """Deployments with exactly this name (GetDeploymentsByName); [] when none."""
        ws, ns = self._scope(workspace, namespace)
        nm = check_path_value(name, "deployment name", max_length=MAX_NAME_LENGTH)
        call = Call(
            "GetDeploymentsByName",
            f"/api/v2/namespaces/{_enc(ns)}/deployments/name/{_enc(nm)}",
            ws,
            ns,
            deployment_name=nm,
        )
        return await self._request(call, lambda body: self._page(call, body, Deployment)[0])

    async def list_deployments(
        self, workspace: str, namespace: str, *, name: str | None = None
    ) -> list[Deployment]:
        """Every deployment of a namespace (optionally filtered by name), all pages (ListDeployments)."""
        ws, ns = self._scope(workspace, namespace)
        query: dict[str, str] = {}
        if name is not None:
            # A query value cannot change the path, but the same limits keep odd input out of logs.
            query["name"] = check_path_value(name, "deployment name", max_length=MAX_NAME_LENGTH)
        call = Call("ListDeployments", f"/api/v2/namespaces/{_enc(ns)}/deployments", ws, ns, query=query)
        return await self._all_pages(call, Deployment, key=lambda d: d.deployment_id)

    # ----------------------------------------------------------------- parsing

    @staticmethod
    def _scope(workspace: str, namespace: str) -> tuple[str, str]:
        return (
            check_path_value(workspace, "workspace", max_length=MAX_ID_LENGTH),
            check_path_value(namespace, "namespace", max_length=MAX_NAME_LENGTH),
        )

    def _one(self, call: Call, body: dict[str, Any], model: type[M]) -> M:
        try:
            env = _envelope(model).model_validate(body)
        except ValidationError as e:
            raise self._unreadable(call, body, f"shape: {e.error_count()} validation errors") from None
        if env.data is None:
            raise self._unreadable(call, body, "no data")
        return env.data

    def _page(self, call: Call, body: dict[str, Any], model: type[M]) -> tuple[list[M], Envelope[Any]]:
        try:
            env = _LIST_ENVELOPE.model_validate({**body, "data": body.get("data") or []})
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

    async def _all_pages(self, call: Call, model: type[M], *, key: Callable[[M], str]) -> list[M]:
        seen: dict[str, M] = {}
        fetched = 0
        for page_index in range(1, MAX_PAGES + 1):
            page_call = replace(
                call, query={**(call.query or {}), "pageIndex": str(page_index), "pageSize": str(PAGE_SIZE)}
            )
            items, env = await self._request(page_call, lambda body, c=page_call: self._page(c, body, model))
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
    def _unreadable(
        call: Call, body: Mapping[str, Any], why: str, request_id: str | None = None, status: int = 200
    ) -> FlinkUnreadable:
        return FlinkUnreadable(
            f"{call.action}: unreadable response ({why})",
            request_id=first_of(body, "requestId", "RequestId") or request_id,
            http_status=status,
            user_message=f"The Flink API sent an answer to {call.action} the bot could not read.",
        )

    # ----------------------------------------------------------------- transport

    async def _request(self, call: Call, parse: Callable[[dict[str, Any]], R]) -> R:
        """Send `call` and read its answer with `parse`, with retries.

        Parsing is part of the attempt: an answer the bot cannot read (cut off, not JSON, the wrong
        shape) is retried like a 5xx, as a proxy or an overloaded gateway sends them now and then.
        """
        # A plain loop rather than a tenacity retrier: AsyncRetrying keeps each run's state on the
        # object, so it cannot be shared by concurrent calls, and building one per call cost
        # ~30 µs on every call (issue 9), failures or not. tenacity's wait strategy still sets
        # the backoff; its call state is only built when an attempt has failed.
        attempt = 1
        while True:
            try:
                return parse(await self._attempt(call, attempt))
            except FlinkError as e:
                if not e.retryable or attempt > self._settings.max_retries:
                    raise
                rs = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
                rs.attempt_number = attempt
                rs.set_exception((type(e), e, e.__traceback__))
                rs.upcoming_sleep = self._wait(rs)
                self._log_retry(call, rs)
                await self._sleep(rs.upcoming_sleep)
                attempt += 1

    def _wait(self, rs: RetryCallState) -> float:
        delay = self._backoff(rs)
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, FlinkThrottled) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, self._settings.retry_max_delay))
        return delay

    @staticmethod
    def _log_retry(call: Call, rs: RetryCallState) -> None:
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
        self, call: Call, access_key_id: str, secret: str, token: str | None
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

    async def _attempt(self, call: Call, attempt: int) -> dict[str, Any]:
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
            outcome = "error"
            try:
                status, resp_headers, raw = await self._exchange(session, call, url, headers)
                request_id = resp_headers.get("x-acs-request-id")
                body = self._decode(call, status, resp_headers, raw)
                request_id = first_of(body, "requestId", "RequestId") or request_id
                outcome = "ok"
                return body
            except FlinkError as e:
                request_id = e.request_id or request_id
                outcome = e.kind
                if isinstance(status, str):
                    status = e.kind
                raise
            finally:
                metrics.flink_call(call.action, outcome, time.monotonic() - started)
                # DEBUG: one line per call costs more than the call's own parsing at sweep rates;
                # retries (WARNING) and failures reaching the user are logged where they happen.
                log.debug(
                    "flink call action=%s status=%s latency_ms=%.1f request_id=%s attempt=%d",
                    call.action,
                    status,
                    (time.monotonic() - started) * 1000,
                    request_id,
                    attempt,
                )

    async def _exchange(
        self, session: aiohttp.ClientSession, call: Call, url: URL, headers: dict[str, str]
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

    def _decode(self, call: Call, status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            body = None
        if not isinstance(body, dict):
            if status < 300:
                raise self._unreadable(call, {}, "not a JSON object", headers.get("x-acs-request-id"), status)
            # A proxy's HTML error page and the like: the status is all there is to go on.
            raise classify_error(call, status, headers, None)
        success = body.get("success")
        if status < 300 and (success is True or (success is None and "data" in body)):
            return body
        if status < 300 and success is not False and first_of(body, "errorCode", "Code", "code") is None:
            # A 2xx that is neither an answer nor an error (no data, no code): not the envelope.
            raise self._unreadable(call, body, "not the envelope", headers.get("x-acs-request-id"), status)
        raise classify_error(call, status, headers, body)


# Parametrised generics built once: pydantic caches `Envelope[X]` only weakly, and rebuilding one
# costs about half a millisecond.
_LIST_ENVELOPE: type[Envelope[list[Any]]] = Envelope[list[Any]]
_ENVELOPES: dict[type[BaseModel], type[Envelope[Any]]] = {}


def _envelope(model: type[M]) -> type[Envelope[M]]:
    env = _ENVELOPES.get(model)
    if env is None:
        env = _ENVELOPES[model] = Envelope[model]  # type: ignore[valid-type]
    return env  # type: ignore[return-value]


def _enc(value: str) -> str:
    return signer.percent_encode(value)
