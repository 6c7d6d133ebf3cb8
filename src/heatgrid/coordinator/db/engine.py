"""Engines and sessions for the coordinator's two databases: SQLite and PostgreSQL.

The same code runs on both; only connection setup differs here. URLs accepted:
``sqlite:///path/to/file.sqlite3`` and ``postgresql+psycopg://user:password@host:port/name``
(``postgresql://`` is read as ``postgresql+psycopg://``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.core.errors import InputError

__all__ = [
    "POOL_CONNECTIONS",
    "make_engine",
    "make_session_factory",
    "normalize_database_url",
    "redact_url",
]

_SQLITE_BUSY_TIMEOUT_S = 30.0


def normalize_database_url(database_url: str) -> URL:
    """Parse and check a database URL.

    Parameters
    ----------
    database_url : str
        ``sqlite:///FILE`` or ``postgresql+psycopg://…`` (``postgresql://`` is accepted).

    Returns
    -------
    sqlalchemy.engine.URL
        The URL with the driver made explicit.

    Raises
    ------
    InputError
        When the URL cannot be parsed or names another database.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise InputError(f"database URL {database_url!r} cannot be parsed") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InputError(
                "database URL must name a SQLite file (sqlite:///path/to/file.sqlite3): "
                "an in-memory database would vanish with each connection"
            )
        return url
    if url.drivername == "postgresql+psycopg":
        return url
    raise InputError(
        f"database URL scheme {url.drivername!r} is not supported: "
        "use sqlite:///FILE or postgresql+psycopg://USER@HOST/NAME"
    )


def redact_url(database_url: str | URL) -> str:
    """Return the URL as text with its password hidden, for messages and logs."""
    url = database_url if isinstance(database_url, URL) else make_url(database_url)
    return url.render_as_string(hide_password=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # One writer at a time, decided when the transaction begins: a transaction that read and
    # then writes can never find that another writer got in between (SQLITE_BUSY_SNAPSHOT);
    # it waits for the busy timeout instead. This is SQLite's half of claiming tasks safely.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


_POOL_SIZE = 10
_POOL_OVERFLOW = 30
POOL_CONNECTIONS = _POOL_SIZE + _POOL_OVERFLOW
"""Most connections an engine opens: the app admits no more requests at once than this
(anyio's default of 40 worker threads), so a request that holds a connection always finds a
thread to finish on."""


def make_engine(database_url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL; no connection is opened yet.

    SQLite gets foreign keys, write-ahead logging, a busy timeout and ``BEGIN IMMEDIATE``
    transactions (one writer at a time), and may be used from the web server's worker threads.
    PostgreSQL connections are checked before use.
    """
    url = normalize_database_url(database_url)
    if url.drivername == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S},
            pool_size=_POOL_SIZE,
            max_overflow=_POOL_OVERFLOW,
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=_POOL_SIZE, max_overflow=_POOL_OVERFLOW)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory used by the API and the CLI; objects outlive commits."""
    return sessionmaker(engine, expire_on_commit=False)
