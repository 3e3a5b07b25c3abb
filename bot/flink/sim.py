"""A local stand-in for the Flink OpenAPI (product `ververica`, version 2022-07-18), same wire protocol.

Each API request goes through the gateway (V3 signature, access key, STS token, clock skew, nonce
replay), then the configured faults, then one of the six read operations the bot uses, served from a
`Fleet` (bot/flink/sim_fleet.py). An unsigned control API under `/_sim/` changes the fleet and the
faults while the simulator runs:

    GET  /_sim/fleet                               deployments with their current job id
    PUT  /_sim/deployments/{deploymentId}/diagnosis   wire JobDiagnosis for the current job, served
                                                   byte for byte as sent (1e400, NaN, \\u0000 kept)
    PUT  /_sim/deployments/{deploymentId}/status      wire JobStatus of the current job (partial)
    POST /_sim/deployments/{deploymentId}/restart     cancel the current job, start a new one
    GET  /_sim/faults, PUT /_sim/faults            read / partly update `Faults`
    GET  /_sim/calls                               API requests per action
    GET  /_sim/busiest-second, DELETE …            most API requests in any one second; reset

Standalone: `python -m bot.flink.sim --port 8081 [--scenario FILE] [--host 127.0.0.1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.flink import signer
from bot.flink.sim_fleet import (
    Fleet,
    Placed,
    RawJson,
    SimJob,
    SimWorkspace,
    default_fleet,
    deployment_wire,
    diagnosis_wire,
    job_wire,
    load_scenario,
)

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
    "Faults",
    "Fleet",
    "Simulator",
    "default_fleet",
    "load_scenario",
    "main",
]

# Named explicitly: under `python -m bot.flink.sim` __name__ is "__main__".
logger = logging.getLogger("bot.flink.sim")

DEFAULT_ACCESS_KEY_ID = "flinkdiag-sim-ak"
DEFAULT_ACCESS_KEY_SECRET = "flinkdiag-sim-secret"

API_VERSION = "2022-07-18"
MAX_SKEW_SECONDS = 15 * 60
NONCE_TTL_SECONDS = 15 * 60
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
NOT_FOUND_CODE = "990301"  # the service's "not found" for a job or deployment (see Faults.not_found_status)
REQUIRED_SIGNED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)

FaultKind = Literal["throttle", "server_error", "malformed", "reset", "timeout"]


class Faults(BaseModel):
    """What goes wrong on purpose; also the JSON body of `PUT /_sim/faults` (partial updates allowed)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0, description="added to every API request (not /_sim/*)")
    error_rate: float = Field(default=0, ge=0, le=1, description="probability a request fails")
    error_kinds: list[FaultKind] = Field(default_factory=lambda: ["server_error"], min_length=1)
    fail_next: int = Field(default=0, ge=0, description="the next N API requests fail, kinds in order")
    hang_seconds: float = Field(default=30, ge=0, description="how long a `timeout` fault stalls")
    retry_after_ms: int = Field(default=1000, ge=0, description="x-acs-retry-after on throttling answers")
    # Not a fault but a setting, kept here so tests and demos change it through the same control API.
    # Verified: the body (errorCode 990301, success false; Alibaba's Terraform provider reads it so,
    # a 200 included). Unverified: the HTTP status the real service sends with it. 200 by default,
    # because the vendor's SDK models show 990301 with httpCode 200 and a 200 with success false is
    # the case a client most easily gets wrong; FLINKDIAG_SIM_NOT_FOUND_STATUS or
    # `--not-found-status` (e.g. 400 or 404) exercise the others.
    not_found_status: int = Field(
        default_factory=lambda: int(os.environ.get("FLINKDIAG_SIM_NOT_FOUND_STATUS") or 200),
        ge=200,
        le=599,
        description="HTTP status of the 990301 (job or deployment not found) answer",
    )


class _GatewayError(Exception):
    """Refused before the product sees the request; the body uses capitalised keys."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _ApiError(Exception):
    """A business error of the product; the body is the usual envelope with success false."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_SEG = r"([^/]+)"
_NS = rf"^/api/v2/namespaces/{_SEG}"
# Matched against the raw (still percent-encoded) path, so an encoded `/` inside a name stays one segment.
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GetJobDiagnosis", re.compile(rf"{_NS}/deployments/{_SEG}/jobs/{_SEG}/job-diagnoses/lite$")),
    ("GetDeploymentsByName", re.compile(rf"{_NS}/deployments/name/{_SEG}$")),
    ("GetDeployment", re.compile(rf"{_NS}/deployments/{_SEG}$")),
    ("ListDeployments", re.compile(rf"{_NS}/deployments$")),
    ("GetJob", re.compile(rf"{_NS}/jobs/{_SEG}$")),
    ("ListJobs", re.compile(rf"{_NS}/jobs$")),
)


def _match_route(method: str, raw_path: str) -> tuple[str, tuple[str, ...]] | None:
    if method != "GET":
        return None
    for action, pattern in _ROUTES:
        m = pattern.match(raw_path)
        if m:
            return action, tuple(unquote(g) for g in m.groups())
    return None


def _canonical_path(raw_path: str) -> str:
    """The path re-encoded segment by segment the way the SDK signs it.

    aiohttp's URL handling (yarl) decodes sub-delimiters such as `'`, `(`, `;`, `:` that the SDK
    encoded before signing, so a name holding them arrives spelled differently from how it was
    signed. Accepting this canonical form as well as the raw path is what lets such names work.
    """
    return "/".join(signer.percent_encode(unquote(seg)) for seg in raw_path.split("/"))


# Per-request notes the logging middleware reads.
_ACTION = web.RequestKey("sim_action", str)
_OUTCOME = web.RequestKey("sim_outcome", str)
_REQUEST_ID = web.RequestKey("sim_request_id", str)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _dumps(obj: Any) -> str:
    # Raw UTF-8 rather than \u escapes, as the service sends it: clients must decode UTF-8 properly.
    raws: dict[str, RawJson] = {}

    def swap(v: Any) -> Any:
        if isinstance(v, RawJson):
            token = f"@@flinkdiag-raw-{uuid.uuid4().hex}@@"
            raws[token] = v
            return token
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(obj), ensure_ascii=False)
    for token, raw in raws.items():
        text = text.replace(f'"{token}"', raw, 1)
    return text


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def _keys_from_env() -> tuple[dict[str, str], dict[str, str]]:
    # The simulator is a development tool, not the bot: it reads the same variables the SDK's
    # credential chain reads so `flinkdiag sim` accepts whatever the developer's shell holds.
    ak = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    sk = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not (ak and sk):
        return {DEFAULT_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_SECRET}, {}
    token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")
    return {ak: sk}, ({ak: token} if token and ak.startswith("STS.") else {})


class BusiestSecond:
    """The most API requests that arrived within any one second (a sliding window) since the last reset.

    Our own measuring device, not a behaviour of the service. Not verified: how the service's
    flow control draws its seconds (reference/flink-openapi.md only knows the `Throttling` errors
    and `x-acs-retry-after`), so the strictest reading, any window, is counted. Memory: the
    arrivals of the last second only.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: deque[float] = deque()
        self.most = 0

    def note(self) -> None:
        now = self._clock()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        self._recent.append(now)
        self.most = max(self.most, len(self._recent))

    def reset(self) -> None:
        self._recent.clear()
        self.most = 0


class Simulator:
    """The simulated Flink OpenAPI on a real socket. `start()` returns its base URL."""

    def __init__(
        self,
        fleet: Fleet | None = None,
        access_keys: dict[str, str] | None = None,
        security_tokens: dict[str, str] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
    ) -> None:
        env_keys, env_tokens = _keys_from_env() if access_keys is None else ({}, {})
        self.fleet: Fleet = fleet if fleet is not None else default_fleet()
        self.access_keys: dict[str, str] = dict(access_keys) if access_keys is not None else env_keys
        self.security_tokens: dict[str, str] = (
            dict(security_tokens) if security_tokens is not None else env_tokens
        )
        self._faults = faults if faults is not None else Faults()
        self._fault_cycle = 0
        self._rng = random.Random(seed)
        self.calls: Counter[str] = Counter()
        self.busiest_second = BusiestSecond()
        self._nonces: dict[str, float] = {}  # nonce -> monotonic expiry, in insertion (= expiry) order
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._app_used = False
        self.base_url = ""
        self.app: web.Application = self._build_app()

    # --- lifecycle

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on host:port (0 = any free port); returns the base URL, https when `ssl_context`."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        if self._app_used:  # an aiohttp Application cannot be set up twice
            self.app = self._build_app()
        self._app_used = True
        self._stopping = asyncio.Event()
        # handler_cancellation: a client that gave up on a `timeout` fault frees its handler.
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if ssl_context else 'http'}://{shown}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening; requests stalled by a `timeout` fault are answered first."""
        if self._runner is None:
            return
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- in-process control (same semantics as the HTTP control API)

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._faults = value
        self._fault_cycle = 0  # fail_next cycles through error_kinds from the first one again

    def set_diagnosis(self, deployment_id: str, wire: dict | str) -> None:
        """Serve `wire` for the deployment's current job from now on. KeyError if unknown.

        JSON text is served byte for byte (`1e400`, NaN, lone surrogates as written)."""
        self.fleet.set_diagnosis(deployment_id, wire)

    def set_status(self, deployment_id: str, wire: dict) -> str:
        """What the current job reports from now on (partial wire JobStatus); returns its id.

        KeyError if the deployment is unknown, ValueError if it has no job or `wire` is not valid.
        """
        return self.fleet.set_status(deployment_id, wire)

    def restart(self, deployment_id: str) -> str:
        """Cancel the current job (if running) and start a new one; returns its id. KeyError if unknown."""
        return self.fleet.restart(deployment_id)

    def fleet_summary(self) -> list[dict]:
        """The items of `GET /_sim/fleet`."""
        return self.fleet.summary()

    # --- app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_requests])
        app.router.add_get("/_sim/fleet", self._ctl_fleet)
        app.router.add_put("/_sim/deployments/{deployment_id}/diagnosis", self._ctl_diagnosis)
        app.router.add_put("/_sim/deployments/{deployment_id}/status", self._ctl_status)
        app.router.add_post("/_sim/deployments/{deployment_id}/restart", self._ctl_restart)
        app.router.add_get("/_sim/faults", self._ctl_get_faults)
        app.router.add_put("/_sim/faults", self._ctl_put_faults)
        app.router.add_get("/_sim/calls", self._ctl_calls)
        app.router.add_get("/_sim/busiest-second", self._ctl_busiest_second)
        app.router.add_delete("/_sim/busiest-second", self._ctl_busiest_second)
        app.router.add_route("*", "/{tail:.*}", self._api)
        return app

    @web.middleware
    async def _log_requests(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        status: object = "error"
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            logger.info(
                "sim request action=%s status=%s latency_ms=%.1f request_id=%s",
                request.get(_ACTION, f"control:{request.method}:{request.path}"),
                request.get(_OUTCOME, status),
                (time.perf_counter() - started) * 1000,
                request.get(_REQUEST_ID, "-"),
            )

    # --- API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        request_id = _request_id()
        raw_path = request.raw_path.partition("?")[0]
        route = _match_route(request.method, raw_path)
        action = route[0] if route else (request.headers.get("x-acs-action") or "unknown")
        self.calls[action] += 1
        self.busiest_second.note()
        request[_ACTION] = action
        request[_REQUEST_ID] = request_id
        headers = {"x-acs-request-id": request_id}

        if self._faults.latency_ms > 0:
            await asyncio.sleep(self._faults.latency_ms / 1000)
        body = await request.read()
        try:
            self._authenticate(request, raw_path, body)
            if route is None:
                raise _GatewayError(
                    404, "InvalidAction.NotFound", f"{request.method} {raw_path} is not an API."
                )
            self._check_action(request, route[0])
        except _GatewayError as e:
            return _gateway_response(request_id, e.status, e.code, e.message, headers)

        fault = self._next_fault()
        if fault == "throttle":
            headers["x-acs-retry-after"] = str(self._faults.retry_after_ms)
            return _gateway_response(
                request_id, 429, "Throttling.User", "Request was denied due to user flow control.", headers
            )
        if fault == "server_error":
            return _gateway_response(
                request_id,
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
                headers,
            )
        if fault == "reset":
            # As if the request never arrived: aiohttp clients silently resend an idempotent request
            # once after a reset, with the same nonce, and that resend must not be called a replay.
            self._nonces.pop(request.headers.get("x-acs-signature-nonce", "").strip(), None)
            request[_OUTCOME] = "reset"
            _abort(request)
            raise web.HTTPInternalServerError()  # never sent: the connection is gone
        if fault == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._faults.hang_seconds)

        assert route is not None  # unknown paths were refused above
        status, payload = self._dispatch(request, route[0], route[1], request_id)
        if fault == "malformed":
            text = _dumps(payload)
            # Any proper prefix of a JSON object is invalid JSON: a cut-off answer.
            return web.Response(
                status=200, text=text[: len(text) // 2], content_type="application/json", headers=headers
            )
        return _json(status, payload, headers)

    def _next_fault(self) -> FaultKind | None:
        f = self._faults
        if f.fail_next > 0:
            kind = f.error_kinds[self._fault_cycle % len(f.error_kinds)]
            self._fault_cycle += 1
            f.fail_next -= 1
            return kind
        if f.error_rate > 0 and self._rng.random() < f.error_rate:
            return self._rng.choice(f.error_kinds)
        return None

    def _authenticate(self, request: web.Request, raw_path: str, body: bytes) -> str:
        """Check the request as the gateway would; returns the access key id."""
        parsed = signer.parse_authorization(request.headers.get("Authorization"))
        if parsed is None:
            raise _GatewayError(
                400, "IncompleteSignature", "The Authorization header is missing or not ACS3-HMAC-SHA256."
            )
        signed = set(parsed.signed_headers)
        present = {k.lower() for k in request.headers}
        missing = [h for h in REQUIRED_SIGNED_HEADERS if h not in signed or h not in present]
        unsigned = sorted(h for h in present if h.startswith("x-acs-") and h not in signed)
        if missing or unsigned:
            raise _GatewayError(
                400,
                "IncompleteSignature",
                f"Headers missing or not signed: {', '.join(missing + unsigned)}.",
            )
        payload_hash = request.headers["x-acs-content-sha256"].strip().lower()
        if payload_hash != signer.sha256_hex(body):
            raise _GatewayError(400, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.")

        ak = parsed.access_key_id
        secret = self.access_keys.get(ak)
        if secret is None:
            raise _GatewayError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if ak.startswith("STS."):
            want = self.security_tokens.get(ak)
            got = request.headers.get("x-acs-security-token")
            if want is None or got is None or not hmac.compare_digest(got.encode(), want.encode()):
                raise _GatewayError(
                    400, "InvalidSecurityToken.Mismatch", "The security token does not match the access key."
                )

        query = {k: v for k, v in request.query.items()}
        header_items = list(request.headers.items())
        if not any(
            signer.verify(
                method=request.method,
                path=path,
                query=query,
                headers=header_items,
                payload_hash=payload_hash,
                parsed=parsed,
                access_key_secret=secret,
            )
            for path in dict.fromkeys((raw_path, _canonical_path(raw_path)))
        ):
            raise _GatewayError(
                400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
            )

        date = request.headers["x-acs-date"].strip()
        try:
            sent = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise _GatewayError(
                400, "InvalidTimeStamp.Format", "x-acs-date must look like 2025-01-31T12:00:00Z."
            ) from None
        if abs(time.time() - sent) > MAX_SKEW_SECONDS:
            raise _GatewayError(
                400, "RequestTimeTooSkewed", "x-acs-date is more than 15 minutes from the server time."
            )
        self._use_nonce(request.headers["x-acs-signature-nonce"].strip())
        return ak

    def _use_nonce(self, nonce: str) -> None:
        now = time.monotonic()
        while self._nonces:
            oldest = next(iter(self._nonces))
            if self._nonces[oldest] > now:
                break
            del self._nonces[oldest]
        if nonce in self._nonces:
            raise _GatewayError(400, "SignatureNonceUsed", "The signature nonce was used within 15 minutes.")
        self._nonces[nonce] = now + NONCE_TTL_SECONDS

    def _check_action(self, request: web.Request, action: str) -> None:
        # The gateway authorises by the signed action (stream:<Action>), so a client that names the
        # wrong action is broken even when the path is right.
        sent = request.headers["x-acs-action"].strip()
        if sent != action:
            raise _GatewayError(
                400, "InvalidAction.Mismatch", f"x-acs-action {sent} does not match the path ({action})."
            )
        version = request.headers["x-acs-version"].strip()
        if version != API_VERSION:
            raise _GatewayError(
                400, "InvalidVersion", f"Version {version} is not supported; use {API_VERSION}."
            )

    # --- operations

    def _dispatch(
        self, request: web.Request, action: str, params: tuple[str, ...], request_id: str
    ) -> tuple[int, dict[str, Any]]:
        try:
            ws = self._workspace(request)
            self._namespace(ws, params[0])
            envelope = _OPERATIONS[action](self, request, ws, *params)
        except _ApiError as e:
            return e.status, {
                "requestId": request_id,
                "success": False,
                "httpCode": e.status,
                "errorCode": e.code,
                "errorMessage": e.message,
            }
        return 200, {"requestId": request_id, "success": True, "httpCode": 200, **envelope}

    def _workspace(self, request: web.Request) -> SimWorkspace:
        ws_id = (request.headers.get("workspace") or "").strip()
        if not ws_id:
            raise _ApiError(400, "InvalidParameter", "The workspace header is required.")
        ws = self.fleet.workspace(ws_id)
        if ws is None:
            raise _ApiError(404, "WorkspaceNotFound", f"Workspace {ws_id} was not found.")
        return ws

    def _namespace(self, ws: SimWorkspace, namespace: str) -> None:
        if self.fleet.namespace(ws.id, namespace) is None:
            raise _ApiError(
                404, "NamespaceNotFound", f"Namespace {namespace} was not found in workspace {ws.id}."
            )

    def _deployment(self, ws: SimWorkspace, namespace: str, deployment_id: str) -> Placed:
        placed = self.fleet.deployment(deployment_id)
        if placed is None or placed.workspace != ws.id or placed.namespace != namespace:
            raise _ApiError(
                self._faults.not_found_status, NOT_FOUND_CODE, f"Deployment {deployment_id} was not found."
            )
        return placed

    def _job(self, ws: SimWorkspace, namespace: str, job_id: str) -> tuple[Placed, SimJob]:
        found = self.fleet.job(job_id)
        if found is None or found[0].workspace != ws.id or found[0].namespace != namespace:
            raise _ApiError(self._faults.not_found_status, NOT_FOUND_CODE, f"Job {job_id} was not found.")
        return found

    def _op_get_job_diagnosis(
        self, request: web.Request, ws: SimWorkspace, ns: str, deployment_id: str, job_id: str
    ) -> dict[str, Any]:
        placed = self._deployment(ws, ns, deployment_id)
        owner, job = self._job(ws, ns, job_id)
        if owner.deployment is not placed.deployment:
            raise _ApiError(
                400, "InvalidParameter", f"Job {job_id} does not belong to deployment {deployment_id}."
            )
        wire = diagnosis_wire(placed, job)
        # A job the scenario gave no diagnosis: answer without risk or symptoms ("not reported").
        return {"data": wire if wire is not None else {"namespace": ns, "workspace": ws.id, "symptoms": {}}}

    def _op_get_job(self, request: web.Request, ws: SimWorkspace, ns: str, job_id: str) -> dict[str, Any]:
        placed, job = self._job(ws, ns, job_id)
        return {"data": job_wire(placed, job)}

    def _op_list_jobs(self, request: web.Request, ws: SimWorkspace, ns: str) -> dict[str, Any]:
        deployment_id = (request.query.get("deploymentId") or "").strip()
        if not deployment_id:
            raise _ApiError(400, "InvalidParameter", "deploymentId is required.")
        placed = self._deployment(ws, ns, deployment_id)
        index, size = _page(request)
        ascending = (request.query.get("sortOrder") or "").lower() == "asc"
        jobs = sorted(placed.deployment.jobs, key=lambda j: j.start_time or 0, reverse=not ascending)
        return _paged([job_wire(placed, j) for j in jobs], index, size)

    def _op_get_deployment(
        self, request: web.Request, ws: SimWorkspace, ns: str, deployment_id: str
    ) -> dict[str, Any]:
        return {"data": deployment_wire(self._deployment(ws, ns, deployment_id))}

    def _op_get_deployments_by_name(
        self, request: web.Request, ws: SimWorkspace, ns: str, name: str
    ) -> dict[str, Any]:
        with_summary = (request.query.get("ignoreJobSummary") or "").lower() != "true"
        found = [p for p in self._in_namespace(ws, ns) if p.deployment.name == name]
        return {"data": [deployment_wire(p, with_job_summary=with_summary) for p in found]}

    def _op_list_deployments(self, request: web.Request, ws: SimWorkspace, ns: str) -> dict[str, Any]:
        index, size = _page(request)
        q = request.query
        name = (q.get("name") or "").lower()
        mode = q.get("executionMode")
        label_key = q.get("labelKey")
        label_values = {v for v in (q.get("labelValueArray") or "").split(",") if v}
        found = []
        for p in self._in_namespace(ws, ns):
            d = p.deployment
            if name and name not in d.name.lower():
                continue
            if mode and d.execution_mode != mode:
                continue
            if label_key and (
                label_key not in d.labels or (label_values and d.labels[label_key] not in label_values)
            ):
                continue
            found.append(deployment_wire(p))
        return _paged(found, index, size)

    def _in_namespace(self, ws: SimWorkspace, ns: str) -> list[Placed]:
        return [p for p in self.fleet.placed_deployments() if p.workspace == ws.id and p.namespace == ns]

    # --- control API

    async def _ctl_fleet(self, request: web.Request) -> web.Response:
        return _json(200, {"deployments": self.fleet_summary()})

    async def _ctl_diagnosis(self, request: web.Request) -> web.Response:
        deployment_id = request.match_info["deployment_id"]
        # Kept as text and served as sent (see RawJson): a test's `1e400` reaches the client as `1e400`.
        try:
            text = (await request.read()).decode("utf-8")
            wire = json.loads(text)
        except (ValueError, RecursionError):
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(wire, dict):
            return _json(400, {"error": "the body must be a JSON object (a wire-format JobDiagnosis)"})
        try:
            self.set_diagnosis(deployment_id, text)
        except KeyError:
            return _json(404, {"error": f"deployment {deployment_id} not found"})
        job = self.fleet.deployment(deployment_id).deployment.current_job  # type: ignore[union-attr]
        return _json(200, {"deploymentId": deployment_id, "jobId": job.job_id if job else None})

    async def _ctl_status(self, request: web.Request) -> web.Response:
        deployment_id = request.match_info["deployment_id"]
        try:
            wire = json.loads(await request.read())
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(wire, dict):
            return _json(400, {"error": "the body must be a JSON object (a wire-format JobStatus)"})
        try:
            self.set_status(deployment_id, wire)
        except KeyError:
            return _json(404, {"error": f"deployment {deployment_id} not found"})
        except ValidationError as e:
            return _json(400, {"error": e.errors(include_url=False, include_context=False)})
        except ValueError as e:
            return _json(409, {"error": str(e)})
        placed = self.fleet.deployment(deployment_id)
        return _json(200, job_wire(placed, placed.deployment.current_job))  # type: ignore[arg-type,union-attr]

    async def _ctl_restart(self, request: web.Request) -> web.Response:
        deployment_id = request.match_info["deployment_id"]
        try:
            job_id = self.restart(deployment_id)
        except KeyError:
            return _json(404, {"error": f"deployment {deployment_id} not found"})
        return _json(200, {"jobId": job_id})

    async def _ctl_get_faults(self, request: web.Request) -> web.Response:
        return _json(200, self.faults.model_dump())

    async def _ctl_put_faults(self, request: web.Request) -> web.Response:
        try:
            update = json.loads(await request.read())
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(update, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        try:
            self.faults = Faults.model_validate({**self.faults.model_dump(), **update})
        except ValidationError as e:
            return _json(400, {"error": e.errors(include_url=False, include_context=False)})
        return _json(200, self.faults.model_dump())

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        return _json(200, dict(self.calls))

    async def _ctl_busiest_second(self, request: web.Request) -> web.Response:
        most = self.busiest_second.most
        if request.method == "DELETE":
            self.busiest_second.reset()
        return _json(200, {"calls": most})


_OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "GetJobDiagnosis": Simulator._op_get_job_diagnosis,
    "GetJob": Simulator._op_get_job,
    "ListJobs": Simulator._op_list_jobs,
    "GetDeployment": Simulator._op_get_deployment,
    "GetDeploymentsByName": Simulator._op_get_deployments_by_name,
    "ListDeployments": Simulator._op_list_deployments,
}


def _gateway_response(
    request_id: str, status: int, code: str, message: str, headers: dict[str, str]
) -> web.Response:
    return _json(
        status,
        {"RequestId": request_id, "Code": code, "Message": message, "HostId": "flinkdiag-sim"},
        headers,
    )


def _page(request: web.Request) -> tuple[int, int]:
    try:
        index = int(request.query.get("pageIndex") or 1)
        size = int(request.query.get("pageSize") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise _ApiError(400, "InvalidParameter", "pageIndex and pageSize must be integers.") from None
    if index < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise _ApiError(400, "InvalidParameter", f"pageIndex must be >= 1 and pageSize 1..{MAX_PAGE_SIZE}.")
    return index, size


def _paged(items: list[dict[str, Any]], index: int, size: int) -> dict[str, Any]:
    start = (index - 1) * size
    return {
        "data": items[start : start + size],
        "pageIndex": index,
        "pageSize": size,
        "totalSize": len(items),
    }


def _abort(request: web.Request) -> None:
    """Drop the connection with a TCP reset and no answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0 makes close() send RST rather than FIN: the client sees "connection reset".
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --- standalone


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot.flink.sim", description="Run the Flink OpenAPI simulator."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="0 picks a free port (default 8081)")
    p.add_argument("--scenario", type=Path, help="JSON or YAML fleet file (default: the demo fleet)")
    p.add_argument("--seed", type=int, help="seed for random faults")
    p.add_argument(
        "--not-found-status",
        type=int,
        help="HTTP status sent with errorCode 990301 for an unknown job or deployment "
        "(default: $FLINKDIAG_SIM_NOT_FOUND_STATUS or 200; the real one is unverified)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(sim: Simulator, host: str, port: int) -> None:
    url = await sim.start(host, port)
    keys = ", ".join(sorted(sim.access_keys))
    # stdout, one line: scripts read the URL from it.
    print(f"flinkdiag simulator listening on {url} (access key ids: {keys})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        fleet = load_scenario(args.scenario) if args.scenario else default_fleet()
    except (OSError, ValueError) as e:
        print(f"cannot load scenario {args.scenario}: {e}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        faults = Faults() if args.not_found_status is None else Faults(not_found_status=args.not_found_status)
        asyncio.run(_serve(Simulator(fleet, faults=faults, seed=args.seed), args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
