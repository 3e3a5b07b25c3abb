"""Prometheus metrics: every definition, on one registry (`REGISTRY`), served at `/metrics`.

Label values come only from small fixed sets (operation names, error kinds, Slack error codes we
know, message kinds); ids and names never become labels, so the number of series stays bounded
whatever the fleet or the workspace holds. README.md ("Metrics") lists each metric.

Only `prometheus_client` here: the watch loop and the Flink client import this module, and they
must not pull in Slack, aiohttp or SQLAlchemy through it.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "exposition"]

# Our own registry rather than the library's global one: nothing a dependency registers ends up
# in our exposition by accident. The standard process/platform/GC collectors are added on purpose.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# API latency spans a loopback simulator (ms) to a throttled, retried regional endpoint (s).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A sweep of a few deployments takes ms; thousands at the limiter's pace take minutes.
_SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Slack's deadline for an ack is 3 s.
_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

FLINK_CALLS = Counter(
    "flinkdiag_flink_api_calls",
    "HTTP requests to the Flink OpenAPI (each retry counts), by operation and outcome "
    "(ok, or the failure kind: throttled, service_error, timeout, unavailable, job_not_found, ...).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
FLINK_LATENCY = Histogram(
    "flinkdiag_flink_api_latency_seconds",
    "Time of one Flink OpenAPI request, from sending to the decoded answer (limiter wait excluded).",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
LIMITER_WAIT = Histogram(
    "flinkdiag_flink_limiter_wait_seconds",
    "Time a Flink OpenAPI request waited for the endpoint limiter (rate and concurrency).",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
CHECKS = Counter(
    "flinkdiag_watch_checks",
    "Watch checks done, by outcome: risk (a risk level was read), no_job (the deployment runs "
    "no job), failure (the API failed), crashed (a bug; see the log).",
    ["outcome"],
    registry=REGISTRY,
)
SWEEP_DURATION = Histogram(
    "flinkdiag_watch_sweep_duration_seconds",
    "Time of one completed sweep (namespace listings, every due check, their records).",
    buckets=_SWEEP_BUCKETS,
    registry=REGISTRY,
)
WATCH_PROGRESS = Gauge(
    "flinkdiag_watch_last_progress_timestamp_seconds",
    "Unix time the watch loop last completed a check or a sweep (what /readyz calls overdue).",
    registry=REGISTRY,
)
OLDEST_OVERDUE = Gauge(
    "flinkdiag_watch_oldest_overdue_seconds",
    "How long the longest-waiting due check of an active watch has been due (0: none due); "
    "read from the database at each scrape.",
    registry=REGISTRY,
)
WATCHED = Gauge(
    "flinkdiag_watched_deployments",
    "Deployments watched (distinct per workspace and namespace), by state: active, or paused "
    "(Slack refused the channel); read from the database at each scrape.",
    ["state"],
    registry=REGISTRY,
)
SLACK_POSTS = Counter(
    "flinkdiag_slack_posts",
    "Watch messages delivered to Slack, by kind: alert, followup, alert_update, note, digest, "
    "digest_update, report.",
    ["kind"],
    registry=REGISTRY,
)
SLACK_ERRORS = Counter(
    "flinkdiag_slack_api_errors",
    "Slack Web API answers that were errors, by Slack's error code (codes outside a known set "
    "count as other; no answer at all as connection_error).",
    ["error"],
    registry=REGISTRY,
)
ACK_LATENCY = Histogram(
    "flinkdiag_slack_ack_seconds",
    "Time from taking a Slack request to acknowledging it, by kind: command, action, event, view, other.",
    ["kind"],
    buckets=_ACK_BUCKETS,
    registry=REGISTRY,
)

for _outcome in ("risk", "no_job", "failure", "crashed"):
    CHECKS.labels(_outcome)
for _state in ("active", "paused"):
    WATCHED.labels(_state)

_started = time.time()
_last_progress: float | None = None


def watch_progressed() -> None:
    """The watch loop completed a check or a sweep: it is alive."""
    global _last_progress
    _last_progress = time.time()
    WATCH_PROGRESS.set(_last_progress)


def seconds_since_watch_progress(now: float | None = None) -> float:
    """Seconds since the watch loop last made progress (since start-up if it never has)."""
    return (now or time.time()) - (_last_progress or _started)


def flink_call(operation: str, outcome: str, seconds: float) -> None:
    FLINK_CALLS.labels(operation, outcome).inc()
    FLINK_LATENCY.labels(operation).observe(seconds)


def check_done(outcome: str) -> None:
    CHECKS.labels(outcome).inc()
    watch_progressed()


def sweep_done(seconds: float) -> None:
    SWEEP_DURATION.observe(seconds)
    watch_progressed()


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
