"""Replicas share the account's API quota through the database (the `QuotaBoard` of
bot.flink.limiter).

Each live replica has a row: its cap (calls per window it may send), when the cap last changed,
and a heartbeat. The quota is split evenly among the live rows (the remainder goes to the first
replica ids), and the sum of what replicas really send in any window stays within the quota:

* a replica's row never shows less than it really sends: it lowers its limiter before writing
  a lower cap, and writes a higher cap before raising its limiter;
* it lowers at once when its share shrinks (a replica joined), but raises only when every other
  live replica shows a cap within its own share, unchanged for a whole window (so the calls they
  sent under a higher cap have left it);
* a replica is live while its heartbeat is younger than the lease. It stops sending one window
  before its lease ends unless renewed (bot.flink.limiter), so when the others take its share
  its last calls have left the window; one leaving on purpose ages its heartbeat so it lapses
  one window from now;
* every heartbeat runs under one lock (a PostgreSQL advisory lock; SQLite serialises writers),
  so each decision sees every other replica's last word.

Times are the database's clock (`clock_timestamp()`, the time now rather than the
transaction's start), so replicas on different hosts need not agree on the time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import dialect_insert
from bot.store.models import QuotaReplicaRow

_q = QuotaReplicaRow.__table__

# Another fixed advisory lock key, apart from the migration's (bot.store.db): ASCII "flinkquo".
QUOTA_LOCK_KEY = int.from_bytes(b"flinkquo", "big")

# Rows whose heartbeat is this many leases old are deleted (crashed replicas leave them).
FORGET_AFTER_LEASES = 10


@dataclass(frozen=True)
class Share:
    """A replica's row as the board reads it."""

    replica_id: str
    quota: int
    cap: int
    cap_at: float
    heartbeat_at: float


def targets(replica_ids: Sequence[str], quota: int) -> dict[str, int]:
    """An even split of `quota` calls per window; the first ids (sorted) get the remainder."""
    ordered = sorted(replica_ids)
    base, extra = divmod(quota, len(ordered))
    return {r: base + (1 if i < extra else 0) for i, r in enumerate(ordered)}


def next_cap(me: Share, others: Sequence[Share], *, now: float, window: float) -> int:
    """The cap `me` may use now, given the other live replicas (a pure decision)."""
    quota = min(s.quota for s in (me, *others))
    share = targets([me.replica_id, *(s.replica_id for s in others)], quota)
    mine = share[me.replica_id]
    if mine <= me.cap:
        return mine
    settled = all(s.cap <= share[s.replica_id] and s.cap_at <= now - window for s in others)
    return mine if settled else me.cap


class QuotaStore:
    """The quota board on the bot's database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def heartbeat(
        self, replica_id: str, quota: int, *, lease: float, window: float, lower: Callable[[int], None]
    ) -> int:
        """Renew `replica_id`'s lease and return its cap; `lower(cap)` runs before a lower cap is written."""
        async with self._sessions() as session, session.begin():
            now = await self._lock_and_now(session)
            await session.execute(delete(_q).where(_q.c.heartbeat_at < now - FORGET_AFTER_LEASES * lease))
            rows = [Share(**m) for m in (await session.execute(select(_q))).mappings()]
            live = [s for s in rows if s.heartbeat_at > now - lease]
            me = next((s for s in live if s.replica_id == replica_id), None)
            # New, or back after its lease lapsed (it stopped sending then): it starts from zero.
            me = me or Share(replica_id, quota, 0, now, now)
            me = Share(replica_id, quota, me.cap, me.cap_at, me.heartbeat_at)
            others = [s for s in live if s.replica_id != replica_id]
            cap = next_cap(me, others, now=now, window=window)
            if cap < me.cap:
                lower(cap)
            # Read again after lowering: the recorded times are no earlier than what they stand for.
            written = await self._now(session)
            values = {
                "quota": quota,
                "cap": cap,
                "cap_at": written if cap != me.cap else me.cap_at,
                "heartbeat_at": written,
            }
            insert = dialect_insert(session)
            await session.execute(
                insert(_q)
                .values(replica_id=replica_id, **values)
                .on_conflict_do_update(index_elements=[_q.c.replica_id], set_=values)
            )
        return cap

    async def leave(self, replica_id: str, *, lease: float, window: float) -> None:
        """Give the share back: cap zero now, and a heartbeat that lapses one window from now."""
        async with self._sessions() as session, session.begin():
            now = await self._lock_and_now(session)
            await session.execute(
                update(_q)
                .where(_q.c.replica_id == replica_id)
                .values(cap=0, cap_at=now, heartbeat_at=now - lease + window)
            )

    async def shares(self) -> list[Share]:
        """Every row, for diagnostics and tests."""
        async with self._sessions() as session:
            return [Share(**m) for m in (await session.execute(select(_q))).mappings()]

    @classmethod
    async def _lock_and_now(cls, session: AsyncSession) -> float:
        if session.get_bind().dialect.name == "postgresql":
            # Transaction-level: released at commit or rollback, even if this replica dies.
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUOTA_LOCK_KEY})
        return await cls._now(session)

    @staticmethod
    async def _now(session: AsyncSession) -> float:
        if session.get_bind().dialect.name == "postgresql":
            return float(
                (await session.execute(text("SELECT extract(epoch FROM clock_timestamp())"))).scalar_one()
            )
        # SQLite lives on one host, so its clock is this host's; julianday keeps it in the database.
        return float(
            (await session.execute(text("SELECT (julianday('now') - 2440587.5) * 86400.0"))).scalar_one()
        )
