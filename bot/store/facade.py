"""`Store`: one object holding the engine and every repository, opened once at start-up."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.store.channel_defaults import ChannelDefaultsRepo
from bot.store.db import create_engine, migrate
from bot.store.deliveries import DeliveryLog
from bot.store.quota import QuotaStore
from bot.store.runs import RunRepo
from bot.store.seen_requests import LocalSeenRequests, SeenRequests
from bot.store.types import Clock, utc_now
from bot.store.watches import WatchStore


class Store:
    """The bot's persistent state. Repositories return pydantic models, never ORM rows."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        # expire_on_commit=False: nothing ORM-shaped outlives a session here, and reloading
        # attributes after commit would need an await the callers cannot do.
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.channel_defaults = ChannelDefaultsRepo(self.sessions, clock=clock)
        self.runs = RunRepo(self.sessions)
        self.watches = WatchStore(self.sessions, clock=clock)
        self.quota = QuotaStore(self.sessions)
        self.deliveries = DeliveryLog(self.sessions)
        self.seen_requests: SeenRequests | LocalSeenRequests = (
            SeenRequests(self.sessions) if engine.dialect.name == "postgresql" else LocalSeenRequests()
        )

    @classmethod
    async def open(cls, url: str, *, clock: Clock = utc_now) -> Store:
        """Connect and bring the schema up to date (see `bot.store.db.migrate`)."""
        engine = create_engine(url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, clock=clock)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
