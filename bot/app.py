"""Wiring: the only module that sees every layer (settings, Flink client, store, Slack, watch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings, secret
from bot.diagnosis.resolve import FlinkApi
from bot.diagnosis.service import DiagnosisService
from bot.slack.listeners import SlackDeps, register
from bot.slack.render import Renderer

log = logging.getLogger("flinkdiag.app")


class ConfigError(ValueError):
    """Settings that cannot work; the message names the variables."""


def check_slack_settings(settings: Settings) -> str:
    """Validate Slack settings for `serve`; returns the mode ("socket" or "http")."""
    problems: list[str] = []
    bot = secret(settings.slack_bot_token)
    app_token = secret(settings.slack_app_token)
    signing = secret(settings.slack_signing_secret)
    if not bot:
        problems.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…)")
    elif not bot.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    mode = "socket" if app_token else "http"
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp- (or unset it for HTTP mode)")
    if mode == "http" and not signing:
        problems.append("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request with it)")
    if settings.base_url is None:
        problems.append("neither FLINKDIAG_REGION nor FLINKDIAG_ENDPOINT is set (which Flink API to call)")
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))
    return mode


def slack_client(token: str, base_url: str | None) -> AsyncWebClient:
    """A Web API client that waits out 429s (Retry-After) instead of dropping the message."""
    return AsyncWebClient(
        token=token,
        base_url=base_url or "https://slack.com/api/",
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        ],
    )


@dataclass
class Bot:
    """Everything a running bot holds; `aclose()` releases it."""

    settings: Settings
    app: AsyncApp
    deps: SlackDeps
    web: AsyncWebClient
    store: Any
    flink: Any
    extras: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        for extra in reversed(self.extras):
            await extra.aclose()
        await self.store.close()
        close = getattr(self.flink, "aclose", None)
        if close is not None:
            await close()


def build_bolt_app(
    settings: Settings,
    *,
    flink: FlinkApi,
    store: Any,
    socket_mode: bool = False,
    watch_commands: Any = None,
) -> tuple[AsyncApp, SlackDeps, AsyncWebClient]:
    token = secret(settings.slack_bot_token) or ""
    web = slack_client(token, settings.slack_api_url)
    app = AsyncApp(
        client=web,
        signing_secret=secret(settings.slack_signing_secret) or "",
        request_verification_enabled=not socket_mode,
        # Ack first, work after: Bolt answers Slack as soon as ack() is called.
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    deps = SlackDeps(
        settings=settings,
        diagnoser=DiagnosisService(flink, store.runs),
        defaults=store.channel_defaults,
        renderer=Renderer(settings.template_dir),
        watch_commands=watch_commands,
    )
    register(app, deps)
    return app, deps, web
