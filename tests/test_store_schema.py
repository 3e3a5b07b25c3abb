"""The bot creates and upgrades its own schema, without losing data, from several replicas at once."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.diagnosis.report import Snapshot, SymptomKey, Target
from bot.store import Store, create_engine, migrate
from bot.store.db import MIGRATION_LOCK_KEY, current_revision, head_revision, normalise_url
from bot.store.models import Base
from bot.store.types import UTCDateTime

FIRST_REVISION = "0001"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(db_url)
    try:
        yield e
    finally:
        await e.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        return {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns(table))}


def _write_revision(directory: Path, revision: str, down_revision: str, upgrade_body: str) -> None:
    """A test-only migration step, as a developer would add the next one."""
    directory.mkdir(exist_ok=True)
    body = textwrap.indent(textwrap.dedent(upgrade_body).strip(), "    ")
    (directory / f"{revision}.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down_revision!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        f"def upgrade():\n{body}\n\n\n"
        "def downgrade():\n    pass\n"
    )


TARGET = Target(
    workspace="ws-1",
    namespace="ns-é",
    deployment_id="dep-1",
    job_id="job-1",
    deployment_name="订单-etl",
    region="cn-hangzhou",
)
SNAPSHOT = Snapshot(
    risk="RISK_LEVEL_HIGH",
    health_score=41,
    symptoms=[SymptomKey(category="restart", name="频繁重启")],
    diagnosed_at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
)


async def test_fresh_database_gets_the_whole_schema(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None

    assert await migrate(engine) == head_revision()

    assert {"alembic_version", "channel_defaults", "diagnosis_runs"} <= await _tables(engine)
    async with engine.connect() as conn:
        pk = await conn.run_sync(lambda c: sa.inspect(c).get_pk_constraint("channel_defaults"))
        indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("diagnosis_runs"))
    assert pk["constrained_columns"] == ["team_id", "channel_id"]
    assert ["workspace", "namespace", "deployment_id", "job_id", "diagnosed_at"] in [
        i["column_names"] for i in indexes
    ]


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    # Catches a model changed without a migration (or the reverse), on each engine.
    await migrate(engine)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True, "compare_server_default": True}),
                Base.metadata,
            )
        )
    assert diff == []


async def test_second_migrate_changes_nothing(engine: AsyncEngine) -> None:
    await migrate(engine)
    store = Store(engine)
    await store.channel_defaults.set("T1", "C1", namespace="ns", workspace="ws", updated_by="U1")
    run_id = await store.runs.save(
        team_id="T1", channel_id="C1", user_id="U1", target=TARGET, snapshot=SNAPSHOT, previous_run_id=None
    )
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement.strip().upper())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await migrate(engine) == head_revision()
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)

    writes = [
        s for s in statements if s.split()[0] in {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"}
    ]
    assert statements and writes == []
    assert (await store.channel_defaults.get("T1", "C1")).namespace == "ns"
    assert (await store.runs.get(run_id)).snapshot == SNAPSHOT


# The tables as the first revision created them, frozen here like the migration itself, so this
# test keeps writing first-revision rows however the models evolve.
_v1 = sa.MetaData()
_channel_defaults_v1 = sa.Table(
    "channel_defaults",
    _v1,
    *(sa.Column(n, sa.String) for n in ("team_id", "channel_id", "namespace", "workspace", "updated_by")),
    sa.Column("updated_at", UTCDateTime()),
)
_diagnosis_runs_v1 = sa.Table(
    "diagnosis_runs",
    _v1,
    *(
        sa.Column(n, sa.String)
        for n in (
            "id",
            "team_id",
            "channel_id",
            "user_id",
            "workspace",
            "namespace",
            "deployment_id",
            "deployment_name",
            "job_id",
            "region",
            "risk",
            "previous_run_id",
        )
    ),
    sa.Column("health_score", sa.Integer),
    sa.Column("symptoms", sa.JSON),
    sa.Column("diagnosed_at", UTCDateTime()),
)


async def _write_first_revision_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            _channel_defaults_v1.insert().values(
                team_id="T1",
                channel_id="C1",
                namespace="命名空间",
                workspace="ws-1",
                updated_by="U1",
                updated_at=SNAPSHOT.diagnosed_at,
            )
        )
        await conn.execute(
            _diagnosis_runs_v1.insert().values(
                id="run-v1",
                team_id="T1",
                channel_id="C1",
                user_id="U1",
                **TARGET.model_dump(),
                risk=SNAPSHOT.risk,
                health_score=SNAPSHOT.health_score,
                symptoms=[k.model_dump() for k in SNAPSHOT.symptoms],
                diagnosed_at=SNAPSHOT.diagnosed_at,
                previous_run_id=None,
            )
        )


async def _assert_first_revision_rows_readable(store: Store) -> None:
    defaults = await store.channel_defaults.get("T1", "C1")
    assert defaults is not None
    assert (defaults.namespace, defaults.workspace, defaults.updated_at) == (
        "命名空间",
        "ws-1",
        SNAPSHOT.diagnosed_at,
    )
    run = await store.runs.get("run-v1")
    assert run is not None
    assert (run.target, run.snapshot) == (TARGET, SNAPSHOT)
    assert (await store.runs.latest_for(TARGET)).id == "run-v1"


async def test_rows_written_at_the_first_revision_survive_every_later_migration(engine: AsyncEngine) -> None:
    # With one real revision the final migrate() is a no-op; from the second one on, this walks
    # real data through every upgrade up to head and reads it back with today's repositories.
    assert await migrate(engine, revision=FIRST_REVISION) == FIRST_REVISION
    await _write_first_revision_rows(engine)

    assert await migrate(engine) == head_revision()

    await _assert_first_revision_rows_readable(Store(engine))


async def test_a_new_migration_step_keeps_existing_rows(engine: AsyncEngine, tmp_path: Path) -> None:
    # A stand-in for the next real step, applied to a database at today's head. Its batch
    # operations rebuild both tables (copy-and-move, SQLite's only way to ALTER most things),
    # which is where data would be lost if anything went wrong.
    await migrate(engine)
    store = Store(engine)
    await _write_first_revision_rows(engine)
    extra = tmp_path / "versions"
    _write_revision(
        extra,
        "test_next",
        head_revision(),
        """
        with op.batch_alter_table("diagnosis_runs", recreate="always") as b:
            b.add_column(sa.Column("note", sa.String(), nullable=True))
        with op.batch_alter_table("channel_defaults", recreate="always") as b:
            b.add_column(sa.Column("locale", sa.String(), nullable=False, server_default="en"))
        op.create_table("test_extra_table", sa.Column("id", sa.Integer(), primary_key=True))
        """,
    )

    assert await migrate(engine, extra_version_locations=[extra]) == "test_next"

    assert {"note"} <= await _columns(engine, "diagnosis_runs")
    assert {"locale"} <= await _columns(engine, "channel_defaults")
    assert "test_extra_table" in await _tables(engine)
    await _assert_first_revision_rows_readable(store)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT locale FROM channel_defaults"))).scalar_one() == "en"


async def test_a_failing_migration_step_leaves_schema_and_data_as_they_were(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await migrate(engine)
    await _write_first_revision_rows(engine)
    extra = tmp_path / "versions"
    _write_revision(
        extra,
        "test_broken",
        head_revision(),
        """
        op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
        op.execute("DELETE FROM channel_defaults")
        raise RuntimeError("step failed halfway")
        """,
    )

    with pytest.raises(RuntimeError, match="halfway"):
        await migrate(engine, extra_version_locations=[extra])

    assert await current_revision(engine) == head_revision()
    assert "half_done" not in await _tables(engine)
    await _assert_first_revision_rows_readable(Store(engine))


async def test_a_database_migrated_by_a_newer_release_is_left_alone(engine: AsyncEngine) -> None:
    # During a rolling deploy an old replica may restart after a new one migrated.
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))

    assert await migrate(engine) == "9999_from_the_future"

    store = Store(engine)
    await store.channel_defaults.set("T1", "C1", namespace="ns", workspace=None, updated_by="U1")
    assert (await store.channel_defaults.get("T1", "C1")).namespace == "ns"


# A replica is a separate process: migrate() also serialises calls within one process, so
# only other processes show whether the database lock does its job. Each replica connects, says
# "ready", and waits for "go" on stdin, so the migrations really overlap despite start-up time.
_REPLICA = """
import asyncio, sys
from bot.store.db import create_engine, migrate

async def main():
    engine = create_engine(sys.argv[1])
    try:
        async with engine.connect():
            pass
        if sys.argv[2] == "wait":
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(await migrate(engine), flush=True)
    finally:
        await engine.dispose()

asyncio.run(main())
"""
_ROOT = Path(__file__).resolve().parents[1]


async def _start_replica(url: str, *, wait_for_go: bool = False) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _REPLICA,
        url,
        "wait" if wait_for_go else "now",
        cwd=_ROOT,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if wait_for_go:
        line = await proc.stdout.readline()
        assert line == b"ready\n", (line, await proc.stderr.read())
    return proc


async def _replica_result(proc: asyncio.subprocess.Process, *, go: bool = False) -> str:
    out, err = await proc.communicate(b"go\n" if go else None)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


def _kill_leftovers(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        if p.returncode is None:
            p.kill()


async def test_replicas_migrating_at_once_all_succeed(db_url: str) -> None:
    # Three replica processes and this one, all migrating an empty database at the same moment.
    engine = create_engine(db_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs = list(await asyncio.gather(*(_start_replica(db_url, wait_for_go=True) for _ in range(3))))

        results = await asyncio.gather(*(_replica_result(p, go=True) for p in procs), migrate(engine))

        assert results == [head_revision()] * 4
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
        store = Store(engine)
        await store.channel_defaults.set("T1", "C1", namespace="ns", workspace="ws", updated_by="U1")
        assert (await store.channel_defaults.get("T1", "C1")).workspace == "ws"
    finally:
        _kill_leftovers(procs)
        await engine.dispose()


_ADVISORY_LOCKS = sa.text(
    "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) FROM pg_locks "
    "WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = :hi AND objid::bigint = :lo"
).bindparams(hi=MIGRATION_LOCK_KEY >> 32, lo=MIGRATION_LOCK_KEY & 0xFFFFFFFF)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_postgres_replicas_wait_for_each_other_on_the_advisory_lock(db_url: str) -> None:
    holder = create_engine(db_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with holder.connect() as conn:
            # Hold the migration lock as a replica mid-upgrade would, and watch two others queue.
            await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.commit()
            procs = [await _start_replica(db_url) for _ in range(2)]
            for _ in range(400):  # bounded wait for both to reach the lock, not a timing assertion
                granted, waiting = (await conn.execute(_ADVISORY_LOCKS)).one()
                await conn.commit()
                if waiting == 2 or any(p.returncode is not None for p in procs):
                    break
                await asyncio.sleep(0.05)
            assert (granted, waiting) == (1, 2)
            assert await current_revision(holder) is None  # nobody got past the lock
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.commit()

            assert [await _replica_result(p) for p in procs] == [head_revision()] * 2
            # Transaction-level: nothing stays locked once migrate() has returned.
            assert tuple((await conn.execute(_ADVISORY_LOCKS)).one()) == (0, 0)
    finally:
        _kill_leftovers(procs)
        await holder.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        pragma = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragma["journal_mode"] == "wal"
    assert pragma["foreign_keys"] == 1
    assert pragma["busy_timeout"] > 0


async def test_sqlite_file_in_a_missing_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "flinkdiag.db"
    async with await Store.open(f"sqlite:///{path}") as store:
        await store.channel_defaults.set("T1", "C1", namespace="ns", workspace=None, updated_by="U1")
    assert path.exists()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@db.example:5432/bot", "postgresql+asyncpg"),
        ("postgresql://u@db.example/bot", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db.example/bot", "postgresql+asyncpg"),
        ("sqlite:///flinkdiag.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///flinkdiag.db", "sqlite+aiosqlite"),
    ],
)
def test_database_urls_get_an_asyncio_driver(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        normalise_url("mysql://u@db.example/bot")


async def test_one_process_can_migrate_two_databases_at_once(tmp_path: Path, db_url: str) -> None:
    # Alembic's migration context is process-global; two upgrades must not trample each other.
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    engine = create_engine(db_url)
    try:
        assert await asyncio.gather(migrate(engine), migrate(other)) == [head_revision()] * 2
        assert {"channel_defaults", "diagnosis_runs"} <= await _tables(engine) & await _tables(other)
    finally:
        await engine.dispose()
        await other.dispose()
