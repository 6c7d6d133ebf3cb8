"""Fixtures of the contract suites: the coordinator's, on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from tests.coordinator.conftest import (  # noqa: F401 (fixtures, used by name)
    _sqlite_template,
    backend,
    clock,
    coordinator,
    database_url,
    postgres_server,
    settings_overrides,
)
