"""Every FlinkClient operation against the simulator returns typed data, over HTTP and HTTPS."""

from __future__ import annotations

import ssl

import pytest
import trustme
from flink_helpers import NS, STS_AK, STS_SECRET, STS_TOKEN, WS, deployment, fast_settings, sim_and_client

from bot.flink.client import FlinkClient
from bot.flink.credentials import StaticCredentials
from bot.flink.errors import FlinkUnavailable
from bot.flink.models import Deployment, Job, JobDiagnosis
from bot.flink.sim import Fleet, Simulator
from bot.flink.sim_fleet import SimDeployment, SimJob, SimNamespace, SimWorkspace


async def test_get_job_diagnosis_returns_the_served_diagnosis() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "payments-fraud-scoring")
        d = await client.get_job_diagnosis(WS, NS, dep["deploymentId"], dep["jobId"])
    assert isinstance(d, JobDiagnosis)
    assert (d.risk_level, d.health_score) == ("RISK_LEVEL_HIGH", 42)
    assert [s.name for s in d.symptoms.runtime] == ["Backpressure"]
    assert d.symptoms.count() == 3
    assert sim.calls == {"GetJobDiagnosis": 1}


async def test_get_job_and_list_jobs() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "payments-fraud-scoring")
        job = await client.get_job(WS, NS, dep["jobId"])
        jobs = await client.list_jobs(WS, NS, dep["deploymentId"])
    assert isinstance(job, Job)
    assert (job.job_id, job.deployment_id, job.state) == (dep["jobId"], dep["deploymentId"], "RUNNING")
    assert job.status.risk_level == "RISK_LEVEL_HIGH"
    assert len(jobs) == 3 and all(isinstance(j, Job) for j in jobs)
    assert dep["jobId"] in {j.job_id for j in jobs}
    assert sorted(j.state for j in jobs) == ["CANCELLED", "CANCELLED", "RUNNING"]


async def test_get_deployment_and_by_name() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "clickstream-agg")
        got = await client.get_deployment(WS, "analytics", dep["deploymentId"])
        by_name = await client.get_deployments_by_name(WS, "analytics", "clickstream-agg")
        none = await client.get_deployments_by_name(WS, "analytics", "no-such-deployment")
    assert isinstance(got, Deployment)
    assert (got.deployment_id, got.name, got.namespace) == (
        dep["deploymentId"],
        "clickstream-agg",
        "analytics",
    )
    assert got.job_summary is not None and got.job_summary.running == 1
    assert [d.deployment_id for d in by_name] == [dep["deploymentId"]]
    assert none == []


async def test_list_deployments_and_name_filter() -> None:
    async with sim_and_client() as (sim, client):
        every = await client.list_deployments(WS, NS)
        some = await client.list_deployments(WS, NS, name="orders")
    expected = {d["name"] for d in sim.fleet_summary() if d["namespace"] == NS}
    assert {d.name for d in every} == expected and len(every) == len(expected)
    assert [d.name for d in some] == ["orders-etl"]


def big_fleet(count: int) -> Fleet:
    deps = [SimDeployment(name=f"job-{i:04d}", jobs=[SimJob(status="RUNNING")]) for i in range(count)]
    return Fleet(
        workspaces=[SimWorkspace(id="ws-big", namespaces=[SimNamespace(name="bulk", deployments=deps)])]
    )


async def test_list_deployments_walks_every_page() -> None:
    async with sim_and_client(fleet=big_fleet(250)) as (sim, client):
        deps = await client.list_deployments("ws-big", "bulk")
    assert len(deps) == 250
    assert {d.name for d in deps} == {f"job-{i:04d}" for i in range(250)}
    assert sim.calls["ListDeployments"] == 3  # pages of 100, 100, 50


async def test_list_deployments_stops_on_an_exact_last_page() -> None:
    async with sim_and_client(fleet=big_fleet(200)) as (sim, client):
        deps = await client.list_deployments("ws-big", "bulk")
    assert len(deps) == 200
    assert sim.calls["ListDeployments"] == 2


def busy_deployment(*, history: int) -> Fleet:
    """One deployment, `busy` in ws-big/bulk, with `history` cancelled jobs before its running one."""
    jobs = [SimJob(status="CANCELLED") for _ in range(history)] + [SimJob(status="RUNNING")]
    deployment = SimDeployment(name="busy", jobs=jobs)
    return Fleet(
        workspaces=[
            SimWorkspace(id="ws-big", namespaces=[SimNamespace(name="bulk", deployments=[deployment])])
        ]
    )


async def test_list_jobs_walks_every_page() -> None:
    async with sim_and_client(fleet=busy_deployment(history=130)) as (sim, client):
        dep = deployment(sim, "busy")
        got = await client.list_jobs("ws-big", "bulk", dep["deploymentId"])
    assert len({j.job_id for j in got}) == 131
    assert sim.calls["ListJobs"] == 2


async def test_restart_gives_a_new_job_id() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "orders-etl")
        new_job = sim.restart(dep["deploymentId"])
        job = await client.get_job(WS, NS, new_job)
        d = await client.get_job_diagnosis(WS, NS, dep["deploymentId"], new_job)
    assert new_job != dep["jobId"]
    assert job.state == "RUNNING"
    assert d.risk_level == "RISK_LEVEL_LOW"


async def test_sts_credentials_are_accepted() -> None:
    creds = StaticCredentials(STS_AK, STS_SECRET, STS_TOKEN)
    async with sim_and_client(credentials=creds) as (_sim, client):
        deps = await client.list_deployments(WS, "analytics")
    assert len(deps) == 4


async def test_names_with_unusual_characters_reach_the_right_deployment() -> None:
    name = "ventes été ~ (eu)"
    fleet = Fleet(
        workspaces=[
            SimWorkspace(
                id="ws-i18n",
                namespaces=[SimNamespace(name="équipe 1", deployments=[SimDeployment(name=name)])],
            )
        ]
    )
    async with sim_and_client(fleet=fleet) as (_sim, client):
        got = await client.get_deployments_by_name("ws-i18n", "équipe 1", name)
        listed = await client.list_deployments("ws-i18n", "équipe 1", name="été")
    assert [d.name for d in got] == [name]
    assert [d.name for d in listed] == [name]


async def test_session_is_reused_across_calls() -> None:
    async with sim_and_client() as (_sim, client):
        await client.list_deployments(WS, NS)
        session = client._get_session()
        await client.list_deployments(WS, "analytics")
        assert client._get_session() is session
    assert session.closed  # closed by aclose: the client created it


async def test_borrowed_session_is_left_open() -> None:
    import aiohttp

    sim = Simulator(access_keys={"k": "s"})
    base_url = await sim.start()
    async with aiohttp.ClientSession() as session:
        async with FlinkClient(
            fast_settings(base_url), StaticCredentials("k", "s"), session=session
        ) as client:
            assert len(await client.list_deployments(WS, NS)) == 8
        assert not session.closed
    await sim.stop()


def test_missing_endpoint_names_the_settings() -> None:
    from bot.config import Settings

    with pytest.raises(ValueError, match=r"FLINKDIAG_REGION.*FLINKDIAG_ENDPOINT"):
        FlinkClient(Settings(region=None, endpoint=None), StaticCredentials("k", "s"))


def test_region_gives_the_regional_endpoint() -> None:
    from bot.config import Settings

    client = FlinkClient(Settings(region="cn-hangzhou", endpoint=None), StaticCredentials("k", "s"))
    assert client.base_url == "https://ververica.cn-hangzhou.aliyuncs.com"


# --------------------------------------------------------------------------- HTTPS


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_ctx, str(ca_file)


async def test_https_with_private_ca_from_settings(tls: tuple[ssl.SSLContext, str]) -> None:
    server_ctx, ca_file = tls
    sim = Simulator(access_keys={"k": "s"})
    base_url = await sim.start(ssl_context=server_ctx)
    try:
        async with FlinkClient(
            fast_settings(base_url, ca_file=ca_file), StaticCredentials("k", "s")
        ) as client:
            deps = await client.list_deployments(WS, "analytics")
    finally:
        await sim.stop()
    assert base_url.startswith("https://") and len(deps) == 4


async def test_https_untrusted_certificate_is_not_retried(tls: tuple[ssl.SSLContext, str]) -> None:
    server_ctx, _ = tls
    sim = Simulator(access_keys={"k": "s"})
    base_url = await sim.start(ssl_context=server_ctx)
    try:
        async with FlinkClient(fast_settings(base_url), StaticCredentials("k", "s")) as client:
            with pytest.raises(FlinkUnavailable) as info:
                await client.list_deployments(WS, "analytics")
            assert client.limiter_stats().started == 1
    finally:
        await sim.stop()
    assert "FLINKDIAG_CA_FILE" in info.value.user_message
    assert not sim.calls  # the handshake failed: no request reached the API


async def test_recent_jobs_reads_at_most_two_pages_and_finds_the_running_job() -> None:
    async with sim_and_client(fleet=busy_deployment(history=449)) as (sim, client):
        dep = deployment(sim, "busy")
        got = await client.recent_jobs("ws-big", "bulk", dep["deploymentId"])
    assert sim.calls["ListJobs"] == 2  # the first and the last of five pages
    assert dep["jobId"] in {j.job_id for j in got}
    assert [j.state for j in got].count("RUNNING") == 1


async def test_recent_jobs_of_a_short_history_is_one_call() -> None:
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "orders-etl")
        got = await client.recent_jobs(WS, NS, dep["deploymentId"])
    assert sim.calls["ListJobs"] == 1
    assert dep["jobId"] in {j.job_id for j in got}
