"""Not found is errorCode 990301, whatever the HTTP status (a 200 with `success: false` included):
the client maps it to job / deployment not found by operation, the commands say so, and
`deployment <uuid>` whose UUID is no deployment's id falls back to the name lookup.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e import all_text, diagnose_and_wait, running_stack
from flink_helpers import NS, WS, deployment, sim_and_client

from bot.flink.errors import DeploymentNotFound, FlinkNotFound, JobNotFound
from bot.flink.sim import Faults, Simulator, default_fleet
from bot.flink.sim_fleet import SimDeployment, SimJob

UNKNOWN = "0b7c3a52-6f7e-4d4e-9a51-3f2b9c1d0e11"
STATUSES = [200, 400, 404]


@pytest.mark.parametrize("status", STATUSES)
async def test_990301_is_not_found_by_operation_whatever_the_status(status: int) -> None:
    async with sim_and_client(faults=Faults(not_found_status=status)) as (sim, client):
        dep = deployment(sim, "orders-etl")
        calls: list[tuple[Any, type[FlinkNotFound], str]] = [
            (client.get_job(WS, NS, UNKNOWN), JobNotFound, f"Job `{UNKNOWN}` was not found"),
            (
                client.get_deployment(WS, NS, UNKNOWN),
                DeploymentNotFound,
                f"Deployment `{UNKNOWN}` was not found",
            ),
            (client.list_jobs(WS, NS, UNKNOWN), DeploymentNotFound, f"Deployment `{UNKNOWN}` was not found"),
            (
                client.get_job_diagnosis(WS, NS, dep["deploymentId"], UNKNOWN),
                JobNotFound,
                f"Job `{UNKNOWN}` of deployment `{dep['deploymentId']}` was not found",
            ),
        ]
        for coro, kind, sentence in calls:
            with pytest.raises(FlinkNotFound) as info:
                await coro
            assert type(info.value) is kind
            assert (info.value.error_code, info.value.http_status) == ("990301", status)
            assert info.value.user_message.startswith(sentence), info.value.user_message
    assert sim.calls["GetJob"] == 1, "not found is not retried"


@pytest.mark.parametrize("status", STATUSES)
async def test_job_and_deployment_commands_say_not_found(tmp_path: Any, status: int) -> None:
    sim = Simulator(faults=Faults(not_found_status=status))
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            job = all_text(await diagnose_and_wait(stack, f"job {UNKNOWN}"))
            dep = all_text(await diagnose_and_wait(stack, f"deployment {UNKNOWN}"))
    finally:
        await sim.stop()
    assert f"Job `{UNKNOWN}` was not found" in job and "rejected" not in job, job
    assert f"No deployment named or with id `{UNKNOWN}`" in dep and "rejected" not in dep, dep
    assert sim.calls["GetDeploymentsByName"] >= 1, "the UUID was looked up as a name too"


@pytest.mark.parametrize("status", [200, 400])
async def test_a_uuid_that_is_no_deployments_id_is_looked_up_as_a_name(tmp_path: Any, status: int) -> None:
    fleet = default_fleet()
    fleet.workspaces[0].namespaces[0].deployments.append(SimDeployment(name=UNKNOWN, jobs=[SimJob()]))
    fleet.normalise()
    sim = Simulator(fleet=fleet, faults=Faults(not_found_status=status))
    await sim.start()
    try:
        async with running_stack(tmp_path, sim=sim) as stack:
            text = all_text(await diagnose_and_wait(stack, f"deployment {UNKNOWN}"))
    finally:
        await sim.stop()
    named = deployment(sim, UNKNOWN)
    assert named["deploymentId"] != UNKNOWN
    assert named["deploymentId"] in text and named["jobId"] in text, text
    assert sim.calls["GetDeployment"] >= 1 and sim.calls["GetDeploymentsByName"] >= 1
