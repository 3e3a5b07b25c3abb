"""Running `flinkdiag` as a real process in tests: the command, a clean environment, and
`flinkdiag serve` started against the simulator and the local Slack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Simulator
from bot.slack.localslack import LocalSlack

_SCRIPT = Path(sys.executable).parent / "flinkdiag"
# The console script when installed (as the README's commands do), else the module.
FLINKDIAG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]


def clean_env(tmp_path: Path, *, db_name: str = "bot.db", **extra: str) -> dict[str, str]:
    """The caller's environment without any bot, Slack or cloud settings, and a private database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLINKDIAG_", "SLACK_", "ALIBABA_CLOUD_")) and k != "PORT"
    }
    env["FLINKDIAG_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / db_name}"
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback port nothing listens on now, for a child process to bind (it cannot take port 0
    and tell us which it got the way an in-process server can)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(tmp_path: Path, sim: Simulator | None, slack: LocalSlack, **extra: str) -> dict[str, str]:
    """What `flinkdiag serve` needs to run against this simulator and this local Slack, on a free
    $PORT; `extra` adds the signing secret or app token and overrides anything. Without a
    simulator the endpoint is one nothing answers on, for tests that stop before calling Flink."""
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_API_URL": slack.api_url,
        "FLINKDIAG_ENDPOINT": sim.base_url if sim else "http://127.0.0.1:9",
        "FLINKDIAG_WORKSPACE": "ws-demo",
        "FLINKDIAG_NAMESPACES": "default-namespace,analytics",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
        "PORT": str(free_port()),
    }
    return clean_env(tmp_path, **{**env, **extra})


async def start_serve(
    env: dict[str, str], cwd: Path, log_path: Path | None = None, **kwargs: Any
) -> asyncio.subprocess.Process:
    """`flinkdiag serve` as a child process writing its output to `log_path`, or to pipes (read
    them with `communicate()`) when there is none. `kwargs` go to the subprocess (`preexec_fn`)."""
    if log_path is None:
        pipe = asyncio.subprocess.PIPE
        return await asyncio.create_subprocess_exec(
            *FLINKDIAG, "serve", stdout=pipe, stderr=pipe, env=env, cwd=cwd, **kwargs
        )
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            *FLINKDIAG, "serve", stdout=log, stderr=log, env=env, cwd=cwd, **kwargs
        )


async def until_healthy(
    proc: asyncio.subprocess.Process, port: int | str, log_path: Path, timeout: float = 15
) -> None:
    """Wait until the bot answers GET /healthz on `port` with {"ok": true}; fail with its log if
    it exits first, or when `timeout` passes."""

    async def poll(http: aiohttp.ClientSession) -> None:
        while True:
            # The log is read only when failing: blocking the loop then costs nothing.
            assert proc.returncode is None, log_path.read_text()  # noqa: ASYNC240
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        assert (await resp.json()) == {"ok": True}
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession() as http:
        await asyncio.wait_for(poll(http), timeout)


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Kill the process if it still runs (a test that failed half way) and wait for it."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


@dataclass
class HttpBot:
    """`flinkdiag serve` in HTTP mode, answering on `base`, with the simulator and Slack it uses."""

    proc: asyncio.subprocess.Process
    log_path: Path
    base: str
    sim: Simulator
    slack: LocalSlack

    def logs(self) -> str:
        return self.log_path.read_text()


@contextlib.asynccontextmanager
async def serving_http(tmp_path: Path, *, bot_token: str, signing: str) -> AsyncIterator[HttpBot]:
    """A fresh simulator and local Slack, and `flinkdiag serve` in HTTP mode against them once it
    answers /healthz; all stopped on the way out (the bot killed if the test has not stopped it)."""
    sim = Simulator()
    await sim.start()
    slack = LocalSlack(bot_token=bot_token)
    await slack.start()
    try:
        env = serve_env(tmp_path, sim, slack, SLACK_SIGNING_SECRET=signing)
        log_path = tmp_path / "serve.log"
        proc = await start_serve(env, tmp_path, log_path)
        try:
            await until_healthy(proc, env["PORT"], log_path)
            yield HttpBot(proc, log_path, f"http://127.0.0.1:{env['PORT']}", sim, slack)
        finally:
            await reap(proc)
    finally:
        await slack.stop()
        await sim.stop()
