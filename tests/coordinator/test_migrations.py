"""The migrations build exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from heatgrid.coordinator.db import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from heatgrid.coordinator.db.models import Base


def test_migrations_produce_the_models_schema(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        with pytest.raises(SchemaError, match="no heatgrid schema"):
            check_schema(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert check_schema(engine) == head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        upgrade(engine)  # a second upgrade changes nothing
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_schema_from_a_newer_heatgrid_is_refused(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_future'")
        with pytest.raises(SchemaError, match="newer heatgrid"):
            check_schema(engine)
    finally:
        engine.dispose()
