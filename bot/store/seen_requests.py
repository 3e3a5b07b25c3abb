"""Signed Slack requests already taken: the replay check, in the database every replica shares."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import dialect_insert
from bot.store.models import SeenRequestRow

_t = SeenRequestRow.__table__

# Slack's signature check refuses timestamps older than 5 minutes, so a key older than that can
# never come back; a minute more covers clock skew between replicas.
KEEP_SECONDS = 360.0
PRUNE_EVERY_SECONDS = 60.0


class SeenRequests:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._pruned_at = 0.0

    async def first_sight(self, key: str, now: float) -> bool:
        """Record `key`; True when no replica recorded it before (the request is new)."""
        async with self._sessions.begin() as session:
            if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
                self._pruned_at = now
                await session.execute(delete(_t).where(_t.c.seen_at < now - KEEP_SECONDS))
            stmt = (
                dialect_insert(session)(_t)
                .values(key=key, seen_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(_t.c.key)
            )
            return (await session.execute(stmt)).first() is not None
