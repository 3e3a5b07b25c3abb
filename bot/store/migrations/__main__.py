"""Developer and operator commands for the schema; the bot itself migrates at start-up.

    python -m bot.store.migrations revision -m "add watches" [--autogenerate]
    python -m bot.store.migrations upgrade [--url URL]
    python -m bot.store.migrations current [--url URL]

`--url` defaults to the bot's own database (FLINKDIAG_DATABASE_URL, else ./flinkdiag.db).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from bot.store.db import alembic_config, create_engine, current_revision, head_revision, migrate


def _next_rev_id() -> str:
    # Revisions are numbered 0001, 0002, ...: file names then sort in the order they apply.
    return f"{int(head_revision()) + 1:04d}"


async def _revision(message: str, autogenerate: bool) -> None:
    cfg = alembic_config()
    rev_id = _next_rev_id()
    if not autogenerate:
        command.revision(cfg, message=message, rev_id=rev_id)
        return
    # Autogenerate diffs the models against a database at head: a scratch SQLite one.
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            await migrate(engine)

            def run(conn: Connection) -> None:
                cfg.attributes["connection"] = conn
                command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)

            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()


async def _with_engine(url: str | None, upgrade: bool) -> None:
    if url is None:
        from bot.config import Settings

        url = Settings().effective_database_url
    engine = create_engine(url)
    try:
        if upgrade:
            await migrate(engine)
        print(await current_revision(engine) or "(empty database)")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.store.migrations", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write the next numbered migration file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="fill it from the models' diff")
    for name in ("upgrade", "current"):
        p = sub.add_parser(name, help=f"{name} the database's schema revision")
        p.add_argument("--url", help="database URL (default: the bot's)")
    args = parser.parse_args(argv)
    if args.cmd == "revision":
        asyncio.run(_revision(args.message, args.autogenerate))
    else:
        asyncio.run(_with_engine(args.url, upgrade=args.cmd == "upgrade"))


if __name__ == "__main__":
    main()
