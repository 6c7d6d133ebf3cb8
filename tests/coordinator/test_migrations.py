"""The migrations build exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Index
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import TextClause

from heatgrid.coordinator.db import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from heatgrid.coordinator.db.models import CLAIMABLE_TASK_STATES, HOLDING_TASK_STATES, Base


def _has_expression(index: Index) -> bool:
    return any(isinstance(part, TextClause) for part in index.expressions)


def _skip_expression_indexes(
    item: Any, _name: str | None, kind: str, _reflected: bool, _compare_to: Any
) -> bool:
    """Alembic cannot compare indexes with expressions (``priority DESC``); checked apart."""
    return not (kind == "index" and isinstance(item, Index) and _has_expression(item))


def _index_columns(engine: Engine, table: str, name: str) -> str:
    """The column list of an index as the database stores its definition."""
    if engine.dialect.name == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    else:
        sql = "SELECT indexdef FROM pg_indexes WHERE tablename = :table AND indexname = :name"
    with engine.connect() as connection:
        definition = connection.exec_driver_sql(
            sql.replace(":table", f"'{table}'").replace(":name", f"'{name}'")
        ).scalar_one()
    columns = definition.split(" WHERE ")[0]  # a partial index's predicate follows
    return re.sub(r"\s+", " ", columns[columns.index("(") + 1 : columns.rindex(")")])


def _index_predicates(engine: Engine) -> dict[str, str]:
    """Each partial index of ``tasks`` and its predicate, as PostgreSQL stores it."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"
        ).all()
    return {
        str(name): str(definition).split(" WHERE ", 1)[1]
        for name, definition in rows
        if " WHERE " in str(definition)
    }


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
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": _skip_expression_indexes,
                },
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        expression_indexes = [
            (table.name, index)
            for table in Base.metadata.sorted_tables
            for index in table.indexes
            if _has_expression(index)
        ]
        assert expression_indexes  # the claim query's index is one
        for table_name, index in expression_indexes:
            wanted = ", ".join(getattr(part, "name", str(part)) for part in index.expressions)
            assert _index_columns(engine, table_name, str(index.name)) == wanted
        if engine.dialect.name == "postgresql":  # partial there (as the models say), not on SQLite
            states = {
                name: sorted(re.findall(r"'(\w+)'", predicate))
                for name, predicate in _index_predicates(engine).items()
            }
            assert states == {
                "ix_tasks_queue": sorted(CLAIMABLE_TASK_STATES),
                "ix_tasks_fifo": sorted(CLAIMABLE_TASK_STATES),
                "ix_tasks_lease": sorted(HOLDING_TASK_STATES),
                "ix_tasks_lease_device_id": [],
            }
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
