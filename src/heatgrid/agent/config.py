"""The agent's configuration: a TOML file with environment overrides, validated by pydantic.

An environment variable ``HEATGRID_AGENT__<SECTION>__<KEY>=<value>`` replaces (or adds) the key
``<key>`` of table ``[<section>]``; further ``__`` parts descend, and a number indexes the
``[[devices]]`` array: ``HEATGRID_AGENT__DEVICES__0__MAX_POWER_W=1200``. Names are matched in
lower case. The value is read as a TOML value when it is one (``21.5``, ``true``, ``"text"``,
``[1, 2]``), else taken as a string.

Any mistake (a missing or unknown key, a wrong type, an unknown device type) raises
:class:`~heatgrid.core.errors.InputError` whose message names the key, such as
``agent.toml: sensor.topic: Field required``. See ``docs/agent.toml.example``.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from heatgrid.agent.devices.settings import (
    DEVICE_TYPES,
    CpuDeviceSpec,
    DeviceSpec,
    MqttPlugDeviceSpec,
    NvmlDeviceSpec,
    PyasicDeviceSpec,
)
from heatgrid.agent.homeassistant import HeaterIdentity
from heatgrid.core.control import Mode, ThermostatConfig, WeeklySchedule, tune_pi
from heatgrid.core.defaults import DEFAULT_HOT_TOLERANCE_K
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import DEFAULT_HAND_BACK_AFTER_S, DEFAULT_PAUSE_AFTER_S
from heatgrid.protocol.v1 import CountryCode

__all__ = [
    "ENV_PREFIX",
    "AgentConfig",
    "CoordinatorSettings",
    "CpuDeviceSpec",
    "DeviceSpec",
    "ForecastSettings",
    "HeaterSettings",
    "HomeAssistantSettings",
    "JobsSettings",
    "MiningSettings",
    "MqttPlugDeviceSpec",
    "NvmlDeviceSpec",
    "PyasicDeviceSpec",
    "RoomSettings",
    "SensorSettings",
    "StateSettings",
    "ThermostatSettings",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "HEATGRID_AGENT__"
"""Prefix of the environment variables that override configuration keys."""

_PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
_NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
_Float = Annotated[float, Field(allow_inf_nan=False)]
_Port = Annotated[int, Field(ge=1, le=65535)]
_Name = Annotated[str, Field(min_length=1, max_length=100)]
_NOT_NODE_ID = re.compile(r"[^A-Za-z0-9_-]+")
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = re.compile(r"^[^+#]*[^+#/]$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CoordinatorSettings(_Section):
    """``[coordinator]``: where the agent dials out to.

    Attributes
    ----------
    url : str or None
        Base URL of the coordinator; None: the URL stored at enrollment.
    request_timeout_s : float
        Timeout of one HTTP request [s].
    heartbeat_interval_s : float
        Time between heartbeats until the coordinator says otherwise [s].
    backoff_initial_s, backoff_max_s : float
        First and largest wait before retrying an unreachable coordinator [s].
    """

    url: str | None = None
    request_timeout_s: _PositiveFloat = 10.0
    heartbeat_interval_s: _PositiveFloat = 60.0
    backoff_initial_s: _PositiveFloat = 1.0
    backoff_max_s: _PositiveFloat = 300.0


class StateSettings(_Section):
    """``[state]``: the local SQLite file (identity, controller state, unsent telemetry)."""

    path: Annotated[Path, Field(strict=False)] = Path("agent-state.sqlite3")


class HeaterSettings(_Section):
    """``[heater]``: how the heater introduces itself at enrollment.

    Attributes
    ----------
    name : str
        A name the owner recognises.
    model : str or None
        Maker and model, free text.
    country_code : str or None
        Country whose grid powers the heater (ISO 3166-1 alpha-2, ``GB`` for the UK, or
        ``EU``); job reports take the grid's carbon intensity from it.
    """

    name: _Name = "heater"
    model: str | None = None
    country_code: CountryCode | None = None


class SensorSettings(_Section):
    """``[sensor]``: the room temperature on an MQTT topic.

    Attributes
    ----------
    topic : str
        Topic carrying the temperature (required).
    host : str
        MQTT broker address.
    port : int
        MQTT broker TCP port.
    key : str or None
        JSON field holding the temperature; None: a plain-number payload.
    timestamp_key : str or None
        JSON field holding the measurement time [POSIX s].
    connect_timeout_s : float
        How long the agent waits for the broker at start before refusing to run [s].
    """

    type: Literal["mqtt"] = "mqtt"
    topic: Annotated[str, Field(min_length=1)]
    host: str = "127.0.0.1"
    port: _Port = 1883
    key: str | None = None
    timestamp_key: str | None = "sample_ts"
    connect_timeout_s: _PositiveFloat = 10.0


class ThermostatSettings(_Section):
    """``[thermostat]``: setpoints and the rules of :mod:`heatgrid.core.control`.

    ``schedule`` holds ``[weekday, minute_of_day, setpoint_c]`` change points (local time,
    ``utc_offset_h``); without it ``setpoint_c`` holds all week. Gains are tuned from
    ``[room]`` unless ``kp_w_per_k`` and ``ki_w_per_k_s`` are given.
    """

    mode: Literal["auto", "away", "off"] = "auto"
    setpoint_c: _Float = 21.0
    schedule: list[list[float]] | None = None
    utc_offset_h: _Float = 0.0
    away_setpoint_c: _Float = 16.0
    cold_tolerance_k: _NonNegativeFloat = 0.3
    hot_tolerance_k: _NonNegativeFloat = DEFAULT_HOT_TOLERANCE_K
    min_on_s: _NonNegativeFloat = 600.0
    min_off_s: _NonNegativeFloat = 600.0
    keep_alive_s: _PositiveFloat = 300.0
    max_age_s: _PositiveFloat = 300.0
    room_limit_c: _Float = 30.0
    device_limit_c: _Float = 90.0
    kp_w_per_k: _NonNegativeFloat | None = None
    ki_w_per_k_s: _NonNegativeFloat | None = None
    tick_s: _PositiveFloat = 10.0
    telemetry_interval_s: _PositiveFloat = 60.0
    grace_s: _PositiveFloat = 10.0


class RoomSettings(_Section):
    """``[room]``: the room's 1R1C parameters, for PI tuning and the heat window.

    Attributes
    ----------
    ua_w_per_k : float
        Heat-loss coefficient [W/K]; the heat window's until a fit is accepted.
    time_constant_h : float
        Time constant ``C / UA`` [h].
    learn : bool
        Learn UA and the time constant from the recorded samples, once a day (see
        :mod:`heatgrid.agent.room_model`); the heat window then uses the learned UA.
    history_days : float
        How many days of one-minute samples are kept and fitted [d].
    """

    ua_w_per_k: _PositiveFloat = 200.0
    time_constant_h: _PositiveFloat = 30.0
    learn: bool = True
    history_days: Annotated[float, Field(ge=1.0, le=60.0)] = 7.0


class ForecastSettings(_Section):
    """``[forecast]``: the heat window sent with each heartbeat.

    Attributes
    ----------
    horizon_h : float
        How far ahead it reaches [h].
    segment_s : float
        Length of one segment [s].
    outdoor_temp_c : float
        Outdoor temperature assumed until one is known [°C].
    outdoor_topic : str or None
        MQTT topic of an outdoor temperature (same broker and format as ``[sensor]``);
        its last value is held over the horizon (persistence).
    latitude_deg, longitude_deg : float or None
        The home's location [°], north and east positive; when given (both), the outdoor
        temperature comes from Open-Meteo's hourly forecast, refreshed at most hourly, with
        persistence as the fallback.
    internal_gains_w : float
        Heat the home gains on average from people, appliances and sun [W]; the heat window
        wants that much less (:mod:`heatgrid.core.forecast`).
    """

    horizon_h: Annotated[float, Field(gt=0.0, le=24.0)] = 6.0
    segment_s: Annotated[float, Field(ge=60.0, le=86_400.0)] = 3600.0
    outdoor_temp_c: _Float = 5.0
    outdoor_topic: str | None = None
    latitude_deg: Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)] | None = None
    longitude_deg: Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)] | None = None
    internal_gains_w: Annotated[float, Field(ge=0.0, le=1.0e5, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _both_coordinates(self) -> ForecastSettings:
        if (self.latitude_deg is None) != (self.longitude_deg is None):
            missing = "latitude_deg" if self.latitude_deg is None else "longitude_deg"
            raise ValueError(f"{missing} is missing: give both latitude_deg and longitude_deg")
        return self


class HomeAssistantSettings(_Section):
    """``[homeassistant]``: the heater as a Home Assistant climate entity, by MQTT discovery.

    Attributes
    ----------
    enabled : bool
        Publish the heater to Home Assistant and take its setpoint and mode commands.
    host : str or None
        MQTT broker address; None: ``sensor.host``.
    port : int or None
        MQTT broker TCP port; None: ``sensor.port``.
    discovery_prefix : str
        Home Assistant's discovery prefix.
    node_id : str or None
        Identifier of the heater on the broker (letters, digits, ``_``, ``-``); None: made
        from ``heater.name``. Give one per heater when several share a broker.
    name : str or None
        Device name shown in Home Assistant; None: ``heater.name``.
    min_setpoint_c, max_setpoint_c : float
        Setpoint range Home Assistant offers and the agent accepts [°C].
    setpoint_step_c : float
        Setpoint step of the thermostat card [°C].
    """

    enabled: bool = False
    host: Annotated[str, Field(min_length=1)] | None = None
    port: _Port | None = None
    discovery_prefix: str = "homeassistant"
    node_id: Annotated[str, Field(max_length=64)] | None = None
    name: _Name | None = None
    min_setpoint_c: _Float = 5.0
    max_setpoint_c: _Float = 28.0
    setpoint_step_c: _PositiveFloat = 0.5

    @field_validator("discovery_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError(
                f"must be a non-empty MQTT topic without '+', '#' or a trailing '/', got {value!r}"
            )
        return value

    @field_validator("node_id")
    @classmethod
    def _node_id_characters(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_ID.match(value):
            raise ValueError(f"must use only letters A-Z a-z, digits, '_' and '-', got {value!r}")
        return value

    @model_validator(mode="after")
    def _setpoint_range(self) -> HomeAssistantSettings:
        if self.min_setpoint_c >= self.max_setpoint_c:
            raise ValueError(
                f"min_setpoint_c ({self.min_setpoint_c:g}) must be below max_setpoint_c "
                f"({self.max_setpoint_c:g})"
            )
        return self


class MiningSettings(_Section):
    """``[mining]``: what mining pays, so the arbiter can rank it against other work."""

    hashprice_eur_per_th_day: _NonNegativeFloat
    efficiency_j_per_th: _PositiveFloat


class JobsSettings(_Section):
    """``[jobs]``: run customers' tasks on this heater's CPU or GPU (opt-in).

    Attributes
    ----------
    enabled : bool
        Claim and run tasks when the room wants heat; off by default.
    dir : Path
        State directory for jobs: fetched artifacts, each task's checkpoints, outputs and its
        private job directory while it runs.
    artifact_dir : Path or None
        A local directory of packed artifacts (``<sha256>.tar.gz``, as ``heatgrid jobs
        run-local`` and ``pack_job`` write them) to use before asking the coordinator.
    max_tasks : int
        Tasks at once (each holds one compute device).
    task_value_eur_per_kwh : float
        What a task is worth to the arbiter per kWh [EUR/kWh]; above mining's so tasks win.
    pause_after_s : float
        A task whose device has had no power this long (the room is warm) is asked to
        checkpoint and stop [s]; shorter gaps only freeze it.
    hand_back_after_s : float
        A task paused (or waiting for its first heat) this long is handed back to the
        coordinator, to resume from its checkpoint on another heater [s].
    progress_interval_s : float
        Time between progress reports (energy; they renew the lease) [s].
    pause_grace_s, term_grace_s : float
        After asking a task to pause: wait before SIGTERM [s]; after SIGTERM: wait before
        killing every process of its cgroup [s].
    core_power_w : float
        Power of one busy CPU core, for a task's energy estimate [W].
    checkpoint_chunk_bytes : int
        Checkpoints are uploaded in chunks of this size, resumably: after a dropped
        connection only the chunks the coordinator lacks are sent again [bytes].
    allow_private_inputs : bool
        Fetch a job's URL inputs from private, loopback or link-local addresses too; off by
        default, so that a job cannot read the home network through its heater.
    """

    enabled: bool = False
    dir: Annotated[Path, Field(strict=False)] = Path("agent-jobs")
    artifact_dir: Annotated[Path, Field(strict=False)] | None = None
    max_tasks: Annotated[int, Field(ge=1, le=16)] = 1
    task_value_eur_per_kwh: _NonNegativeFloat = 1.0
    pause_after_s: _NonNegativeFloat = DEFAULT_PAUSE_AFTER_S
    hand_back_after_s: _PositiveFloat = DEFAULT_HAND_BACK_AFTER_S
    progress_interval_s: _PositiveFloat = 30.0
    pause_grace_s: _PositiveFloat = 30.0
    term_grace_s: _PositiveFloat = 10.0
    core_power_w: _PositiveFloat = 14.0
    checkpoint_chunk_bytes: Annotated[int, Field(ge=4096, le=256 << 20)] = 4 << 20
    allow_private_inputs: bool = False


class AgentConfig(_Section):
    """The whole configuration file."""

    coordinator: CoordinatorSettings = CoordinatorSettings()
    state: StateSettings = StateSettings()
    heater: HeaterSettings = HeaterSettings()
    sensor: SensorSettings
    thermostat: ThermostatSettings = ThermostatSettings()
    room: RoomSettings = RoomSettings()
    forecast: ForecastSettings = ForecastSettings()
    homeassistant: HomeAssistantSettings = HomeAssistantSettings()
    mining: MiningSettings | None = None
    jobs: JobsSettings = JobsSettings()
    heat_only: bool = True
    """Let compute devices heat without paid work (no task, no mining) rather than stay cold."""
    devices: Annotated[list[DeviceSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_names(self) -> AgentConfig:
        names = [device.name for device in self.devices]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"devices[{index}].name {name!r} repeats an earlier device")
        return self

    @model_validator(mode="after")
    def _setpoints_below_the_interlock(self) -> AgentConfig:
        ha, room_limit_c = self.homeassistant, self.thermostat.room_limit_c
        if ha.max_setpoint_c >= room_limit_c:
            raise ValueError(
                f"homeassistant.max_setpoint_c ({ha.max_setpoint_c:g} °C) must be below "
                f"thermostat.room_limit_c ({room_limit_c:g} °C)"
            )
        return self

    @property
    def max_power_w(self) -> float:
        """Sum of the devices' highest powers [W]."""
        return sum(_max_power_w(device) for device in self.devices)

    @property
    def mode(self) -> Mode:
        """The user's mode as :class:`heatgrid.core.control.Mode`."""
        return Mode[self.thermostat.mode.upper()]

    def home_assistant_identity(self) -> HeaterIdentity:
        """Return who the heater is in Home Assistant (``[homeassistant]`` and ``[heater]``)."""
        ha, heater = self.homeassistant, self.heater
        node_id = ha.node_id or _node_id(heater.name)
        return HeaterIdentity(
            node_id=node_id,
            name=ha.name or heater.name,
            model=heater.model or "compute heater",
            min_setpoint_c=ha.min_setpoint_c,
            max_setpoint_c=ha.max_setpoint_c,
            setpoint_step_c=ha.setpoint_step_c,
            discovery_prefix=ha.discovery_prefix,
        )

    def home_assistant_broker(self) -> tuple[str, int]:
        """Return ``(host, port)`` of Home Assistant's MQTT broker (default: the sensor's)."""
        ha = self.homeassistant
        return ha.host or self.sensor.host, ha.port or self.sensor.port

    def thermostat_config(self) -> ThermostatConfig:
        """Return the :class:`ThermostatConfig` for this heater (raises InputError if bad)."""
        t, room = self.thermostat, self.room
        max_power_w = self.max_power_w
        gains = tune_pi(room.ua_w_per_k, room.time_constant_h * 3600.0, max_power_w)
        try:
            points = _points(t.schedule) if t.schedule else ((0, 0, t.setpoint_c),)
            schedule = WeeklySchedule(points, t.utc_offset_h)
        except InputError as error:
            raise InputError(f"thermostat.schedule: {error}") from None
        return ThermostatConfig(
            max_power_w=max_power_w,
            kp_w_per_k=_gain(t.kp_w_per_k, gains.kp_w_per_k),
            ki_w_per_k_s=_gain(t.ki_w_per_k_s, gains.ki_w_per_k_s),
            schedule=schedule,
            away_setpoint_c=t.away_setpoint_c,
            cold_tolerance_k=t.cold_tolerance_k,
            hot_tolerance_k=t.hot_tolerance_k,
            min_on_s=t.min_on_s,
            min_off_s=t.min_off_s,
            keep_alive_s=t.keep_alive_s,
            max_age_s=t.max_age_s,
            room_limit_c=t.room_limit_c,
            device_limit_c=t.device_limit_c,
        )


def _points(rows: list[list[float]]) -> tuple[tuple[int, int, float], ...]:
    points = []
    for index, row in enumerate(rows):
        if len(row) != 3 or not float(row[0]).is_integer() or not float(row[1]).is_integer():
            raise InputError(
                f"[{index}] must be [weekday, minute_of_day, setpoint_c] with whole numbers "
                f"for weekday and minute, got {row!r}"
            )
        points.append((int(row[0]), int(row[1]), float(row[2])))
    return tuple(points)


def _node_id(name: str) -> str:
    """``"Salon, 1er étage"`` → ``"Salon_1er_etage"``: accents dropped, the rest to ``_``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NOT_NODE_ID.sub("_", plain).strip("_") or "heater"


def _gain(configured: float | None, tuned: float) -> float:
    return tuned if configured is None else configured


def _max_power_w(device: DeviceSpec) -> float:
    if isinstance(device, MqttPlugDeviceSpec):
        return device.rated_power_w
    return device.max_power_w


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_override(data: dict[str, Any], path: list[str], value: Any, variable: str) -> None:
    node: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(f"{variable}: {part!r} is not an index of the list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise InputError(f"{variable}: {'.'.join(path[:depth])} is not a table")


def _with_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in variable[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise InputError(f"{variable}: empty key between '__' separators")
        _apply_override(data, path, _env_value(environ[variable]), variable)
    return data


def _located(error: ValidationError, source: str) -> InputError:
    lines = []
    for item in error.errors():
        key = ""
        for part in item["loc"]:
            if isinstance(part, int):
                key += f"[{part}]"
            elif part not in DEVICE_TYPES:
                key += f".{part}" if key else str(part)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "union_tag_invalid":
            message = (
                f"unknown device type {item['input'].get('type')!r} "
                f"(known: {', '.join(DEVICE_TYPES)})"
            )
        elif item["type"] == "union_tag_not_found":
            message = f"each device needs a 'type' (known: {', '.join(DEVICE_TYPES)})"
        lines.append(f"{source}: {key or '(top level)'}: {message}")
    return InputError("\n".join(lines))


def parse_config(
    text: str, *, source: str = "agent.toml", environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Parse and validate configuration text, with environment overrides.

    Parameters
    ----------
    text : str
        TOML text.
    source : str
        Name of the text in messages (the file name).
    environ : mapping, optional
        Environment variables; ``os.environ`` by default.

    Returns
    -------
    AgentConfig
        The validated configuration.

    Raises
    ------
    InputError
        If the TOML is malformed or a key is missing, unknown or of the wrong type; the message
        names the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{source}: not valid TOML: {error}") from None
    data = _with_environment(data, os.environ if environ is None else environ)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as error:
        raise _located(error, source) from None
    try:
        config.thermostat_config()
    except InputError as error:
        raise InputError(f"{source}: {error}") from None
    try:
        config.home_assistant_identity()
    except InputError as error:
        raise InputError(f"{source}: homeassistant.{error}") from None
    if not math.isfinite(config.max_power_w):
        raise InputError(f"{source}: devices: total max power is not finite")
    return config


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate the configuration file at ``path`` (see :func:`parse_config`).

    Raises
    ------
    InputError
        If the file cannot be read or its content is bad; the message names the file and key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read the configuration: {error.strerror}") from None
    return parse_config(text, source=str(path), environ=environ)
