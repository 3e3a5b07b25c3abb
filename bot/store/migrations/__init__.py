"""Alembic revisions of the bot's schema, applied by `bot.store.db.migrate()` at start-up.

Adding one: `python -m bot.store.migrations revision -m "add watches" --autogenerate`; the full
checklist is in the `bot.store.db` docstring.
"""
