"""Error mapping: each failure the API (or the network) produces becomes one typed error that carries
the request id, the code, the HTTP status and one sentence a person can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from flink_helpers import AK, NS, STS_AK, STS_SECRET, WS, deployment, fast_settings, sim_and_client

from bot.flink.client import Call, FlinkClient, classify_error
from bot.flink.credentials import StaticCredentials
from bot.flink.errors import (
    DeploymentNotFound,
    FlinkAuthError,
    FlinkError,
    FlinkNotFound,
    FlinkPermissionError,
    FlinkRequestRejected,
    FlinkServiceError,
    FlinkThrottled,
    FlinkUnavailable,
    FlinkUnreadable,
    JobNotFound,
)

UNKNOWN = "00000000-0000-0000-0000-000000000000"


# --------------------------------------------------------------------------- from the simulator


async def test_wrong_secret_is_auth_error_with_request_id_and_code() -> None:
    async with sim_and_client(credentials=StaticCredentials(AK, "wrong-secret")) as (sim, client):
        with pytest.raises(FlinkAuthError) as info:
            await client.list_deployments(WS, NS)
    err = info.value
    assert err.error_code == "SignatureDoesNotMatch"
    assert err.http_status == 400
    assert err.request_id and len(err.request_id) > 8
    assert "signature" in err.user_message and "SignatureDoesNotMatch" in err.user_message
    assert sim.calls["ListDeployments"] == 1  # not retried


async def test_unknown_access_key_is_auth_error() -> None:
    async with sim_and_client(credentials=StaticCredentials("nobody", "x")) as (_sim, client):
        with pytest.raises(FlinkAuthError) as info:
            await client.list_deployments(WS, NS)
    assert (info.value.error_code, info.value.http_status) == ("InvalidAccessKeyId.NotFound", 404)
    assert "AccessKey id" in info.value.user_message


async def test_wrong_sts_token_is_auth_error() -> None:
    creds = StaticCredentials(STS_AK, STS_SECRET, "stale-token")
    async with sim_and_client(credentials=creds) as (_sim, client):
        with pytest.raises(FlinkAuthError) as info:
            await client.list_deployments(WS, NS)
    assert info.value.error_code is not None and info.value.error_code.startswith("InvalidSecurityToken")
    assert "STS token" in info.value.user_message


async def test_skewed_clock_is_auth_error() -> None:
    async with sim_and_client() as (sim, _):
        late = FlinkClient(
            fast_settings(sim.base_url),
            StaticCredentials(AK, "test-secret"),
            clock=lambda: datetime.now(UTC) - timedelta(hours=1),
        )
        async with late:
            with pytest.raises(FlinkAuthError) as info:
                await late.list_deployments(WS, NS)
    assert info.value.error_code == "RequestTimeTooSkewed"
    assert "clock" in info.value.user_message


async def test_unknown_job_names_the_job() -> None:
    async with sim_and_client() as (_sim, client):
        with pytest.raises(JobNotFound) as info:
            await client.get_job(WS, NS, UNKNOWN)
    err = info.value
    assert err.user_message == f"Job `{UNKNOWN}` was not found in namespace `{NS}` (workspace `{WS}`)."
    assert (err.error_code, err.http_status) == ("990301", 200)
    assert err.request_id


async def test_unknown_job_in_diagnosis_is_job_not_found() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "orders-etl")
        with pytest.raises(JobNotFound) as info:
            await client.get_job_diagnosis(WS, NS, dep["deploymentId"], UNKNOWN)
    assert UNKNOWN in info.value.user_message


async def test_unknown_deployment_names_the_deployment() -> None:
    async with sim_and_client() as (_sim, client):
        with pytest.raises(DeploymentNotFound) as info:
            await client.get_deployment(WS, NS, UNKNOWN)
    assert info.value.user_message == (
        f"Deployment `{UNKNOWN}` was not found in namespace `{NS}` (workspace `{WS}`)."
    )


async def test_unknown_namespace_and_workspace() -> None:
    async with sim_and_client() as (_sim, client):
        with pytest.raises(FlinkNotFound) as ns_info:
            await client.list_deployments(WS, "no-such-ns")
        with pytest.raises(FlinkNotFound) as ws_info:
            await client.list_deployments("ws-nowhere", NS)
    assert type(ns_info.value) is FlinkNotFound and ns_info.value.error_code == "NamespaceNotFound"
    assert ns_info.value.user_message == "Namespace `no-such-ns` was not found in workspace `ws-demo`."
    assert ws_info.value.error_code == "WorkspaceNotFound"
    assert "`ws-nowhere`" in ws_info.value.user_message


async def test_job_of_another_deployment_is_rejected() -> None:
    async with sim_and_client() as (sim, client):
        a, b = deployment(sim, "orders-etl"), deployment(sim, "inventory-sync")
        with pytest.raises(FlinkRequestRejected) as info:
            await client.get_job_diagnosis(WS, NS, a["deploymentId"], b["jobId"])
    assert (info.value.error_code, info.value.http_status) == ("InvalidParameter", 400)
    assert "GetJobDiagnosis" in info.value.user_message


async def test_nothing_listening_is_unavailable() -> None:
    async with sim_and_client() as (sim, _):
        url = sim.base_url
    # The simulator has stopped: the port refuses connections.
    async with FlinkClient(fast_settings(url, max_retries=1), StaticCredentials(AK, "x")) as client:
        with pytest.raises(FlinkUnavailable):
            await client.list_deployments(WS, NS)
        assert client.limiter_stats().started == 2


# --------------------------------------------------------------------------- canned answers


@pytest.fixture
async def canned() -> AsyncIterator[tuple[str, list[web.Response]]]:
    """A loopback server that answers with the queued responses, in order."""
    queue: list[web.Response] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        return queue.pop(0)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", queue
    await runner.cleanup()


def envelope_error(code: str, status: int = 200, **extra: Any) -> web.Response:
    body = {
        "requestId": "REQ-C",
        "success": False,
        "httpCode": status,
        "errorCode": code,
        "errorMessage": "nope",
    }
    return web.json_response(body | extra, status=status)


def gateway_error(code: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"RequestId": "REQ-G", "Code": code, "Message": "gateway"}, status=status, headers=headers
    )


@pytest.mark.parametrize(
    ("response", "kind", "code", "request_id"),
    [
        (lambda: envelope_error("InvalidParameter"), FlinkRequestRejected, "InvalidParameter", "REQ-C"),
        (lambda: envelope_error("JobNotFound"), JobNotFound, "JobNotFound", "REQ-C"),
        (lambda: gateway_error("Forbidden.RAM", 403), FlinkPermissionError, "Forbidden.RAM", "REQ-G"),
        (lambda: gateway_error("NoPermission", 400), FlinkPermissionError, "NoPermission", "REQ-G"),
        (lambda: web.Response(status=401), FlinkAuthError, None, None),
        (lambda: web.Response(status=404, text="<html>nope</html>"), FlinkNotFound, None, None),
        (lambda: web.Response(status=405, text="Method Not Allowed"), FlinkRequestRejected, None, None),
    ],
)
async def test_canned_failures(canned, response, kind: type[FlinkError], code, request_id) -> None:
    base_url, queue = canned
    queue.append(response())
    async with FlinkClient(fast_settings(base_url), StaticCredentials(AK, "x")) as client:
        with pytest.raises(FlinkError) as info:
            await client.get_job(WS, NS, "job-1")
    assert type(info.value) is kind
    assert info.value.error_code == code
    assert info.value.request_id == request_id
    assert info.value.user_message and info.value.user_message != FlinkError.default_sentence
    assert not queue  # exactly one attempt: none of these is retried


@pytest.mark.parametrize(
    ("response", "request_id"),
    [
        (lambda: web.json_response([1, 2], status=200), None),
        (lambda: web.json_response({"requestId": "R", "success": True, "data": "x"}), "R"),
        (lambda: web.json_response({"requestId": "R", "unexpected": "shape"}), "R"),
        (lambda: web.Response(status=200, body=b"\xff\xfe"), None),
        (lambda: web.Response(status=200, text="[" * 100_000), None),
        (lambda: web.Response(status=200, text='{"requestId": "cut', content_type="application/json"), None),
    ],
)
async def test_unreadable_answers_are_retried_like_5xx_then_unreadable(canned, response, request_id) -> None:
    base_url, queue = canned
    queue.extend(response() for _ in range(3))
    async with FlinkClient(fast_settings(base_url, max_retries=2), StaticCredentials(AK, "x")) as client:
        with pytest.raises(FlinkUnreadable) as info:
            await client.get_job(WS, NS, "job-1")
    assert not queue, "every allowed attempt was made"
    assert info.value.request_id == request_id
    assert "GetJob" in info.value.user_message and "could not read" in info.value.user_message


async def test_one_unreadable_answer_then_a_good_one_succeeds(canned) -> None:
    base_url, queue = canned
    queue.append(web.json_response({"requestId": "R", "unexpected": "shape"}))
    queue.append(web.json_response({"requestId": "OK", "success": True, "data": {"jobId": "job-1"}}))
    async with FlinkClient(fast_settings(base_url), StaticCredentials(AK, "x")) as client:
        job = await client.get_job(WS, NS, "job-1")
    assert job.job_id == "job-1" and not queue


async def test_html_502_from_a_proxy_is_a_retried_service_error(canned) -> None:
    base_url, queue = canned
    queue.extend(
        web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html") for _ in range(2)
    )
    async with FlinkClient(fast_settings(base_url, max_retries=1), StaticCredentials(AK, "x")) as client:
        with pytest.raises(FlinkServiceError) as info:
            await client.get_job(WS, NS, "job-1")
    assert info.value.http_status == 502
    assert not queue


async def test_429_without_header_is_throttled_and_retried(canned) -> None:
    base_url, queue = canned
    queue.append(gateway_error("Throttling", 429))
    queue.append(web.json_response({"requestId": "OK", "success": True, "data": {"jobId": "job-1"}}))
    async with FlinkClient(fast_settings(base_url), StaticCredentials(AK, "x")) as client:
        job = await client.get_job(WS, NS, "job-1")
    assert job.job_id == "job-1"


async def test_success_false_on_200_is_an_error(canned) -> None:
    base_url, queue = canned
    queue.append(envelope_error("DeploymentNotFound", status=200))
    async with FlinkClient(fast_settings(base_url), StaticCredentials(AK, "x")) as client:
        with pytest.raises(DeploymentNotFound) as info:
            await client.get_deployment(WS, NS, "dep-1")
    assert info.value.http_status == 200
    assert "`dep-1`" in info.value.user_message


# --------------------------------------------------------------------------- the classification table

CALL = Call("GetJob", "/p", "ws-1", "ns-1", job_id="job-1")


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        # the code decides before the status
        (400, {}, {"Code": "SignatureDoesNotMatch"}, FlinkAuthError),
        (400, {}, {"Code": "IncompleteSignature"}, FlinkAuthError),
        (404, {}, {"Code": "InvalidAccessKeyId.NotFound"}, FlinkAuthError),
        (400, {}, {"Code": "InvalidSecurityToken.Expired"}, FlinkAuthError),
        (400, {}, {"code": "RequestTimeTooSkewed"}, FlinkAuthError),
        (400, {}, {"Code": "Forbidden.RAM"}, FlinkPermissionError),
        (200, {}, {"errorCode": "NoPermission.Workspace"}, FlinkPermissionError),
        (400, {}, {"Code": "Throttling.User"}, FlinkThrottled),
        (404, {}, {"errorCode": "JobNotFound"}, JobNotFound),
        (400, {}, {"errorCode": "DeploymentNotFound"}, DeploymentNotFound),
        (400, {}, {"errorCode": "NamespaceNotFound"}, FlinkNotFound),
        (200, {}, {"errorCode": "InternalError"}, FlinkServiceError),
        # then the status
        (401, {}, {}, FlinkAuthError),
        (403, {}, {"errorCode": "Whatever"}, FlinkPermissionError),
        (429, {}, {}, FlinkThrottled),
        (400, {"x-acs-retry-after": "200"}, {}, FlinkThrottled),
        (404, {}, {}, FlinkNotFound),
        (500, {}, {}, FlinkServiceError),
        (503, {}, {"Code": "ServiceUnavailable"}, FlinkServiceError),
        (400, {}, {"errorCode": "InvalidParameter"}, FlinkRequestRejected),
        (409, {}, {}, FlinkRequestRejected),
        (200, {}, {"success": False}, FlinkRequestRejected),
    ],
)
def test_classification(status: int, headers: dict[str, str], body: dict[str, Any], kind: type) -> None:
    err = classify_error(CALL, status, headers, body)
    assert type(err) is kind
    assert err.http_status == status
    assert err.user_message


def test_classification_reads_either_spelling() -> None:
    lower = classify_error(CALL, 404, {}, {"requestId": "a", "errorCode": "JobNotFound", "errorMessage": "m"})
    upper = classify_error(CALL, 404, {}, {"RequestId": "a", "Code": "JobNotFound", "Message": "m"})
    for err in (lower, upper):
        assert (err.request_id, err.error_code, err.message) == ("a", "JobNotFound", "GetJob: m")
    fallback = classify_error(CALL, 500, {"x-acs-request-id": "from-header"}, None)
    assert fallback.request_id == "from-header"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-acs-retry-after": "1500"}, 1.5),
        ({"Retry-After": "3"}, 3.0),
        ({"x-acs-retry-after": "0"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    err = classify_error(CALL, 429, headers, {"Code": "Throttling.User"})
    assert isinstance(err, FlinkThrottled)
    assert err.retry_after == seconds


async def test_one_unreadable_list_item_is_skipped_not_fatal(
    canned, caplog: pytest.LogCaptureFixture
) -> None:
    base_url, queue = canned
    good = {"deploymentId": "d-1", "name": "fine"}
    queue.append(web.json_response({"requestId": "L", "success": True, "data": [good, {"name": "no id"}]}))
    async with FlinkClient(fast_settings(base_url), StaticCredentials(AK, "x")) as client:
        deps = await client.get_deployments_by_name(WS, NS, "fine")
    assert [d.deployment_id for d in deps] == ["d-1"]
    assert any(
        "skipped unreadable item" in r.getMessage() and "index=1" in r.getMessage() for r in caplog.records
    )


async def test_a_list_of_only_unreadable_items_is_unreadable(canned) -> None:
    base_url, queue = canned
    queue.extend(
        web.json_response({"requestId": "L", "success": True, "data": [{"name": "no id"}, 3]})
        for _ in range(2)
    )
    async with FlinkClient(fast_settings(base_url, max_retries=1), StaticCredentials(AK, "x")) as client:
        with pytest.raises(FlinkUnreadable) as info:
            await client.get_deployments_by_name(WS, NS, "x")
    assert info.value.request_id == "L"
