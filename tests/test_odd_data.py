"""Odd data is data: whatever JSON the API sends is normalised once by the models, stored, rendered
and alerted on — NUL characters, lone surrogates, `1e400`, NaN, scores of 1e30 or 3e9, times out of
any range, risk levels that are lists. The odd payloads travel as the service would send them:
set as text through the simulator's control API, which serves them byte for byte.
"""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from e2e import Clock, all_text, deployment, diagnose_and_wait
from flink_helpers import NS, WS, sim_and_client
from slack_sdk.models.blocks import Block
from watch_helpers import listing, tick, watch, world

from bot.diagnosis.report import Snapshot, Target
from bot.flink.models import Deployment, Envelope, Job, JobDiagnosis, JobStatus
from bot.store import Store

NUL_PAYLOAD = (
    '{"riskLevel": "RISK_LEVEL_HIGH", "healthScore": 20, "diagnoseId": "d\\u0000nul",'
    ' "symptoms": {"runtime": [{"name": "Back\\u0000pressure", "description": "lag\\u0000 grows \\ud800",'
    ' "recommendation": "scale \\u0000out"}]},'
    ' "vendorExtra": {"note": "x\\u0000y", "nested": [{"k\\u0000": "v\\udfff"}]}}'
)


def high_with_score(score: str) -> str:
    """A HIGH diagnosis whose healthScore is the literal JSON text `score` (1e400 stays 1e400)."""
    return (
        '{"riskLevel": "RISK_LEVEL_HIGH", "healthScore": ' + score + ', "diagnoseTime": 1e400,'
        ' "symptoms": {"runtime": [{"name": "Backpressure", "description": "d", "recommendation": "r"}]}}'
    )


async def put_diagnosis(base_url: str, deployment_id: str, body: str) -> None:
    """Set a diagnosis through the simulator's HTTP control API, as a test client of the real service would."""
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{base_url}/_sim/deployments/{deployment_id}/diagnosis", data=body.encode()) as r,
    ):
        assert r.status == 200, await r.text()


def no_unsafe_text(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert "\x00" not in text and "\\u0000" not in text
    text.encode("utf-8")  # a lone surrogate would raise here


# --- the models ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected", "odd"),
    [
        (float("inf"), None, "Infinity"),  # what json.loads makes of 1e400
        (float("nan"), None, "NaN"),
        (1e30, None, "1e+30"),
        (3_000_000_000, None, "3000000000"),
        (-1, None, "-1"),
        ("87", 87, None),
        ("n/a", None, '"n/a"'),
        (True, None, "true"),
        ([50], None, "50"),
        (64.9, 64, None),
        (None, None, None),
    ],
)
def test_health_score_is_a_score_or_nothing_with_a_note(
    score: Any, expected: int | None, odd: str | None
) -> None:
    d = JobDiagnosis.model_validate({"riskLevel": "RISK_LEVEL_LOW", "healthScore": score})
    assert (d.health_score, d.odd_health_score) == (expected, odd)
    assert "oddHealthScore" not in d.to_wire()


@pytest.mark.parametrize("when", [float("inf"), float("nan"), 1e30, -5, 0, "soon", True, 10**400])
def test_times_outside_any_epoch_range_are_no_time(when: Any) -> None:
    assert JobDiagnosis.model_validate({"diagnoseTime": when}).diagnose_time is None
    job = Job.model_validate({"jobId": "j", "startTime": when, "endTime": when})
    assert (job.start_time, job.end_time) == (None, None)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (["RISK_LEVEL_HIGH"], "RISK_LEVEL_HIGH"),
        ({"level": "HIGH"}, '{"level": "HIGH"}'),
        (3, "3"),
        (False, "false"),
        ("  RISK_LEVEL_MID\x00 ", "RISK_LEVEL_MID"),
    ],
)
def test_a_risk_level_of_another_type_is_text_never_a_repr(raw: Any, shown: str) -> None:
    d = JobDiagnosis.model_validate({"riskLevel": raw})
    assert d.risk_level == shown
    job = Job.model_validate({"jobId": "j", "status": {"riskLevel": raw}})
    assert job.status.risk_level == shown


def test_every_model_strips_what_a_database_cannot_hold_unknown_fields_included() -> None:
    raw = json.loads(NUL_PAYLOAD)
    d = JobDiagnosis.model_validate(raw)
    assert d.symptoms.runtime[0].name == "Backpressure"
    assert d.symptoms.runtime[0].description == "lag grows "
    assert d.to_wire()["vendorExtra"] == {"note": "xy", "nested": [{"k": "v"}]}
    no_unsafe_text(d.to_wire())

    deep: Any = "bottom"
    for _ in range(200):
        deep = [deep]
    odd = {
        "jobId": "job\x00-1",
        "deploymentName": ["orders", "etl"],
        "status": {"currentJobStatus": "RUNNING\x00", "healthScore": 1e30, "running": "yes", "failure": 3},
        "extra": {"n": float("nan"), "i": float("-inf"), "deep": deep},
    }
    job = Job.model_validate(odd)
    assert (job.job_id, job.deployment_name, job.state) == ("job-1", "orders, etl", "RUNNING")
    assert (job.status.health_score, job.status.running, job.status.failure) == (None, None, None)
    no_unsafe_text(job.to_wire())

    # The failure and running objects are cleaned like every other field (the watch reads them).
    status = JobStatus.model_validate(
        {
            "failure": {"failedAt": float("inf"), "reason": ["Out\x00Of", "Memory"], "message": 42},
            "running": {"observedFlinkJobRestarts": -5, "observedFlinkJobStatus": {"x": 1}},
        }
    )
    assert status.failure is not None and status.running is not None
    assert (status.failure.failed_at, status.failure.reason, status.failure.message) == (
        None,
        "OutOf, Memory",
        "42",
    )
    assert status.running.observed_flink_job_restarts == 0
    assert status.running.observed_flink_job_status == '{"x": 1}'
    no_unsafe_text(status.to_wire())

    dep = Deployment.model_validate(
        {
            "deploymentId": "d\ud800-1",
            "name": {"en": "orders"},
            "labels": ["not", "a", "map"],
            "jobSummary": {"running": float("inf"), "failed": -3, "cancelled": 3e9},
            "vendor": {"x\x00": [float("nan")]},
        }
    )
    assert (dep.deployment_id, dep.name, dep.labels) == ("d-1", '{"en": "orders"}', None)
    assert dep.job_summary is not None
    assert (dep.job_summary.running, dep.job_summary.failed, dep.job_summary.cancelled) == (0, 0, 2**31 - 1)
    no_unsafe_text(dep.to_wire())

    env = Envelope[list[Any]].model_validate(
        {"requestId": "r\x00", "success": "true", "totalSize": float("inf"), "pageSize": 1e30, "data": []}
    )
    assert (env.request_id, env.success, env.total_size, env.page_size) == ("r", True, None, 2**31 - 1)


# --- the simulator serves what a test sets, byte for byte -------------------------------------


async def test_the_control_api_serves_odd_json_as_sent() -> None:
    seen: list[bytes] = []

    @web.middleware
    async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if "job-diagnoses" in request.path and isinstance(response, web.Response) and response.body:
            seen.append(bytes(response.body))  # type: ignore[arg-type]
        return response

    body = (
        '{"riskLevel": ["RISK_LEVEL_HIGH"], "healthScore": 1e400, "diagnoseTime": NaN,'
        ' "diagnoseId": "a\\u0000b\\ud800", "symptoms": {"runtime": [{"name": "x", "description": 12}]}}'
    )
    async with sim_and_client(middlewares=[capture]) as (sim, client):
        dep = deployment(sim, "orders-etl")
        await put_diagnosis(sim.base_url, dep["deploymentId"], body)
        d = await client.get_job_diagnosis(WS, NS, dep["deploymentId"], dep["jobId"])
        job = await client.get_job(WS, NS, dep["jobId"])

    [raw] = seen
    assert body.encode() in raw  # 1e400, NaN, \u0000 and the lone surrogate exactly as written
    assert (d.risk_level, d.health_score, d.odd_health_score, d.diagnose_time) == (
        "RISK_LEVEL_HIGH",
        None,
        "Infinity",
        None,
    )
    assert (d.diagnose_id, d.symptoms.runtime[0].description) == ("ab", "12")
    assert job.status.risk_level == "RISK_LEVEL_HIGH"


# --- stored, rendered, alerted, on both databases ---------------------------------------------


async def test_the_store_keeps_what_a_model_accepted(store: Store) -> None:
    d = JobDiagnosis.model_validate(json.loads(NUL_PAYLOAD) | {"healthScore": 3e9})
    run = Snapshot.of(d, Clock()())
    target = Target(workspace=WS, namespace=NS, deployment_id="dep", job_id="job")
    run_id = await store.runs.save(
        team_id="T",
        channel_id="C",
        user_id="U",
        target=target,
        snapshot=run,
        previous_run_id=None,
        diagnosis=d.to_wire(),
    )
    stored = await store.runs.get(run_id)
    assert stored is not None and stored.diagnosis is not None
    assert stored.diagnosis["symptoms"]["runtime"][0]["name"] == "Backpressure"
    assert stored.snapshot.health_score is None


async def test_a_nul_diagnosis_is_shown_by_job_and_deployment(db_url: str) -> None:
    async with world(db_url) as w:
        stack = await w.start_bot()
        dep = deployment(w.sim, "payments-fraud-scoring")
        await put_diagnosis(w.sim.base_url, dep["deploymentId"], NUL_PAYLOAD)

        for command in (f"job {dep['jobId']}", "deployment payments-fraud-scoring"):
            message = await diagnose_and_wait(stack, command)
            text = all_text(message)
            assert "Something went wrong" not in text, text
            assert "Backpressure" in text and "scale out" in text
            assert "\\u0000" not in text
            for block in message.blocks or []:
                Block.parse(block)


@pytest.mark.parametrize("score", ["1e400", "1e30", "3000000000"])
async def test_an_out_of_range_score_is_noted_in_the_diagnosis(tmp_path: Any, score: str) -> None:
    async with world(f"sqlite+aiosqlite:///{tmp_path}/bot.db") as w:
        stack = await w.start_bot()
        dep = deployment(w.sim, "orders-etl")
        await put_diagnosis(w.sim.base_url, dep["deploymentId"], high_with_score(score))
        text = all_text(await diagnose_and_wait(stack, "deployment orders-etl"))
    assert "Something went wrong" not in text
    shown = {"1e400": "Infinity", "1e30": "1e+30", "3000000000": "3000000000"}[score]
    assert f"the API sent `{shown}`, not a score from 0 to 100" in text


async def test_a_nul_diagnosis_alerts_once_across_lease_expiries(db_url: str) -> None:
    async with world(db_url) as w:
        stack = await w.start_bot()
        await watch(stack, "payments-fraud-scoring")
        await put_diagnosis(w.sim.base_url, w.dep_id("payments-fraud-scoring"), NUL_PAYLOAD)
        checks_before = w.checks()
        for _ in range(8):  # 8 × 30 s: well past the 120 s lease, several times over
            await tick(w, stack, seconds=30)
        assert w.checks() - checks_before >= 8, "every sweep checked the deployment"
        alerts = w.alerts("payments-fraud-scoring")
        assert len(alerts) == 1, [all_text(a) for a in alerts]
        assert "Backpressure" in all_text(alerts[0])
        assert "cannot check" not in await listing(stack)


@pytest.mark.parametrize("score", ["1e400", "1e30", "3000000000", "NaN"])
async def test_an_out_of_range_score_still_alerts(db_url: str, score: str) -> None:
    async with world(db_url) as w:
        stack = await w.start_bot()
        await watch(stack, "orders-etl")  # low risk in the default fleet: no alert yet
        assert w.alerts("orders-etl") == []
        await put_diagnosis(w.sim.base_url, w.dep_id("orders-etl"), high_with_score(score))
        for _ in range(3):
            await tick(w, stack)
        assert len(w.alerts("orders-etl")) == 1
        shown = await listing(stack)
        assert "High" in shown and "cannot check" not in shown, shown


def test_nothing_in_a_clean_diagnosis_changes() -> None:
    wire = {
        "riskLevel": "RISK_LEVEL_MID",
        "healthScore": 70,
        "diagnoseTime": 1740389560871,
        "symptoms": {
            "state": [{"name": "Large state", "description": "数据倾斜 😀\n- tab\t", "recommendation": ""}]
        },
        "future": {"a": [1, 2.5, None, True]},
    }
    d = JobDiagnosis.model_validate(wire)
    assert d.to_wire()["symptoms"]["state"][0]["description"] == "数据倾斜 😀\n- tab\t"
    assert d.to_wire()["future"] == wire["future"]
    assert math.isclose(d.health_score or 0, 70)
