"""Alembic environment: runs migrations on the connection that heatgrid passes in.

heatgrid configures Alembic in code (:mod:`heatgrid.coordinator.db.schema`); the caller puts an
open connection in ``config.attributes["connection"]``. SQLite gets batch mode, so that later
migrations can alter tables there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from heatgrid.coordinator.db.models import Base

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "heatgrid migrations run through `heatgrid db upgrade`, which passes a connection"
    )
context.configure(
    connection=_connection,
    target_metadata=Base.metadata,
    render_as_batch=_connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
