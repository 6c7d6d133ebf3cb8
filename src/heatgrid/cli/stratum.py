"""``heatgrid stratum``: run the coordinator's Stratum v1 proxy between miners and a pool."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from heatgrid.cli._clock import clock_option, read_clock
from heatgrid.cli._database import DatabaseUrl, DataDir, resolve_database_url
from heatgrid.core.errors import InputError

__all__ = ["POOL_PASSWORD_ENV", "register"]

POOL_PASSWORD_ENV = "HEATGRID_POOL_PASSWORD"
"""Environment variable with the pool account's password (kept out of the process list)."""

_DEFAULT_LISTEN = "0.0.0.0:3333"


def _listen_address(listen: str) -> tuple[str, int]:
    host, separator, port_text = listen.rpartition(":")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InputError(f"--listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port_text)


def stratum(
    *,
    pool_url: Annotated[
        str,
        typer.Option(
            envvar="HEATGRID_POOL_URL", help="The upstream pool: stratum+tcp://HOST:PORT."
        ),
    ],
    pool_user: Annotated[
        str, typer.Option(envvar="HEATGRID_POOL_USER", help="The operator's pool account.")
    ],
    pool_password: Annotated[
        str,
        typer.Option(
            envvar=POOL_PASSWORD_ENV, help="The pool account's password.", show_default=False
        ),
    ] = "x",
    listen: Annotated[
        str,
        typer.Option(envvar="HEATGRID_STRATUM_LISTEN", help="Where miners connect: HOST:PORT."),
    ] = _DEFAULT_LISTEN,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    share_interval_s: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="HEATGRID_STRATUM_SHARE_INTERVAL_S",
            help="Vardiff aims at one share per miner this often [s].",
        ),
    ] = 10.0,
    start_difficulty: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="HEATGRID_STRATUM_START_DIFFICULTY",
            help="A miner's first share difficulty.",
        ),
    ] = 1024.0,
    min_difficulty: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="HEATGRID_STRATUM_MIN_DIFFICULTY",
            help="Lowest share difficulty (CPU miners need tiny ones).",
        ),
    ] = 2.0**-20,
    max_difficulty: Annotated[
        float,
        typer.Option(
            min=0.0, envvar="HEATGRID_STRATUM_MAX_DIFFICULTY", help="Highest share difficulty."
        ),
    ] = 2.0**40,
    worker_per_device: Annotated[
        bool,
        typer.Option(
            "--worker-per-device/--one-worker",
            help="Submit upstream as POOL_USER.DEVICE_ID (the pool shows each heater).",
        ),
    ] = True,
    idle_timeout_s: Annotated[
        float, typer.Option(min=1.0, help="An authorized miner silent this long is closed [s].")
    ] = 3600.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    clock: Annotated[
        str | None,
        clock_option(
            "shares and rejections are stamped with it, as the coordinator's (`heatgrid "
            "serve --clock`) on the same database. Default: the wall clock."
        ),
    ] = None,
) -> None:
    """Run the coordinator's Stratum v1 proxy between miners and a pool."""
    import asyncio  # noqa: PLC0415 - keeps `heatgrid --help` fast
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from heatgrid.coordinator.db import check_schema, make_engine, redact_url  # noqa: PLC0415
    from heatgrid.coordinator.logs import configure_logging  # noqa: PLC0415
    from heatgrid.coordinator.stratum import (  # noqa: PLC0415
        CollectorPolicy,
        ProxySettings,
        StratumProxy,
        parse_pool_url,
    )
    from heatgrid.coordinator.stratum.accounting import WRITER_SWITCH_INTERVAL_S  # noqa: PLC0415

    host, port = _listen_address(listen)
    proxy_clock = read_clock(clock)  # refused before anything starts
    parse_pool_url(pool_url)
    url = resolve_database_url(database_url, data_dir)
    settings = ProxySettings(
        database_url=url,
        pool_url=pool_url,
        pool_user=pool_user,
        pool_password=pool_password,
        listen_host=host,
        listen_port=port,
        share_interval_s=share_interval_s,
        start_difficulty=start_difficulty,
        min_difficulty=min_difficulty,
        max_difficulty=max_difficulty,
        worker_per_device=worker_per_device,
        idle_timeout_s=idle_timeout_s,
    )
    engine = make_engine(url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()
    configure_logging(log_level)
    # this process is the proxy's: its share writer's thread and the miners' event loop pass
    # the GIL back and forth for every commit, not at CPython's 5 ms default
    sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)

    async def run() -> None:
        async with StratumProxy(settings, proxy_clock) as proxy:
            # long-lived objects (start-up's, then settled connections') out of the
            # collector's full passes, which every miner's answer would wait out
            collections = asyncio.create_task(CollectorPolicy().run())
            logging.getLogger("heatgrid.coordinator.stratum").info(
                "stratum proxy listening",
                extra={
                    "host": host,
                    "port": proxy.port,
                    "pool_url": pool_url,
                    "database_url": redact_url(url),
                },
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signal_number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signal_number, stop.set)
            await stop.wait()
            collections.cancel()

    asyncio.run(run())


def register(app: typer.Typer) -> None:
    """Add the ``stratum`` command to the ``heatgrid`` app."""
    app.command("stratum")(stratum)
