"""Options and helpers shared by the commands that open the coordinator database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from platformdirs import user_data_dir

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "AsJson",
    "DataDir",
    "DatabaseUrl",
    "now_ts",
    "open_session",
    "resolve_database_url",
    "utc_text",
]

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HEATGRID_DATABASE_URL",
        help="sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/NAME "
        "(default: a SQLite file in --data-dir).",
        show_default=False,
    ),
]
"""The ``--database-url`` option (also ``HEATGRID_DATABASE_URL``)."""

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="HEATGRID_DATA_DIR",
        help="Where the embedded SQLite database lives (default: the user data directory).",
        show_default=False,
    ),
]
"""The ``--data-dir`` option (also ``HEATGRID_DATA_DIR``)."""

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
"""The ``--json`` option."""

_SQLITE_FILE_NAME = "coordinator.sqlite3"


def resolve_database_url(database_url: str | None, data_dir: Path | None) -> str:
    """Return ``database_url``, or the embedded SQLite file in ``data_dir`` (created if absent).

    Parameters
    ----------
    database_url : str or None
        An explicit URL wins.
    data_dir : Path or None
        Directory of the embedded database; None means ``platformdirs.user_data_dir("heatgrid")``.
    """
    if database_url:
        return database_url
    directory = data_dir if data_dir is not None else Path(user_data_dir("heatgrid"))
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / _SQLITE_FILE_NAME).resolve()}"


@contextmanager
def open_session(database_url: str | None, data_dir: Path | None) -> Iterator[Session]:
    """Open a session on a database whose schema is at this heatgrid's head.

    Raises
    ------
    heatgrid.coordinator.db.SchemaError
        When the schema is missing, old or newer than this heatgrid (exit status 2).
    """
    # Imported here: SQLAlchemy and Alembic are slow to import and `--help` needs neither.
    from heatgrid.coordinator.db import (  # noqa: PLC0415
        check_schema,
        make_engine,
        make_session_factory,
    )

    engine = make_engine(resolve_database_url(database_url, data_dir))
    try:
        check_schema(engine)
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def now_ts() -> float:
    """Return the wall clock [POSIX s, UTC]; the one clock read of the admin commands."""
    return time.time()


def utc_text(ts: float | None) -> str:
    """Show a time [POSIX s] in UTC for the tables of the commands (``-`` for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
