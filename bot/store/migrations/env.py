"""Alembic's entry point for moodbot's migrations: they run from :func:`bot.store.migrate.upgrade`, on its connection.

Migrations are forward only (moodbot never downgrades: keep a backup). A new one is ``versions/NNNN_what.py`` with
``revision = "NNNN"`` and ``down_revision`` the previous one, and ``bot/store/schema.py`` changed to match: the store
tests compare a migrated database with ``schema.metadata`` on SQLite and PostgreSQL.
"""

from alembic import context

from bot.store.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
