"""Our ACS3-HMAC-SHA256 signature against the vendor's own `Utils.get_authorization`.

Two levels: the pure signer over hand-built requests, and what `FlinkClient` really puts on the
wire (recorded by a loopback server) re-signed by the vendor function.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest
from darabonba.url import Url as DaraURL

from bot.config import Settings
from bot.flink import signer
from bot.flink.client import FlinkClient
from bot.flink.credentials import StaticCredentials

AK = "LTAI5tTestAccessKeyId"
SECRET = "TestSecretKey0123456789abcdef"
DATE = "2025-02-24T09:32:40Z"
NONCE = "3f2b4f0e-1d7c-4a4e-9a51-0d3c2b1a0f99"
EMPTY = signer.EMPTY_SHA256


def vendor_authorization(method: str, pathname: str, query: dict[str, str], headers: dict[str, str]) -> str:
    req = DaraRequest()
    req.method = method
    req.pathname = pathname
    req.query = query
    req.headers = headers
    return Utils.get_authorization(req, "ACS3-HMAC-SHA256", EMPTY, AK, SECRET)


def base_headers(action: str = "GetJobDiagnosis") -> dict[str, str]:
    return {
        "host": "ververica.cn-hangzhou.aliyuncs.com",
        "x-acs-action": action,
        "x-acs-version": "2022-07-18",
        "x-acs-date": DATE,
        "x-acs-signature-nonce": NONCE,
        "x-acs-content-sha256": EMPTY,
        "accept": "application/json",
        "user-agent": "flinkdiag/test",
        "workspace": "a14bd5d90a0001",
    }


def ours(method: str, pathname: str, query: dict[str, str], headers) -> str:
    items = headers.items() if isinstance(headers, dict) else headers
    return signer.sign(
        method=method,
        path=pathname,
        query=query,
        headers=items,
        payload_hash=EMPTY,
        access_key_id=AK,
        access_key_secret=SECRET,
    ).authorization


@pytest.mark.parametrize(
    "value",
    ["default-namespace", "name with space", "ünïcødé-名前", "tilde~ok", "a/b", "100%", "*+!'()", "a&b=c"],
)
def test_percent_encode_matches_vendor(value: str) -> None:
    assert signer.percent_encode(value) == DaraURL.percent_encode(value)


def test_signature_with_query_params() -> None:
    query = {"deploymentId": "737d0921-c5ac-47fc-9ba9-07a1e0b4aaaa", "pageIndex": "2", "name": "a b~c/é"}
    headers = base_headers("ListJobs")
    path = "/api/v2/namespaces/default-namespace/jobs"
    assert ours("GET", path, query, headers) == vendor_authorization("GET", path, query, headers)


def test_signature_with_encoded_path_params() -> None:
    enc = signer.percent_encode
    path = (
        f"/api/v2/namespaces/{enc('ns with space')}/deployments/{enc('dép~名前')}"
        f"/jobs/{enc('job~1')}/job-diagnoses/lite"
    )
    assert "%20" in path and "~" in path and "%C3%A9" in path
    headers = base_headers()
    assert ours("GET", path, {}, headers) == vendor_authorization("GET", path, {}, headers)


def test_signature_with_sts_token() -> None:
    headers = base_headers() | {
        "x-acs-accesskey-id": AK,
        "x-acs-security-token": "CAIS+token/with==padding",
    }
    path = "/api/v2/namespaces/default-namespace/jobs/5af678c0"
    signed = ours("GET", path, {}, headers)
    assert "x-acs-security-token" in signed
    assert signed == vendor_authorization("GET", path, {}, headers)


def test_signature_with_repeated_headers() -> None:
    # The vendor's dict can only repeat a name through case; both sides fold, trim and sort values.
    headers = base_headers() | {"X-Acs-Custom": "  zeta ", "x-acs-custom": "alpha"}
    path = "/api/v2/namespaces/default-namespace/deployments"
    signed = ours("GET", path, {}, headers)
    assert signed == vendor_authorization("GET", path, {}, headers)
    assert ours("GET", path, {}, list(headers.items())) == signed


def test_signature_changes_with_any_signed_part() -> None:
    headers = base_headers()
    path = "/api/v2/namespaces/default-namespace/deployments"
    reference = ours("GET", path, {}, headers)
    assert ours("GET", path + "x", {}, headers) != reference
    assert ours("GET", path, {"pageIndex": "1"}, headers) != reference
    assert ours("GET", path, {}, headers | {"workspace": "other"}) != reference


# --------------------------------------------------------------------------- on the wire


@pytest.fixture
async def recorder():
    """A loopback server that records each request exactly as received."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": [(k.decode("latin-1"), v.decode("utf-8")) for k, v in request.raw_headers],
            }
        )
        action = request.headers.get("x-acs-action")
        data: object = {"riskLevel": "RISK_LEVEL_LOW"} if action == "GetJobDiagnosis" else []
        return web.json_response(
            {"requestId": "REC-1", "success": True, "httpCode": 200, "data": data, "totalSize": 0}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def fixed_clock() -> datetime:
    return datetime(2025, 2, 24, 9, 32, 40, tzinfo=UTC)


def vendor_check(record: dict) -> tuple[str, str, dict[str, str]]:
    """(Authorization sent, the vendor's Authorization over everything else received, those headers)."""
    path, _, qs = record["raw_path"].partition("?")
    headers = {k: v for k, v in record["headers"] if k.lower() != "authorization"}
    sent_auth = next(v for k, v in record["headers"] if k.lower() == "authorization")
    return sent_auth, vendor_authorization(record["method"], path, dict(parse_qsl(qs)), headers), headers


@pytest.mark.parametrize("token", [None, "STS.token+/=="])
async def test_client_request_on_the_wire_is_signed_as_the_vendor_would(recorder, token) -> None:
    base_url, seen = recorder
    settings = Settings(endpoint=base_url)
    creds = StaticCredentials(AK, SECRET, token)
    async with FlinkClient(settings, creds, clock=fixed_clock, nonce=lambda: NONCE) as client:
        await client.get_job_diagnosis("ws-1", "name space", "dép~1", "job-ü")
        await client.list_deployments("ws-1", "default-namespace", name="my job é~")

    assert len(seen) == 2
    diag, listing = seen
    assert diag["raw_path"] == (
        "/api/v2/namespaces/name%20space/deployments/d%C3%A9p~1/jobs/job-%C3%BC/job-diagnoses/lite"
    )
    assert "name=my%20job%20%C3%A9~" in listing["raw_path"]
    for record in seen:
        sent_auth, vendor_auth, fields = vendor_check(record)
        assert sent_auth == vendor_auth
        assert fields["host"] == base_url.removeprefix("http://")
        assert fields["x-acs-date"] == DATE
        assert fields["x-acs-signature-nonce"] == NONCE
        assert fields["x-acs-version"] == "2022-07-18"
        assert fields["workspace"] == "ws-1"
        # Nothing unsigned goes out: every header sent is in SignedHeaders.
        parsed = signer.parse_authorization(sent_auth)
        assert parsed is not None
        sent_names = {k.lower() for k, _ in record["headers"]} - {"authorization"}
        assert sent_names == set(parsed.signed_headers)
        if token:
            assert fields["x-acs-security-token"] == token
            assert fields["x-acs-accesskey-id"] == AK
        else:
            assert "x-acs-security-token" not in fields
