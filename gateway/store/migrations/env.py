"""Alembic's entry point for the store's revisions.

Only ever run by :mod:`gateway.store._migrate`, which hands over an open connection
inside its own transaction (``config.attributes["connection"]``): the migration
commits or rolls back with that transaction, never on its own, and no URL or
``alembic.ini`` is read here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gateway.store._tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the store's migrations run through `brokergraph db upgrade` (gateway.store._migrate), "
        "which hands them a connection; the alembic command line is not wired to a database"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters a table by copying it: later revisions use op.batch_alter_table.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
