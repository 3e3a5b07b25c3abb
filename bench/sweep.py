"""One watch sweep over N deployments: sweep time against the limiter's bound, memory per checked
deployment, the latency of slash-command acks sent while the sweep runs, and (issue 9) how two
replicas split a sweep and what a replica killed mid-sweep leaves undone.

The simulator (HTTPS with a throwaway CA made by trustme, API latency 50 ms) and the Slack-side
request sender each run in a child process, so the bot's event loop is the only thing measured
in this process. Everything is on loopback; the database is a SQLite file in a temporary
directory, or a scratch PostgreSQL database.

    .venv/bin/python bench/sweep.py [--n 2000] [--qps 400] [--db postgresql+asyncpg://…/test]
                                    [--no-gc-freeze] [--profile FILE]
    .venv/bin/python bench/sweep.py --replicas 2 --db postgresql+asyncpg://postgres@127.0.0.1/test
    .venv/bin/python bench/sweep.py --kill-one --db postgresql+asyncpg://postgres@127.0.0.1/test

Targets (issue 4): the sweep within 10% of the bound (API calls / calls per second), ack p99 under
100 ms. Issue 9: at most Q calls in any one-second window, counted by the simulator as calls
arrive; no deployment checked twice in a sweep; under 4 KiB per checked deployment at the
sweep's peak. The limiter lets Q calls leave at once and counts each until its answer is back,
then for a second, so the "floor" row, (ceil(calls/Q) − 1) × (1 s + latency) + latency, is the
best it allows.
Single bot: sweep 1 is timed; sweep 2 (same targets, one interval later) runs under tracemalloc
for the memory figure. The heap is frozen after start-up as `flinkdiag serve` does
(bot.app.freeze_heap); `--no-gc-freeze` shows the difference: full collections then walk the
imported code and stall acks.
`--replicas 2`: two bot processes on one PostgreSQL database (and one Slack, in the simulator's
process) sweep at the same moment; acks go to the first. `--kill-one`: the same, and the second
is killed with SIGKILL once a third of the checks are done; the first sweeps every `--tick`
seconds until every deployment has been checked, which should take at most a lease (`--lease`)
and a tick after the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import math
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

WORKSPACE = "ws-bench"
ACK_CHANNEL = "CBENCHACK"  # commands come from a channel with no watches: its listing stays small
TEAM = "TLOCAL"
DIAGNOSED = 8  # deployments the ack traffic diagnoses (not watched)


# --------------------------------------------------------------------------- simulator (child)


def bench_fleet_data(n: int, namespaces: int, risky_every: int) -> dict[str, Any]:
    """Scenario data: n deployments, each with one RUNNING job; every `risky_every`-th is MID or HIGH."""
    symptom = {
        "name": "Backpressure",
        "description": "Operator `Join` was back-pressured for 27 of the last 30 minutes.",
        "recommendation": "Raise the parallelism of the join from 4 to 8.",
    }
    spaces: list[dict[str, Any]] = [{"name": f"bench-{k}", "deployments": []} for k in range(namespaces)]
    for i in range(n):
        risky = risky_every > 0 and i % risky_every == risky_every - 1
        level = ("RISK_LEVEL_MID" if (i // risky_every) % 2 == 0 else "RISK_LEVEL_HIGH") if risky else None
        diagnosis: dict[str, Any] = {
            "riskLevel": level or "RISK_LEVEL_LOW",
            "healthScore": 60 if risky else 95,
            "symptoms": {"runtime": [symptom]} if risky else {},
        }
        spaces[i % namespaces]["deployments"].append(
            {"name": f"job-{i:05d}", "jobs": [{"status": "RUNNING"}], "diagnosis": diagnosis}
        )
    # Not watched: what the diagnosis commands of the ack traffic ask about, so that their calls
    # are not counted as a second check of a watched deployment.
    for k in range(DIAGNOSED):
        spaces[k % namespaces]["deployments"].append(
            {
                "name": f"diag-{k:02d}",
                "jobs": [{"status": "RUNNING"}],
                "diagnosis": {"riskLevel": "RISK_LEVEL_LOW"},
            }
        )
    return {"workspaces": [{"id": WORKSPACE, "namespaces": spaces}]}


def serve_world(fleet: dict[str, Any], latency_ms: float, chain: str, key: str, conn: Any) -> None:
    """Child process: serve `fleet` over HTTPS with `latency_ms` added to every API call, and a
    local Slack the bots share; answer the parent's questions over `conn` until told to stop."""
    import re
    import ssl
    from collections import Counter

    from bot.flink import sim as sim_module
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Faults, Fleet, Simulator
    from bot.slack.localslack import LocalSlack

    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(chain, key)
        sim = Simulator(
            Fleet.model_validate(fleet),
            access_keys={DEFAULT_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_SECRET},
            faults=Faults(latency_ms=latency_ms),
        )
        checks: Counter[str] = Counter()  # ListJobs per deployment: every check starts with one
        list_jobs = sim_module._OPERATIONS["ListJobs"]

        # The bench's own counter, wrapped around the simulator's operation (after the gateway's
        # checks, so only answered calls count), not a feature of the simulator.
        def counted(self: Any, request: Any, *rest: Any) -> Any:
            checks[request.query.get("deploymentId", "")] += 1
            return list_jobs(self, request, *rest)

        sim_module._OPERATIONS["ListJobs"] = counted
        slack = LocalSlack()
        await slack.start()
        sim_url = await sim.start(host="127.0.0.1", port=0, ssl_context=ctx)
        names = re.compile(r"job-\d{5}")
        conn.send((sim_url, slack.api_url, slack.bot_token))
        loop = asyncio.get_running_loop()
        while True:
            what, arg = await loop.run_in_executor(None, conn.recv)
            if what == "stop":
                break
            if what == "checks":
                conn.send(dict(checks))
            elif what == "reset":
                checks.clear()
                sim.busiest_second.reset()
                conn.send(None)
            elif what == "busiest":
                conn.send(sim.busiest_second.most)
            elif what == "urls":
                conn.send([slack.new_response_url(ACK_CHANNEL, "UBENCH") for _ in range(arg)])
            elif what == "posts":
                # top-level posts per deployment named in them (a storm digest names several)
                named: Counter[str] = Counter()
                for channel in {m.channel for m in slack.messages}:
                    for m in slack.channel_messages(channel, include_ephemeral=False):
                        if m.thread_ts is None and channel != ACK_CHANNEL:
                            named.update(set(names.findall(str(m.text) + str(m.blocks))))
                conn.send(dict(named))
        await sim.stop()
        await slack.stop()

    asyncio.run(main())


class World:
    """The parent's end of the world child's pipe."""

    def __init__(self, conn: Any, slack: tuple[str, str]) -> None:
        self.conn, self.slack = conn, slack
        self._lock: asyncio.Lock | None = None

    async def ask(self, what: str, arg: Any = None) -> Any:
        if what == "slack":
            return self.slack
        if self._lock is None:
            self._lock = asyncio.Lock()  # made in the running loop
        async with self._lock:
            self.conn.send((what, arg))
            return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)


def make_certs(tmp: Path) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for 127.0.0.1: (CA file, server chain, server key)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, chain, key = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return str(ca_file), str(chain), str(key)


# --------------------------------------------------------------------------- Slack side (child)


class _ResponseUrls:
    """Stands in for LocalSlack in the child: hands out response URLs the parent created."""

    def __init__(self, urls: list[str]) -> None:
        self._urls = urls
        self._i = 0

    def new_response_url(self, channel: str, user: str, message: Any = None) -> str:
        url = self._urls[self._i % len(self._urls)]
        self._i += 1
        return url


def send_commands(
    events_url: str, signing_secret: str, urls: list[str], every: float, diagnose: list[str], conn: Any
) -> None:
    """Child process: on "start", send a signed slash command every `every` s (open loop, so a slow
    ack does not delay the next send) until "stop"; answer with (text, status, latency s, sent at s)
    per command.
    """
    from bot.slack.driver import SlackDriver

    async def phase(driver: SlackDriver) -> list[tuple[str, int, float, float]]:
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, conn.recv)
        results: list[tuple[str, int, float, float]] = []
        begun = time.perf_counter()

        async def one(text: str) -> None:
            body, _ = driver.command_body(text, channel=ACK_CHANNEL, user="UBENCH")
            headers = driver.signed_headers(body)
            started = time.perf_counter()
            try:
                reply = await driver.post(body, headers)
                status = reply.status
            except Exception:  # counted as a failed ack, not a crash of the benchmark
                status = 0
            results.append((text, status, time.perf_counter() - started, started - begun))

        tasks: set[asyncio.Task[None]] = set()
        i = 0
        next_at = time.perf_counter()
        while not stop.done():
            # Of every four commands: one asks for a diagnosis (API calls after the ack, under the
            # same quota as the sweep), one lists the channel's watches (DB work after the ack).
            text = ("help", diagnose[i // 4 % len(diagnose)], "help", "watches")[i % 4]
            task = asyncio.create_task(one(text))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            next_at += every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), max(0.0, next_at - time.perf_counter()))
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        return results

    async def main() -> None:
        driver = SlackDriver(events_url, signing_secret, _ResponseUrls(urls))  # type: ignore[arg-type]
        async with driver:
            conn.send("ready")
            while (await asyncio.get_running_loop().run_in_executor(None, conn.recv)) == "start":
                conn.send(await phase(driver))

    asyncio.run(main())


# --------------------------------------------------------------------------- measuring


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


@dataclass
class Sampler:
    """While a block runs, samples this process's resident set and the event loop's lag (how
    late a 10 ms sleep wakes up: the time any ready callback, such as an ack, may have to wait)."""

    every: float = 0.01
    rss_start: int | None = None
    rss_peak: int = 0
    lags: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, lag seconds)
    full_gcs: list[float] = field(default_factory=list)  # seconds each full collection took
    cpu: float = 0.0
    wall: float = 0.0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def __aenter__(self) -> Sampler:
        self.rss_start = _rss_bytes()
        self.rss_peak = self.rss_start or 0
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()

        async def sample() -> None:
            while True:
                self.rss_peak = max(self.rss_peak, _rss_bytes() or 0)
                before = time.perf_counter()
                await asyncio.sleep(self.every)
                now = time.perf_counter()
                self.lags.append((now - self._wall0, now - before - self.every))

        self._task = asyncio.create_task(sample())
        gc.callbacks.append(self._on_gc)
        return self

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.full_gcs.append(time.perf_counter() - self._gc_started)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        gc.callbacks.remove(self._on_gc)
        self.rss_peak = max(self.rss_peak, _rss_bytes() or 0)
        self.cpu = time.process_time() - self._cpu0
        self.wall = time.perf_counter() - self._wall0

    @property
    def rss_growth(self) -> int | None:
        return None if self.rss_start is None else self.rss_peak - self.rss_start

    def lag_row(self) -> str:
        ms = [lag * 1000 for _, lag in self.lags]
        worst_at, worst = max(self.lags, key=lambda x: x[1]) if self.lags else (0.0, 0.0)
        return (
            f"p50 {statistics.median(ms):6.1f} ms   p99 {quantile(ms, 0.99):6.1f} ms   "
            f"max {worst * 1000:6.1f} ms (at +{worst_at:.2f} s)"
        )


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: with 100 samples p99 is the 99th value)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Acks:
    latencies: list[float]
    failed: int
    slowest_sent_at: float  # seconds after the phase began

    @classmethod
    def of(cls, results: list[tuple[str, int, float, float]]) -> Acks:
        ok = [(lat, at) for _, status, lat, at in results if status == 200]
        return cls(
            [lat for lat, _ in ok],
            sum(status != 200 for _, status, _, _ in results),
            max(ok)[1] if ok else 0.0,
        )

    def row(self) -> str:
        if not self.latencies:
            return "no acks"
        ms = [x * 1000 for x in self.latencies]
        return (
            f"p50 {statistics.median(ms):6.1f} ms   p99 {quantile(ms, 0.99):6.1f} ms   "
            f"max {max(ms):6.1f} ms (sent at +{self.slowest_sent_at:.2f} s)   "
            f"({len(ms)} acks, {self.failed} failed)"
        )


# --------------------------------------------------------------------------- the run


def http_session(ca_file: str) -> Any:
    """A session for the simulator's control API (HTTPS, our CA)."""
    import ssl

    import aiohttp

    ctx = ssl.create_default_context(cafile=ca_file)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))


def diagnose_commands(args: argparse.Namespace) -> list[str]:
    """Diagnosis commands for the ack traffic, about deployments no watch checks."""
    return [f"deployment diag-{k:02d} --namespace bench-{k % args.namespaces}" for k in range(DIAGNOSED)]


def watched(listing: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in listing["deployments"] if d["name"].startswith("job-")]


async def sim_calls(session: Any, sim_url: str) -> dict[str, int]:
    async with session.get(f"{sim_url}/_sim/calls") as resp:
        return dict(await resp.json())


async def fresh_postgres(url: str) -> tuple[str, Callable[[], Any]]:
    """A new database next to the one `url` names; returns its URL and an async dropper."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.store.db import normalise_url

    base = normalise_url(url)
    name = f"flinkdiag_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()

    async def drop() -> None:
        engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await engine.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


@dataclass
class Measured:
    n: int
    setup_s: float
    calls: dict[str, int]  # API calls of sweep 1, per action
    busiest: int  # most calls in any one second of sweep 1, at the simulator
    twice: int  # deployments checked more than once in sweep 1
    result: Any  # SweepResult of sweep 1
    result2: Any  # SweepResult of sweep 2 (under tracemalloc)
    traced_peak: int  # bytes, sweep 2
    sampled: Sampler  # sweep 1
    idle: Sampler
    idle_acks: Acks
    sweep_acks: Acks

    def report(self, args: argparse.Namespace, db_label: str, log_lines: int) -> None:
        n, result, sampled = self.n, self.result, self.sampled
        total_calls = sum(self.calls.values())
        bound_n = n / args.qps
        bound = total_calls / args.qps
        latency = args.latency_ms / 1000
        quota = max(1, math.floor(args.qps))
        floor = (math.ceil(total_calls / quota) - 1) * (1 + latency) + latency
        ratio = result.seconds / bound
        calls_text = ", ".join(f"{k} {v}" for k, v in sorted(self.calls.items()))
        growth = sampled.rss_growth
        checked = max(1, result.checked)
        rss_text = f"{growth / checked / 1024:7.1f} KiB" if growth is not None else "    n/a"
        gcs = sampled.full_gcs
        per_ack_cpu = self.idle.cpu / max(1, len(self.idle_acks.latencies))

        print(
            f"sweep of {n} watched deployments: {db_label}, HTTPS, API latency {args.latency_ms:g} ms, "
            f"limiter {args.qps:g} calls/s and {args.concurrency} concurrent"
        )
        print(f"  setup: {n} watches added in {self.setup_s:.1f} s")
        print(f"  API calls in the sweep: {total_calls} ({calls_text})")
        print(
            f"  outcome: {result.checked} checked ({self.twice} of them twice), {result.delivered} posted, "
            f"{result.failures} failed; " + ", ".join(f"{k} {v}" for k, v in sorted(result.reasons.items()))
        )
        print()
        rows = [
            ("sweep time", f"{result.seconds:7.2f} s"),
            ("bound N/Q", f"{bound_n:7.2f} s   ratio {result.seconds / bound_n:5.2f}"),
            ("bound calls/Q", f"{bound:7.2f} s   ratio {ratio:5.2f}"),
            (
                "floor (ceil(calls/Q)-1)(1 s+latency)+latency",
                f"{floor:7.2f} s   ratio {result.seconds / floor:5.2f}",
            ),
            ("busiest one-second window", f"{self.busiest:7d} calls   Q {args.qps:g}   (at the simulator)"),
            ("memory per checked deployment, RSS growth", f"{rss_text}   (sweep 1, peak - start)"),
            (
                "memory per checked deployment, tracemalloc peak",
                f"{self.traced_peak / max(1, self.result2.checked) / 1024:7.1f} KiB   (sweep 2, "
                f"{self.result2.checked} checked "
                f"in {self.result2.seconds:.2f} s under tracemalloc)",
            ),
            (
                "bot process CPU during the sweep",
                f"{sampled.cpu:7.2f} s   ({sampled.cpu / sampled.wall:.0%} of one core; "
                f"{sampled.cpu / checked * 1000:.2f} ms per checked deployment, acks included)",
            ),
            ("event loop lag during the sweep", sampled.lag_row()),
            (
                "full garbage collections during the sweep",
                f"{len(gcs)}"
                + (f", longest {max(gcs) * 1000:.0f} ms" if gcs else "")
                + ("   (heap frozen after start-up)" if args.gc_freeze else ""),
            ),
            ("acks, idle", f"{self.idle_acks.row()}; bot CPU {per_ack_cpu * 1000:.1f} ms each"),
            ("acks, during the sweep", self.sweep_acks.row()),
        ]
        for label, value in rows:
            print(f"  {label:<42} {value}")
        print(f"  log lines written: {log_lines}")
        print()
        acks = self.sweep_acks
        p99 = quantile(acks.latencies, 0.99) if acks.latencies else float("inf")
        ok_sweep = ratio <= 1.10
        ok_ack = p99 < 0.100 and acks.failed == 0
        ok_quota = self.busiest <= args.qps
        ok_memory = self.traced_peak / max(1, self.result2.checked) < 4096
        ok_all = result.checked == n and self.twice == 0
        print(f"  verdict: sweep {'PASS' if ok_sweep else 'FAIL'} ({ratio:.2f} x calls/Q; target <= 1.10)")
        print(
            f"  verdict: quota {'PASS' if ok_quota else 'FAIL'} ({self.busiest} calls in the busiest second; "
            f"target <= Q = {args.qps:g})"
        )
        print(f"  verdict: ack p99 {'PASS' if ok_ack else 'FAIL'} ({p99 * 1000:.1f} ms; target < 100 ms)")
        print(
            f"  verdict: memory {'PASS' if ok_memory else 'FAIL'} "
            f"({self.traced_peak / max(1, self.result2.checked) / 1024:.1f} KiB per checked; target < 4 KiB)"
        )
        print(
            f"  verdict: coverage {'PASS' if ok_all else 'FAIL'} "
            f"({result.checked} of {n} checked, {self.twice} twice)"
        )


async def measure(
    args: argparse.Namespace, world: World, sim_url: str, ca_file: str, db_url: str
) -> Measured:
    """Start the bot on `db_url`, add the watches, then time the sweeps and the acks."""
    from bot.app import freeze_heap
    from bot.config import Settings
    from bot.flink.credentials import StaticCredentials
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
    from bot.local import LocalStack

    offset = timedelta(0)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    settings = Settings(
        endpoint=sim_url,
        workspace=WORKSPACE,
        max_calls_per_second=args.qps,
        max_concurrency=args.concurrency,
        max_retries=1,
        request_timeout=10.0,
        ca_file=ca_file,
        namespaces=[f"bench-{k}" for k in range(args.namespaces)],  # the allow-list: every one
    )
    stack = await LocalStack.start(
        settings,
        start_sim=False,
        database_url=db_url,
        credentials=StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        now=clock,
    )
    if args.checks_at_once:
        stack.wiring.sweeper.concurrency = args.checks_at_once
    ctx = mp.get_context("spawn")
    acks_parent, acks_child = ctx.Pipe()
    # Response URLs for the `watches` commands (each may be used five times; help never uses one).
    urls = [stack.slack.new_response_url(ACK_CHANNEL, "UBENCH") for _ in range(2000)]
    sender = ctx.Process(
        target=send_commands,
        args=(
            stack.events_url,
            stack.settings.slack_signing_secret.get_secret_value(),
            urls,
            args.ack_every,
            diagnose_commands(args),
            acks_child,
        ),
        daemon=True,
    )
    sender.start()
    try:
        async with http_session(ca_file) as http:
            fleet = watched(await (await http.get(f"{sim_url}/_sim/fleet")).json())
            t0 = time.perf_counter()
            due = (clock() - timedelta(hours=1)).timestamp()
            for k, d in enumerate(fleet):
                await stack.store.watches.add_watch(
                    team_id=TEAM,
                    channel_id=f"C{k % args.channels:04d}",
                    kind="deployment",
                    workspace=d["workspace"],
                    namespace=d["namespace"],
                    deployment_id=d["deploymentId"],
                    deployment_name=d["name"],
                    min_risk="RISK_LEVEL_MID",
                    interval_seconds=args.interval,
                    created_by="UBENCH",
                    now=due,
                )
            setup_s = time.perf_counter() - t0
            # Warm the client (connection, pydantic generics) and Bolt before anything is timed.
            d0 = fleet[0]
            await stack.flink.list_jobs(d0["workspace"], d0["namespace"], d0["deploymentId"])
            await asyncio.get_running_loop().run_in_executor(None, acks_parent.recv)  # "ready"

            async def acks_during(coro: Any) -> tuple[Any, Acks]:
                acks_parent.send("start")
                try:
                    out = await coro
                finally:
                    acks_parent.send("stop")
                results = await asyncio.get_running_loop().run_in_executor(None, acks_parent.recv)
                return out, Acks.of(results)

            if args.gc_freeze:
                freeze_heap()  # as `flinkdiag serve` does once it has started
            async with Sampler() as idle:
                _, idle_acks = await acks_during(asyncio.sleep(args.idle_seconds))

            # Sweep 1: the measured one (no tracemalloc: it slows allocation-heavy code 2-3x).
            before = await sim_calls(http, sim_url)
            await world.ask("reset")  # start counting afresh: the sweep alone
            profiler = cProfile.Profile() if args.profile else None
            async with Sampler() as sampled:
                if profiler is not None:
                    profiler.enable()
                try:
                    result, sweep_acks = await acks_during(stack.wiring.sweeper.sweep())
                finally:
                    if profiler is not None:
                        profiler.disable()
                        profiler.dump_stats(args.profile)
            after = await sim_calls(http, sim_url)
            busiest = await world.ask("busiest")
            checks = await world.ask("checks")
            twice = sum(checks.get(d["deploymentId"], 0) > 1 for d in fleet)
            calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            calls = {k: v for k, v in calls.items() if v}

            # Sweep 2: the same targets one interval later, under tracemalloc, for Python's peak.
            offset += timedelta(seconds=args.interval + 1)
            await stack.settle()
            tracemalloc.start()
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            result2 = await stack.wiring.sweeper.sweep()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            await stack.settle()
    finally:
        acks_parent.send("quit")
        sender.join(10)
        if sender.is_alive():
            sender.terminate()
        await stack.aclose()
    return Measured(
        n=len(fleet),
        setup_s=setup_s,
        calls=calls,
        busiest=busiest,
        twice=twice,
        result=result,
        result2=result2,
        traced_peak=peak - base,
        sampled=sampled,
        idle=idle,
        idle_acks=idle_acks,
        sweep_acks=sweep_acks,
    )


# --------------------------------------------------------------------------- replicas (issue 9)


class _SharedSlack:
    """What LocalStack needs of a LocalSlack running in another process (the world child)."""

    def __init__(self, api_url: str, bot_token: str) -> None:
        self.api_url, self.bot_token = api_url, bot_token

    def new_response_url(self, channel: str, user: str, message: Any = None) -> str:
        raise NotImplementedError("the ack sender has its response URLs from the world child")

    async def stop(self) -> None:
        return None


def run_replica(
    settings_kw: dict[str, Any], db_url: str, slack: tuple[str, str], lease: float, log: str, conn: Any
) -> None:
    """Child process: one bot on the shared database; sweeps when told, answers with its counts."""

    async def main(log_file: Any) -> None:
        from bot.app import freeze_heap
        from bot.config import Settings
        from bot.flink.credentials import StaticCredentials
        from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
        from bot.local import LocalStack
        from bot.logs import setup_logging

        setup_logging("INFO", "kv", stream=log_file)
        stack = await LocalStack.start(
            Settings(**settings_kw),
            start_sim=False,
            database_url=db_url,
            credentials=StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
            slack=_SharedSlack(*slack),  # type: ignore[arg-type]
        )
        stack.store.watches.lease_seconds = lease
        freeze_heap()
        loop = asyncio.get_running_loop()
        conn.send((stack.events_url, stack.settings.slack_signing_secret.get_secret_value()))
        try:
            while (await loop.run_in_executor(None, conn.recv)) == "sweep":
                async with Sampler() as sampled:
                    r = await stack.wiring.sweeper.sweep()
                conn.send(
                    {
                        "checked": r.checked,
                        "delivered": r.delivered,
                        "failures": r.failures,
                        "seconds": r.seconds,
                        "rss_growth": sampled.rss_growth,
                        "cpu": sampled.cpu,
                    }
                )
        finally:
            await stack.aclose()

    with open(log, "w", encoding="utf-8") as log_file:
        asyncio.run(main(log_file))


async def measure_replicas(
    args: argparse.Namespace, world: World, sim_url: str, ca_file: str, db_url: str, tmp: Path
) -> None:
    from bot.store import Store

    n_rep = max(2, args.replicas)
    loop = asyncio.get_running_loop()
    async with http_session(ca_file) as http:
        fleet = watched(await (await http.get(f"{sim_url}/_sim/fleet")).json())
    store = await Store.open(db_url)
    t0 = time.perf_counter()
    try:
        due = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
        for k, d in enumerate(fleet):
            await store.watches.add_watch(
                team_id=TEAM,
                channel_id=f"C{k % args.channels:04d}",
                kind="deployment",
                workspace=d["workspace"],
                namespace=d["namespace"],
                deployment_id=d["deploymentId"],
                deployment_name=d["name"],
                min_risk="RISK_LEVEL_MID",
                interval_seconds=args.interval,
                created_by="UBENCH",
                now=due,
            )
    finally:
        await store.close()
    setup_s = time.perf_counter() - t0
    api_url, token = await world.ask("slack")
    settings_kw = {
        "endpoint": sim_url,
        "workspace": WORKSPACE,
        "max_calls_per_second": args.qps,
        "max_concurrency": args.concurrency,
        "max_retries": 1,
        "request_timeout": 10.0,
        "ca_file": ca_file,
        "namespaces": [f"bench-{k}" for k in range(args.namespaces)],
    }
    ctx = mp.get_context("spawn")
    replicas: list[tuple[Any, Any]] = []
    for i in range(n_rep):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=run_replica,
            args=(settings_kw, db_url, (api_url, token), args.lease, str(tmp / f"bot-{i}.log"), child),
            daemon=True,
        )
        proc.start()
        replicas.append((proc, parent))
    acks_parent, acks_child = ctx.Pipe()
    sender: Any = None
    try:
        events_url, secret = await loop.run_in_executor(None, replicas[0][1].recv)
        for _, conn in replicas[1:]:
            await loop.run_in_executor(None, conn.recv)
        urls = await world.ask("urls", 2000)
        sender = ctx.Process(
            target=send_commands,
            args=(events_url, secret, urls, args.ack_every, diagnose_commands(args), acks_child),
            daemon=True,
        )
        sender.start()
        await loop.run_in_executor(None, acks_parent.recv)  # "ready"
        await world.ask("reset")
        async with http_session(ca_file) as http:
            calls_before = await sim_calls(http, sim_url)

        def sweep_on(conn: Any) -> Any:
            conn.send("sweep")
            return loop.run_in_executor(None, conn.recv)

        acks_parent.send("start")
        started = time.perf_counter()
        pending = [sweep_on(conn) for _, conn in replicas]
        killed_at: float | None = None
        in_flight_at_kill = 0
        if args.kill_one:
            while sum((await world.ask("checks")).values()) < len(fleet) // 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            os.kill(replicas[-1][0].pid, signal.SIGKILL)
            killed_at = time.perf_counter()
            in_flight_at_kill = sum((await world.ask("checks")).values())
            pending = pending[:-1]
        results = list(await asyncio.gather(*pending))
        extra: list[dict[str, Any]] = []
        first_sweep_s = time.perf_counter() - started
        extra_sweeps, done_at = 0, time.perf_counter()
        if killed_at is not None:
            # The survivor ticks as the scheduler would until every deployment has been checked.
            deadline = killed_at + args.lease + 5 * args.tick
            while time.perf_counter() < deadline:
                checks = await world.ask("checks")
                if all(checks.get(d["deploymentId"], 0) for d in fleet):
                    break
                await asyncio.sleep(args.tick)
                extra.append(await sweep_on(replicas[0][1]))
                extra_sweeps += 1
            done_at = time.perf_counter()
        acks_parent.send("stop")
        acks = Acks.of(await loop.run_in_executor(None, acks_parent.recv))
        busiest = await world.ask("busiest")
        checks = await world.ask("checks")
        posts = await world.ask("posts")
        async with http_session(ca_file) as http:
            calls_after = await sim_calls(http, sim_url)
    finally:
        acks_parent.send("quit")
        for proc, conn in replicas:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    conn.send("stop")
        for proc, _ in replicas:
            proc.join(15)
            if proc.is_alive():
                proc.terminate()
        if sender is not None:
            sender.join(10)
            if sender.is_alive():
                sender.terminate()

    n = len(fleet)
    ids = [d["deploymentId"] for d in fleet]
    missed = sum(checks.get(i, 0) == 0 for i in ids)
    twice = sum(checks.get(i, 0) > 1 for i in ids)
    posted_twice = sum(c > 1 for c in posts.values())
    calls = sum(calls_after.values()) - sum(calls_before.values())  # every API call, acks' included
    latency = args.latency_ms / 1000
    quota = max(1, math.floor(args.qps))
    p99 = quantile(acks.latencies, 0.99) if acks.latencies else float("inf")
    mode = "--kill-one" if args.kill_one else f"--replicas {n_rep}"
    print(
        f"{mode}: {n} watched deployments, {n_rep} bot processes on PostgreSQL, HTTPS, API latency "
        f"{args.latency_ms:g} ms, quota {args.qps:g} calls/s shared, lease {args.lease:g} s"
    )
    print(f"  setup: {n} watches added in {setup_s:.1f} s")
    for i, r in enumerate(results):
        growth = r["rss_growth"]
        per = f"{growth / max(1, r['checked']) / 1024:.1f} KiB" if growth is not None else "n/a"
        print(
            f"  replica {i}: {r['checked']:6d} checked in {r['seconds']:6.2f} s, {r['delivered']} posted; "
            f"RSS growth {per} per checked; CPU {r['cpu']:.2f} s"
        )
    if args.kill_one:
        print(f"  replica {n_rep - 1}: killed (SIGKILL) once {in_flight_at_kill} checks had reached the API")
        took = done_at - (killed_at or done_at)
        print(
            f"  survivor after its first sweep: {len(extra)} more sweeps (tick {args.tick:g} s) checked "
            f"{sum(r['checked'] for r in extra)}; every deployment checked {took:.1f} s after the kill "
            f"(lease + tick = {args.lease + args.tick:g} s)"
        )
    floor = (math.ceil(calls / quota) - 1) * (1 + latency) + latency
    rows = [
        (
            "first sweep, both replicas",
            f"{first_sweep_s:7.2f} s   floor {floor:.2f} s   ratio {first_sweep_s / floor:5.2f}",
        ),
        ("API calls at the simulator", f"{calls:7d}   (the ack traffic's diagnoses included)"),
        ("busiest one-second window, all replicas", f"{busiest:7d} calls   Q {args.qps:g}"),
        ("deployments never checked", f"{missed:7d}"),
        ("deployments checked twice", f"{twice:7d}"),
        ("deployments posted about twice", f"{posted_twice:7d}   ({len(posts)} posted about)"),
        ("acks during the sweep (replica 0)", acks.row()),
    ]
    for label, value in rows:
        print(f"  {label:<42} {value}")
    print()
    print(
        f"  verdict: quota {'PASS' if busiest <= args.qps else 'FAIL'} ({busiest} in the busiest second; Q {args.qps:g})"
    )
    print(f"  verdict: nothing missed {'PASS' if missed == 0 else 'FAIL'} ({missed})")
    note = " (a check in flight at the kill is redone: one lease)" if args.kill_one else ""
    print(f"  verdict: checked twice {'PASS' if twice == 0 else 'see'} ({twice}){note}")
    print(f"  verdict: posted twice {'PASS' if posted_twice == 0 else 'FAIL'} ({posted_twice})")
    print(
        f"  verdict: ack p99 {'PASS' if p99 < 0.05 and acks.failed == 0 else 'FAIL'} ({p99 * 1000:.1f} ms; goal < 50 ms)"
    )


async def run(args: argparse.Namespace, world: World, sim_url: str, ca_file: str, tmp: Path) -> None:
    from bot.logs import setup_logging

    # Logged as in production (INFO, key=value), into a file rather than the terminal.
    log_path = tmp / "bot.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        setup_logging(args.log_level, "kv", stream=log_file)
        drop_db: Callable[[], Any] | None = None
        if args.db:
            db_url, drop_db = await fresh_postgres(args.db)
            db_label = f"PostgreSQL (scratch database {db_url.rsplit('/', 1)[-1]})"
        else:
            db_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
            db_label = "SQLite file"
        try:
            if args.replicas > 1:
                await measure_replicas(args, world, sim_url, ca_file, db_url, tmp)
                return
            measured = await measure(args, world, sim_url, ca_file, db_url)
        finally:
            if drop_db is not None:
                await drop_db()
    with log_path.open(encoding="utf-8") as f:
        lines = f.readlines()
    if not measured.calls:
        print("no API calls in the sweep; the bot's last log lines:", *lines[-15:], sep="\n")
        return
    measured.report(args, db_label, len(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="watched deployments (default 2000)")
    parser.add_argument("--qps", type=float, default=400.0, help="limiter calls per second (default 400)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="limiter concurrent calls (default 64; >= qps × latency)"
    )
    parser.add_argument(
        "--checks-at-once", type=int, help="the sweeper's concurrency (default: the bot's own default)"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulator latency (default 50)")
    parser.add_argument("--db", help="PostgreSQL URL; a scratch database is made next to it and dropped")
    parser.add_argument("--namespaces", type=int, default=4, help="namespaces in the fleet (default 4)")
    parser.add_argument("--channels", type=int, default=20, help="channels the watches are in (default 20)")
    parser.add_argument(
        "--risky-every", type=int, default=50, help="every k-th deployment is MID or HIGH (default 50)"
    )
    parser.add_argument("--interval", type=int, default=300, help="watch interval, seconds (default 300)")
    parser.add_argument(
        "--ack-every", type=float, default=0.05, help="seconds between commands (default 0.05)"
    )
    parser.add_argument("--idle-seconds", type=float, default=1.5, help="ack baseline before the sweep")
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="freeze the heap after start-up as `flinkdiag serve` does (default on; --no-gc-freeze to compare)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", help="write a cProfile of sweep 1 here (it slows the sweep down)")
    parser.add_argument("--replicas", type=int, default=1, help="bot processes sharing PostgreSQL (2)")
    parser.add_argument("--kill-one", action="store_true", help="two replicas; SIGKILL one mid-sweep")
    parser.add_argument("--lease", type=float, default=10.0, help="check lease with replicas, s (default 10)")
    parser.add_argument("--tick", type=float, default=2.0, help="survivor's sweep tick with --kill-one, s")
    args = parser.parse_args()
    if args.n < 1 or args.qps <= 0:
        parser.error("--n and --qps must be positive")
    if args.kill_one:
        args.replicas = max(2, args.replicas)
    if args.replicas > 1 and not args.db:
        parser.error("--replicas and --kill-one need --db (PostgreSQL): SQLite is one process")

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    fleet = bench_fleet_data(args.n, args.namespaces, args.risky_every)
    with tempfile.TemporaryDirectory(prefix="flinkdiag-bench-") as tmp:
        ca_file, chain, key = make_certs(Path(tmp))
        proc = ctx.Process(target=serve_world, args=(fleet, args.latency_ms, chain, key, child), daemon=True)
        proc.start()
        try:
            if not parent.poll(60):
                raise SystemExit("simulator did not start within 60 s")
            sim_url, api_url, token = parent.recv()
            world = World(parent, slack=(api_url, token))
            asyncio.run(run(args, world, sim_url, ca_file, Path(tmp)))
        finally:
            parent.send(("stop", None))
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
