"""Alembic environment for the Batchyard store: runs migrations on the connection it is given.

SqlStore opens the connection and passes it in config.attributes; nothing here reads files.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
