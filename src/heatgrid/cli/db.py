"""``heatgrid db``: create and migrate the coordinator database, and downsample old telemetry."""

from __future__ import annotations

from typing import Annotated

import typer

from heatgrid.cli._database import DatabaseUrl, DataDir, now_ts, open_session, resolve_database_url

__all__ = ["register"]

_db = typer.Typer(help="Create and migrate the coordinator database.", no_args_is_help=True)


@_db.command("upgrade")
def upgrade(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Apply the migrations this heatgrid ships, up to the newest (safe to repeat)."""
    from heatgrid.coordinator.db import (  # noqa: PLC0415 - keeps `--help` fast
        current_revision,
        make_engine,
        redact_url,
    )
    from heatgrid.coordinator.db import upgrade as upgrade_schema  # noqa: PLC0415

    url = resolve_database_url(database_url, data_dir)
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        upgrade_schema(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{redact_url(url)}: schema {before or 'empty'} -> {after}")


@_db.command("current")
def current(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print the database's schema revision and this heatgrid's newest."""
    from heatgrid.coordinator.db import (  # noqa: PLC0415 - keeps `--help` fast
        current_revision,
        head_revision,
        make_engine,
        redact_url,
    )

    url = resolve_database_url(database_url, data_dir)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{redact_url(url)}: schema {revision or 'empty'}, heatgrid head {head_revision()}")


@_db.command("downsample")
def downsample(
    older_than_s: Annotated[
        float,
        typer.Option(
            "--older-than-s", min=3600.0, help="Fold samples older than this into hourly rows [s]."
        ),
    ] = 30 * 86_400.0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Fold old telemetry samples into hourly aggregates and drop the samples."""
    from heatgrid.coordinator.downsample import downsample_telemetry  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        result = downsample_telemetry(session, older_than_ts=now_ts() - older_than_s)
    typer.echo(f"folded {result.samples_folded} samples into {result.hours_written} hourly rows")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to the ``heatgrid`` app."""
    app.add_typer(_db, name="db")
