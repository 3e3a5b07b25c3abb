"""Shared fixtures. Each section belongs to one part of the bot; keep them apart."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from bot.store import Store

T = TypeVar("T")


# =====================================================================================
# Database (bot.store): `db_url` is an empty database on each engine, `store` an opened Store.
#
#   sqlite    a file in the test's tmp_path.
#   postgres  one private database per test session, `flinkdiag_test_<epoch>_<random>`, created
#             through the server's `test` database and dropped at the end, so concurrent test
#             runs never share tables; its `public` schema is recreated before each test.
#             Server: FLINKDIAG_TEST_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test.
#             Unreachable: the postgres cases skip, or fail when CI is set.
# =====================================================================================

PG_ADMIN_URL = os.environ.get("FLINKDIAG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
_PG_TEST_DB_PREFIX = "flinkdiag_test_"
# Databases a crashed session left behind are dropped once they are this old; no live session
# lasts anywhere near as long (pytest timeout is minutes), so a concurrent run is never hit.
_PG_STALE_AFTER_S = 24 * 3600


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run admin SQL from a sync fixture, whether or not an event loop is running on this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _asyncpg_dsn(url: URL, database: str | None = None) -> str:
    if database is not None:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_connect(url: URL, database: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(_asyncpg_dsn(url, database), timeout=5)


async def _pg_ping(url: URL) -> None:
    conn = await _pg_connect(url)
    await conn.close()


async def _pg_create_database(admin: URL, name: str) -> None:
    conn = await _pg_connect(admin)
    try:
        stale = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            _PG_TEST_DB_PREFIX.replace("_", r"\_") + "%",
        )
        for (old,) in stale:
            epoch = old.removeprefix(_PG_TEST_DB_PREFIX).split("_")[0]
            if epoch.isdigit() and time.time() - int(epoch) > _PG_STALE_AFTER_S:
                await conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _pg_drop_database(admin: URL, name: str) -> None:
    conn = await _pg_connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _pg_reset(admin: URL, name: str) -> None:
    conn = await _pg_connect(admin, name)
    try:
        # The database is this session's alone and tests run one at a time, so any other
        # connection is a leftover of an earlier test (an engine not disposed after a failure);
        # it could hold locks that would make DROP SCHEMA wait forever.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """SQLAlchemy URL of this session's private PostgreSQL database (skips if unreachable)."""
    admin = make_url(PG_ADMIN_URL)
    try:
        _run(_pg_ping(admin))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        where = admin.render_as_string(hide_password=True)
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {where} is unreachable and CI is set: {e!r}", pytrace=False)
        pytest.skip(f"PostgreSQL at {where} is unreachable: {e!r}")
    name = f"{_PG_TEST_DB_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    _run(_pg_create_database(admin, name))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_pg_drop_database(admin, name))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """URL of an empty database, once per engine; tests using it run on both."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'flinkdiag.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    u = make_url(url)
    _run(_pg_reset(u, u.database or ""))
    return url


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """URL of an empty PostgreSQL database, for what only PostgreSQL does (several replicas)."""
    u = make_url(pg_database_url)
    _run(_pg_reset(u, u.database or ""))
    return pg_database_url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated, opened Store on each engine."""
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()


# ============================================================================ end database


# --- a watch world (tests/watch_helpers.py) --------------------------------------------------


@pytest.fixture
async def w(tmp_path: Any) -> AsyncIterator[Any]:
    """A simulator, a local Slack, a clock and one SQLite database that bots start and stop on."""
    from watch_helpers import world

    async with world(f"sqlite+aiosqlite:///{tmp_path}/bot.db") as shared:
        yield shared
