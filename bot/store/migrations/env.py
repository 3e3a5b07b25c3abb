"""Alembic environment for flinkdiag: online only, on a connection handed over by the caller.

`bot.store.db.migrate` (start-up) and `python -m bot.store.migrations` (developers) open the
connection, take the migration lock and the transaction, and pass the connection in
`config.attributes["connection"]`; this file only points Alembic at it. Migrations run inside
the caller's transaction, so a failed step leaves the schema as it was (on PostgreSQL, and on
SQLite because the caller issued BEGIN IMMEDIATE itself).
"""

from alembic import context

from bot.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "flinkdiag migrations run online only, through bot.store.db.migrate() "
        "or `python -m bot.store.migrations`; there is no alembic.ini"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # Autogenerate then writes batch operations, which SQLite needs for ALTERs.
    render_as_batch=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
