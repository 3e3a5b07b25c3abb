"""Report schedules: when a channel's next report is due.

The next time is APScheduler's `CronTrigger` arithmetic (time zones and DST handled there), but
the due time itself lives in the store, so every replica and every restart agrees on it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel


class ReportSchedule(BaseModel):
    team_id: str
    channel_id: str
    mode: Literal["daily", "weekdays", "off"]
    hour: int | None = None
    minute: int | None = None
    tz: str | None = None
    next_due_at: float | None = None
    last_snapshot: dict[str, Any] | None = None
    last_sent_at: datetime | None = None
    paused_reason: str | None = None

    def describe(self) -> str:
        if self.mode == "off" or self.hour is None or self.minute is None:
            return "no scheduled report"
        days = "every day" if self.mode == "daily" else "on weekdays (Mon–Fri)"
        return f"{days} at {self.hour:02d}:{self.minute:02d} {self.tz or 'UTC'}"


def trigger_for(mode: str, hour: int, minute: int, tz: str) -> CronTrigger:
    day_of_week = "mon-fri" if mode == "weekdays" else "*"
    return CronTrigger(day_of_week=day_of_week, hour=hour, minute=minute, timezone=tz)


def next_due(
    mode: str, hour: int | None, minute: int | None, tz: str | None, after: datetime
) -> float | None:
    """Epoch seconds of the first scheduled time strictly after `after`; None when off."""
    if mode == "off" or hour is None or minute is None:
        return None
    trigger = trigger_for(mode, hour, minute, tz or "UTC")
    # APScheduler answers "at or after now" (rounded up to the second); one microsecond later
    # makes it strictly after, so a report that just fired is not due again at once.
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.timestamp() if fire else None
