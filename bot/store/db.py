"""Engines and the schema migrations the bot applies to its own database at start-up.

Migrations are Alembic revisions in `bot/store/migrations/versions/`, run programmatically by
`migrate()` (no alembic.ini): Alembic brings revision ordering, SQLite batch mode (copy-and-move
for the ALTERs SQLite cannot do in place) and autogenerate, none of which is worth hand-writing.
Its cost is paid once per process: importing Alembic took 0.06-0.09 s and a no-op `migrate()`
on an up-to-date SQLite database about 5 ms on the 2-core dev VM (SQLAlchemy itself: 0.3 s).

`migrate()` is safe to run from several replicas at once: on PostgreSQL it holds a
transaction-level advisory lock (`pg_advisory_xact_lock`) around the whole upgrade, on SQLite
the transaction starts with BEGIN IMMEDIATE (see `create_engine`). The upgrade and the version
stamp commit together, so a failed step leaves the previous schema in place and a replica that
waited on the lock finds the schema already current and does nothing.

How to add a migration (e.g. watches, alerts, snoozes, report schedules)
-----------------------------------------------------------------------
1. Add or change the typed models in `bot/store/models.py`.
2. Generate the next numbered revision and review it:

       .venv/bin/python -m bot.store.migrations revision -m "add watches" --autogenerate

   This writes `bot/store/migrations/versions/000N_add_watches.py` with `down_revision` set to
   the current head (drop `--autogenerate` for an empty step). Autogenerate diffs the models
   against a scratch SQLite database, so check PostgreSQL-specific types (JSONB variants,
   timestamptz) by hand; spell types out in the migration instead of importing the models,
   which keeps history frozen.
3. Keep it expand-only: during a rolling deploy the previous release runs against the new
   schema. Add tables, and columns that are nullable or have a server default; remove things
   only in a later release. Write every ALTER as `with op.batch_alter_table(...)`.
4. Add a repository for the new aggregate and expose it on `bot.store.Store`.
5. Run `tests/test_store_schema.py`: it checks that the migrated schema matches the models, on
   SQLite and PostgreSQL, and that rows written at the first revision survive every later one.

Nothing else needs registering: the bot upgrades to the newest revision when it starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import weakref
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy import Connection, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"

# Any fixed 64-bit key works; it only has to differ from other advisory locks taken in the same
# database. ASCII "flinkdia" as a big-endian integer (positive, so it fits a bigint).
MIGRATION_LOCK_KEY = int.from_bytes(b"flinkdia", "big")

# Waiting on a writer is bounded by this, not failed at once. Generous: a replica's migration
# holds the write lock for its whole upgrade.
SQLITE_BUSY_TIMEOUT_MS = 15_000

_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",  # Heroku-style DATABASE_URL
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pick the asyncio driver when none is named."""
    u = make_url(url)
    if u.drivername in _ASYNC_DRIVERS:
        u = u.set(drivername=_ASYNC_DRIVERS[u.drivername])
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {u.get_backend_name()!r}; use SQLite or PostgreSQL")
    return u


def create_engine(url: str | URL) -> AsyncEngine:
    """An AsyncEngine for SQLite (file or `:memory:`) or PostgreSQL, set up for the bot.

    SQLite: WAL, foreign keys on, a busy timeout, and every transaction opened with BEGIN
    IMMEDIATE. PostgreSQL: pre-ping pooled connections, as a replica outlives DB failovers.
    JSON is written as UTF-8 rather than \\u escapes, so rows stay readable in psql/sqlite3.
    """
    u = normalise_url(url)
    json_serializer = partial(json.dumps, ensure_ascii=False)
    if u.get_backend_name() == "postgresql":
        return create_async_engine(u, pool_pre_ping=True, json_serializer=json_serializer)

    db = u.database
    if db and db != ":memory:" and not db.startswith("file:"):
        # sqlite3 reports a missing directory as the unhelpful "unable to open database file".
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(u, json_serializer=json_serializer)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module: in its legacy mode it begins only before DML, so
    # DDL (migrations) would autocommit statement by statement. SQLAlchemy's documented recipe.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another connection may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, far fewer fsyncs
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, waiting up to busy_timeout for it. A DEFERRED
    # transaction that reads and then writes fails at once with SQLITE_BUSY when another
    # connection wrote in between (the busy handler cannot help there). Serialising
    # transactions costs nothing at chat-ops rates; WAL readers outside them are not blocked.
    # It is also what makes concurrent migrate() calls safe on SQLite.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(extra_version_locations: Sequence[str | os.PathLike[str]] = ()) -> Config:
    """The Alembic configuration, built in code. `extra_version_locations` is for tests."""
    cfg = Config()

    def esc(p: str | os.PathLike[str]) -> str:
        return str(p).replace("%", "%%")  # ConfigParser interpolation

    cfg.set_main_option("script_location", esc(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option(
        "version_locations", os.pathsep.join(esc(p) for p in (VERSIONS_DIR, *extra_version_locations))
    )
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def head_revision(cfg: Config | None = None) -> str:
    """The newest revision this code knows."""
    heads = ScriptDirectory.from_config(cfg or alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one line, found heads {heads}")
    return heads[0]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, None when it has never been migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def migrate(
    engine: AsyncEngine,
    *,
    revision: str = "head",
    extra_version_locations: Sequence[str | os.PathLike[str]] = (),
) -> str | None:
    """Create or upgrade the schema to `revision`, keeping data; returns the revision now applied.

    Idempotent and safe to call concurrently from several processes. A database already at a
    revision this code does not know (a newer release migrated it) is left alone with a
    warning, so an older replica can still start during a rolling deploy.
    """
    cfg = alembic_config(extra_version_locations)
    # Alembic keeps the running migration's context in module globals, so within one process
    # upgrades run one at a time even on different databases; across processes the database
    # lock (BEGIN IMMEDIATE, emitted by conn.begin(), or the advisory lock) does it.
    async with _in_process_lock(), engine.connect() as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            # Transaction-level: released by the commit (or rollback) below, even if we crash.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        before, after = await conn.run_sync(_upgrade, cfg, revision)
    if before != after:
        log.info("store schema migrated", extra={"from_revision": before, "to_revision": after})
    return after


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _in_process_lock() -> asyncio.Lock:
    # One per event loop: an asyncio.Lock must not be shared between loops (tests run many).
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def _upgrade(conn: Connection, cfg: Config, revision: str) -> tuple[str | None, str | None]:
    script = ScriptDirectory.from_config(cfg)
    before = MigrationContext.configure(conn).get_current_revision()
    if before is not None:
        try:
            script.revision_map.get_revision(before)
        except RevisionError:
            log.warning(
                "store schema is newer than this release; not migrating",
                extra={"db_revision": before, "code_head": head_revision(cfg)},
            )
            return before, before
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    return before, MigrationContext.configure(conn).get_current_revision()


def dialect_insert(session: AsyncSession) -> Any:
    """`insert` of the session's dialect, for `.on_conflict_do_update()` upserts.

    PostgreSQL's and SQLite's INSERT ... ON CONFLICT take the same arguments in SQLAlchemy
    (index_elements, set_, `.excluded`), so repositories write one upsert for both.
    """
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise ValueError(f"no upsert for dialect {name!r}")
