"""``heatgrid emulate room``'s wiring: options to a room model, weather, clock and MQTT shell."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import typer

from heatgrid.core.errors import InputError
from heatgrid.core.thermal import HOUSE_PRESETS, Room1R1C, Room2R2C, RoomModel
from heatgrid.emulators.room import OutdoorSeries, RoomEmulator
from heatgrid.emulators.room_mqtt import MinerAddress, RoomService
from heatgrid.weather import load_weather

__all__ = ["RoomOptions", "build_room", "parse_broker", "parse_miner", "parse_start", "serve"]

_MAX_PORT = 65535
_S_PER_H = 3600.0


@dataclass(frozen=True, kw_only=True)
class RoomOptions:
    """The room options of ``heatgrid emulate room``, as given."""

    model: str
    preset: str
    ua_w_per_k: float | None
    capacity_j_per_k: float | None
    weather: str
    start: str | None
    initial_temp_c: float
    gains_w: float


def _port(option: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise InputError(f"{option}: port {text!r} is not a number") from None
    if not 1 <= port <= _MAX_PORT:
        raise InputError(f"{option}: port must be between 1 and {_MAX_PORT}, got {port}")
    return port


def parse_broker(spec: str) -> tuple[str, int]:
    """Parse ``--broker host:port`` (port 1883 when omitted)."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = spec, "1883"
    if not host:
        raise InputError(f"--broker: expected host:port, got {spec!r}")
    return host, _port("--broker", port)


def parse_miner(spec: str) -> MinerAddress:
    """Parse ``--miner host:rpc_port:web_port``."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise InputError(f"--miner: expected host:rpc_port:web_port, got {spec!r}")
    return MinerAddress(parts[0], _port("--miner", parts[1]), _port("--miner", parts[2]))


def parse_start(text: str | None, now_ts: float) -> float:
    """Parse ``--start`` (ISO date or date-time, UTC unless it names a zone) [POSIX s]."""
    if text is None:
        return now_ts
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--start: expected a date such as 2026-01-15, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _model(options: RoomOptions) -> RoomModel:
    if options.model not in {"1r1c", "2r2c"}:
        raise InputError(f"--model must be 1r1c or 2r2c, got {options.model!r}")
    if options.preset not in HOUSE_PRESETS:
        raise InputError(
            f"--preset must be one of {', '.join(HOUSE_PRESETS)}, got {options.preset!r}"
        )
    preset = HOUSE_PRESETS[options.preset]
    ua = float(preset.ua_w_per_k) if options.ua_w_per_k is None else options.ua_w_per_k
    capacity = options.capacity_j_per_k
    capacity = float(preset.capacity_j_per_k) if capacity is None else capacity
    for option, value in (("--ua-w-per-k", ua), ("--capacity-j-per-k", capacity)):
        if not (math.isfinite(value) and value > 0.0):
            raise InputError(f"{option} must be a number greater than 0, got {value}")
    if options.model == "1r1c":
        return Room1R1C(ua_w_per_k=ua, capacity_j_per_k=capacity)
    if options.ua_w_per_k is None and options.capacity_j_per_k is None:
        return preset
    return Room2R2C.from_ua_and_time_constant(ua, capacity / ua / _S_PER_H)


def build_room(options: RoomOptions, now_ts: float) -> RoomEmulator:
    """Build the emulated room the options describe, starting at ``--start`` (or ``now_ts``)."""
    model = _model(options)
    start_ts = parse_start(options.start, now_ts)
    if not math.isfinite(options.initial_temp_c):
        raise InputError(f"--initial-temp-c must be a finite number, got {options.initial_temp_c}")
    if not math.isfinite(options.gains_w):
        raise InputError(f"--gains-w must be a finite number, got {options.gains_w}")
    year = datetime.fromtimestamp(start_ts, UTC).year
    try:
        weather = load_weather(options.weather, year=year)
    except InputError as error:
        raise InputError(f"--weather: {error}") from None
    # timestamps_ts[i] ends hour i and carries the temperature observed then.
    outdoor = OutdoorSeries(weather.outdoor_temp_c, float(weather.timestamps_ts[0]), 3600.0)
    return RoomEmulator(
        model,
        outdoor,
        now_ts=start_ts,
        initial_temp_c=options.initial_temp_c,
        gains_w=options.gains_w,
    )


def serve(service: RoomService, period_s: float) -> None:
    """Run the room service until interrupted (SIGINT or SIGTERM)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(service, period_s))


async def _serve(service: RoomService, period_s: float) -> None:
    try:
        await service.start()
    except aiomqtt.MqttError as error:
        raise InputError(
            f"--broker: cannot connect to {service.host}:{service.port}: {error}"
        ) from None
    typer.echo(
        f"emulated room: publishing on {service.topic!r} at {service.host}:{service.port}, "
        f"{service.room.room_temp_c:.2f} °C"
    )
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await service.run(period_s)
    finally:
        await service.stop()
