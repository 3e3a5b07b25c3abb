"""Small formatting helpers shared by several message kinds: dates, mentions, plurals, risk and
health phrases, a watch's threshold and interval, buttons and safe links. Values come out escaped
unless a docstring says plain text."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from bot.commands import format_duration
from bot.diagnosis.report import Target
from bot.diagnosis.risk import Risk, health_band
from bot.slack.blocks import escape_mrkdwn
from bot.watch.policy import TargetState

# Per-symptom caps keep one symptom readable and far inside a section's 3000 characters.
_NAME_MAX = 200
# One deployment to a line: alert digests, watch lists, reports.
_LINE_NAME_MAX = 80
_LINE_SYMPTOM_MAX = 100
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def slack_date(when: datetime) -> str:
    """Slack's date markup: each reader sees their own time zone; the fallback is UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def user_mention(user_id: str) -> str:
    """`<@U…>` for a real Slack user id, escaped text for anything else."""
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_mrkdwn(user_id)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _risk_phrase(risk: Risk) -> str:
    return f"{risk.label} risk" if risk.raw is not None else "Risk not reported"


def interval_text(seconds: int) -> str:
    """How often a watch checks, spelled as `--every` takes it: `every 5m`, `every 90m`. Plain text."""
    return "every " + format_duration(timedelta(seconds=max(0, int(seconds))))


def threshold_text(min_risk: str | None) -> str:
    """A watch's threshold as a phrase: `alerts at Mid and above`. Plain text (not escaped)."""
    risk = Risk.parse(min_risk)
    if not risk.known:
        return "risk alerts off"
    return f"alerts at {risk.label} and above"


def conditions_text(conditions: Any) -> str:
    """A watch's conditions (bot.watch.model.Conditions) as a phrase. Plain text."""
    s = conditions.settings
    bits = [threshold_text(s.min_risk)]
    bits.append("failed jobs" if s.failures else "failures off")
    bits.append(f"restarts ≥{s.restarts}" if s.restarts is not None else "restarts off")
    if s.min_health is not None:
        bits.append(f"health below {s.min_health}")
    return ", ".join(bits)


def _health(score: int | None) -> str:
    band = health_band(score)
    if score is None:
        return f"{band.emoji} not reported"
    return f"{band.emoji} {score}/100 ({band.label})"


def _health_plain(score: int | None) -> str:
    """Plain text; the band goes with every score shown (the service's own bands)."""
    return f"health {score}/100 ({health_band(score).label})" if score is not None else "health not reported"


def _button(
    action_id: str, text: str, *, value: str | None = None, url: str | None = None, style: str | None = None
) -> dict[str, Any]:
    # Every key present: templates run with StrictUndefined, so a missing one would be an error.
    return {"action_id": action_id, "text": text, "value": value, "url": url, "style": style}


# --- console links ------------------------------------------------------------------------

# The only console URL Alibaba documents is the regional entry page; deep links are unverified
# (see README, "Open in console"), so the link is a setting (FLINKDIAG_CONSOLE_URL).
DEFAULT_CONSOLE_URL = "https://realtime-compute.console.aliyun.com/regions/{region}"
CONSOLE_FIELDS = ("region", "workspace", "namespace", "deployment_id", "deployment_name", "job_id")

# The renderer sets the operator's template for the message being rendered; the views read it
# here, so every view that offers a link fills the same template the same way.
_console_template: ContextVar[str] = ContextVar("console_template", default=DEFAULT_CONSOLE_URL)


@lru_cache(maxsize=8)
def console_fields(template: str) -> tuple[str, ...]:
    """The placeholders of a console URL template; ValueError names what is wrong with it."""
    if template and not template.startswith("https://"):
        raise ValueError("FLINKDIAG_CONSOLE_URL must start with https://")
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"FLINKDIAG_CONSOLE_URL is not a template: {e}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in CONSOLE_FIELDS or spec or conversion:
            raise ValueError(
                f"FLINKDIAG_CONSOLE_URL: unknown placeholder {{{name}}}; use "
                + ", ".join(f"{{{f}}}" for f in CONSOLE_FIELDS)
            )
        names.append(name)
    return tuple(names)


@contextmanager
def console_template(template: str) -> Iterator[None]:
    """Render with `template` as the console link (an empty template: no link)."""
    token = _console_template.set(template)
    try:
        yield
    finally:
        _console_template.reset(token)


def console_link(target: Target | None) -> str | None:
    """The console URL for `target`, or None when the template names a value the target lacks
    (no region, no deployment name, …) or no template is set. Values are URL-quoted."""
    template = _console_template.get()
    if target is None or not template:
        return None
    values: dict[str, str] = {}
    for name in console_fields(template):
        value = getattr(target, name)
        if not value:
            return None
        values[name] = quote(str(value), safe="")
    url = template.format_map(values)
    # Slack refuses a button URL longer than 3000 characters; no link beats a refused message.
    return url if len(url) <= 3000 else None


def snooze_text(state: TargetState, now: datetime) -> str | None:
    """The snooze in a phrase (`until <date>`, `until a new job starts`), or None. Escaped."""
    if state.snoozed_until_redeploy:
        return "until a new job starts"
    until = _snoozed_until(state, now)
    return f"until {slack_date(until)}" if until is not None else None


def _snoozed_until(state: TargetState, now: datetime) -> datetime | None:
    """When the snooze ends, if it has not ended by `now` (the store may hand back naive UTC)."""
    until = state.snoozed_until
    return until if until is not None and _aware(until) > _aware(now) else None


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
