"""`flinkdiag console`: chat with the bot in a terminal, like Hubot's shell adapter.

It drives the very Bolt app that serves Slack, over signed HTTP on loopback (see bot/local.py),
with a local stand-in for Slack that shows each message as text with numbered buttons.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

from bot.config import Settings
from bot.local import LocalStack
from bot.slack.driver import buttons_of
from bot.slack.localslack import LocalMessage
from bot.slack.text import message_to_text

PROMPT = "you> "
CHANNEL = "CLOCAL"
USER = "ULOCAL"

HELP = """Type what you would type in Slack, e.g.
  /flinkdiag deployment orders-etl
  /flinkdiag job <job-id> --share
  /flinkdiag help
A number presses that button of a message.  `sim fleet` lists the simulated deployments;
`sim fail <deployment>` fails its current job, `sim restart <deployment>` starts a new one
(watch it first: the alerts appear while the console waits; in a script, `wait 10` waits ten
seconds for them).
`quit` leaves."""


class Console:
    def __init__(self, stack: LocalStack, out: TextIO) -> None:
        self.stack = stack
        self.out = out
        self.buttons: dict[int, tuple[LocalMessage, dict[str, Any]]] = {}
        self._next = 1
        # What arrives while a slash command's ack is on its way: an answer can overtake the ack
        # on loopback, but Slack shows the ack first.
        self._held: list[tuple[str, LocalMessage]] | None = None
        stack.slack.on_change(self._on_change)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _on_change(self, kind: str, message: LocalMessage) -> None:
        if self._held is not None:
            self._held.append((kind, message))
        else:
            self._show(kind, message)

    def _show(self, kind: str, message: LocalMessage) -> None:
        if kind == "deleted":
            return
        who = "only you" if message.ephemeral else f"#{message.channel.lower()}"
        verb = "updated" if kind == "updated" else "says"
        thread = " (in thread)" if message.thread_ts else ""
        self.print(f"\nflinkdiag {verb} ({who}){thread}:")
        body = message_to_text(
            {"text": message.text, "blocks": message.blocks, "attachments": message.attachments}
        )
        self.print(_indent(body))
        for button in buttons_of(message):
            n = self._next
            self._next += 1
            self.buttons[n] = (message, button)
            link = f"  -> {button['url']}" if button.get("url") else ""
            self.print(f"    [{n}] {button.get('text')}{link}")

    async def handle(self, line: str) -> bool:
        """Handle one input line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if line in {"quit", "exit", ":q"}:
            return False
        if line in {"?", "console help"}:
            self.print(HELP)
            return True
        if line == "sim fleet":
            self._print_fleet()
            return True
        if line.startswith(("sim fail ", "sim restart ")):
            self._sim_job(*line.split(maxsplit=2)[1:])
            return True
        if line.startswith("wait"):
            # A script has no idle prompt to wait at: this lets the watch loop's posts arrive.
            arg = line.removeprefix("wait").strip() or "10"
            if not arg.isdigit() or not 0 < int(arg) <= 600:
                self.print("Usage: wait SECONDS (1 to 600).")
                return True
            await asyncio.sleep(int(arg))
            return True
        if line.isdigit():
            n = int(line)
            if n not in self.buttons:
                self.print(f"There is no button [{n}].")
                return True
            message, button = self.buttons[n]
            reply = await self.stack.driver.press(message, button, user=USER)
            if reply.status != 200:
                self.print(f"(Slack would show an error: HTTP {reply.status})")
        else:
            text = line.removeprefix("/flinkdiag").strip() if line.startswith("/flinkdiag") else line
            if line.startswith("/") and not line.startswith("/flinkdiag"):
                self.print(f"Only /flinkdiag is installed here, not {line.split()[0]}.")
                return True
            self._held = []
            try:
                reply = await self.stack.driver.command(text, channel=CHANNEL, user=USER)
            finally:
                held, self._held = self._held, None
            if reply.status != 200:
                self.print(f"(Slack would show an error: HTTP {reply.status} {reply.text[:200]})")
            elif reply.message is not None:
                self._show("posted", reply.message)
            for kind, message in held:
                self._show(kind, message)
        await self.stack.settle()
        return True

    def _print_fleet(self) -> None:
        if self.stack.sim is None:
            self.print("No built-in simulator is running (FLINKDIAG_ENDPOINT points elsewhere).")
            return
        for d in self.stack.sim.fleet_summary():
            job = d["jobId"] or "(no running job)"
            self.print(f"  {d['namespace']:<18} {d['name']:<24} {job}")

    def _sim_job(self, verb: str, name: str) -> None:
        """`sim fail NAME` / `sim restart NAME`: what the simulator's control API does, by name."""
        sim = self.stack.sim
        if sim is None:
            self.print("No built-in simulator is running (FLINKDIAG_ENDPOINT points elsewhere).")
            return
        found = [d for d in sim.fleet_summary() if name in (d["name"], d["deploymentId"])]
        if not found:
            self.print(f"No simulated deployment {name!r} (see `sim fleet`).")
            return
        dep = found[0]["deploymentId"]
        try:
            if verb == "restart":
                job = sim.restart(dep)
                self.print(f"Started job {job} of {name} (RUNNING, no restarts).")
            else:
                failure = {
                    "reason": "SimulatedFailure",
                    "message": "java.lang.RuntimeException: failed on purpose (flinkdiag console)",
                    "failedAt": int(time.time() * 1000),
                }
                job = sim.set_status(dep, {"currentJobStatus": "FAILED", "failure": failure})
                self.print(f"Job {job} of {name} is FAILED now.")
        except ValueError as e:
            self.print(f"Can't: {e}")


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


async def run_console(
    settings: Settings | None = None, *, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    stack = await LocalStack.start(settings, start_scheduler=True)
    console = Console(stack, out)
    if stack.sim is not None:
        console.print(
            f"Started the built-in Flink API simulator at {stack.sim.base_url} (no cloud account used)."
        )
    console.print(f"Database: {stack.settings.effective_database_url}")
    interactive = stdin.isatty()
    if interactive:
        console.print(HELP)
    loop = asyncio.get_running_loop()
    try:
        while True:
            if interactive:
                out.write(PROMPT)
                out.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            if not interactive:
                console.print(PROMPT + line.rstrip("\n"))
            if not await console.handle(line):
                break
    finally:
        await stack.aclose()
    return 0
