"""Client CPU per call: flinkdiag's FlinkClient, the official SDK's async method, and the floor, a
bare pooled aiohttp GET of the same URL.

All three call GetJobDiagnosis on the simulator over HTTPS on loopback, with certificate
verification on (a throwaway CA made by trustme), interleaved over several rounds in one event
loop; the medians over the rounds are compared. The simulator runs in a child process so that
only the clients' CPU is counted (time.process_time of this process). Logging is set up as in
production (INFO, key=value). Issue 9's goal: flinkdiag within 2x of the bare GET.

    .venv/bin/python -m bench.client_overhead [--calls 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

WARMUP = 5

Client = Callable[[], Awaitable[None]]


def serve_simulator(cert_chain: str, key: str, conn: Any) -> None:
    """Child process: run the simulator over TLS until the parent says stop."""
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Simulator

    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_chain, key)
        # Explicit keys: without them the simulator would take the developer's ALIBABA_CLOUD_* ones.
        sim = Simulator(access_keys={DEFAULT_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_SECRET})
        base_url = await sim.start(host="127.0.0.1", port=0, ssl_context=ctx)
        target = next(d for d in sim.fleet_summary() if d["jobId"])
        conn.send((base_url, target))
        # Serve until the parent says stop; the blocking recv waits in a worker thread.
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await sim.stop()

    asyncio.run(main())


async def ours_client(
    stack: contextlib.AsyncExitStack, base_url: str, ca_file: str, target: dict[str, str]
) -> Client:
    from bot.config import Settings
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import StaticCredentials
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

    # The limiter is left wide open: this measures the client, not the rate limit.
    settings = Settings(endpoint=base_url, ca_file=ca_file, max_calls_per_second=1e6, max_retries=0)
    creds = StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
    client = await stack.enter_async_context(FlinkClient(settings, creds))

    async def one() -> None:
        d = await client.get_job_diagnosis(
            target["workspace"], target["namespace"], target["deploymentId"], target["jobId"]
        )
        assert d.risk_level

    return one


async def bare_client(
    stack: contextlib.AsyncExitStack,
    base_url: str,
    ca_file: str,
    target: dict[str, str],
    *,
    sign_each: bool = False,
) -> Client:
    """The floor: one pooled aiohttp session, a GET of the same URL, the JSON body parsed.

    Its headers are signed once, so the simulator refuses the repeated nonce: the floor is the
    transport and the parsing of a (short) answer. With `sign_each`, every GET is signed afresh
    and gets the same answer as the clients (json.loads only, no models): the floor of any
    client of this API.
    """
    import aiohttp

    from bot.config import Settings
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import StaticCredentials
    from bot.flink.failures import Call
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

    ctx = ssl.create_default_context(cafile=ca_file)
    session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)))
    path = (
        f"/api/v2/namespaces/{target['namespace']}/deployments/{target['deploymentId']}"
        f"/jobs/{target['jobId']}/job-diagnoses/lite"
    )
    creds = StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
    signing = await stack.enter_async_context(FlinkClient(Settings(endpoint=base_url), creds))
    call = Call(
        action="GetJobDiagnosis", path=path, workspace=target["workspace"], namespace=target["namespace"]
    )
    headers = signing._signed_headers(call, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None)
    url = f"{base_url}{path}"

    async def one() -> None:
        sent = (
            signing._signed_headers(call, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None)
            if sign_each
            else headers
        )
        async with session.get(url, headers=sent) as resp:
            body = json.loads(await resp.read())
        assert not sign_each or body["data"]["riskLevel"]

    return one


async def sdk_client(
    stack: contextlib.AsyncExitStack, base_url: str, ca_file: str, target: dict[str, str]
) -> Client:
    from alibabacloud_tea_openapi.utils_models import Config
    from alibabacloud_ververica20220718 import models
    from alibabacloud_ververica20220718.client import Client as SdkClient
    from darabonba.runtime import RuntimeOptions

    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

    config = Config(
        access_key_id=DEFAULT_ACCESS_KEY_ID,
        access_key_secret=DEFAULT_ACCESS_KEY_SECRET,
        endpoint=base_url.removeprefix("https://"),
        protocol="HTTPS",
        ca=ca_file,  # verification stays on, against our CA
    )
    client = SdkClient(config)
    headers = models.GetJobDiagnosisHeaders(workspace=target["workspace"])

    async def one() -> None:
        resp = await client.get_job_diagnosis_with_options_async(
            target["namespace"], target["deploymentId"], target["jobId"], headers, RuntimeOptions()
        )
        assert resp.body.data.risk_level

    return one


async def measure(base_url: str, ca_file: str, target: dict[str, str], calls: int, rounds: int) -> None:
    """Each round runs `calls` sequential calls of each client, in a rotating order; CPU per call
    (time.process_time of this process) per round, then the median over the rounds."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            "flinkdiag": await ours_client(stack, base_url, ca_file, target),
            "sdk": await sdk_client(stack, base_url, ca_file, target),
            "bare GET": await bare_client(stack, base_url, ca_file, target),
            "signed GET": await bare_client(stack, base_url, ca_file, target, sign_each=True),
        }
        for one in clients.values():
            for _ in range(WARMUP):
                await one()
        names = list(clients)
        cpu: dict[str, list[float]] = {name: [] for name in names}
        wall: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                one = clients[name]
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    await one()
                cpu[name].append((time.process_time() - cpu0) / calls)
                wall[name].append((time.perf_counter() - wall0) / calls)
    med = {name: statistics.median(v) for name, v in cpu.items()}
    for name in names:
        print(
            f"{name:<10} CPU {med[name] * 1e3:7.3f} ms/call (median of {rounds} rounds of {calls}; "
            f"rounds {min(cpu[name]) * 1e3:.3f}-{max(cpu[name]) * 1e3:.3f}), "
            f"wall {statistics.median(wall[name]) * 1e3:7.3f} ms/call"
        )
    floor = med["flinkdiag"] / med["bare GET"]
    print(f"flinkdiag / bare GET: {floor:.2f}x   (goal <= 2x)")
    print(
        f"flinkdiag / signed GET: {med['flinkdiag'] / med['signed GET']:.2f}x   (same answer, json.loads only)"
    )
    print(
        f"flinkdiag / sdk:      {med['flinkdiag'] / med['sdk']:.2f}x   "
        f"(the sdk takes {med['sdk'] / med['flinkdiag']:.1f}x flinkdiag's CPU per call)"
    )
    print(f"verdict: {'PASS' if floor <= 2 else 'FAIL'} (flinkdiag within 2x of the bare GET)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per client per round (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()

    import trustme

    from bot.logs import setup_logging

    with open(os.devnull, "w") as devnull, tempfile.TemporaryDirectory() as tmp:
        # As in production: INFO, key=value; the client's per-call line is DEBUG, so it costs
        # here what it costs there.
        setup_logging("INFO", "kv", stream=devnull)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_file, chain, key = Path(tmp, "ca.pem"), Path(tmp, "server.pem"), Path(tmp, "server.key")
        ca.cert_pem.write_to_path(str(ca_file))
        cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
        cert.private_key_pem.write_to_path(str(key))

        parent, child = mp.get_context("spawn").Pipe()
        proc = mp.get_context("spawn").Process(
            target=serve_simulator, args=(str(chain), str(key), child), daemon=True
        )
        proc.start()
        try:
            if not parent.poll(30):
                raise SystemExit("simulator did not start within 30 s")
            base_url, target = parent.recv()
            print(f"simulator {base_url} (child pid {proc.pid}); target {target['name']}; logging INFO")
            asyncio.run(measure(base_url, str(ca_file), target, args.calls, args.rounds))
        finally:
            parent.send("stop")
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


if __name__ == "__main__":
    main()
