"""`PUT /_sim/deployments/{id}/status`: what a deployment's current job reports, read back by the
vendor's own SDK (ListJobs and GetJob alike) over a real socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from alibabacloud_tea_openapi.utils_models import Config
from alibabacloud_ververica20220718 import models as m
from alibabacloud_ververica20220718.client import Client
from darabonba.runtime import RuntimeOptions

from bot.flink.sim import Simulator, default_fleet, load_scenario

AK, SECRET = "test-ak", "test-secret"
WS, NS = "ws-demo", "default-namespace"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(default_fleet(), access_keys={AK: SECRET})
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s


def sdk(sim: Simulator) -> Client:
    return Client(
        Config(
            access_key_id=AK,
            access_key_secret=SECRET,
            endpoint=sim.base_url.removeprefix("http://"),
            protocol="http",
        )
    )


def rt() -> RuntimeOptions:
    return RuntimeOptions(read_timeout=5000, connect_timeout=5000)


def deployment(sim: Simulator, name: str) -> dict[str, Any]:
    return next(d for d in sim.fleet_summary() if d["name"] == name)


async def put_status(
    http: aiohttp.ClientSession, sim: Simulator, deployment_id: str, body: object
) -> tuple[int, Any]:
    async with http.put(
        f"{sim.base_url}/_sim/deployments/{deployment_id}/status", data=json.dumps(body)
    ) as r:
        return r.status, await r.json()


async def current_status(sim: Simulator, d: dict[str, Any], ns: str = NS, ws: str = WS) -> m.JobStatus:
    """The current job's status through ListJobs and GetJob; both must say the same."""
    client = sdk(sim)
    listed = await client.list_jobs_with_options_async(
        ns, m.ListJobsRequest(deployment_id=d["deploymentId"]), m.ListJobsHeaders(workspace=ws), rt()
    )
    first = listed.body.data[0]
    got = await client.get_job_with_options_async(ns, first.job_id, m.GetJobHeaders(workspace=ws), rt())
    assert got.body.data.status.to_map() == first.status.to_map()
    return got.body.data.status


async def test_failed_status_is_served_by_list_jobs_and_get_job(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    d = deployment(sim, "orders-etl")
    body = {
        "currentJobStatus": "FAILED",
        "failure": {"failedAt": 1733300000000, "reason": "OutOfMemoryError", "message": "Java heap space"},
    }
    status, answer = await put_status(http, sim, d["deploymentId"], body)
    assert status == 200 and answer["jobId"] == d["jobId"]

    s = await current_status(sim, d)
    assert s.current_job_status == "FAILED"
    assert (s.failure.failed_at, s.failure.reason, s.failure.message) == (
        1733300000000,
        "OutOfMemoryError",
        "Java heap space",
    )
    assert s.running is None
    # The diagnosis fields were left out of the body: they keep their values.
    assert s.risk_level == "RISK_LEVEL_LOW" and s.health_score == 96
    assert deployment(sim, "orders-etl")["jobStatus"] == "FAILED"


async def test_fields_left_out_keep_their_values(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = deployment(sim, "orders-etl")
    await put_status(http, sim, d["deploymentId"], {"running": {"observedFlinkJobRestarts": 7}})
    s = await current_status(sim, d)
    assert s.current_job_status == "RUNNING"
    assert (s.running.observed_flink_job_restarts, s.running.observed_flink_job_status) == (7, "RUNNING")

    await put_status(http, sim, d["deploymentId"], {"running": {"observedFlinkJobStatus": "RESTARTING"}})
    s = await current_status(sim, d)
    assert (s.running.observed_flink_job_restarts, s.running.observed_flink_job_status) == (7, "RESTARTING")

    # A failure given in parts: the reason now, the message later; failedAt defaults to the end time.
    await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "FAILED", "failure": {"reason": "R"}})
    await put_status(http, sim, d["deploymentId"], {"failure": {"message": "M"}})
    s = await current_status(sim, d)
    assert (s.failure.reason, s.failure.message) == ("R", "M") and isinstance(s.failure.failed_at, int)

    # riskLevel and healthScore are JobStatus fields too; PUT …/diagnosis still sets them as well.
    await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "RUNNING", "healthScore": 55})
    s = await current_status(sim, d)
    assert (s.current_job_status, s.health_score, s.risk_level) == ("RUNNING", 55, "RISK_LEVEL_LOW")
    assert s.running.observed_flink_job_restarts == 7
    async with http.put(
        f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/diagnosis",
        json={"riskLevel": "RISK_LEVEL_HIGH", "healthScore": 30},
    ) as r:
        assert r.status == 200
    s = await current_status(sim, d)
    assert (s.risk_level, s.health_score, s.running.observed_flink_job_restarts) == ("RISK_LEVEL_HIGH", 30, 7)


async def test_restart_starts_a_new_running_job_with_no_restarts(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    d = deployment(sim, "orders-etl")
    await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "FAILED"})
    async with http.post(f"{sim.base_url}/_sim/deployments/{d['deploymentId']}/restart") as r:
        new_id = (await r.json())["jobId"]
    s = await current_status(sim, {**d, "jobId": new_id})
    assert s.current_job_status == "RUNNING" and s.running.observed_flink_job_restarts == 0
    assert s.failure is None
    got = await sdk(sim).get_job_with_options_async(NS, d["jobId"], m.GetJobHeaders(workspace=WS), rt())
    assert got.body.data.status.current_job_status == "FAILED"  # the old job keeps its failure


async def test_a_stopped_job_has_an_end_time_and_a_running_one_has_none(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    d = deployment(sim, "inventory-sync")
    await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "CANCELLED"})
    got = await sdk(sim).get_job_with_options_async(NS, d["jobId"], m.GetJobHeaders(workspace=WS), rt())
    assert got.body.data.status.current_job_status == "CANCELLED" and got.body.data.end_time
    await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "RUNNING"})
    got = await sdk(sim).get_job_with_options_async(NS, d["jobId"], m.GetJobHeaders(workspace=WS), rt())
    assert got.body.data.end_time is None


@pytest.mark.parametrize(
    "body",
    [
        {"currentJobStatus": "EXPLODED"},
        {"running": {"observedFlinkJobRestarts": -1}},
        {"failure": {"failedAt": "yesterday"}},
        {"currentJobStatus": "FAILED", "typo": 1},
        [1, 2],
    ],
)
async def test_bad_bodies_are_refused(sim: Simulator, http: aiohttp.ClientSession, body: object) -> None:
    d = deployment(sim, "orders-etl")
    status, _ = await put_status(http, sim, d["deploymentId"], body)
    assert status == 400
    assert (await current_status(sim, d)).current_job_status == "RUNNING"


async def test_unknown_deployment_or_no_job(sim: Simulator, http: aiohttp.ClientSession) -> None:
    assert (await put_status(http, sim, "no-such", {"currentJobStatus": "FAILED"}))[0] == 404
    d = deployment(sim, "daily-kpi-backfill")  # never started
    assert (await put_status(http, sim, d["deploymentId"], {"currentJobStatus": "FAILED"}))[0] == 409


async def test_a_scenario_job_may_carry_a_wire_status(tmp_path: Path) -> None:
    scenario = {
        "workspaces": [
            {
                "id": "ws-s",
                "namespaces": [
                    {
                        "name": "ns",
                        "deployments": [
                            {
                                "name": "loops",
                                "jobs": [
                                    {
                                        "status": {
                                            "currentJobStatus": "RUNNING",
                                            "running": {"observedFlinkJobRestarts": 12},
                                            "riskLevel": "RISK_LEVEL_MID",
                                            "healthScore": 64,
                                        }
                                    }
                                ],
                            },
                            {
                                "name": "broken",
                                "jobs": [
                                    {
                                        "status": {
                                            "currentJobStatus": "FAILED",
                                            "failure": {"reason": "ClassNotFound", "message": "no UDF"},
                                        }
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    async with Simulator(load_scenario(path), access_keys={AK: SECRET}) as sim:
        s = await current_status(sim, deployment(sim, "loops"), ns="ns", ws="ws-s")
        assert (s.current_job_status, s.running.observed_flink_job_restarts) == ("RUNNING", 12)
        assert (s.risk_level, s.health_score) == ("RISK_LEVEL_MID", 64)
        s = await current_status(sim, deployment(sim, "broken"), ns="ns", ws="ws-s")
        assert (s.current_job_status, s.failure.reason, s.failure.message) == (
            "FAILED",
            "ClassNotFound",
            "no UDF",
        )
