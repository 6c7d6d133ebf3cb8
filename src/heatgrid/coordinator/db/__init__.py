"""The coordinator's database: models, engines and schema migrations."""

from heatgrid.coordinator.db.engine import (
    make_engine,
    make_session_factory,
    normalize_database_url,
    redact_url,
)
from heatgrid.coordinator.db.schema import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)

__all__ = [
    "SchemaError",
    "check_schema",
    "current_revision",
    "head_revision",
    "make_engine",
    "make_session_factory",
    "normalize_database_url",
    "redact_url",
    "upgrade",
]
