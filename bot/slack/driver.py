"""Plays Slack's part towards a Bolt app over HTTP: signed slash commands and button presses.

The console and the end-to-end tests both use it, so they exercise exactly the path Slack's own
requests take (signature check, Bolt's middleware, the same listeners).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.slack.localslack import LocalMessage, LocalSlack


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None
    text: str
    message: LocalMessage | None = None  # the ack as shown in the local Slack


class SlackDriver:
    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        local: LocalSlack,
        *,
        team_id: str = LocalSlack.TEAM_ID,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.events_url = events_url
        self.verifier = SignatureVerifier(signing_secret)
        self.local = local
        self.team_id = team_id
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def signed_headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
        }

    async def post(self, body: str, headers: dict[str, str]) -> Reply:
        async with self.session.post(self.events_url, data=body.encode(), headers=headers) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            return Reply(resp.status, parsed if isinstance(parsed, dict) else None, text)

    def command_body(
        self, text: str, *, channel: str, user: str, command: str = "/flinkdiag"
    ) -> tuple[str, str]:
        response_url = self.local.new_response_url(channel, user)
        form = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": "local",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "AFLINKDIAG",
            "response_url": response_url,
            "trigger_id": secrets.token_hex(8),
        }
        return urlencode(form), response_url

    async def command(self, text: str, *, channel: str = "CLOCAL", user: str = "ULOCAL") -> Reply:
        """Send `/flinkdiag <text>` as Slack would; the ack (if it has content) is shown as a message."""
        body, response_url = self.command_body(text, channel=channel, user=user)
        reply = await self.post(body, self.signed_headers(body))
        if reply.status == 200 and reply.body and (reply.body.get("text") or reply.body.get("blocks")):
            reply.message = self.local.add_ack_message(response_url, channel, user, reply.body)
        return reply

    def action_body(self, message: LocalMessage, button: dict[str, Any], *, user: str) -> str:
        response_url = self.local.new_response_url(message.channel, user, message=message)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "local"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "api_app_id": "AFLINKDIAG",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": message.ephemeral,
            },
            "trigger_id": secrets.token_hex(8),
            "channel": {"id": message.channel, "name": message.channel.lower()},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": button.get("action_id"),
                    "block_id": button.get("block_id") or "b",
                    "text": {"type": "plain_text", "text": button.get("text") or ""},
                    "value": button.get("value"),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if not message.ephemeral:
            # Slack includes the source message only for non-ephemeral messages.
            payload["message"] = {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "blocks": message.blocks,
            }
        return urlencode({"payload": json.dumps(payload)})

    async def press(self, message: LocalMessage, button: dict[str, Any], *, user: str = "ULOCAL") -> Reply:
        """Press a button of `message` (a dict with action_id, value, block_id, text)."""
        body = self.action_body(message, button, user=user)
        return await self.post(body, self.signed_headers(body))


def buttons_of(message: LocalMessage) -> list[dict[str, Any]]:
    """Every button in a message's blocks (and attachment blocks), in display order."""
    found: list[dict[str, Any]] = []
    blocks = list(message.blocks)
    for att in message.attachments:
        blocks.extend(att.get("blocks") or [])
    for block in blocks:
        elements = block.get("elements") if block.get("type") == "actions" else None
        if block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            elements = [block["accessory"]]
        for el in elements or []:
            if el.get("type") == "button":
                text = el.get("text")
                found.append(
                    {
                        "action_id": el.get("action_id"),
                        "value": el.get("value"),
                        "url": el.get("url"),
                        "block_id": block.get("block_id"),
                        "text": text.get("text") if isinstance(text, dict) else text,
                    }
                )
    return found


def find_button(message: LocalMessage, action_id: str) -> dict[str, Any]:
    for b in buttons_of(message):
        if b["action_id"] == action_id:
            return b
    raise LookupError(f"no button {action_id!r} in message {message.ts}")
