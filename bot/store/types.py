"""Column types that behave the same on SQLite and PostgreSQL, and the store's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is tz-aware UTC going in and coming out, on every engine.

    PostgreSQL stores `timestamptz` and hands back aware values; SQLite has no time zone type and
    returns naive ones, so they are stored as naive UTC and re-tagged on the way out. Naive input
    is refused rather than guessed at: a local-time value silently read as UTC shifts every
    comparison and every "last alerted" decision by the server's offset.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a tz-aware (UTC) datetime")
        value = value.astimezone(UTC)
        # SQLite's DATETIME is text; keeping it naive gives one sortable format for every row.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock; repositories take a `Clock` so tests can fix time."""
    return datetime.now(UTC)
