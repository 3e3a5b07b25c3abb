"""Retries under injected faults: what is retried, how often, how long it waits, and what is not."""

from __future__ import annotations

import logging

import pytest
from flink_helpers import NS, WS, sim_and_client

from bot.flink.errors import (
    FlinkServiceError,
    FlinkThrottled,
    FlinkTimeout,
    FlinkUnavailable,
    FlinkUnreadable,
)
from bot.flink.sim import Faults


class RecordingSleep:
    """Stands in for asyncio.sleep between retries: records the waits, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_two_server_errors_then_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.flink.client")
    async with sim_and_client(faults=Faults(fail_next=2, error_kinds=["server_error"])) as (sim, client):
        deps = await client.list_deployments(WS, NS)
    assert len(deps) == 8
    assert sim.calls["ListDeployments"] == 3
    retries = [r.getMessage() for r in caplog.records if "flink retry" in r.getMessage()]
    assert len(retries) == 2
    assert all("action=ListDeployments" in m and "error_kind=service_error" in m for m in retries)
    assert all("error_code=ServiceUnavailable" in m and "request_id=" in m for m in retries)
    assert "request_id=None" not in retries[0]


async def test_persistent_503_gives_up_after_max_retries() -> None:
    faults = Faults(fail_next=100, error_kinds=["server_error"])
    async with sim_and_client(faults=faults, max_retries=2) as (sim, client):
        with pytest.raises(FlinkServiceError) as info:
            await client.list_deployments(WS, NS)
    assert sim.calls["ListDeployments"] == 3  # max_retries + 1 attempts
    err = info.value
    assert (err.http_status, err.error_code) == (503, "ServiceUnavailable")
    assert err.request_id


async def test_throttling_waits_at_least_retry_after() -> None:
    sleep = RecordingSleep()
    faults = Faults(fail_next=1, error_kinds=["throttle"], retry_after_ms=300)
    async with sim_and_client(faults=faults, sleep=sleep, retry_max_delay=2.0) as (sim, client):
        deps = await client.list_deployments(WS, NS)
    assert len(deps) == 8
    assert sim.calls["ListDeployments"] == 2
    assert len(sleep.waits) == 1 and sleep.waits[0] >= 0.3


async def test_throttling_wait_is_capped_by_retry_max_delay() -> None:
    sleep = RecordingSleep()
    faults = Faults(fail_next=3, error_kinds=["throttle"], retry_after_ms=60_000)
    async with sim_and_client(faults=faults, sleep=sleep, retry_max_delay=0.05) as (_sim, client):
        deps = await client.list_deployments(WS, NS)
    assert len(deps) == 8
    assert len(sleep.waits) == 3
    assert all(w <= 0.05 for w in sleep.waits)


async def test_throttling_that_never_ends_is_flink_throttled() -> None:
    faults = Faults(fail_next=100, error_kinds=["throttle"], retry_after_ms=1500)
    async with sim_and_client(faults=faults, sleep=RecordingSleep(), max_retries=1) as (sim, client):
        with pytest.raises(FlinkThrottled) as info:
            await client.list_deployments(WS, NS)
    assert info.value.retry_after == 1.5
    assert info.value.error_code == "Throttling.User"
    assert sim.calls["ListDeployments"] == 2


async def test_backoff_grows_between_retries() -> None:
    sleep = RecordingSleep()
    faults = Faults(fail_next=3, error_kinds=["server_error"])
    async with sim_and_client(faults=faults, sleep=sleep, retry_base_delay=0.1, retry_max_delay=10.0) as (
        _sim,
        client,
    ):
        await client.list_deployments(WS, NS)
    # base * 2**n plus up to `base` of jitter: 0.1-0.2, 0.2-0.3, 0.4-0.5
    assert [round(w, 1) >= b for w, b in zip(sleep.waits, (0.1, 0.2, 0.4), strict=True)] == [True] * 3
    assert sleep.waits[2] > sleep.waits[0]


async def test_connection_reset_is_retried() -> None:
    # aiohttp itself resends an idempotent request once after a reset on a reused connection, so
    # two resets in a row are needed to be sure our retry is the one that recovers.
    faults = Faults(fail_next=2, error_kinds=["reset"])
    async with sim_and_client(faults=faults) as (sim, client):
        deps = await client.list_deployments(WS, NS)
        assert len(deps) == 8
        assert client.limiter_stats().started >= 2
    assert sim.calls["ListDeployments"] == 3


async def test_persistent_resets_give_flink_unavailable() -> None:
    faults = Faults(fail_next=100, error_kinds=["reset"])
    async with sim_and_client(faults=faults, max_retries=1) as (_sim, client):
        with pytest.raises(FlinkUnavailable) as info:
            await client.list_deployments(WS, NS)
        assert client.limiter_stats().started == 2
    assert "could not be reached" in info.value.user_message


async def test_a_malformed_answer_is_retried_like_a_5xx() -> None:
    async with sim_and_client(faults=Faults(fail_next=1, error_kinds=["malformed"])) as (sim, client):
        deps = await client.list_deployments(WS, NS)
    assert len(deps) == 8
    assert sim.calls["ListDeployments"] == 2


async def test_persistently_malformed_answers_are_unreadable_after_the_retries() -> None:
    faults = Faults(fail_next=100, error_kinds=["malformed"])
    async with sim_and_client(faults=faults, max_retries=2) as (sim, client):
        with pytest.raises(FlinkUnreadable) as info:
            await client.list_deployments(WS, NS)
    assert sim.calls["ListDeployments"] == 3
    assert info.value.request_id  # from the x-acs-request-id header
    assert "ListDeployments" in info.value.user_message


async def test_hanging_server_times_out() -> None:
    faults = Faults(fail_next=2, error_kinds=["timeout"], hang_seconds=5)
    async with sim_and_client(faults=faults, request_timeout=0.2, max_retries=1) as (_sim, client):
        with pytest.raises(FlinkTimeout) as info:
            await client.list_deployments(WS, NS)
        assert client.limiter_stats().started == 2
    assert "did not answer within 0.2 s" in info.value.user_message


async def test_timeout_then_success() -> None:
    faults = Faults(fail_next=1, error_kinds=["timeout"], hang_seconds=5)
    async with sim_and_client(faults=faults, request_timeout=0.2) as (sim, client):
        deps = await client.list_deployments(WS, NS)
    assert len(deps) == 8
    assert sim.calls["ListDeployments"] == 2


async def test_business_errors_are_not_retried() -> None:
    from bot.flink.errors import JobNotFound

    async with sim_and_client(faults=Faults()) as (sim, client):
        with pytest.raises(JobNotFound):
            await client.get_job(WS, NS, "00000000-0000-0000-0000-000000000000")
    assert sim.calls["GetJob"] == 1
