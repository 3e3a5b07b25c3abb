"""Wiring: the only module that sees every layer (settings, Flink client, store, Slack, watch)."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
from bot.flink.limiter import EndpointLimiter
from bot.namespaces import NamespacePolicy
from bot.slack.listeners import SlackDeps, register
from bot.slack.notifier import SlackNotifier
from bot.slack.render import Renderer
from bot.slack.telemetry import SlackErrorCounter, time_ack
from bot.slack.watch_listeners import WatchCommands
from bot.watch.engine import Sweeper
from bot.watch.scheduler import WatchScheduler
from bot.watch.service import WatchService

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
        problems.append(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp- (or unset it for HTTP mode)"
        )
    if mode == "http" and not signing:
        problems.append("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request with it)")
    if settings.base_url is None:
        problems.append("neither FLINKDIAG_REGION nor FLINKDIAG_ENDPOINT is set (which Flink API to call)")
    if not settings.namespaces:
        problems.append(
            "FLINKDIAG_NAMESPACES is not set (the namespaces this bot serves, comma separated, or *)"
        )
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))
    return mode


def freeze_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's reach.

    Measured with bench/sweep.py (2,000 watched deployments): full collections walked ~135,000
    start-up objects (mostly imported library code) for ~120 ms each, twice per sweep, and stalled
    slash-command acks (p99 126-142 ms); frozen, pauses fall to ~30 ms and ack p99 to 35-48 ms.
    """
    gc.collect()
    gc.freeze()


def replica_id() -> str:
    """A name for this process among the replicas: readable, and unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def start_limiter(settings: Settings, store: Any, *, replica: str | None = None) -> EndpointLimiter:
    """The Flink API limiter, its quota shared with the other replicas on PostgreSQL.

    SQLite is one process's database, so there the limiter keeps the whole quota to itself.
    """
    shared = store.engine.dialect.name == "postgresql"
    limiter = EndpointLimiter(
        settings.max_concurrency,
        settings.max_calls_per_second,
        board=store.quota if shared else None,
        replica_id=replica or replica_id(),
        lease=settings.quota_lease_seconds,
    )
    await limiter.start()
    return limiter


def configure_slack_client(client: AsyncWebClient, base_url: str | None) -> AsyncWebClient:
    """Point a Web API client at `base_url` and make it wait out 429s (Retry-After) instead of
    dropping the message; slack_sdk's default retries connection errors only."""
    client.base_url = base_url or "https://slack.com/api/"
    client.retry_handlers = [
        SlackErrorCounter(),  # first, so it sees every answer (it never retries)
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
    ]
    return client


def slack_client(token: str, base_url: str | None) -> AsyncWebClient:
    """A configured Web API client of its own (start-up checks)."""
    return configure_slack_client(AsyncWebClient(token=token), base_url)


@dataclass
class Wiring:
    """The assembled bot: Bolt app and the watch machinery around the same store and client."""

    app: AsyncApp
    deps: SlackDeps
    web: AsyncWebClient
    watch: WatchService
    sweeper: Sweeper
    notifier: SlackNotifier
    scheduler: WatchScheduler


def build(
    settings: Settings,
    *,
    flink: FlinkApi,
    store: Any,
    socket_mode: bool = False,
    now: Callable[[], datetime] | None = None,
) -> Wiring:
    """Assemble every part; nothing starts running here (see `Wiring.scheduler.start()`)."""
    clock = now or (lambda: datetime.now(UTC))
    # The token goes to Bolt itself (not a client of ours): given a client, Bolt still reads
    # SLACK_BOT_TOKEN from the environment and warns at every start that it is unused.
    app = AsyncApp(
        token=secret(settings.slack_bot_token),
        signing_secret=secret(settings.slack_signing_secret) or "",
        request_verification_enabled=not socket_mode,
        # Ack first, work after: Bolt answers Slack as soon as ack() is called.
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    web = configure_slack_client(app.client, settings.slack_api_url)
    renderer = Renderer(settings.template_dir, console_url=settings.console_url)
    notifier = SlackNotifier(web, renderer, now=clock)
    namespaces = NamespacePolicy(tuple(settings.namespaces), settings.channel_namespaces)
    watch = WatchService(
        store.watches,
        flink,
        default_interval=settings.default_watch_interval,
        min_interval=settings.min_watch_interval,
        failure_threshold=settings.failure_streak_to_notify,
        now=clock,
        namespace_allowed=namespaces.allows,
    )
    deps = SlackDeps(
        settings=settings,
        diagnoser=DiagnosisService(flink, store.runs, now=clock),
        defaults=store.channel_defaults,
        renderer=renderer,
        watch_commands=WatchCommands(watch, notifier, renderer, settings, store.channel_defaults, namespaces),
        namespaces=namespaces,
        runs=store.runs,
    )
    app.middleware(time_ack)  # before the listeners' own middleware: ack latency from the start
    register(app, deps)
    sweeper = Sweeper(
        store.watches,
        flink,
        notifier,
        now=clock,
        failure_threshold=settings.failure_streak_to_notify,
        cheap_first_look=settings.watch_status_first,
        region=settings.region,
        storm_limit=settings.alert_storm_limit,
        recovery_checks=settings.outage_recovery_checks,
        deliveries=store.deliveries,
        namespace_allowed=namespaces.allows,
        # A check waiting for the limiter still holds its claim: a replica holding no more than
        # it can soon run leaves the rest of the sweep to the others (issue 9).
        concurrency=max(16, 2 * settings.max_concurrency),
    )
    scheduler = WatchScheduler(sweeper, watch, notifier, tick_seconds=settings.sweep_tick_seconds)
    return Wiring(
        app=app, deps=deps, web=web, watch=watch, sweeper=sweeper, notifier=notifier, scheduler=scheduler
    )
