"""Client CPU per call: flinkdiag's FlinkClient versus the official SDK's async method.

Both call GetJobDiagnosis on the simulator over HTTPS on loopback, with certificate verification on
(a throwaway CA made by trustme). The simulator runs in a child process so that only the client's
CPU is counted (time.process_time of this process).

    .venv/bin/python -m bench.client_overhead [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

WARMUP = 5


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


async def measure(name: str, calls: int, one_call: Any) -> float:
    """CPU seconds per call over `calls` sequential calls, after a short warm-up."""
    for _ in range(WARMUP):
        await one_call()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await one_call()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cpu_ms, wall_ms = cpu * 1000 / calls, wall * 1000 / calls
    print(f"{name:<10} {calls} calls: CPU {cpu_ms:7.3f} ms/call, wall {wall_ms:7.3f} ms/call")
    return cpu / calls


async def ours(base_url: str, ca_file: str, target: dict[str, str], calls: int) -> float:
    from bot.config import Settings
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import StaticCredentials
    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

    # The limiter is left wide open: this measures the client, not the rate limit.
    settings = Settings(endpoint=base_url, ca_file=ca_file, max_calls_per_second=1e6, max_retries=0)
    creds = StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
    async with FlinkClient(settings, creds) as client:

        async def one() -> None:
            d = await client.get_job_diagnosis(
                target["workspace"], target["namespace"], target["deploymentId"], target["jobId"]
            )
            assert d.risk_level

        return await measure("flinkdiag", calls, one)


async def sdk(base_url: str, ca_file: str, target: dict[str, str], calls: int) -> float:
    from alibabacloud_tea_openapi.utils_models import Config
    from alibabacloud_ververica20220718 import models
    from alibabacloud_ververica20220718.client import Client
    from darabonba.runtime import RuntimeOptions

    from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

    config = Config(
        access_key_id=DEFAULT_ACCESS_KEY_ID,
        access_key_secret=DEFAULT_ACCESS_KEY_SECRET,
        endpoint=base_url.removeprefix("https://"),
        protocol="HTTPS",
        ca=ca_file,  # verification stays on, against our CA
    )
    client = Client(config)
    headers = models.GetJobDiagnosisHeaders(workspace=target["workspace"])

    async def one() -> None:
        resp = await client.get_job_diagnosis_with_options_async(
            target["namespace"], target["deploymentId"], target["jobId"], headers, RuntimeOptions()
        )
        assert resp.body.data.risk_level

    return await measure("sdk", calls, one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per client (default 200)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import trustme

    with tempfile.TemporaryDirectory() as tmp:
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
            print(f"simulator {base_url} (child pid {proc.pid}); target {target['name']}")
            ours_cpu = asyncio.run(ours(base_url, str(ca_file), target, args.calls))
            sdk_cpu = asyncio.run(sdk(base_url, str(ca_file), target, args.calls))
        finally:
            parent.send("stop")
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    print(f"ratio sdk/flinkdiag: {sdk_cpu / ours_cpu:.1f}x less CPU per call with flinkdiag's client")


if __name__ == "__main__":
    main()
