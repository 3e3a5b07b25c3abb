"""The odd diagnosis shapes of tests/fixtures, served by the simulator, come back as typed diagnoses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from flink_helpers import AK, NS, WS, deployment, fast_settings, sim_and_client
from test_models import EXPECTED

from bot.flink.client import FlinkClient
from bot.flink.credentials import StaticCredentials

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_fixture_through_the_simulator(name: str) -> None:
    wire = json.loads((FIXTURES / name).read_text(encoding="utf-8"))["data"]
    risk, health, when, counts = EXPECTED[name]
    async with sim_and_client() as (sim, client):
        dep = deployment(sim, "orders-etl")
        sim.set_diagnosis(dep["deploymentId"], wire)
        d = await client.get_job_diagnosis(WS, NS, dep["deploymentId"], dep["jobId"])
    assert (d.risk_level, d.health_score, d.diagnose_time) == (risk, health, when)
    assert {k: len(v) for k, v in d.symptoms.by_category().items() if v} == counts


async def test_null_data_is_an_empty_diagnosis() -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"requestId": "R", "success": True, "httpCode": 200, "data": None})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with FlinkClient(fast_settings(url), StaticCredentials(AK, "x")) as client:
            d = await client.get_job_diagnosis(WS, NS, "dep", "job")
    finally:
        await runner.cleanup()
    assert d.risk_level is None and d.symptoms.count() == 0
