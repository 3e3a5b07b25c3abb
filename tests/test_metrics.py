"""`/metrics`, `/healthz` and `/readyz`, asked over HTTP as Prometheus and an orchestrator would.

`flinkdiag serve` runs as a real process in HTTP mode (probes on $PORT) and in Socket Mode (on
FLINKDIAG_METRICS_PORT), against the local Slack and the simulator; the database-backed gauges
and readiness checks are also driven in-process with a controlled clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from conftest import PG_ADMIN_URL, _pg_create_database, _pg_drop_database, _pg_ping, _run
from e2e import all_text
from procs import free_port, serving_http, until_healthy
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from test_socket_mode import Served, serving
from watch_helpers import tick, watch, world

from bot.flink.sim import Simulator
from bot.probes import Probes, watch_overdue_after
from bot.slack.driver import SlackDriver

FLEET = {d["name"]: d for d in Simulator().fleet_summary()}
HIGH = "payments-fraud-scoring"
HIGH_JOB = FLEET[HIGH]["jobId"]


# ----------------------------------------------------------------------------- helpers


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Probe:
    """GETs against one bot's probe port."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(f"{self.base}{path}") as resp:
            return resp.status, await resp.text()

    async def metrics(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return parse(text)

    async def ready(self) -> tuple[int, dict[str, Any]]:
        status, text = await self.get("/readyz")
        return status, json.loads(text)

    async def until_ready(self, want: int = 200, timeout: float = 20) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                status, body = await self.ready()
                if status == want:
                    return body
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(poll(), timeout)

    async def until_metric(self, name: str, at_least: float, timeout: float = 20, **labels: str) -> Samples:
        async def poll() -> Samples:
            while True:
                samples = await self.metrics()
                if value(samples, name, **labels) >= at_least:
                    return samples
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def probing(served: Served, port: int) -> AsyncIterator[Probe]:
    await served.until(until_healthy(served.proc, port, served.log_path))
    async with aiohttp.ClientSession() as http:
        yield Probe(http, f"http://127.0.0.1:{port}")


@pytest.fixture
def own_pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, which the test may drop."""
    admin = make_url(PG_ADMIN_URL)
    try:
        _run(_pg_ping(admin))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is unreachable and CI is set: {e!r}", pytrace=False)
        pytest.skip(f"PostgreSQL is unreachable: {e!r}")
    name = f"flinkdiag_test_{int(time.time())}_{secrets.token_hex(4)}"
    _run(_pg_create_database(admin, name))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_pg_drop_database(admin, name))


async def _admin(database: str | None = None) -> asyncpg.Connection:
    url = make_url(PG_ADMIN_URL)
    if database:
        url = url.set(database=database)
    return await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))


# ----------------------------------------------------------------------------- HTTP mode


async def test_http_mode_serves_probes_on_port_and_counts_a_command(tmp_path: Path) -> None:
    signing = "metrics-test-signing-secret"
    async with serving_http(tmp_path, bot_token="xoxb-metrics-test", signing=signing) as bot:
        sim, slack, proc, base = bot.sim, bot.slack, bot.proc, bot.base
        async with aiohttp.ClientSession() as http:
            probe = Probe(http, base)
            body = await probe.until_ready()
            assert body == {"ready": True, "checks": {"database": "ok", "slack": "ok", "watch": "ok"}}

            status, text = await probe.get("/metrics")
            assert status == 200
            before = parse(text)
            assert (
                value(before, "flinkdiag_flink_api_calls_total", operation="GetJobDiagnosis", outcome="ok")
                == 0
            )
            assert value(before, "flinkdiag_slack_ack_seconds_count", kind="command") == 0

            async with SlackDriver(f"{base}/slack/events", signing, slack) as driver:
                assert (await driver.command(f"job {HIGH_JOB}", channel="C1", user="U1")).status == 200
                await slack.wait_for(
                    lambda: any("High risk" in json.dumps(m.blocks) for m in slack.channel_messages("C1")),
                    timeout=15,
                )
                assert (await driver.command("job j-not-a-known-job", channel="C1", user="U1")).status == 200
                await slack.wait_for(
                    lambda: any("was not found" in all_text(m) for m in slack.channel_messages("C1")),
                    timeout=15,
                )

            async def all_counted() -> Samples:
                # every request the simulator answered is in the counter, whatever its outcome
                while True:
                    samples = await probe.metrics()
                    counted = sum(
                        v for (n, _), v in samples.items() if n == "flinkdiag_flink_api_calls_total"
                    )
                    if counted == sum(sim.calls.values()):
                        return samples
                    await asyncio.sleep(0.1)

            after = await asyncio.wait_for(all_counted(), 15)
            assert (
                value(after, "flinkdiag_flink_api_calls_total", operation="GetJob", outcome="job_not_found")
                >= 1
            )

        assert value(after, "flinkdiag_flink_api_calls_total", operation="GetJobDiagnosis", outcome="ok") == 1
        assert value(after, "flinkdiag_flink_api_calls_total", operation="GetJob", outcome="ok") == 1
        assert value(after, "flinkdiag_flink_api_latency_seconds_count", operation="GetJobDiagnosis") == 1
        assert value(after, "flinkdiag_flink_limiter_wait_seconds_count") == sum(sim.calls.values())
        assert value(after, "flinkdiag_slack_ack_seconds_count", kind="command") == 2
        assert value(after, "flinkdiag_watch_sweep_duration_seconds_count") >= 1
        # the token check at start-up and each readiness check called auth.test; none failed
        assert value(after, "flinkdiag_slack_api_errors_total", error="invalid_auth") == 0

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    logs = bot.logs()
    assert "Traceback" not in logs


# ----------------------------------------------------------------------------- Socket Mode


async def test_socket_mode_serves_probes_on_metrics_port_and_counts_a_watch(tmp_path: Path) -> None:
    metrics_port = free_port()
    async with serving(
        tmp_path,
        FLINKDIAG_METRICS_PORT=str(metrics_port),
        FLINKDIAG_SWEEP_TICK_SECONDS="0.2",
        FLINKDIAG_MIN_WATCH_INTERVAL="1s",
    ) as served:
        slack = served.slack
        await served.until(slack.wait_socket_connected(timeout=15))
        async with probing(served, metrics_port) as probe:
            assert (await served.until(probe.until_ready()))["ready"] is True
            before = await probe.metrics()
            assert value(before, "flinkdiag_watched_deployments", state="active") == 0

            envelope = await served.command(f"watch deployment {HIGH} --every 1s")
            await served.until(slack.socket_ack(envelope))
            # HIGH alerts at the first check
            await served.until(
                slack.wait_for(lambda: slack.channel_messages("C0SOCKET", include_ephemeral=False))
            )
            await served.until(probe.until_metric("flinkdiag_slack_posts_total", 1, kind="alert"))
            # the check is counted once its record is written, just after the post
            after = await served.until(probe.until_metric("flinkdiag_watch_checks_total", 1, outcome="risk"))
        assert value(after, "flinkdiag_watched_deployments", state="active") == 1
        assert value(after, "flinkdiag_slack_posts_total", kind="alert") == 1
        assert value(after, "flinkdiag_flink_api_calls_total", operation="ListJobs", outcome="ok") >= 1
        assert value(after, "flinkdiag_slack_ack_seconds_count", kind="command") == 1
        assert value(after, "flinkdiag_watch_last_progress_timestamp_seconds") > 0
        # Prometheus' standard process metrics come along
        assert value(after, "process_cpu_seconds_total") > 0

        # $PORT stays closed: Socket Mode needs no public endpoint.
        with pytest.raises(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.close()
        served.proc.send_signal(signal.SIGTERM)
        assert await served.until(served.proc.wait()) == 0
    assert "Traceback" not in served.logs()


async def test_socket_mode_without_metrics_port_serves_no_probes(tmp_path: Path) -> None:
    async def started() -> None:
        while "serving in Socket Mode" not in served.logs():  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async with serving(tmp_path) as served:
        await served.until(started())
        assert "no probes or metrics: FLINKDIAG_METRICS_PORT is not set" in served.logs()


# ----------------------------------------------------------------------------- /readyz failing


async def test_readyz_fails_when_the_postgresql_database_is_dropped(
    tmp_path: Path, own_pg_database: str
) -> None:
    metrics_port = free_port()
    async with serving(
        tmp_path, FLINKDIAG_DATABASE_URL=own_pg_database, FLINKDIAG_METRICS_PORT=str(metrics_port)
    ) as served:
        async with probing(served, metrics_port) as probe:
            await served.until(probe.until_ready(200))
            conn = await _admin()
            try:
                await conn.execute(f'DROP DATABASE "{make_url(own_pg_database).database}" WITH (FORCE)')
            finally:
                await conn.close()
            body = await served.until(probe.until_ready(503))
            assert body["ready"] is False
            assert body["checks"]["database"].startswith("database unreachable"), body
            assert body["checks"]["slack"] == "ok"
            # alive, just not ready
            assert (await probe.get("/healthz"))[0] == 200
            status, _ = await probe.get("/metrics")
            assert status == 200


async def test_readyz_fails_while_the_watch_sweep_is_stuck(tmp_path: Path, own_pg_database: str) -> None:
    # A session holding the watch tables (a long migration, a forgotten transaction) blocks every
    # sweep while the database still answers a ping: only the overdue sweep shows it.
    metrics_port = free_port()
    async with serving(
        tmp_path,
        FLINKDIAG_DATABASE_URL=own_pg_database,
        FLINKDIAG_METRICS_PORT=str(metrics_port),
        FLINKDIAG_SWEEP_TICK_SECONDS="0.2",
        FLINKDIAG_REQUEST_TIMEOUT="1",
        FLINKDIAG_MAX_RETRIES="0",
    ) as served:
        async with probing(served, metrics_port) as probe:
            await served.until(probe.until_ready(200))
            conn = await _admin(make_url(own_pg_database).database)
            try:
                locking = conn.transaction()
                await locking.start()
                await conn.execute("LOCK TABLE watches, watch_targets IN ACCESS EXCLUSIVE MODE")
                body = await served.until(probe.until_ready(503))
                assert body["checks"]["database"] == "ok"
                assert body["checks"]["watch"].startswith("watch sweep overdue"), body
                await locking.rollback()
            finally:
                await conn.close()
            # the next sweep completes and the bot is ready again
            assert (await served.until(probe.until_ready(200)))["ready"] is True


# ----------------------------------------------------------------------------- in-process


@contextlib.asynccontextmanager
async def probes_of(stack: Any, now: Any, **kw: Any) -> AsyncIterator[Probe]:
    """The bot's probes on a loopback port of their own, as Socket Mode serves them."""
    probes = Probes(stack.settings, engine=stack.store.engine, web=stack.wiring.web, now=now, **kw)
    runner = await probes.serve_alone(0, host="127.0.0.1")
    assert runner is not None
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            yield Probe(http, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def test_store_gauges_and_slack_errors_follow_the_watch(db_url: str) -> None:
    async with world(db_url) as w:
        stack = await w.start_bot()
        async with probes_of(stack, w.clock) as probe:
            await watch(stack, HIGH)
            # Ten minutes without a sweep: the check has waited that long.
            w.clock.advance(minutes=10)
            samples = await probe.metrics()
            assert value(samples, "flinkdiag_watch_oldest_overdue_seconds") == pytest.approx(600, abs=1)
            assert value(samples, "flinkdiag_watched_deployments", state="active") == 1

            errors = value(samples, "flinkdiag_slack_api_errors_total", error="not_in_channel")
            posts = value(samples, "flinkdiag_slack_posts_total", kind="alert")
            w.slack.fail_next("chat.postMessage", "not_in_channel")
            await tick(w, stack)
            samples = await probe.metrics()
            assert value(samples, "flinkdiag_slack_api_errors_total", error="not_in_channel") == errors + 1
            assert value(samples, "flinkdiag_slack_posts_total", kind="alert") == posts
            # Slack refused the channel: its watch is paused, so its checks are not overdue.
            assert value(samples, "flinkdiag_watched_deployments", state="active") == 0
            assert value(samples, "flinkdiag_watched_deployments", state="paused") == 1
            w.clock.advance(minutes=10)
            samples = await probe.metrics()
            assert value(samples, "flinkdiag_watch_oldest_overdue_seconds") == 0

            # Any watch command resumes the channel; the held alert goes out at the next check.
            await watch(stack, "orders-etl")
            await tick(w, stack)
            samples = await probe.metrics()
            assert value(samples, "flinkdiag_slack_posts_total", kind="alert") == posts + 1
            assert value(samples, "flinkdiag_watched_deployments", state="active") == 2
            assert w.alerts(HIGH)


async def test_readyz_fails_when_slack_refuses_the_bot_token(tmp_path: Path) -> None:
    async with world(f"sqlite+aiosqlite:///{tmp_path}/bot.db") as w:
        stack = await w.start_bot()
        async with probes_of(stack, w.clock, slack_recheck_seconds=0) as probe:
            await stack.wiring.sweeper.sweep()
            status, body = await probe.ready()
            assert (status, body["checks"]) == (200, {"database": "ok", "slack": "ok", "watch": "ok"})
            w.slack.bot_token = "xoxb-rotated"  # the old token is revoked
            status, body = await probe.ready()
            assert status == 503
            assert body["checks"]["slack"] == "Slack refused the bot token (invalid_auth)"
            assert body["checks"]["database"] == "ok"


def test_overdue_limit_allows_a_slow_check() -> None:
    from e2e import make_settings

    s = make_settings(sweep_tick_seconds=5, request_timeout=10, max_retries=3, retry_max_delay=5)
    # three ticks, plus two calls each with four attempts of 10 s and three backoffs of 5 s
    assert watch_overdue_after(s) == 15 + 2 * (40 + 15)


def test_every_metric_is_documented_in_the_readme() -> None:
    from prometheus_client.metrics import MetricWrapperBase
    from test_readme_contract import table_after

    from bot import metrics

    documented = {row[0].strip("`"): row for row in table_after("| metric | type | labels | meaning |")}
    ours = {
        family.name + ("_total" if family.type == "counter" else ""): (family.type, obj)
        for obj in vars(metrics).values()
        if isinstance(obj, MetricWrapperBase)
        for family in obj.describe()
    }
    assert set(documented) == set(ours)
    for name, (kind, obj) in ours.items():
        row = documented[name]
        assert row[1] == kind, name
        labels = [x.strip("` ") for x in row[2].split(",") if x.strip() != "–"]
        if labels:  # labels() refuses names the metric was not declared with
            obj.labels(**dict.fromkeys(labels, "readme-check"))
            obj.remove(*["readme-check"] * len(labels))
        else:
            with pytest.raises(ValueError):
                obj.labels("readme-check")
