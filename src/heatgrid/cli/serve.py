"""``heatgrid serve``: run the coordinator web service."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from heatgrid.cli._database import DatabaseUrl, DataDir, resolve_database_url
from heatgrid.coordinator.db import check_schema, make_engine, redact_url, upgrade
from heatgrid.coordinator.settings import Settings

__all__ = ["register"]


def serve(
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Apply the database migrations before serving.")
    ] = False,
    heartbeat_interval_s: Annotated[
        float, typer.Option(min=1.0, help="How often heaters are asked to send a heartbeat [s].")
    ] = 60.0,
    online_window_s: Annotated[
        float,
        typer.Option(min=1.0, help="A heater heard from within this long counts as online [s]."),
    ] = 180.0,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a TLS proxy).",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(help="Comma-separated proxy addresses whose forwarded headers are trusted."),
    ] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the coordinator; it refuses a database whose schema is not this heatgrid's."""
    import uvicorn  # noqa: PLC0415 - keeps `heatgrid --help` fast

    from heatgrid.coordinator.app import create_app  # noqa: PLC0415
    from heatgrid.coordinator.logs import configure_logging  # noqa: PLC0415

    url = resolve_database_url(database_url, data_dir)
    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
        revision = check_schema(engine)
    finally:
        engine.dispose()
    configure_logging(log_level)
    logging.getLogger("heatgrid.coordinator").info(
        "starting",
        extra={
            "host": host,
            "port": port,
            "database_url": redact_url(url),
            "schema_revision": revision,
        },
    )
    settings = Settings(
        database_url=url,
        heartbeat_interval_s=heartbeat_interval_s,
        online_window_s=online_window_s,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``heatgrid`` app."""
    app.command("serve")(serve)
