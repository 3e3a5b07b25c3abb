"""Delivery intents: each post of the watch loop is recorded here before it is made.

An intent lives from just before its post until the record of the check that made it: the
record (`WatchStore.record_checks`, same transaction) deletes the target's intents except the one
whose outcome is unknown (`CheckRecord.pending_delivery`). So an intent still here when its target
is checked again means an earlier attempt may have posted (a crash, a lost answer, a database
outage between Slack's acceptance and our record): `begin` hands it back with `retry=True` and
the same key, and the Slack side looks for the message carrying that key before posting.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.models import DeliveryRow
from bot.watch.model import CheckRecord, Delivery

_d = DeliveryRow.__table__

# executemany: a target's intents but the one left pending ("" when none is).
_SETTLE = delete(_d).where(_d.c.target_id == bindparam("b_target"), _d.c.key != bindparam("b_keep"))


class DeliveryLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def begin(self, target_id: int, kind: str, now: float) -> Delivery:
        """The target's unsettled intent of `kind` (retry=True), or a new one recorded now."""
        async with self._sessions.begin() as session:
            row = (
                await session.execute(
                    select(_d.c.key, _d.c.since, _d.c.ts, _d.c.shared)
                    .where(_d.c.target_id == target_id, _d.c.kind == kind)
                    .order_by(_d.c.id.desc())
                    .limit(1)
                )
            ).one_or_none()
            if row is not None:
                return Delivery(key=row.key, since=row.since, retry=True, ts=row.ts, shared=row.shared)
            # Unique without a round trip for an id; stable from here on, as the row keeps it.
            key = f"{target_id}.{kind}.{secrets.token_hex(6)}"
            await session.execute(insert(_d).values(target_id=target_id, kind=kind, key=key, since=now))
        return Delivery(key=key, since=now)

    async def posted(self, key: str, ts: str, *, shared: bool = False) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(_d).where(_d.c.key == key).values(ts=ts, shared=shared))


async def settle(session: AsyncSession, records: Sequence[CheckRecord]) -> None:
    """In the record's transaction: the intents these checks carried out are done."""
    if records:
        await session.execute(
            _SETTLE, [{"b_target": r.target_id, "b_keep": r.pending_delivery or ""} for r in records]
        )
