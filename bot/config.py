"""Settings: the only place environment variables are read.

Everything is read once at start-up, validated, and passed down explicitly.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Regions the official SDK (alibabacloud-ververica20220718 1.14.0) knows an endpoint for.
KNOWN_REGIONS = frozenset(
    {
        "cn-qingdao",
        "cn-shenzhen",
        "cn-wulanchabu",
        "cn-beijing",
        "cn-chengdu",
        "cn-shanghai",
        "cn-hongkong",
        "cn-zhangjiakou",
        "cn-hangzhou",
        "cn-shanghai-finance-1",
        "ap-northeast-1",
        "ap-southeast-1",
        "ap-southeast-3",
        "ap-southeast-5",
        "us-west-1",
        "us-east-1",
        "eu-central-1",
        "eu-west-1",
    }
)

_DURATION = re.compile(r"^\s*(\d{1,12})\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse `30s`, `5m`, `1h`, `2d` (a bare number is seconds)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"`{text}` is not a duration; use e.g. 30s, 5m, 1h or 2d")
    unit = (m.group(2) or "s")[0].lower()
    try:
        return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[unit])
    except OverflowError:  # timedelta stops at 999,999,999 days
        raise ValueError(f"`{text[:40]}` is longer than any duration I can use") from None


class Settings(BaseSettings):
    """All configuration. Flink settings use the FLINKDIAG_ prefix; Slack's use Slack's own names."""

    model_config = SettingsConfigDict(env_prefix="FLINKDIAG_", extra="ignore", populate_by_name=True)

    # --- Flink OpenAPI
    region: str | None = None
    endpoint: str | None = Field(
        default=None, description="Explicit base URL, e.g. http://127.0.0.1:8081 for the simulator"
    )
    workspace: str | None = Field(default=None, description="Default workspace id")
    # NoDecode: pydantic-settings would read a list from the environment as JSON; ours is comma separated.
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces served (the allow-list, `*` for all), comma separated; also the defaults",
    )
    channel_namespaces: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description="Channels served fewer namespaces: C012ABC=analytics,payments;C034DEF=orders",
    )
    max_concurrency: int = Field(default=8, ge=1, description="Max concurrent calls per endpoint")
    max_calls_per_second: float = Field(
        default=10.0,
        gt=0,
        description="The account's API quota: calls in any one second, all replicas together",
    )
    quota_lease_seconds: float = Field(
        default=10.0, ge=3, description="A dead replica's quota share returns after this"
    )
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP attempt")
    max_retries: int = Field(default=3, ge=0, description="Retries for throttling, 5xx, resets, timeouts")
    retry_base_delay: float = Field(default=0.2, ge=0)
    retry_max_delay: float = Field(default=5.0, ge=0)
    ca_file: str | None = Field(default=None, description="Extra CA bundle (self-signed test endpoints)")

    # --- bot
    database_url: str | None = None
    template_dir: str | None = None
    console_url: str = "https://realtime-compute.console.aliyun.com/regions/{region}"  # see README
    min_watch_interval: timedelta = Field(default=timedelta(minutes=1))
    default_watch_interval: timedelta = Field(default=timedelta(minutes=5))
    failure_streak_to_notify: int = Field(default=3, ge=1)
    outage_recovery_checks: int = Field(
        default=3, ge=1, description="Good checks in a row that end an outage"
    )
    watch_status_first: bool = Field(
        default=True,
        description="Judge low-risk checks by the job status's riskLevel alone (one API call, not two)",
    )
    alert_storm_limit: int = Field(
        default=5,
        ge=1,
        description="Separate alerts per channel per sweep; the rest share one digest message",
    )
    sweep_tick_seconds: float = Field(
        default=5.0, gt=0, description="How often due checks and reports are looked for"
    )
    log_level: str = "INFO"
    log_format: str = Field(default="kv", description="kv or json")

    # --- Slack (Slack's own variable names, no prefix)
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url")
    )
    port: int = Field(default=3000, validation_alias=AliasChoices("PORT", "port"))
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Socket Mode: port of /metrics, /healthz, /readyz"
    )
    # --- HTTP mode's edge (bot.slack.http_edge)
    http_body_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a request may take to send its headers and body"
    )
    http_max_connections: int = Field(
        default=512, ge=1, description="Open connections at most (lowered to fit the file limit)"
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("channel_namespaces", mode="before")
    @classmethod
    def _split_channel_namespaces(cls, v: object) -> object:
        if isinstance(v, str):
            from bot.namespaces import parse_channel_namespaces

            return parse_channel_namespaces(v)
        return v

    @field_validator("min_watch_interval", "default_watch_interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> object:
        if isinstance(v, str | int | float):
            return parse_duration(v)
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        v = v.rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", v):
            raise ValueError("FLINKDIAG_ENDPOINT must look like https://host[:port] with no path")
        return v

    @model_validator(mode="after")
    def _region(self) -> Settings:
        if self.region is not None and self.region not in KNOWN_REGIONS and self.endpoint is None:
            raise ValueError(
                f"FLINKDIAG_REGION={self.region!r} is not a region the service is known in; "
                "set FLINKDIAG_ENDPOINT explicitly for it"
            )
        return self

    # Derived values
    @property
    def base_url(self) -> str | None:
        """The API base URL: the explicit endpoint, else the regional one, else None."""
        if self.endpoint:
            return self.endpoint
        if self.region:
            return f"https://ververica.{self.region}.aliyuncs.com"
        return None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or "sqlite+aiosqlite:///flinkdiag.db"


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
