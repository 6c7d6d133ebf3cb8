"""Schema migrations with Alembic, configured in code (no ``alembic.ini`` at run time).

The migration scripts ship inside the package, in ``heatgrid/coordinator/migrations``.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from heatgrid.core.errors import InputError

__all__ = ["SchemaError", "check_schema", "current_revision", "head_revision", "upgrade"]

_SCRIPT_LOCATION = "heatgrid.coordinator:migrations"


class SchemaError(InputError):
    """The database schema is not the one this version of heatgrid expects."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    """Return the newest migration revision that this package ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migrations found in the package")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's migration revision, or None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (default: the newest), in one transaction each."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def check_schema(engine: Engine) -> str:
    """Return the schema revision if it is this package's head, else raise :class:`SchemaError`.

    Raises
    ------
    SchemaError
        When the database was never migrated, is behind (run ``heatgrid db upgrade``), or was
        migrated by a newer heatgrid (upgrade heatgrid itself).
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current
    if current is None:
        raise SchemaError(
            "the database has no heatgrid schema: run `heatgrid db upgrade` with the same "
            "--database-url first"
        )
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current in known:
        raise SchemaError(
            f"the database schema is at revision {current}, older than this heatgrid's {head}: "
            "run `heatgrid db upgrade` with the same --database-url"
        )
    raise SchemaError(
        f"the database schema is at revision {current}, which this heatgrid (head {head}) does "
        "not know: it was migrated by a newer heatgrid; upgrade heatgrid instead"
    )
