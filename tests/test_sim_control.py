"""The simulator over real sockets: control API, gateway checks, faults, scenarios, the default fleet.

API requests are signed here with bot.flink.signer directly (a tiny helper), not with the project's
client, so the simulator is checked on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import ssl
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
import yaml
from yarl import URL

from bot.flink import signer
from bot.flink.sim import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    Faults,
    Simulator,
    default_fleet,
    load_scenario,
)
from bot.flink.sim_fleet import Fleet

AK, SECRET = DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
WS = "ws-demo"
NS = "default-namespace"
FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


# --- helpers


def enc(*segments: str) -> str:
    """An API path with each segment percent-encoded as the SDK does."""
    return "/api/v2/namespaces/" + "/".join(signer.percent_encode(s) for s in segments)


def signed_headers(
    base_url: str,
    path: str,
    query: dict[str, str] | None = None,
    *,
    action: str,
    workspace: str | None = WS,
    ak: str = AK,
    secret: str = SECRET,
    nonce: str | None = None,
    date: datetime | None = None,
    payload_hash: str = signer.EMPTY_SHA256,
    version: str = "2022-07-18",
) -> dict[str, str]:
    url = URL(base_url)
    headers = {
        "host": f"{url.host}:{url.port}",
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": (date or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": payload_hash,
        "accept": "application/json",
    }
    if workspace is not None:
        headers["workspace"] = workspace
    s = signer.sign(
        method="GET",
        path=path,
        query=query,
        headers=headers.items(),
        payload_hash=payload_hash,
        access_key_id=ak,
        access_key_secret=secret,
    )
    headers["Authorization"] = s.authorization
    return headers


def api_url(base_url: str, path: str, query: dict[str, str] | None = None) -> URL:
    q = signer.canonical_query(query)
    return URL(base_url + path + (f"?{q}" if q else ""), encoded=True)


async def call(
    http: aiohttp.ClientSession,
    sim: Simulator,
    path: str,
    query: dict[str, str] | None = None,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    **sign_kw: object,
) -> tuple[int, dict[str, str], bytes]:
    """A signed GET; `headers` replaces the signed set (to send it twice or tamper with it)."""
    h = headers if headers is not None else signed_headers(sim.base_url, path, query, **sign_kw)  # type: ignore[arg-type]
    async with http.get(api_url(sim.base_url, path, query), headers=h, data=body) as r:
        return r.status, dict(r.headers), await r.read()


async def call_json(
    http: aiohttp.ClientSession, sim: Simulator, path: str, query=None, **kw
) -> tuple[int, dict]:
    status, _, body = await call(http, sim, path, query, **kw)
    return status, json.loads(body)


def by_name(sim: Simulator, name: str) -> dict:
    return next(d for d in sim.fleet_summary() if d["name"] == name)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(default_fleet(), access_keys={AK: SECRET}, seed=7)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s


# --- default fleet


def test_default_fleet_shape() -> None:
    fleet = default_fleet()
    summary = fleet.summary()
    assert len(summary) == 12
    assert {d["workspace"] for d in summary} == {"ws-demo"}
    assert {d["namespace"] for d in summary} == {"default-namespace", "analytics"}
    assert len({d["name"] for d in summary}) == 12

    levels = set()
    for p in fleet.placed_deployments():
        diag = p.deployment.diagnosis
        if diag is None:
            continue
        levels.add(diag["riskLevel"])
        score = diag["healthScore"]
        band = {
            "RISK_LEVEL_LOW": score > 80,
            "RISK_LEVEL_MID": 60 <= score <= 80,
            "RISK_LEVEL_HIGH": score < 60,
        }
        assert band[diag["riskLevel"]], (p.deployment.name, diag["riskLevel"], score)
        autopilot = diag["symptoms"].get("autopilot")
        assert autopilot is None or isinstance(autopilot, dict)
    assert levels == {"RISK_LEVEL_LOW", "RISK_LEVEL_MID", "RISK_LEVEL_HIGH"}

    not_running = {d["name"]: d["jobStatus"] for d in summary if d["jobStatus"] != "RUNNING"}
    assert not_running == {
        "logistics-tracking": "FAILED",
        "notification-dispatcher": "CANCELLED",
        "daily-kpi-backfill": None,
    }
    assert by_name_in(summary, "daily-kpi-backfill")["jobId"] is None

    categories = set()
    for p in fleet.placed_deployments():
        for cat, value in ((p.deployment.diagnosis or {}).get("symptoms") or {}).items():
            if value:
                categories.add(cat)
    assert categories == {"startup", "runtime", "troubleshooting", "state", "autopilot", "others"}


def by_name_in(summary: list[dict], name: str) -> dict:
    return next(d for d in summary if d["name"] == name)


def test_default_fleet_ids_are_deterministic() -> None:
    assert [(d["deploymentId"], d["jobId"]) for d in default_fleet().summary()] == [
        (d["deploymentId"], d["jobId"]) for d in default_fleet().summary()
    ]


# --- control API


async def test_fleet_listing(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.base_url}/_sim/fleet") as r:
        assert r.status == 200
        body = await r.json()
    assert body["deployments"] == sim.fleet_summary()
    first = body["deployments"][0]
    assert {"workspace", "namespace", "deploymentId", "name", "jobId"} <= set(first)


async def test_put_diagnosis_then_get_job_diagnosis(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = by_name(sim, "orders-etl")
    wire = {
        "riskLevel": "RISK_LEVEL_HIGH",
        "healthScore": 12,
        "diagnoseId": "d-1",
        "diagnoseTime": 1740389560871,
        "symptoms": {"troubleshooting": [{"name": "Sink down", "description": "x", "recommendation": "y"}]},
    }
    async with http.put(f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/diagnosis", json=wire) as r:
        assert r.status == 200
        assert (await r.json())["jobId"] == d["jobId"]

    path = enc(NS, "deployments", d["deploymentId"], "jobs", d["jobId"], "job-diagnoses", "lite")
    status, body = await call_json(http, sim, path, action="GetJobDiagnosis")
    assert status == 200 and body["success"] is True and body["data"] == wire

    status, body = await call_json(http, sim, enc(NS, "jobs", d["jobId"]), action="GetJob")
    assert body["data"]["status"]["riskLevel"] == "RISK_LEVEL_HIGH"
    assert body["data"]["status"]["healthScore"] == 12


async def test_put_diagnosis_refusals(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = by_name(sim, "orders-etl")
    async with http.put(f"{sim.base_url}/_sim/deployments/no-such/diagnosis", json={}) as r:
        assert r.status == 404
    async with http.put(f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/diagnosis", json=[1, 2]) as r:
        assert r.status == 400
    async with http.put(
        f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/diagnosis", data=b"{not json"
    ) as r:
        assert r.status == 400
    with pytest.raises(KeyError):
        sim.set_diagnosis("no-such", {})


async def test_restart_gives_a_new_job_and_keeps_the_old_one(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    d = by_name(sim, "payments-fraud-scoring")
    diag_path = enc(NS, "deployments", d["deploymentId"], "jobs", d["jobId"], "job-diagnoses", "lite")
    _, before = await call_json(http, sim, diag_path, action="GetJobDiagnosis")

    async with http.post(f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/restart") as r:
        assert r.status == 200
        new_id = (await r.json())["jobId"]
    assert new_id != d["jobId"]
    assert by_name(sim, "payments-fraud-scoring")["jobId"] == new_id

    _, old = await call_json(http, sim, enc(NS, "jobs", d["jobId"]), action="GetJob")
    assert old["data"]["status"]["currentJobStatus"] == "CANCELLED" and old["data"]["endTime"]
    _, new = await call_json(http, sim, enc(NS, "jobs", new_id), action="GetJob")
    assert new["data"]["status"]["currentJobStatus"] == "RUNNING"
    assert new["data"]["status"]["riskLevel"] == "RISK_LEVEL_HIGH"

    _, jobs = await call_json(
        http, sim, enc(NS, "jobs"), {"deploymentId": d["deploymentId"]}, action="ListJobs"
    )
    assert jobs["totalSize"] == 4 and jobs["data"][0]["jobId"] == new_id

    # The diagnosis carries over to the new job; the old job keeps its own.
    new_diag_path = enc(NS, "deployments", d["deploymentId"], "jobs", new_id, "job-diagnoses", "lite")
    _, after = await call_json(http, sim, new_diag_path, action="GetJobDiagnosis")
    assert after["data"] == before["data"]
    _, old_diag = await call_json(http, sim, diag_path, action="GetJobDiagnosis")
    assert old_diag["data"] == before["data"]


async def test_restart_without_a_job_starts_one(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = by_name(sim, "daily-kpi-backfill")
    assert d["jobId"] is None
    async with http.post(f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/restart") as r:
        new_id = (await r.json())["jobId"]
    _, job = await call_json(http, sim, enc("analytics", "jobs", new_id), action="GetJob")
    assert job["data"]["status"]["currentJobStatus"] == "RUNNING"
    # No diagnosis in the fleet: the answer has neither risk nor symptoms.
    path = enc("analytics", "deployments", d["deploymentId"], "jobs", new_id, "job-diagnoses", "lite")
    status, diag = await call_json(http, sim, path, action="GetJobDiagnosis")
    assert status == 200 and "riskLevel" not in diag["data"]

    async with http.post(f"{sim.base_url}/_sim/deployments/no-such/restart") as r:
        assert r.status == 404


async def test_restart_leaves_a_failed_job_failed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = by_name(sim, "logistics-tracking")
    new_id = sim.restart(d["deploymentId"])
    _, old = await call_json(http, sim, enc(NS, "jobs", d["jobId"]), action="GetJob")
    assert old["data"]["status"]["currentJobStatus"] == "FAILED"
    assert old["data"]["status"]["failure"]["reason"] == "ClassNotFoundException"
    assert by_name(sim, "logistics-tracking")["jobId"] == new_id


# --- faults


async def test_fail_next_cycles_through_kinds_then_recovers(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    d = by_name(sim, "orders-etl")
    path = enc(NS, "jobs", d["jobId"])
    update = {"fail_next": 2, "error_kinds": ["throttle", "server_error"], "retry_after_ms": 2500}
    async with http.put(f"{sim.base_url}/_sim/faults", json=update) as r:
        assert r.status == 200

    status, headers, body = await call(http, sim, path, action="GetJob")
    assert status == 429 and headers["x-acs-retry-after"] == "2500"
    err = json.loads(body)
    assert err["Code"] == "Throttling.User" and err["RequestId"] and err["Message"]

    status, _, body = await call(http, sim, path, action="GetJob")
    assert status == 503 and json.loads(body)["Code"] == "ServiceUnavailable"

    status, body = await call_json(http, sim, path, action="GetJob")
    assert status == 200 and body["data"]["jobId"] == d["jobId"]

    async with http.get(f"{sim.base_url}/_sim/faults") as r:
        now = await r.json()
    assert now["fail_next"] == 0 and now["retry_after_ms"] == 2500
    assert sim.calls["GetJob"] == 3
    async with http.get(f"{sim.base_url}/_sim/calls") as r:
        assert (await r.json())["GetJob"] == 3


async def test_put_faults_is_partial_and_validated(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.put(f"{sim.base_url}/_sim/faults", json={"error_kinds": ["reset", "timeout"]}) as r:
        assert r.status == 200
    async with http.put(f"{sim.base_url}/_sim/faults", json={"latency_ms": 1}) as r:
        assert (await r.json())["error_kinds"] == ["reset", "timeout"]
    for bad in ({"error_rate": 2}, {"bogus": 1}, {"error_kinds": ["nope"]}, {"error_kinds": []}):
        async with http.put(f"{sim.base_url}/_sim/faults", json=bad) as r:
            assert r.status == 400, bad
    assert sim.faults == Faults(latency_ms=1, error_kinds=["reset", "timeout"])


async def test_error_rate_one_fails_every_request(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    sim.faults = Faults(error_rate=1.0, error_kinds=["server_error"])
    for _ in range(3):
        status, _, _ = await call(http, sim, path, action="GetJob")
        assert status == 503
    sim.faults = Faults()
    status, _, _ = await call(http, sim, path, action="GetJob")
    assert status == 200


async def test_malformed_answer_is_not_json(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.faults = Faults(fail_next=1, error_kinds=["malformed"])
    status, headers, body = await call(
        http, sim, enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"]), action="GetJob"
    )
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body
    with pytest.raises(ValueError):
        json.loads(body)


async def test_reset_closes_the_connection_without_an_answer(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    headers = signed_headers(sim.base_url, path, action="GetJob")
    sim.faults = Faults(fail_next=1, error_kinds=["reset"])

    url = URL(sim.base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    try:
        answer = await reader.read()
    except ConnectionResetError:
        answer = b""
    writer.close()
    assert answer == b""

    # A reset request counts as never received: resending it as is (as aiohttp does once) works.
    status, _, _ = await call(http, sim, path, headers=headers)
    assert status == 200


async def test_timeout_fault_stalls_then_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    sim.faults = Faults(fail_next=1, error_kinds=["timeout"], hang_seconds=0.05)
    status, body = await call_json(http, sim, path, action="GetJob")
    assert status == 200 and body["success"] is True

    sim.faults = Faults(fail_next=1, error_kinds=["timeout"], hang_seconds=60)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as impatient:
        with pytest.raises(asyncio.TimeoutError):
            await call(impatient, sim, path, action="GetJob")
    status, _, _ = await call(http, sim, path, action="GetJob")
    assert status == 200


# --- gateway


GATEWAY_CASES = {
    "no authorization": (
        lambda h: {k: v for k, v in h.items() if k != "Authorization"},
        400,
        "IncompleteSignature",
    ),
    "garbled authorization": (lambda h: h | {"Authorization": "Bearer abc"}, 400, "IncompleteSignature"),
    "unsigned x-acs header": (lambda h: h | {"x-acs-extra": "1"}, 400, "IncompleteSignature"),
    "tampered workspace": (lambda h: h | {"workspace": "ws-other"}, 400, "SignatureDoesNotMatch"),
}


@pytest.mark.parametrize("case", GATEWAY_CASES)
async def test_gateway_refuses_tampered_requests(
    sim: Simulator, http: aiohttp.ClientSession, case: str
) -> None:
    tamper, want_status, want_code = GATEWAY_CASES[case]
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    status, _, body = await call(
        http, sim, path, headers=tamper(signed_headers(sim.base_url, path, action="GetJob"))
    )
    err = json.loads(body)
    assert (status, err["Code"]) == (want_status, want_code)
    assert set(err) >= {"RequestId", "Code", "Message"}


@pytest.mark.parametrize(
    ("sign_kw", "want_status", "want_code"),
    [
        ({"secret": "wrong"}, 400, "SignatureDoesNotMatch"),
        ({"ak": "nobody"}, 404, "InvalidAccessKeyId.NotFound"),
        ({"date": datetime.now(UTC) - timedelta(minutes=20)}, 400, "RequestTimeTooSkewed"),
        ({"date": datetime.now(UTC) + timedelta(minutes=20)}, 400, "RequestTimeTooSkewed"),
        ({"action": "GetDeployment"}, 400, "InvalidAction.Mismatch"),
        ({"version": "2021-01-01"}, 400, "InvalidVersion"),
    ],
)
async def test_gateway_refusals(
    sim: Simulator, http: aiohttp.ClientSession, sign_kw: dict, want_status: int, want_code: str
) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    status, body = await call_json(http, sim, path, **({"action": "GetJob"} | sign_kw))
    assert (status, body["Code"]) == (want_status, want_code)


async def test_body_must_match_its_declared_hash(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    status, _, body = await call(http, sim, path, body=b"surprise", action="GetJob")
    assert (status, json.loads(body)["Code"]) == (400, "SignatureDoesNotMatch")


async def test_repeated_nonce_is_refused(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    headers = signed_headers(sim.base_url, path, action="GetJob")
    assert (await call(http, sim, path, headers=headers))[0] == 200
    status, _, body = await call(http, sim, path, headers=headers)
    assert (status, json.loads(body)["Code"]) == (400, "SignatureNonceUsed")


async def test_gateway_checks_come_before_faults(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.faults = Faults(fail_next=1, error_kinds=["server_error"])
    path = enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"])
    status, _ = await call_json(http, sim, path, action="GetJob", secret="wrong")
    assert status == 400
    assert sim.faults.fail_next == 1


# --- business errors


def _business_case(sim: Simulator, case: str) -> tuple[str, dict[str, str] | None, dict[str, object]]:
    """(path, query, signing keywords) of one bad request."""
    orders = by_name(sim, "orders-etl")
    job = orders["jobId"]
    other_job = by_name(sim, "inventory-sync")["jobId"]
    cases: dict[str, tuple[str, dict[str, str] | None, dict[str, object]]] = {
        "no workspace": (enc(NS, "jobs", job), None, {"action": "GetJob", "workspace": None}),
        "unknown workspace": (enc(NS, "jobs", job), None, {"action": "GetJob", "workspace": "ws-x"}),
        "unknown namespace": (enc("nope", "jobs", job), None, {"action": "GetJob"}),
        "job in another namespace": (enc("analytics", "jobs", job), None, {"action": "GetJob"}),
        "unknown deployment": (enc(NS, "deployments", "nope"), None, {"action": "GetDeployment"}),
        "no deploymentId": (enc(NS, "jobs"), None, {"action": "ListJobs"}),
        "unknown deploymentId": (enc(NS, "jobs"), {"deploymentId": "nope"}, {"action": "ListJobs"}),
        "page too big": (enc(NS, "deployments"), {"pageSize": "101"}, {"action": "ListDeployments"}),
        "page zero": (enc(NS, "deployments"), {"pageIndex": "0"}, {"action": "ListDeployments"}),
        "job of another deployment": (
            enc(NS, "deployments", orders["deploymentId"], "jobs", other_job, "job-diagnoses", "lite"),
            None,
            {"action": "GetJobDiagnosis"},
        ),
    }
    return cases[case]


@pytest.mark.parametrize(
    ("case", "want_status", "want_code"),
    [
        ("no workspace", 400, "InvalidParameter"),
        ("unknown workspace", 404, "WorkspaceNotFound"),
        ("unknown namespace", 404, "NamespaceNotFound"),
        ("job in another namespace", 200, "990301"),
        ("unknown deployment", 200, "990301"),
        ("no deploymentId", 400, "InvalidParameter"),
        ("unknown deploymentId", 200, "990301"),
        ("page too big", 400, "InvalidParameter"),
        ("page zero", 400, "InvalidParameter"),
        ("job of another deployment", 400, "InvalidParameter"),
    ],
)
async def test_business_errors(
    sim: Simulator, http: aiohttp.ClientSession, case: str, want_status: int, want_code: str
) -> None:
    path, query, kw = _business_case(sim, case)
    status, body = await call_json(http, sim, path, query, **kw)
    assert status == want_status
    assert body["success"] is False and body["httpCode"] == want_status and body["requestId"]
    assert body["errorCode"] == want_code and body["errorMessage"]


@pytest.mark.parametrize("status", [400, 404])
async def test_the_status_of_not_found_is_a_setting(
    sim: Simulator, http: aiohttp.ClientSession, status: int
) -> None:
    async with http.put(f"{sim.base_url}/_sim/faults", json={"not_found_status": status}) as r:
        assert r.status == 200
    got, body = await call_json(http, sim, enc(NS, "jobs", "nope"), action="GetJob")
    assert (got, body["httpCode"], body["errorCode"], body["success"]) == (status, status, "990301", False)


async def test_unknown_api_path_is_refused(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body = await call_json(http, sim, enc(NS, "events"), action="GetEvents")
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound")
    assert sim.calls["GetEvents"] == 1


async def test_get_deployments_by_name_without_match_is_an_empty_success(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call_json(
        http, sim, enc(NS, "deployments", "name", "nope"), action="GetDeploymentsByName"
    )
    assert status == 200 and body["success"] is True and body["data"] == []


async def test_list_pages_past_the_end_are_empty(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body = await call_json(
        http,
        sim,
        enc("analytics", "deployments"),
        {"pageIndex": "3", "pageSize": "2"},
        action="ListDeployments",
    )
    assert status == 200 and body["data"] == [] and body["totalSize"] == 4 and body["pageIndex"] == 3


async def test_each_request_is_logged_once(
    sim: Simulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.flink.sim"):
        await call(http, sim, enc(NS, "jobs", "nope"), action="GetJob")
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.flink.sim"]
    assert len(lines) == 1
    assert re.search(r"action=GetJob status=200 latency_ms=\d+\.\d", lines[0])
    assert "Authorization" not in lines[0] and SECRET not in lines[0]


# --- scenarios


def test_scenario_file_loads() -> None:
    fleet = load_scenario(FIXTURES / "scenario_small.json")
    summary = fleet.summary()
    assert [(d["namespace"], d["name"]) for d in summary] == [
        ("default-namespace", "orders-etl"),
        ("default-namespace", "billing-sync"),
        ("team a/实时 (ops)", "订单 etl (v2)"),
    ]
    billing = by_name_in(summary, "billing-sync")
    assert billing["deploymentId"] == "00000000-0000-4000-8000-00000000b111" and billing["jobId"] is None
    orders = fleet.deployment(by_name_in(summary, "orders-etl")["deploymentId"])
    assert orders is not None
    assert [j.status for j in orders.deployment.jobs] == ["CANCELLED", "RUNNING"]
    assert orders.deployment.jobs[-1].risk_level == "RISK_LEVEL_HIGH"
    # Ids derive from names: loading twice gives the same ones.
    assert load_scenario(FIXTURES / "scenario_small.json").summary() == summary


def test_yaml_scenario_and_round_trip(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "scenario_small.json").read_text(encoding="utf-8"))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    fleet = load_scenario(FIXTURES / "scenario_small.json")
    assert load_scenario(tmp_path / "s.yaml").summary() == fleet.summary()
    again = Fleet.model_validate(fleet.model_dump(by_alias=True))
    assert again.summary() == fleet.summary()


def _one_namespace(*deployments: dict) -> dict:
    return {"workspaces": [{"id": "w", "namespaces": [{"name": "n", "deployments": list(deployments)}]}]}


@pytest.mark.parametrize(
    "bad",
    [
        _one_namespace({"name": "d", "jobs": [{"status": "RUNNING"}, {"status": "RUNNING"}]}),
        _one_namespace({"name": "d"}, {"name": "d"}),
        _one_namespace({"name": "d", "jbos": []}),
        _one_namespace({"name": "d", "jobs": [{"status": "EXPLODED"}]}),
    ],
    ids=["two running jobs", "duplicate name", "typo", "unknown status"],
)
def test_incoherent_scenarios_are_refused(tmp_path: Path, bad: dict) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError):
        load_scenario(path)


# --- transport and standalone


async def test_https(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    sim = Simulator(access_keys={AK: SECRET})
    url = await sim.start(ssl_context=server_ctx)
    try:
        assert url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as http:
            status, body = await call_json(http, sim, enc(NS, "jobs", by_name(sim, "orders-etl")["jobId"]),
                                           action="GetJob")  # fmt: skip
        assert status == 200 and body["data"]["deploymentName"] == "orders-etl"
    finally:
        await sim.stop()


def test_main_refuses_a_missing_scenario(tmp_path: Path) -> None:
    from bot.flink.sim import main

    assert main(["--port", "0", "--scenario", str(tmp_path / "missing.json")]) == 2


async def test_standalone_process_serves_a_scenario(http: aiohttp.ClientSession) -> None:
    scenario = str(FIXTURES / "scenario_small.json")
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot.flink.sim", "--port", "0", "--scenario", scenario),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        m = re.search(r"(http://\S+)", line)
        assert m, line
        base = m.group(1)
        async with http.get(f"{base}/_sim/fleet") as r:
            names = [d["name"] for d in (await r.json())["deployments"]]
        assert names == ["orders-etl", "billing-sync", "订单 etl (v2)"]
        stub = Simulator(access_keys={AK: SECRET})
        stub.base_url = base  # only for the helper's host and URL
        status, _ = await call_json(
            http, stub, enc(NS, "deployments"), workspace="ws-small", action="ListDeployments"
        )
        assert status == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert "action=ListDeployments status=200" in err.decode()
