"""Per-channel defaults (workspace, namespace), so users need not repeat them in every command."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import dialect_insert
from bot.store.models import ChannelDefaultsRow
from bot.store.types import Clock, utc_now

_t = ChannelDefaultsRow.__table__


class ChannelDefaults(BaseModel):
    model_config = ConfigDict(frozen=True)

    team_id: str
    channel_id: str
    namespace: str | None = None
    workspace: str | None = None
    updated_by: str | None = None
    updated_at: AwareDatetime | None = None


class ChannelDefaultsRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    async def get(self, team_id: str, channel_id: str) -> ChannelDefaults | None:
        """The channel's defaults, None when none were ever set."""
        stmt = select(*_t.c).where(_t.c.team_id == team_id, _t.c.channel_id == channel_id)
        async with self._sessions() as session:
            row = (await session.execute(stmt)).one_or_none()
        return ChannelDefaults(**row._mapping) if row else None

    async def set(
        self,
        team_id: str,
        channel_id: str,
        *,
        namespace: str | None = None,
        workspace: str | None = None,
        updated_by: str,
    ) -> ChannelDefaults:
        """Create or update the channel's defaults; a None argument leaves that field as it was.

        One INSERT ... ON CONFLICT DO UPDATE, so two users setting different fields at the same
        moment both land (no read-modify-write race). To remove a value use `clear()`.
        """
        now = self._clock()
        async with self._sessions.begin() as session:
            insert = dialect_insert(session)
            stmt = insert(_t).values(
                team_id=team_id,
                channel_id=channel_id,
                namespace=namespace,
                workspace=workspace,
                updated_by=updated_by,
                updated_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[_t.c.team_id, _t.c.channel_id],
                set_={
                    "namespace": func.coalesce(stmt.excluded.namespace, _t.c.namespace),
                    "workspace": func.coalesce(stmt.excluded.workspace, _t.c.workspace),
                    "updated_by": stmt.excluded.updated_by,
                    "updated_at": stmt.excluded.updated_at,
                },
            ).returning(*_t.c)
            row = (await session.execute(stmt)).one()
        return ChannelDefaults(**row._mapping)

    async def clear(
        self,
        team_id: str,
        channel_id: str,
        *,
        namespace: bool = True,
        workspace: bool = True,
        updated_by: str,
    ) -> ChannelDefaults | None:
        """Remove the chosen defaults (both unless told otherwise); None if the channel had none."""
        values = {
            name: None for name, chosen in (("namespace", namespace), ("workspace", workspace)) if chosen
        }
        if not values:
            raise ValueError("nothing to clear: choose namespace and/or workspace")
        stmt = (
            update(_t)
            .where(_t.c.team_id == team_id, _t.c.channel_id == channel_id)
            .values(**values, updated_by=updated_by, updated_at=self._clock())
            .returning(*_t.c)
        )
        async with self._sessions.begin() as session:
            row = (await session.execute(stmt)).one_or_none()
        return ChannelDefaults(**row._mapping) if row else None
