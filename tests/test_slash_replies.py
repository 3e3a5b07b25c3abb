"""Slash commands answer the way Slack shows them: the ack stays, the answer comes once, below it.

Slack cannot replace a slash command's ack through its response_url (a post there is a new
message); a button's response_url still edits the message the button is on. The local Slack
behaves that way, so the console shows what a real workspace shows.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import aiohttp
import pytest
from procs import FLINKDIAG, clean_env

from bot.slack.localslack import LocalSlack


@pytest.fixture
async def slack():
    s = LocalSlack()
    await s.start()
    yield s
    await s.stop()


async def _post(url: str, body: dict) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status


async def test_a_commands_response_url_posts_a_new_message_and_the_ack_stays(slack):
    url = slack.new_response_url("C1", "U1")
    ack = slack.add_ack_message(url, "C1", "U1", {"text": "Diagnosing x"})
    assert await _post(url, {"text": "the answer", "replace_original": True}) == 200
    assert await _post(url, {"delete_original": True}) == 200
    assert [m.text for m in slack.channel_messages("C1")] == ["Diagnosing x", "the answer"]
    assert ack.updates == 0 and not ack.deleted
    assert all(m.ephemeral_to == "U1" for m in slack.channel_messages("C1"))


async def test_an_answer_that_overtakes_the_ack_still_shows_below_it(slack):
    url = slack.new_response_url("C1", "U1")
    assert await _post(url, {"text": "the answer", "replace_original": True}) == 200
    slack.add_ack_message(url, "C1", "U1", {"text": "Diagnosing x"})
    assert [m.text for m in slack.channel_messages("C1")] == ["Diagnosing x", "the answer"]


async def test_a_buttons_response_url_edits_or_deletes_its_message(slack):
    first = slack.add_ack_message(slack.new_response_url("C1", "U1"), "C1", "U1", {"text": "v1"})
    url = slack.new_response_url("C1", "U1", message=first)
    assert await _post(url, {"text": "v2", "replace_original": True}) == 200
    assert slack.channel_messages("C1") == [first] and first.text == "v2" and first.updates == 1
    assert await _post(url, {"text": "a note", "replace_original": False}) == 200
    assert [m.text for m in slack.channel_messages("C1")] == ["v2", "a note"]
    assert await _post(url, {"delete_original": True}) == 200
    assert [m.text for m in slack.channel_messages("C1")] == ["a note"]


def _answers(out: str, line: str) -> list[str]:
    """What the console printed for the input `line`, one entry per message shown."""
    start = out.index(f"you> {line}\n") + len(f"you> {line}\n")
    end = out.find("you> ", start)
    section = out[start:] if end < 0 else out[start:end]
    return [m for m in re.split(r"\n(?=flinkdiag (?:says|updated) )", section.strip()) if m]


def test_the_console_shows_one_answer_per_slash_command(tmp_path: Path):
    commands = [
        "/flinkdiag deployment orders-etl",
        "/flinkdiag deployment payments-fraud-scoring --share",
        "/flinkdiag deployment no-such-deployment",
        "/flinkdiag help",
        "/flinkdiag job nope!",
        "/flinkdiag defaults",
        "/flinkdiag watch deployment orders-etl --every 1h",
        "/flinkdiag watches",
    ]
    proc = subprocess.run(
        [*FLINKDIAG, "console"],
        input="".join(c + "\n" for c in commands),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, db_name="console.db"),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for command in commands:
        shown = _answers(proc.stdout, command)
        assert not [m for m in shown if m.startswith("flinkdiag updated")], (command, shown)
        receipts = [m for m in shown if "Diagnosing deployment" in m]
        answers = [m for m in shown if m not in receipts]
        assert len(answers) == 1, (command, shown)
        if "deployment" in command and "watch" not in command:
            # The ack stays above the answer in Slack, so it says where the answer goes.
            [receipt] = receipts
            where = "posted to this channel" if "--share" in command else "follows below"
            assert where in receipt and shown.index(receipt) == 0, shown
        else:
            assert not receipts
