"""What the probes and the metrics read from the database: a ping and two cheap watch figures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import WatchRow, WatchTargetRow

_w = WatchRow.__table__
_t = WatchTargetRow.__table__


class WatchFigures(BaseModel):
    model_config = ConfigDict(frozen=True)

    oldest_overdue_seconds: float  # 0 when nothing is due
    active_deployments: int
    paused_deployments: int


async def ping(engine: AsyncEngine) -> None:
    """One round trip; raises whatever the driver raises when the database cannot answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def watch_figures(engine: AsyncEngine, now: float) -> WatchFigures:
    """The longest-waiting due check of an active watch, and the watched deployments per state.

    Due-but-unclaimed is what grows when sweeps stop or fall behind: a claimed target's
    next_check_at has already moved on. Both queries use the next_check_at index or scan only
    the watch tables, once per scrape.
    """
    active = select(_w.c.id).where(_w.c.paused_reason.is_(None))
    oldest = select(func.min(_t.c.next_check_at)).where(
        _t.c.next_check_at <= now, _t.c.muted.is_(False), _t.c.watch_id.in_(active)
    )
    state = case((_w.c.paused_reason.is_(None), "active"), else_="paused").label("state")
    watched = (
        select(_w.c.workspace, _w.c.namespace, _t.c.deployment_id, state)
        .join(_w, _w.c.id == _t.c.watch_id)
        .where(_t.c.muted.is_(False))
        .distinct()
        .subquery()
    )
    async with engine.connect() as conn:
        due_since = (await conn.execute(oldest)).scalar()
        counts = dict(
            (await conn.execute(select(watched.c.state, func.count()).group_by(watched.c.state))).all()
        )
    return WatchFigures(
        oldest_overdue_seconds=max(0.0, now - due_since) if due_since is not None else 0.0,
        active_deployments=counts.get("active", 0),
        paused_deployments=counts.get("paused", 0),
    )
