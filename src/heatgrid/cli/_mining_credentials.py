"""``heatgrid mining credentials``: the pool URL, user and password to enter in a miner."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from heatgrid.cli._database import AsJson, DatabaseUrl, DataDir, now_ts, open_session, utc_text

__all__ = ["DEFAULT_STRATUM_PORT", "add_credentials_commands"]

DEFAULT_STRATUM_PORT = 3333
"""The port a Stratum proxy listens on unless told otherwise (the usual one)."""

StratumUrl = Annotated[
    str | None,
    typer.Option(
        "--pool-url",
        envvar="HEATGRID_STRATUM_URL",
        help="Where miners reach the proxy, stratum+tcp://HOST:PORT "
        f"(default: this machine's name, port {DEFAULT_STRATUM_PORT}).",
        show_default=False,
    ),
]


def _default_stratum_url() -> str:
    import socket  # noqa: PLC0415 - only when no URL is given

    return f"stratum+tcp://{socket.getfqdn()}:{DEFAULT_STRATUM_PORT}"


def credentials(
    *,
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    rotate: Annotated[
        bool,
        typer.Option("--rotate", help="Issue a new password; the miner's old one stops working."),
    ] = False,
    pool_url: StratumUrl = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print the pool URL, user and password to enter in a device's miner.

    The first call issues the password; only its hash is kept, so later calls show it no more
    (--rotate issues a new one).
    """
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator import mining_credentials  # noqa: PLC0415

    url = pool_url or _default_stratum_url()
    with open_session(database_url, data_dir) as session:
        device = fleet.get_device(session, device_id, None)
        existing = mining_credentials.get_credential(session, device.id)
        password: str | None = None
        if rotate or existing is None:
            issued = mining_credentials.issue_password(session, device, now_ts=now_ts())
            password, created_ts = issued.password, issued.created_ts
        else:
            created_ts = existing.created_ts
    record = {
        "device_id": device_id,
        "pool_url": url,
        "user": device_id,
        "password": password,
        "created_ts": created_ts,
    }
    if as_json:
        typer.echo(json.dumps(record))
        return
    typer.echo(f"pool URL: {url}")
    typer.echo(f"user:     {device_id}  (a miner may add .WORKER)")
    if password is None:
        typer.echo(
            f"password: issued {utc_text(created_ts)}, shown only then "
            "(heatgrid mining credentials --rotate issues a new one)"
        )
    else:
        typer.echo(f"password: {password}")


def add_credentials_commands(group: typer.Typer) -> None:
    """Add ``credentials`` to the ``heatgrid mining`` group."""
    group.command("credentials")(credentials)
