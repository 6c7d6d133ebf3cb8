"""Engines and sessions for the coordinator's two databases: SQLite and PostgreSQL.

The same code runs on both; only connection setup differs here. URLs accepted:
``sqlite:///path/to/file.sqlite3`` and ``postgresql+psycopg://user:password@host:port/name``
(``postgresql://`` is read as ``postgresql+psycopg://``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.core.errors import InputError

__all__ = [
    "POOL_CONNECTIONS",
    "READ_ONLY_OPTION",
    "json_rows",
    "json_rows_source",
    "lost_connection",
    "make_engine",
    "make_session_factory",
    "normalize_database_url",
    "redact_url",
    "single_statement_reads",
    "unreachable_database",
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


READ_ONLY_OPTION = "heatgrid_read_only"
"""Execution option marking a read-only session's connections (see :func:`make_session_factory`)."""


def _begin(connection: Any) -> None:
    # A writer takes SQLite's write lock when its transaction begins (BEGIN IMMEDIATE): a
    # transaction that read and then writes can never find that another writer got in between
    # (SQLITE_BUSY_SNAPSHOT); it waits for the busy timeout instead. This is SQLite's half of
    # claiming tasks safely. A reader begins deferred and, in WAL mode, reads its snapshot
    # without ever holding the write lock: a long listing never delays a heartbeat.
    if connection.get_execution_options().get(READ_ONLY_OPTION, False):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    raise RuntimeError("a read-only session cannot write; use a session of make_session_factory")


POOL_CONNECTIONS = 40
"""Most connections an engine opens: the app admits no more requests at once than this
(anyio's default of 40 worker threads), so a request that holds a connection always finds a
thread to finish on.

All of them are kept once opened (the pool's size, no overflow). With 10 kept and 30 of
overflow, a connection returned while 10 were idle was closed, and the next request over ten
at once opened a new one: under 16 concurrent claimers about eight PostgreSQL backends were
started and ended per second (each a fork, its catalog caches filled again and its prepared
statements parsed and planned again): kept, PostgreSQL's CPU per claim or completion batch
of 32 fell from 6.8 to 4.2 ms in one pair of benchmark runs (docs/performance.md, "Claims,
sixth pass"). Opened only when that many requests need one at once, so an idle deployment
holds few."""


def make_engine(database_url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL; no connection is opened yet.

    SQLite gets foreign keys, write-ahead logging, a busy timeout and ``BEGIN IMMEDIATE``
    transactions for writers (one writer at a time; readers never wait for it), and may be used
    from the web server's worker threads.

    PostgreSQL connections are not checked before use (no ``pool_pre_ping``: that was a round
    trip at every checkout, so at every request). A connection found dead when used (the
    server restarted, its backend was terminated) raises an error that SQLAlchemy marks
    ``connection_invalidated`` (:func:`lost_connection`), and every connection opened before
    it is then replaced at its next checkout (:func:`_replace_after_a_loss`), so one lost
    connection costs one failed statement, not one per pooled connection. The app answers
    such an error 503 with ``Retry-After``; reads that lose their connection are retried once
    (``api.deps.reading``), and the heartbeat writer retries a batch whose connection was
    lost before its commit (``heartbeats``).
    """
    url = normalize_database_url(database_url)
    if url.drivername == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S},
            pool_size=POOL_CONNECTIONS,
            max_overflow=0,
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin)
        return engine
    engine = create_engine(url, pool_size=POOL_CONNECTIONS, max_overflow=0)
    _replace_after_a_loss(engine)
    return engine


def _replace_after_a_loss(engine: Engine) -> None:
    """Replace, at its next checkout, every connection opened before a connection was lost.

    SQLAlchemy invalidates the pool on a lost connection only when that connection is newer
    than the pool's last invalidation: one held from before it (the heartbeat writer's) does
    not invalidate the connections pooled since, and the retry would take one of them, dead
    too. Here any lost connection marks the moment; a checkout of a connection opened before
    it raises ``DisconnectionError``, on which the pool opens a new one in its place.
    """
    lost = [0.0]  # monotonic time of the last connection found lost [s]

    def opened(_dbapi_connection: Any, record: Any) -> None:
        record.info["opened_s"] = time.monotonic()

    def failed(context: Any) -> None:
        if context.is_disconnect:
            lost[0] = time.monotonic()

    def checked_out(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("opened_s", 0.0) < lost[0]:
            raise DisconnectionError("opened before a connection was found lost")

    event.listen(engine, "connect", opened)
    event.listen(engine, "handle_error", failed)
    event.listen(engine, "checkout", checked_out)


def lost_connection(error: BaseException) -> bool:
    """Return True when ``error`` is a database error raised because its connection was lost.

    SQLAlchemy then invalidated the connection (and the pool's older connections), so the
    same work may be tried again on a new one; a transaction cut off before its commit was
    rolled back by the server.
    """
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def unreachable_database(error: BaseException) -> bool:
    """Return True when ``error`` is a failure to open a database connection.

    SQLAlchemy raises those from the pool's connect, before any statement was sent
    (``DBAPIError.statement`` is None): the server is down, restarting, or refuses the
    connection; nothing was done, so the work may be tried again later.
    """
    return isinstance(error, OperationalError) and error.statement is None


def single_statement_reads(engine: Engine) -> Engine:
    """Return ``engine`` for reads of one statement each, that need no transaction.

    On PostgreSQL its connections run in autocommit, so such a read is one round trip,
    where a transaction adds a ``BEGIN`` and a ``ROLLBACK`` (psycopg sends each on its
    own). On SQLite it reads as a read-only session does (a deferred ``BEGIN``, never the
    write lock). It shares ``engine``'s pool.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def json_rows(rows: Sequence[Mapping[str, object]]) -> str:
    """Return rows for :func:`json_rows_source` as one JSON text: one parameter for all.

    A statement that writes or reads many rows at once (a completion batch, its ledger
    entries) takes them as one ``json`` parameter, rather than as one array parameter per
    column for ``unnest``: psycopg dumps an array element by element in Python (about 1 µs
    each; a batch of 32 completions sent about 1,300), where ``json.dumps`` encodes the whole
    in C (about 0.1 µs an element). The statement's text stays the same whatever the number
    of rows, so psycopg still prepares it. The values must be JSON: strings without NUL,
    finite numbers (the door checks what is stored).
    """
    return json.dumps(rows)


def json_rows_source(
    parameter: str, alias: str, columns: str, *, ordinality: bool = False, jsonb: bool = False
) -> str:
    """Return the SQL ``FROM`` items that read :func:`json_rows`' rows from ``:parameter``.

    The rows are ``alias`` with ``columns`` (``"name TYPE, …"``, as the rows' keys); with
    ``ordinality``, ``{alias}_json.n`` numbers them in the order given. PostgreSQL only.

    ``json_to_recordset`` would read them too, but the planner believes it returns 100 rows,
    and for 100 it joins a table by a hash over a sequential scan of it (seen on
    ``task_attempts``: 5.5 ms per batch where its primary key takes 0.3 ms). ``unnest`` of an
    array that is not a constant is planned as 10 rows, so the rows are unpacked as an array
    of JSON values, each to a record by ``json_to_record``, and every join stays an index
    lookup per row, as with arrays of columns.

    ``jsonb``: read them as ``jsonb``, which PostgreSQL unpacks faster (a batch's 32 ledger
    transactions and 160 entries: about 0.2 ms less). Only for rows of strings, numbers,
    booleans and nulls: ``jsonb`` rewrites a JSON value that a row carries as a column (its
    keys reordered, its numbers normalised), so such rows (a completion's result) use ``json``.
    """
    kind = "jsonb" if jsonb else "json"
    numbered = " WITH ORDINALITY" if ordinality else ""
    names = "(r, n)" if ordinality else "(r)"
    return (
        f"unnest(ARRAY(SELECT {kind}_array_elements(CAST(:{parameter} AS {kind.upper()}))))"
        f"{numbered} AS {alias}_json{names}, {kind}_to_record({alias}_json.r) AS {alias}({columns})"
    )


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Return the session factory used by the API and the CLI; objects outlive commits.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`make_engine`.
    read_only : bool
        Sessions that only read: on SQLite their transactions begin deferred and never take
        the write lock, so they neither wait for writers nor delay them; a flush in such a
        session raises. False (the default): sessions that may write, which on SQLite take
        the write lock when their transaction begins.
    """
    if not read_only:
        return sessionmaker(engine, expire_on_commit=False)
    factory = sessionmaker(
        engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
    )
    event.listen(factory, "before_flush", _refuse_writes)
    return factory
