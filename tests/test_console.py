"""`flinkdiag console` as a person scripts it: a real process, commands on a pipe, text out."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

from procs import FLINKDIAG, clean_env

from bot.flink.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(tmp_path, db_name="console.db", **extra)


def run_console(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLINKDIAG, "console"],
        input=script,
        capture_output=True,
        text=True,
        env=console_env(tmp_path, **env),
        cwd=tmp_path,
        timeout=20,
    )


def after(out: str, line: str) -> str:
    """What the console printed in answer to the input `line` (up to the next prompt)."""
    start = out.index(f"you> {line}\n") + len(f"you> {line}\n")
    end = out.find("you> ", start)
    return out[start:] if end < 0 else out[start:end]


def test_scripted_conversation(tmp_path):
    script = (
        "/flinkdiag deployment orders-etl\n"
        "1\n"
        "deployment payments-fraud-scoring\n"
        "sim fleet\n"
        "/flinkdiag job nope!\n"
        "99\n"
        "/deploy now\n"
        "/flinkdiag help\n"
        "quit\n"
        "/flinkdiag watches\n"
    )
    proc = run_console(tmp_path, script)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "built-in Flink API simulator" in out.splitlines()[0]
    assert str(tmp_path / "console.db") in out

    first = after(out, "/flinkdiag deployment orders-etl")
    assert "Low risk" in first
    assert "96/100" in first
    assert "No symptoms found" in first
    assert re.search(r"^ {4}\[1\] .*Re-run diagnosis$", first, re.M), first
    assert re.search(r"^ {4}\[2\] .*Share to channel$", first, re.M), first

    rerun = after(out, "1")
    assert "flinkdiag updated (only you):" in rerun
    assert "Nothing changed." in rerun
    assert "[3]" in rerun  # the updated message's buttons get new numbers

    high = after(out, "deployment payments-fraud-scoring")
    assert "High risk" in high
    assert "42/100" in high
    for symptom in ("Backpressure", "Frequent failover", "Checkpoint failures"):
        assert symptom in high

    fleet = after(out, "sim fleet")
    assert re.search(r"default-namespace\s+orders-etl\s+[0-9a-f-]{36}", fleet)
    assert re.search(r"analytics\s+daily-kpi-backfill\s+\(no running job\)", fleet)

    assert "`nope!` doesn't look like a job id" in after(out, "/flinkdiag job nope!")
    assert "There is no button [99]." in after(out, "99")
    assert "Only /flinkdiag is installed here, not /deploy." in after(out, "/deploy now")
    help_text = after(out, "/flinkdiag help")
    assert "How to use `/flinkdiag`" in help_text
    assert "/flinkdiag watch deployment <name-or-id>" in help_text

    # Messages are text, not Block Kit: no JSON leaks through.
    assert '"type"' not in out and '"blocks"' not in out
    assert not any(line.lstrip().startswith(("{", "[{")) for line in out.splitlines())
    # `quit` stops reading: the line after it is never answered.
    assert "you> /flinkdiag watches" not in out


def test_end_of_input_ends_the_console(tmp_path):
    proc = run_console(tmp_path, "/flinkdiag help")  # no newline, no quit
    assert proc.returncode == 0, proc.stderr
    assert "How to use `/flinkdiag`" in after(proc.stdout, "/flinkdiag help")
    # Stopping while the first watch sweep may be running is quiet, not a cancelled transaction.
    assert "Traceback" not in proc.stderr and "level=error" not in proc.stderr, proc.stderr


def test_endpoint_elsewhere_means_no_built_in_simulator(tmp_path):
    sim = Simulator()
    job = next(d["jobId"] for d in sim.fleet_summary() if d["name"] == "orders-etl")
    # Nothing listens on port 9: the console must not start a simulator in its place.
    proc = run_console(
        tmp_path,
        f"sim fleet\njob {job}\n",
        FLINKDIAG_ENDPOINT="http://127.0.0.1:9",
        FLINKDIAG_WORKSPACE="ws-demo",
        FLINKDIAG_NAMESPACES="default-namespace,analytics",
        FLINKDIAG_MAX_RETRIES="0",
        ALIBABA_CLOUD_ACCESS_KEY_ID="ak",
        ALIBABA_CLOUD_ACCESS_KEY_SECRET="secret",
    )
    assert proc.returncode == 0, proc.stderr
    assert "built-in Flink API simulator" not in proc.stdout
    assert "No built-in simulator is running" in after(proc.stdout, "sim fleet")
    assert "The Flink API at `127.0.0.1:9` could not be reached." in after(proc.stdout, f"job {job}")


class LiveConsole:
    """`flinkdiag console` as a process with a fast watch loop, fed line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc, self.stdin, self.stdout = proc, proc.stdin, proc.stdout
        self.seen: list[str] = []

    @classmethod
    async def start(cls, tmp_path: Path) -> LiveConsole:
        env = console_env(tmp_path, FLINKDIAG_MIN_WATCH_INTERVAL="1s", FLINKDIAG_SWEEP_TICK_SECONDS="0.5")
        return cls(
            await asyncio.create_subprocess_exec(
                *FLINKDIAG,
                "console",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=tmp_path,
            )
        )

    async def say(self, line: str) -> None:
        self.stdin.write(line.encode() + b"\n")
        await self.stdin.drain()

    async def read_until(self, needle: str, timeout: float = 10) -> None:
        async def read() -> None:
            while not self.seen or needle not in self.seen[-1]:
                line = await self.stdout.readline()
                assert line, f"console ended before printing {needle!r}:\n{''.join(self.seen)}"
                self.seen.append(line.decode())

        await asyncio.wait_for(read(), timeout)

    async def finish(self, stdin: str = "quit\n", timeout: float = 10) -> tuple[str, str]:
        """Send `stdin`, close it and wait for the end; all stdout and stderr. Kills on failure."""
        try:
            rest, err = await asyncio.wait_for(self.proc.communicate(stdin.encode()), timeout)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode == 0, err.decode()
        return "".join(self.seen) + rest.decode(), err.decode()


async def test_watch_alerts_while_the_console_waits_for_input(tmp_path):
    console = await LiveConsole.start(tmp_path)
    try:
        # payments-fraud-scoring is HIGH in the default fleet: HIGH needs no confirming check,
        # so the first sweep alerts. The console must print it while it sits waiting on stdin.
        await console.say("watch deployment payments-fraud-scoring --every 1s")
        await console.read_until("Watching deployment payments-fraud-scoring")
        await console.read_until("High risk: payments-fraud-scoring")
    finally:
        text, _ = await console.finish()
    alert_at = text.index("High risk: payments-fraud-scoring")
    # Posted to the channel (not only to the person who asked), with the watch's buttons.
    assert text.rfind("flinkdiag says (#clocal):", 0, alert_at) > text.index("Watching deployment")
    assert re.search(r"\[\d+\] .*Unwatch", text[alert_at:])


async def test_sim_fail_and_restart_make_the_incident_appear_while_the_console_waits(tmp_path):
    console = await LiveConsole.start(tmp_path)
    try:
        # orders-etl is LOW and running in the default fleet: nothing to say until it fails.
        await console.say("watch deployment orders-etl --every 1s")
        await console.read_until("Watching deployment orders-etl")
        await console.say("sim fail orders-etl")
        await console.read_until("is FAILED now")
        await console.read_until("Job failed: orders-etl")
        await console.say("sim restart orders-etl")
        await console.read_until("running again")
    finally:
        await console.finish()


async def test_a_script_waits_for_the_watch_loop_with_wait(tmp_path):
    console = await LiveConsole.start(tmp_path)
    script = "watch deployment orders-etl --every 1s\nsim fail orders-etl\nwait 3\nwait nonsense\n"
    text, _ = await console.finish(script, timeout=60)
    # Without `wait` the script ends before the first sweep, and the alert is never shown.
    assert "Job failed: orders-etl" in text
    assert "Usage: wait SECONDS (1 to 600)." in text
