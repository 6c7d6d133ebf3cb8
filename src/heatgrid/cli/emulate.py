"""``heatgrid emulate``: run emulated hardware that real clients drive over the real protocol."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from typing import TYPE_CHECKING, Annotated

import typer

from heatgrid.cli._clock import clock_option, follow
from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from heatgrid.core.clock import ClockSpec
    from heatgrid.emulators.miner_server import MinerEmulator
    from heatgrid.emulators.stratum_miner import PoolFollower, StratumMinerClient

__all__ = ["register"]

_emulate = typer.Typer(
    help="Emulated hardware on loopback, driven over the real protocols.", no_args_is_help=True
)
_MAX_PORT = 65535


def _check_port(option: str, port: int) -> None:
    if not 0 <= port <= _MAX_PORT:
        raise InputError(f"{option} must be between 0 and {_MAX_PORT}, got {port}")


def _check_positive(option: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise InputError(f"{option} must be a number greater than 0, got {value}")


ClockText = Annotated[
    str | None,
    clock_option("as `heatgrid emulate room` prints it (instead of --start and --speed)."),
]
"""The ``--clock`` option (also ``HEATGRID_CLOCK``): see :mod:`heatgrid.core.clock`."""


def _clock_spec(
    clock: str | None, start_ts: Callable[[float], float], speed: float, *, own: bool
) -> ClockSpec:
    """Return the clock to run on: ``--clock``, else one starting now at ``--speed``.

    ``own`` is true when ``--start`` or ``--speed`` were given, which ``--clock`` replaces.
    """
    from heatgrid.core.clock import ClockSpec, parse_clock  # noqa: PLC0415

    if clock is not None:
        if own:
            raise InputError(
                "give --clock (or HEATGRID_CLOCK) or --start/--speed, not both: the shared "
                "clock already says when emulated time starts and how fast it runs"
            )
        return parse_clock(clock)
    _check_positive("--speed", speed)
    now_ts = time.time()
    return ClockSpec(start_ts=start_ts(now_ts), origin_ts=now_ts, speed=speed)


@_emulate.command("miner")
def miner(
    *,
    port: Annotated[
        int, typer.Option(help="TCP port of the GCMiner RPC (FluxOS uses 4028); 0: any free.")
    ] = 4028,
    web_port: Annotated[
        int, typer.Option(help="TCP port of the FluxOS web API (8080 on hardware); 0: any free.")
    ] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    max_power_w: Annotated[float, typer.Option(help="Highest power target [W].")] = 1200.0,
    min_power_w: Annotated[float, typer.Option(help="Lowest power target [W].")] = 300.0,
    efficiency_j_per_th: Annotated[float, typer.Option(help="Energy per terahash [J/TH].")] = 25.0,
    speed: Annotated[
        float, typer.Option(help="Emulated seconds per real second (1: real time).")
    ] = 1.0,
    stratum: Annotated[
        str | None,
        typer.Option(help="Also mine into this pool: stratum+tcp://HOST:PORT (hashlib shares)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Stratum user (device ID[.worker]); with --stratum.")
    ] = None,
    password: Annotated[
        str, typer.Option(help="Stratum password (the device's mining password).")
    ] = "x",
    mine_configured_pool: Annotated[
        bool,
        typer.Option(help="Mine into the first pool set through the API (pyasic send_config)."),
    ] = False,
    clock: ClockText = None,
) -> None:
    """Run an emulated Auradine FluxOS miner that pyasic reads and controls.

    With ``--stratum`` it also mines: real shares hashed with hashlib at the pool's (tiny)
    difficulty, never faster than its emulated hashrate would find them.
    """
    from heatgrid.emulators.miner_model import MinerParams  # noqa: PLC0415
    from heatgrid.emulators.miner_server import MinerEmulator  # noqa: PLC0415

    _check_port("--port", port)
    _check_port("--web-port", web_port)
    if port == web_port and port != 0:
        raise InputError(f"--port and --web-port must differ, both are {port}")
    _check_positive("--max-power-w", max_power_w)
    if not (math.isfinite(min_power_w) and min_power_w >= 0.0):
        raise InputError(f"--min-power-w must be a number >= 0, got {min_power_w}")
    if min_power_w > max_power_w:
        raise InputError(
            f"--min-power-w ({min_power_w:g}) must not exceed --max-power-w ({max_power_w:g})"
        )
    _check_positive("--efficiency-j-per-th", efficiency_j_per_th)
    spec = _clock_spec(clock, lambda now_ts: now_ts, speed, own=speed != 1.0)
    defaults = MinerParams()
    params = MinerParams(
        max_power_w=max_power_w,
        min_power_w=min_power_w,
        idle_power_w=min(defaults.idle_power_w, min_power_w),
        efficiency_j_per_th=efficiency_j_per_th,
    )
    emulated_clock = follow(spec)
    emulator = MinerEmulator(
        params,
        host=host,
        rpc_port=port,
        web_port=web_port,
        clock=emulated_clock,
    )
    client = _stratum_client(
        emulator, stratum, user, password, follow=mine_configured_pool, clock=emulated_clock
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(emulator, host, client))


def _stratum_client(
    emulator: MinerEmulator,
    url: str | None,
    user: str | None,
    password: str,
    *,
    follow: bool,
    clock: Callable[[], float],
) -> StratumMinerClient | PoolFollower | None:
    """Return the Stratum side of the emulated miner, paced on the emulated clock (or None)."""
    from heatgrid.emulators import miner_model  # noqa: PLC0415
    from heatgrid.emulators.stratum_miner import PoolFollower, StratumMinerClient  # noqa: PLC0415

    def hashrate_hs() -> float:
        return miner_model.hashrate_ths(emulator.state, emulator.params) * 1e12

    def configured_pool() -> tuple[str, str, str] | None:
        pools = emulator.device.view().pools
        return (pools[0].url, pools[0].user, pools[0].password) if pools else None

    if url is None:
        if user is not None:
            raise InputError("--user needs --stratum (the pool to mine into)")
        return PoolFollower(configured_pool, hashrate_hs, clock=clock) if follow else None
    if follow:
        raise InputError("--stratum and --mine-configured-pool exclude each other")
    if not user:
        raise InputError("--stratum needs --user (the device ID to mine as)")
    return StratumMinerClient(url, user, password, hashrate_hs, clock)


async def _serve(
    emulator: MinerEmulator, host: str, client: StratumMinerClient | PoolFollower | None = None
) -> None:
    try:
        await emulator.start()
    except OSError as error:
        raise InputError(f"cannot listen on {host}: {error.strerror or error}") from None
    typer.echo(
        f"emulated Auradine FluxOS miner: rpc={host}:{emulator.rpc_port} "
        f"web={host}:{emulator.web_port}"
    )
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    mining = None if client is None else asyncio.create_task(client.run())
    if client is not None:
        typer.echo(f"mining {client.description}")
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await emulator.serve_forever()
    finally:
        if mining is not None:
            mining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mining


@_emulate.command("room")
def room(
    *,
    model: Annotated[str, typer.Option(help="Room model: 1r1c or 2r2c.")] = "2r2c",
    preset: Annotated[
        str, typer.Option(help="House preset (UA and capacity unless given).")
    ] = "terraced",
    ua_w_per_k: Annotated[
        float | None, typer.Option(help="Heat-loss coefficient [W/K]; overrides the preset.")
    ] = None,
    capacity_j_per_k: Annotated[
        float | None, typer.Option(help="Total heat capacity [J/K]; overrides the preset.")
    ] = None,
    weather: Annotated[str, typer.Option(help="An EPW weather file, or a built-in city.")] = (
        "Berlin"
    ),
    start: Annotated[
        str | None, typer.Option(help="Emulated start, e.g. 2026-01-15 (UTC); default now.")
    ] = None,
    initial_temp_c: Annotated[float, typer.Option(help="Initial room temperature [°C].")] = 20.0,
    gains_w: Annotated[float, typer.Option(help="Constant other heat gains [W].")] = 0.0,
    broker: Annotated[str, typer.Option(help="MQTT broker host:port.")] = "127.0.0.1:1883",
    topic: Annotated[
        str, typer.Option(help="Topic of the room temperature (retained JSON).")
    ] = "heatgrid/room/temperature",
    miner: Annotated[
        list[str] | None,
        typer.Option(help="A FluxOS miner heating the room: host:rpc_port:web_port (repeat)."),
    ] = None,
    plug: Annotated[
        list[str] | None, typer.Option(help="Tasmota topic of a plug heating the room (repeat).")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Emulated seconds per real second (1: real time).")
    ] = 1.0,
    period_s: Annotated[
        float, typer.Option(help="Real seconds between published temperatures.")
    ] = 1.0,
    clock: ClockText = None,
) -> None:
    """Run an emulated room heated by miners and plugs, publishing its temperature on MQTT.

    The payload (retained) is ``{"room_temp_c", "outdoor_temp_c", "heat_power_w",
    "sample_ts"}``; an MQTT temperature sensor reads it with the key ``room_temp_c``.
    ``sample_ts`` is emulated time: with ``--start`` or ``--speed`` the room prints its clock as
    ``HEATGRID_CLOCK=...``; give the agent and the miners the same (``--clock`` or that
    environment variable) so that they agree on what "now" is.
    """
    from heatgrid.cli._emulate_room import (  # noqa: PLC0415
        RoomOptions,
        build_room,
        parse_broker,
        parse_miner,
        parse_start,
        serve,
    )
    from heatgrid.core.clock import CLOCK_ENV  # noqa: PLC0415
    from heatgrid.emulators.room_mqtt import RoomService  # noqa: PLC0415

    spec = _clock_spec(
        clock,
        lambda now_ts: parse_start(start, now_ts),
        speed,
        own=start is not None or speed != 1.0,
    )
    _check_positive("--period-s", period_s)
    if not topic or any(c in topic for c in "+#"):
        raise InputError(f"--topic must be a topic name without '+' or '#', got {topic!r}")
    for name in plug or []:
        if not name or any(c in name for c in "/+#"):
            raise InputError(f"--plug must be a Tasmota topic without '/', '+' or '#': {name!r}")
    host, port = parse_broker(broker)
    miners = [parse_miner(spec) for spec in miner or []]
    options = RoomOptions(
        model=model,
        preset=preset,
        ua_w_per_k=ua_w_per_k,
        capacity_j_per_k=capacity_j_per_k,
        weather=weather,
        start=None,
        initial_temp_c=initial_temp_c,
        gains_w=gains_w,
    )
    emulated = build_room(options, spec.emulated_ts(time.time()))
    typer.echo(f"emulated clock: {CLOCK_ENV}={spec.text()}")
    service = RoomService(
        emulated,
        clock=follow(spec),
        host=host,
        port=port,
        topic=topic,
        miners=miners,
        plugs=plug or [],
    )
    serve(service, period_s)


def register(app: typer.Typer) -> None:
    """Add the ``emulate`` command group to ``app``."""
    app.add_typer(_emulate, name="emulate")
