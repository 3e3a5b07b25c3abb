"""`manifest.yml` and `Procfile` say what the code does: the command, the events it listens to,
exactly the scopes its Web API calls need, and the process that serves it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from e2e import running_stack
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import parse_command

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())

# Web API methods (as slack_sdk spells them) -> the bot scope each needs. A method the bot starts
# calling must be added here, and its scope to the manifest, or the app fails in a real workspace.
# Source: the methods' reference pages at docs.slack.dev/reference/methods.
# A method that reads conversations needs one scope per kind of channel the bot may be in.
SCOPE_OF_METHOD: dict[str, str | tuple[str, ...] | None] = {
    "auth_test": None,
    "chat_postMessage": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_update": "chat:write",
    "chat_delete": "chat:write",
    "views_publish": None,
    "conversations_info": "channels:read",
    "users_info": "users:read",
    # public and private channels (the bot is not meant for DMs)
    "conversations_history": ("channels:history", "groups:history"),
    "conversations_replies": ("channels:history", "groups:history"),
}
# Attribute access on a client, called or passed on (`client.chat_update(` or `self._call(web.chat_update, …)`);
# only names that are Web API methods of the client count (not `team_id` and the like).
_ATTRIBUTE = re.compile(r"\.([a-z]+(?:_[A-Za-z0-9]+)+)\b")
_WEB_API_METHODS = {
    name
    for name in dir(AsyncWebClient)
    if not name.startswith("_") and "_" in name and callable(getattr(AsyncWebClient, name))
} - {"api_call"}


def web_api_methods_used() -> dict[str, list[str]]:
    """Every Web API method named in bot/, with the files that name it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        text = path.read_text()
        methods = set(_ATTRIBUTE.findall(text)) & _WEB_API_METHODS
        if re.search(r"\bsay\(", text):  # Bolt's `say` is chat.postMessage
            methods.add("chat_postMessage")
        for method in methods:
            found.setdefault(method, []).append(str(path.relative_to(ROOT)))
    return found


def test_slash_command_with_usage_hint():
    commands = MANIFEST["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/flinkdiag"]
    hint = commands[0]["usage_hint"]
    assert hint
    # Every form the hint suggests is one the bot understands.
    samples = {"<job-id>": "5af678c0-7db0-4650-94c2-d2604f0a1234", "<name>": "orders-etl"}
    for form in (f.strip() for f in hint.split("|")):
        text = re.sub(r"<[^>]+>", lambda m: samples[m.group(0)], form)
        assert parse_command(text).kind == form.split()[0], form


def test_interactivity_socket_mode_and_app_home():
    settings, features = MANIFEST["settings"], MANIFEST["features"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    # Socket Mode needs no request URLs; a stale one would be the HTTP-mode set-up half done.
    assert "request_url" not in settings["interactivity"]
    assert "url" not in features["slash_commands"][0]
    assert features["app_home"]["home_tab_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert features["bot_user"]["display_name"]


def test_bot_scopes_are_exactly_what_the_code_uses():
    used = web_api_methods_used()
    unknown = sorted(set(used) - set(SCOPE_OF_METHOD))
    assert not unknown, f"add these Web API methods to SCOPE_OF_METHOD: {unknown} ({used})"
    assert {"chat_postMessage", "chat_update", "views_publish"} <= set(used)  # the grep finds them
    needed = {"commands"}
    for m in used:
        scopes = SCOPE_OF_METHOD[m]
        needed |= {scopes} if isinstance(scopes, str) else set(scopes or ())
    granted = MANIFEST["oauth_config"]["scopes"]["bot"]
    assert len(granted) == len(set(granted))
    assert set(granted) == needed, f"missing: {needed - set(granted)}, unused: {set(granted) - needed}"
    assert "user" not in MANIFEST["oauth_config"]["scopes"]


def test_procfile_serves_over_http():
    lines = [ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.strip()]
    assert lines == ["web: flinkdiag serve"]


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as s:
        yield s


async def test_app_home_opened_is_handled(stack):
    """The manifest subscribes to app_home_opened, so the bot must answer it with a Home view."""
    event = {
        "token": "legacy-verification-token",
        "team_id": stack.slack.TEAM_ID,
        "api_app_id": "AFLINKDIAG",
        "type": "event_callback",
        "event_id": "Ev0HOME",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": stack.slack.TEAM_ID, "user_id": stack.slack.BOT_USER_ID, "is_bot": True}
        ],
        "event": {
            "type": "app_home_opened",
            "user": "U0HOME",
            "channel": "D0HOME",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
    }
    body = json.dumps(event)
    headers = stack.driver.signed_headers(body) | {"Content-Type": "application/json"}
    reply = await stack.driver.post(body, headers)
    assert reply.status == 200
    # Polled: LocalSlack.wait_for wakes on messages, and views.publish posts none.
    async with asyncio.timeout(10):
        while not stack.slack.calls["views.publish"]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert stack.slack.calls["views.publish"] == 1
    view = stack.slack.home_views["U0HOME"]
    assert view["type"] == "home"
    assert "/flinkdiag" in json.dumps(view["blocks"])
