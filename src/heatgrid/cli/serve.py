"""``heatgrid serve``: run the coordinator web service."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from heatgrid.cli._clock import clock_option, read_clock
from heatgrid.cli._database import DatabaseUrl, DataDir, resolve_database_url
from heatgrid.cli.stratum import POOL_PASSWORD_ENV
from heatgrid.coordinator.settings import Settings
from heatgrid.core.clock import CLOCK_ENV
from heatgrid.core.errors import InputError

__all__ = ["register"]

_DEFAULTS: dict[str, Any] = {
    field.name: field.default
    for field in dataclasses.fields(Settings)
    if field.default is not dataclasses.MISSING
}
"""The coordinator's own defaults (:class:`Settings`), shown and used by the options."""


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
    ] = _DEFAULTS["heartbeat_interval_s"],
    online_window_s: Annotated[
        float,
        typer.Option(min=1.0, help="A heater heard from within this long counts as online [s]."),
    ] = _DEFAULTS["online_window_s"],
    dashboard_session_s: Annotated[
        float,
        typer.Option(
            min=60.0, help="How long a dashboard login lasts, on the coordinator's clock [s]."
        ),
    ] = _DEFAULTS["dashboard_session_s"],
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
    checkpoint_url: Annotated[
        str | None,
        typer.Option(
            help="Where checkpoint blobs go: a directory or an fsspec URL (s3://bucket/prefix "
            "with s3fs installed). Default: checkpoints/ in --data-dir or beside the SQLite file."
        ),
    ] = None,
    checkpoint_keep: Annotated[
        int,
        typer.Option(min=1, help="Checkpoints kept per task (the newest); older ones are pruned."),
    ] = _DEFAULTS["checkpoint_keep"],
    replay_keep: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --verify-results: older checkpoints of a replayable training task kept "
            "besides the newest, a random sample, so that early segments can be replayed.",
        ),
    ] = _DEFAULTS["replay_keep"],
    max_artifact_bytes: Annotated[
        int,
        typer.Option(
            min=1, help="Largest job artifact a submitter may upload [bytes]; larger: 413."
        ),
    ] = _DEFAULTS["max_artifact_bytes"],
    policy: Annotated[
        str, typer.Option(help="Scheduling policy: heat-aware, fifo or mining-only.")
    ] = _DEFAULTS["scheduling_policy"],
    lease_s: Annotated[
        float, typer.Option(min=10.0, help="A lease lapses after this long without news [s].")
    ] = _DEFAULTS["lease_s"],
    compute_price_eur_per_kwh: Annotated[
        float, typer.Option(min=0.0, help="What submitters pay per kWh of compute [EUR/kWh].")
    ] = _DEFAULTS["compute_price_eur_per_kwh"],
    owner_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of that paid to heater owners.")
    ] = _DEFAULTS["owner_share"],
    rate_limit_per_s: Annotated[
        float, typer.Option(min=0.001, help="Requests per second per credential [1/s].")
    ] = _DEFAULTS["rate_limit_per_s"],
    rate_limit_burst: Annotated[
        int, typer.Option(min=1, help="Requests a credential may send at once.")
    ] = _DEFAULTS["rate_limit_burst"],
    anonymous_rate_limit_per_s: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Requests per second per client address without a valid credential [1/s].",
        ),
    ] = _DEFAULTS["anonymous_rate_limit_per_s"],
    anonymous_rate_limit_burst: Annotated[
        int, typer.Option(min=1, help="Such requests an address may send at once.")
    ] = _DEFAULTS["anonymous_rate_limit_burst"],
    body_timeout_s: Annotated[
        float,
        typer.Option(min=0.1, help="A request body must arrive within this long, else 408 [s]."),
    ] = _DEFAULTS["body_timeout_s"],
    ready_wait_s: Annotated[
        float,
        typer.Option(
            min=0.1, help="/readyz answers 503 when no request slot frees up this long [s]."
        ),
    ] = _DEFAULTS["ready_wait_s"],
    max_clock_skew_s: Annotated[
        float,
        typer.Option(
            min=1.0, help="Most a device's sent_ts or heat window start may be off this clock [s]."
        ),
    ] = _DEFAULTS["max_clock_skew_s"],
    hardware_challenges: Annotated[
        bool,
        typer.Option(
            help="Challenge CPU and GPU devices' claimed throughput at enrollment, on new "
            "hardware and at random; they get tasks only once they pass (docs/trust.md)."
        ),
    ] = _DEFAULTS["hardware_challenges"],
    verify_results: Annotated[
        bool,
        typer.Option(
            help="Verify results before paying for them: hold each result's credit, replicate "
            "it on devices of other owners as the device's reputation asks, pay when they "
            "agree, quarantine a device caught disagreeing (docs/trust.md)."
        ),
    ] = _DEFAULTS["verify_results"],
    spot_check_floor: Annotated[
        float,
        typer.Option(
            min=1e-6,
            max=1.0,
            help="With --verify-results: share of a trusted device's results still replicated "
            "(the verification overhead once devices are trusted; docs/trust.md).",
        ),
    ] = _DEFAULTS["spot_check_floor"],
    hold_limit_s: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="With --verify-results: credit held this long unverified is refunded to the "
            "submitter, and a checked task no other owner replicated runs again [s].",
        ),
    ] = _DEFAULTS["hold_limit_s"],
    clawback_window_s: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="HEATGRID_CLAWBACK_WINDOW_S",
            help="With --verify-results: when a device is caught with a wrong result, take back "
            "from its owner's balance what its unchecked results reported this long before were "
            "paid, and refund the submitter (90 days by default; releasing the device reverses "
            "it); 0: off (docs/trust.md) [s].",
        ),
    ] = _DEFAULTS["clawback_window_s"],
    bitcoin_network: Annotated[
        str,
        typer.Option(
            envvar="HEATGRID_BITCOIN_NETWORK",
            help="Network owners' payout addresses must be for: mainnet, testnet, signet or "
            "regtest.",
        ),
    ] = _DEFAULTS["bitcoin_network"],
    credential_cache_s: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Trust a verified API key this long before checking it again "
            "(0: every request) [s].",
        ),
    ] = _DEFAULTS["credential_cache_s"],
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes (PostgreSQL only; SQLite allows one writer process)."
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    stratum_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            envvar="HEATGRID_STRATUM_PORT",
            help="Also run the Stratum proxy for miners on this port, as a child process "
            "(off by default; needs --pool-url and --pool-user).",
            show_default=False,
        ),
    ] = None,
    pool_url: Annotated[
        str | None,
        typer.Option(
            envvar="HEATGRID_POOL_URL",
            help="The proxy's upstream pool: stratum+tcp://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    pool_user: Annotated[
        str | None,
        typer.Option(
            envvar="HEATGRID_POOL_USER", help="The operator's pool account.", show_default=False
        ),
    ] = None,
    pool_password: Annotated[
        str,
        typer.Option(
            envvar="HEATGRID_POOL_PASSWORD",
            help="The pool account's password.",
            show_default=False,
        ),
    ] = "x",
    stratum_url: Annotated[
        str | None,
        typer.Option(
            envvar="HEATGRID_STRATUM_URL",
            help="Where miners reach the proxy, told with their credentials "
            "(default: stratum+tcp://HOST:STRATUM_PORT).",
            show_default=False,
        ),
    ] = None,
    clock: Annotated[
        str | None,
        clock_option(
            "leases, heartbeats, sessions and the ledger go by it, and the Stratum proxy's "
            "shares too (`heatgrid demo` runs its fleet so). Default: the wall clock."
        ),
    ] = None,
) -> None:
    """Run the coordinator; it refuses a database whose schema is not this heatgrid's."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keeps `heatgrid --help` fast

    from heatgrid.coordinator.db import (  # noqa: PLC0415
        check_schema,
        make_engine,
        redact_url,
        upgrade,
    )
    from heatgrid.coordinator.logs import configure_logging  # noqa: PLC0415
    from heatgrid.core.scheduling import POLICIES  # noqa: PLC0415

    if policy not in POLICIES:
        raise InputError(f"--policy: unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    app_clock = read_clock(clock)  # refused before anything starts
    url = resolve_database_url(database_url, data_dir)
    if workers > 1 and make_url(url).get_backend_name() == "sqlite":
        raise InputError(
            "--workers: SQLite serves one process; use PostgreSQL (--database-url) for more"
        )
    if stratum_port is not None and (not pool_url or not pool_user):
        raise InputError("--stratum-port: the proxy needs --pool-url and --pool-user")
    if stratum_port is not None and stratum_url is None:
        public_host = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
        stratum_url = f"stratum+tcp://{public_host}:{stratum_port}"
    if checkpoint_url is None and data_dir is not None:
        checkpoint_url = str(Path(data_dir) / "checkpoints")
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
        dashboard_session_s=dashboard_session_s,
        checkpoint_url=checkpoint_url,
        max_artifact_bytes=max_artifact_bytes,
        checkpoint_keep=checkpoint_keep,
        replay_keep=replay_keep,
        lease_s=lease_s,
        scheduling_policy=policy,
        compute_price_eur_per_kwh=compute_price_eur_per_kwh,
        owner_share=owner_share,
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
        anonymous_rate_limit_per_s=anonymous_rate_limit_per_s,
        anonymous_rate_limit_burst=anonymous_rate_limit_burst,
        body_timeout_s=body_timeout_s,
        ready_wait_s=ready_wait_s,
        max_clock_skew_s=max_clock_skew_s,
        hardware_challenges=hardware_challenges,
        verify_results=verify_results,
        spot_check_floor=spot_check_floor,
        hold_limit_s=hold_limit_s,
        clawback_window_s=clawback_window_s,
        bitcoin_network=bitcoin_network,
        credential_cache_s=credential_cache_s,
        stratum_url=stratum_url,
    )
    proxy = None
    if stratum_port is not None:
        assert pool_url is not None
        assert pool_user is not None
        proxy = _start_proxy(
            database_url=url,
            host=host,
            port=stratum_port,
            pool_url=pool_url,
            pool_user=pool_user,
            pool_password=pool_password,
            log_level=log_level,
            clock=clock,
        )
    try:
        _run(
            settings=settings,
            clock=(app_clock, clock),
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
        )
    finally:
        if proxy is not None:
            _stop_proxy(proxy)


def _start_proxy(
    *,
    database_url: str,
    host: str,
    port: int,
    pool_url: str,
    pool_user: str,
    pool_password: str,
    log_level: str,
    clock: str | None,
) -> subprocess.Popen[bytes]:
    """Start ``heatgrid stratum`` as a child (the pool password, the clock in its environment)."""
    command = [
        sys.executable, "-m", "heatgrid.cli.main", "stratum",
        "--listen", f"{host}:{port}", "--database-url", database_url,
        "--pool-url", pool_url, "--pool-user", pool_user, "--log-level", log_level,
    ]  # fmt: skip
    environment = {**os.environ, POOL_PASSWORD_ENV: pool_password}
    if clock is not None:
        environment[CLOCK_ENV] = clock
    return subprocess.Popen(command, env=environment)


def _stop_proxy(proxy: subprocess.Popen[bytes]) -> None:
    """Stop the proxy child: SIGTERM, then SIGKILL after 30 s."""
    if proxy.poll() is None:
        proxy.terminate()
        try:
            proxy.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


def _run(
    *,
    settings: Settings,
    clock: tuple[Callable[[], float], str | None],
    host: str,
    port: int,
    workers: int,
    log_level: str,
    proxy_headers: bool,
    forwarded_allow_ips: str,
) -> None:
    import uvicorn  # noqa: PLC0415 - keeps `heatgrid --help` fast

    from heatgrid.coordinator.app import SETTINGS_ENV, create_app  # noqa: PLC0415

    app_clock, clock_text = clock
    if workers > 1:  # each worker process builds its app from the environment
        os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
        os.environ["HEATGRID_SERVE_LOG_LEVEL"] = log_level
        if clock_text is not None:
            os.environ[CLOCK_ENV] = clock_text
        target: Any = "heatgrid.coordinator.app:app_from_environment"
    else:
        target = create_app(settings, app_clock)
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers,
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
