"""``heatgrid agent``: run a heater's agent; ``enroll``: join a coordinator; ``leave``: leave it.

A bad configuration (a missing or wrong key, an unknown device type, a device or broker that
cannot be reached) ends with a message naming the key and exit status 2, before any device heats.
SIGTERM or SIGINT stop the agent: every device is put in its safe state within
``thermostat.grace_s``; with ``[jobs]`` each running task first checkpoints (its checkpoint is
uploaded and the task handed back), within ``jobs.pause_grace_s + jobs.term_grace_s`` more.

With ``forecast.latitude_deg`` and ``forecast.longitude_deg`` the heat window follows
Open-Meteo's hourly temperature forecast (:func:`weather_forecast`), cached next to the state
file; the daemon asks it off the event loop and falls back to persistence when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from heatgrid.cli._clock import clock_option, follow
from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from heatgrid.agent.client import CoordinatorClient
    from heatgrid.agent.config import AgentConfig
    from heatgrid.agent.daemon import AgentDaemon
    from heatgrid.agent.devices.base import HeatDevice
    from heatgrid.agent.forecast import HourlyOutdoorForecast, HourlySeries
    from heatgrid.agent.state_store import StateStore
    from heatgrid.agent.workload import JobWorkload
    from heatgrid.core.clock import ClockSpec

__all__ = ["register", "weather_forecast"]

_FORECAST_URL = "https://api.open-meteo.com/v1/forecast"

_agent = typer.Typer(
    name="agent",
    help="Run a heater's agent (heatgrid agent --config agent.toml), enroll it, or leave.",
    invoke_without_command=True,
    no_args_is_help=False,
)
_log = logging.getLogger("heatgrid.agent")

ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The agent's TOML configuration (see docs/agent.toml.example)."
    ),
]


@contextlib.contextmanager
def weather_forecast(
    config: AgentConfig, *, forecast_url: str = _FORECAST_URL
) -> Iterator[HourlyOutdoorForecast | None]:
    """Yield the daemon's ``outdoor_forecast`` hook on Open-Meteo, or None without a location.

    Parameters
    ----------
    config : AgentConfig
        ``forecast.latitude_deg``/``longitude_deg`` [°] and ``forecast.horizon_h`` [h]; the
        cache (answers kept for an hour) lives beside ``state.path``.
    forecast_url : str
        Open-Meteo's forecast endpoint (a self-hosted instance, or a test server).

    Yields
    ------
    HourlyOutdoorForecast or None
        The hook (it blocks while fetching: call it off the event loop).
    """
    from heatgrid.agent.forecast import HourlyOutdoorForecast  # noqa: PLC0415
    from heatgrid.weather.openmeteo import OpenMeteoClient  # noqa: PLC0415

    settings = config.forecast
    if settings.latitude_deg is None or settings.longitude_deg is None:
        yield None
        return
    latitude_deg, longitude_deg = settings.latitude_deg, settings.longitude_deg
    days = math.ceil(settings.horizon_h / 24.0) + 1  # from today 00:00 UTC past the horizon
    cache_dir = config.state.path.parent / "weather-cache"
    with OpenMeteoClient(
        cache_dir=cache_dir, forecast_max_age_s=3600.0, retries=2, forecast_url=forecast_url
    ) as client:

        def fetch() -> HourlySeries:
            weather = client.forecast(latitude_deg, longitude_deg, days=days)
            return weather.timestamps_ts, weather.outdoor_temp_c

        yield HourlyOutdoorForecast(fetch, refresh_s=3600.0)


async def _run(config_path: Path, spec: ClockSpec | None) -> int:
    from heatgrid.agent.client import CoordinatorClient  # noqa: PLC0415 - keeps --help fast
    from heatgrid.agent.config import load_config  # noqa: PLC0415
    from heatgrid.agent.daemon import AgentDaemon  # noqa: PLC0415
    from heatgrid.agent.open_devices import (  # noqa: PLC0415
        open_devices,
        open_home_assistant,
        open_sensor,
    )
    from heatgrid.agent.state_store import StateStore  # noqa: PLC0415

    config = load_config(config_path)
    clock = follow(spec)
    async with contextlib.AsyncExitStack() as stack:
        store = stack.enter_context(StateStore(config.state.path))
        forecast = stack.enter_context(weather_forecast(config))
        devices = await open_devices(config, clock)
        for device in devices:
            stack.push_async_callback(device.aclose)
        sensor = await open_sensor(config.sensor, clock)
        stack.push_async_callback(sensor.aclose)
        outdoor_latest = None
        if config.forecast.outdoor_topic is not None:
            outdoor = await open_sensor(config.sensor, clock, topic=config.forecast.outdoor_topic)
            stack.push_async_callback(outdoor.aclose)

            def outdoor_latest() -> float | None:
                reading = outdoor.latest
                return None if reading is None else reading.room_temp_c

        identity = store.identity
        url = config.coordinator.url or (identity.url if identity else None)
        client = None
        if url is None or identity is None:
            _log.warning("not enrolled (heatgrid agent enroll): controlling the room locally only")
        else:
            client = CoordinatorClient(url, timeout_s=config.coordinator.request_timeout_s)
            stack.push_async_callback(client.aclose)
        daemon = AgentDaemon(
            config,
            devices=devices,
            workload=(
                workload := _job_workload(config, client, store, devices, clock=clock, spec=spec)
            ),
            room=lambda: sensor.latest,
            store=store,
            client=client,
            clock=clock,
            speed=1.0 if spec is None else spec.speed,
            outdoor=outdoor_latest,
            outdoor_forecast=forecast,
        )
        daemon_has_jobs = workload is not None
        bridge = await open_home_assistant(config, daemon)
        if bridge is not None:
            stack.push_async_callback(bridge.aclose)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        _log.info("agent running with %d device(s)", len(devices))
        run = asyncio.create_task(daemon.run(stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([run, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if run.done():  # it failed: run() has already put the devices in their safe state
            _log.error("the agent stopped on an error", exc_info=run.exception())
            return 1
        return await _stopped(run, daemon, _stop_grace_s(config, jobs=daemon_has_jobs))
    return 0


async def _stopped(run: asyncio.Task[None], daemon: AgentDaemon, grace_s: float) -> int:
    """Wait ``grace_s`` [s] for the stopping daemon, then force the safe state; exit status."""
    try:
        async with asyncio.timeout(grace_s):
            await run
    except TimeoutError:
        _log.error("the daemon did not stop within %.0f s; forcing the safe state", grace_s)
        async with asyncio.timeout(grace_s):
            safe = await daemon.safe_all()
        if not safe:
            return 1
    _log.info("stopped; every device is in its safe state")
    return 0


def _stop_grace_s(config: AgentConfig, *, jobs: bool) -> float:
    """Return how long a stopping agent waits for its daemon [s].

    ``thermostat.grace_s``, plus, with tasks, the time a task is given to checkpoint and stop
    (``jobs.pause_grace_s + jobs.term_grace_s``): its checkpoint is uploaded before the exit.
    """
    extra_s = config.jobs.pause_grace_s + config.jobs.term_grace_s if jobs else 0.0
    return config.thermostat.grace_s + extra_s


def _job_workload(
    config: AgentConfig,
    client: CoordinatorClient | None,
    store: StateStore,
    devices: Sequence[HeatDevice],
    *,
    clock: Callable[[], float],
    spec: ClockSpec | None,
) -> JobWorkload | None:
    """Return the runner's host side for ``[jobs]`` (None when off)."""
    if not config.jobs.enabled:
        return None
    if client is None:
        _log.warning("[jobs] is enabled, but without a coordinator no task can be claimed")
        return None
    from heatgrid.agent.workload import JobWorkload  # noqa: PLC0415

    def identity() -> tuple[str, str] | None:
        known = store.identity
        return None if known is None else (known.device_id, known.device_token)

    config.jobs.dir.mkdir(parents=True, exist_ok=True)
    return JobWorkload(
        config.jobs,
        client=client,
        identity=identity,
        devices={device.name: device for device in devices},
        clock=clock,
        clock_speed=1.0 if spec is None else spec.speed,
    )


@_agent.callback()
def _agent_main(
    ctx: typer.Context,
    config: ConfigPath = Path("agent.toml"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    clock: Annotated[
        str | None,
        clock_option(
            "as `heatgrid emulate room` prints it, for emulated rooms on a past date or sped "
            "up. Default: the wall clock."
        ),
    ] = None,
) -> None:
    """Run the agent: keep the room at its setpoint and make the heat pay."""
    if ctx.invoked_subcommand is not None:
        return
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise InputError(f"--log-level: unknown level {log_level!r}")
    # force: pyasic installs a root handler when imported, which would make this a no-op.
    from heatgrid.coordinator.logs import CurrentStderrHandler  # noqa: PLC0415

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[CurrentStderrHandler()],
        force=True,
    )
    from heatgrid.core.clock import parse_clock  # noqa: PLC0415

    spec = None if clock is None else parse_clock(clock)  # refused before anything starts
    status = asyncio.run(_run(config, spec))
    raise typer.Exit(status)


async def _enroll(config_path: Path, code: str, url: str | None) -> str:
    from heatgrid.agent.client import CoordinatorClient, CoordinatorUnavailableError  # noqa: PLC0415
    from heatgrid.agent.config import load_config  # noqa: PLC0415
    from heatgrid.agent.enroll import enroll  # noqa: PLC0415
    from heatgrid.agent.state_store import StateStore  # noqa: PLC0415

    config = load_config(config_path)
    base_url = url or config.coordinator.url
    if base_url is None:
        raise InputError("--url: give the coordinator's URL (or coordinator.url in the config)")
    with StateStore(config.state.path) as store:
        async with CoordinatorClient(
            base_url, timeout_s=config.coordinator.request_timeout_s
        ) as client:
            try:
                identity = await enroll(config, store, client, code)
            except CoordinatorUnavailableError as error:
                raise InputError(f"--url: the coordinator cannot be reached: {error}") from None
    return identity.device_id


@_agent.command("enroll")
def enroll_command(
    code: Annotated[str, typer.Option("--code", help="The owner's one-time enrollment code.")],
    url: Annotated[
        str | None, typer.Option("--url", help="The coordinator's URL (default: coordinator.url).")
    ] = None,
    config: ConfigPath = Path("agent.toml"),
) -> None:
    """Enroll this heater with a one-time code; the token is kept in the state file (0600)."""
    device_id = asyncio.run(_enroll(config, code, url))
    typer.echo(f"enrolled as device {device_id}")


async def _leave(config_path: Path) -> int:
    from heatgrid.agent.config import load_config  # noqa: PLC0415 - keeps --help fast
    from heatgrid.agent.leave import leave  # noqa: PLC0415
    from heatgrid.agent.state_store import StateStore  # noqa: PLC0415

    config = load_config(config_path)
    with StateStore(config.state.path) as store:
        outcome = await leave(config, store)
    for name in outcome.restored:
        typer.echo(f"{name}: mines at its owner's pool again")
    for failure in outcome.failures:
        typer.echo(failure, err=True)
    if outcome.device_id is not None:
        typer.echo(f"left the coordinator: device {outcome.device_id} is forgotten here")
    else:
        typer.echo("not enrolled: no coordinator to leave")
    if outcome.failures:
        typer.echo(
            "those miners' pools are kept: the agent puts them back when it next reaches them, "
            "or run `heatgrid agent leave` again",
            err=True,
        )
        return 1
    return 0


@_agent.command("leave")
def leave_command(config: ConfigPath = Path("agent.toml")) -> None:
    """Leave the coordinator: miners get their owner's pools back, the identity is forgotten.

    Each miner is set back to the pools it had before the agent pointed it at the coordinator's
    proxy. Exit status 1 if a miner could not be set back yet.
    """
    raise typer.Exit(asyncio.run(_leave(config)))


def register(app: typer.Typer) -> None:
    """Add the ``agent`` command group to ``app``."""
    app.add_typer(_agent, name="agent")
