"""The bot's persistent store: SQLAlchemy 2 asyncio on SQLite (default) or PostgreSQL.

Open it with `await Store.open(settings.effective_database_url)`; that also migrates the schema.
How to add tables and migrations: see `bot.store.db`.
"""

from bot.store.channel_defaults import ChannelDefaults, ChannelDefaultsRepo
from bot.store.db import create_engine, migrate
from bot.store.facade import Store
from bot.store.runs import RunRepo, StoredRun

__all__ = [
    "ChannelDefaults",
    "ChannelDefaultsRepo",
    "RunRepo",
    "Store",
    "StoredRun",
    "create_engine",
    "migrate",
]
