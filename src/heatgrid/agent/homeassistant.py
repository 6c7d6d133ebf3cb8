"""The heater in Home Assistant through MQTT discovery.

What the heater does with the commands (:mod:`heatgrid.agent.daemon`): a target temperature set
in Home Assistant holds until the next change point of the weekly schedule (without a schedule,
until another is set), then the schedule takes over again, as on most smart thermostats; ``off``
puts every device in its safe state at once and ``heat`` resumes ``thermostat.mode``. Both
survive a restart (state file). The heater never waits for the broker to control the room.

Pure part: :func:`discovery_messages` builds the retained configuration messages Home Assistant
reads under ``<prefix>/<component>/<node_id>/<object_id>/config`` (prefix ``homeassistant``),
with the keys of Home Assistant's MQTT climate and sensor documentation:

* a ``climate`` entity: modes ``heat`` and ``off``, target temperature (command and state
  topics), current temperature, action (``heating``, ``idle``, ``off``);
* ``sensor`` entities: power [W], hash rate [TH/s], the job running, earnings [EUR], the
  heater's energy [kWh] (``device_class: energy``, ``state_class: total_increasing``, so Home
  Assistant's Energy dashboard counts it), and, from the coordinator's Stratum proxy, the
  accepted mining work [difficulty-1 shares] and the mining earnings credited [sat].

All entities share one ``device`` block, an ``origin`` block and the availability topic
(``online``/``offline``, ``offline`` also as the connection's last will). State and command
topics live under ``heatgrid/<node_id>/`` (:class:`HaTopics`).

I/O part: :class:`HomeAssistantBridge`. How the agent daemon uses it
(:func:`heatgrid.agent.open_devices.open_home_assistant` wires it from ``[homeassistant]``)::

    bridge = HomeAssistantBridge(
        identity, host=host, port=port,
        on_setpoint=set_setpoint,   # f(setpoint_c: float) -> None | Awaitable[None]
        on_mode=set_mode,           # f(mode: "heat" | "off") -> None | Awaitable[None]
    )
    await bridge.start()            # connects, publishes discovery and "online"
    ...                             # every telemetry interval:
    await bridge.publish_state(room_temp_c=..., action="heating", power_w=..., ...)
    ...
    await bridge.aclose()           # publishes "offline", disconnects

A setpoint or mode that Home Assistant publishes on a command topic is checked (a number in
``[min_setpoint_c, max_setpoint_c]``; ``heat`` or ``off``), handed to the callback, and, once the
callback returned without raising, echoed on the state topic so Home Assistant shows it (the
climate entity is not optimistic: it shows what the heater confirms). A bad command is ignored
with a logged warning; a callback that raises is logged and not echoed. Callbacks run on the
event loop, one command at a time, in the order the commands arrived.

The connection is re-established with backoff when the broker goes away; after each
(re)connection, and whenever Home Assistant announces ``online`` on ``<prefix>/status`` (its
birth message after a restart), the configuration and ``online`` are published again.
:meth:`HomeAssistantBridge.publish_state` raises
:class:`~heatgrid.agent._mqtt.MqttUnavailableError` while disconnected (states are not queued:
the next tick publishes fresh ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt

from heatgrid import __version__
from heatgrid.agent._mqtt import MqttSession, MqttUnavailableError, parse_reading
from heatgrid.core.errors import InputError

__all__ = [
    "Action",
    "HaTopics",
    "HeaterIdentity",
    "HomeAssistantBridge",
    "Mode",
    "MqttUnavailableError",
    "climate_config",
    "discovery_messages",
    "sensor_configs",
]

_log = logging.getLogger(__name__)
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = re.compile(r"^[^+#]+$")
Mode = Literal["heat", "off"]
Action = Literal["heating", "idle", "off"]
_MODES: tuple[Mode, ...] = ("heat", "off")


@dataclass(frozen=True, kw_only=True)
class HeaterIdentity:
    """Who the heater is in Home Assistant and what setpoints it accepts.

    Parameters
    ----------
    node_id : str
        Identifier of the heater (letters, digits, ``_`` and ``-``), unique per broker.
    name : str
        Device name shown in Home Assistant, not empty.
    model : str
        Device model shown in Home Assistant.
    sw_version : str
        Software version shown in Home Assistant.
    min_setpoint_c, max_setpoint_c : float
        Setpoint range offered and accepted [°C].
    setpoint_step_c : float
        Setpoint step of the thermostat card [°C], > 0.
    discovery_prefix : str
        Home Assistant's discovery prefix (no ``+`` or ``#``).
    """

    node_id: str
    name: str
    model: str = "compute heater"
    sw_version: str = __version__
    min_setpoint_c: float = 5.0
    max_setpoint_c: float = 28.0
    setpoint_step_c: float = 0.5
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        if not _NODE_ID.match(self.node_id):
            raise InputError(f"node_id must use only A-Z a-z 0-9 _ -, got {self.node_id!r}")
        if not self.name.strip():
            raise InputError("name must not be empty")
        if not _PREFIX.match(self.discovery_prefix) or self.discovery_prefix.endswith("/"):
            raise InputError(
                f"discovery_prefix must be a topic without '+', '#' or a trailing '/', "
                f"got {self.discovery_prefix!r}"
            )
        limits = (self.min_setpoint_c, self.max_setpoint_c)
        if not all(math.isfinite(v) for v in limits) or self.min_setpoint_c >= self.max_setpoint_c:
            raise InputError(
                f"min_setpoint_c must be below max_setpoint_c, both finite, got "
                f"{self.min_setpoint_c!r} and {self.max_setpoint_c!r}"
            )
        if not (math.isfinite(self.setpoint_step_c) and self.setpoint_step_c > 0.0):
            raise InputError(f"setpoint_step_c must be > 0, got {self.setpoint_step_c!r}")


@dataclass(frozen=True)
class HaTopics:
    """The state and command topics of one heater."""

    availability: str
    mode_command: str
    mode_state: str
    setpoint_command: str
    setpoint_state: str
    room_temp: str
    action: str
    power: str
    hashrate: str
    job: str
    earnings: str
    energy: str
    accepted_work: str
    mining_earnings: str

    @classmethod
    def for_node(cls, node_id: str) -> HaTopics:
        """Topics under ``heatgrid/<node_id>/``."""
        base = f"heatgrid/{node_id}"
        return cls(
            availability=f"{base}/availability",
            mode_command=f"{base}/mode/set",
            mode_state=f"{base}/mode",
            setpoint_command=f"{base}/setpoint/set",
            setpoint_state=f"{base}/setpoint",
            room_temp=f"{base}/room_temp",
            action=f"{base}/action",
            power=f"{base}/power",
            hashrate=f"{base}/hashrate",
            job=f"{base}/job",
            earnings=f"{base}/earnings",
            energy=f"{base}/energy",
            accepted_work=f"{base}/accepted_work",
            mining_earnings=f"{base}/mining_earnings",
        )


def _common(identity: HeaterIdentity, object_id: str, name: str | None) -> dict[str, Any]:
    topics = HaTopics.for_node(identity.node_id)
    return {
        "name": name,
        "unique_id": f"heatgrid_{identity.node_id}_{object_id}",
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"heatgrid_{identity.node_id}"],
            "name": identity.name,
            "manufacturer": "heatgrid",
            "model": identity.model,
            "sw_version": identity.sw_version,
        },
        "origin": {"name": "heatgrid", "sw_version": __version__},
    }


def climate_config(identity: HeaterIdentity) -> dict[str, Any]:
    """Return the ``climate`` entity's discovery payload (named as the device)."""
    topics = HaTopics.for_node(identity.node_id)
    return {
        **_common(identity, "thermostat", None),
        "modes": list(_MODES),
        "mode_command_topic": topics.mode_command,
        "mode_state_topic": topics.mode_state,
        "temperature_command_topic": topics.setpoint_command,
        "temperature_state_topic": topics.setpoint_state,
        "current_temperature_topic": topics.room_temp,
        "action_topic": topics.action,
        "min_temp": identity.min_setpoint_c,
        "max_temp": identity.max_setpoint_c,
        "temp_step": identity.setpoint_step_c,
        "temperature_unit": "C",
        "precision": 0.1,
        "optimistic": False,
        "qos": 1,
    }


def sensor_configs(identity: HeaterIdentity) -> dict[str, dict[str, Any]]:
    """Return the ``sensor`` entities' discovery payloads, by object id."""
    topics = HaTopics.for_node(identity.node_id)
    specs: dict[str, tuple[str, str, dict[str, Any]]] = {
        "power": (
            "Power",
            topics.power,
            {"unit_of_measurement": "W", "device_class": "power", "state_class": "measurement"},
        ),
        "hashrate": (
            "Hash rate",
            topics.hashrate,
            {"unit_of_measurement": "TH/s", "state_class": "measurement", "icon": "mdi:pickaxe"},
        ),
        "job": ("Job", topics.job, {"icon": "mdi:cog"}),
        "earnings": (
            "Earnings",
            topics.earnings,
            {"unit_of_measurement": "EUR", "device_class": "monetary", "state_class": "total"},
        ),
        "energy": (
            "Energy",
            topics.energy,
            {
                "unit_of_measurement": "kWh",
                "device_class": "energy",
                "state_class": "total_increasing",
            },
        ),
        "accepted_work": (
            "Accepted mining work",
            topics.accepted_work,
            {
                "unit_of_measurement": "diff-1 shares",
                "state_class": "total_increasing",
                "icon": "mdi:pickaxe",
            },
        ),
        "mining_earnings": (
            "Mining earnings",
            topics.mining_earnings,
            {
                "unit_of_measurement": "sat",
                "state_class": "total_increasing",
                "icon": "mdi:bitcoin",
            },
        ),
    }
    return {
        object_id: {**_common(identity, object_id, name), "state_topic": topic, **extra}
        for object_id, (name, topic, extra) in specs.items()
    }


def discovery_messages(identity: HeaterIdentity) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(config topic, payload)`` to publish retained for Home Assistant discovery."""
    prefix, node = identity.discovery_prefix, identity.node_id
    messages = [(f"{prefix}/climate/{node}/thermostat/config", climate_config(identity))]
    for object_id, config in sensor_configs(identity).items():
        messages.append((f"{prefix}/sensor/{node}/{object_id}/config", config))
    return messages


class HomeAssistantBridge:
    """Publishes the heater to Home Assistant and takes its setpoint and mode commands.

    Parameters
    ----------
    identity : HeaterIdentity
        The heater.
    host : str
        MQTT broker address.
    port : int
        MQTT broker TCP port.
    on_setpoint : callable
        Called with an accepted setpoint [°C]; a plain function or a coroutine function.
    on_mode : callable
        Called with ``"heat"`` or ``"off"``; a plain function or a coroutine function.
    retry_s : float
        First delay between connection attempts [s] (doubles up to 30 s).
    """

    def __init__(
        self,
        identity: HeaterIdentity,
        *,
        host: str,
        port: int,
        on_setpoint: Callable[[float], Awaitable[None] | None],
        on_mode: Callable[[Mode], Awaitable[None] | None],
        retry_s: float = 0.5,
    ) -> None:
        self.identity = identity
        self.topics = HaTopics.for_node(identity.node_id)
        self._on_setpoint = on_setpoint
        self._on_mode = on_mode
        self._commands: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session = MqttSession(
            host,
            port,
            will=aiomqtt.Will(self.topics.availability, "offline", qos=1, retain=True),
            on_connect=self._announce,
            retry_s=retry_s,
        )

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self._session.connected

    async def start(self, *, timeout_s: float = 10.0) -> None:
        """Connect, publish discovery and ``online``, and follow the command topics.

        Raises
        ------
        MqttUnavailableError
            If the broker was not reached within ``timeout_s`` [s] (the bridge keeps trying;
            call :meth:`aclose` to stop it).
        """
        if self._worker is None:
            self._worker = asyncio.create_task(self._run_commands(), name="home assistant")
        session = self._session
        await session.subscribe(self.topics.setpoint_command, self._enqueue("setpoint"))
        await session.subscribe(self.topics.mode_command, self._enqueue("mode"))
        await session.subscribe(f"{self.identity.discovery_prefix}/status", self._ha_status)
        await session.start(timeout_s=timeout_s)

    async def aclose(self) -> None:
        """Finish the commands received, publish ``offline`` and disconnect."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await self._commands.join()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._session.connected:
            with contextlib.suppress(MqttUnavailableError):
                await self._session.publish(self.topics.availability, "offline", retain=True)
        await self._session.aclose()

    async def publish_state(
        self,
        *,
        room_temp_c: float | None = None,
        setpoint_c: float | None = None,
        mode: Mode | None = None,
        action: Action | None = None,
        power_w: float | None = None,
        hashrate_ths: float | None = None,
        job: str | None = None,
        earnings_eur: float | None = None,
        energy_kwh: float | None = None,
        accepted_work_diff1: float | None = None,
        mining_earnings_sat: int | None = None,
    ) -> None:
        """Publish (retained) the states given; None, or a non-finite number, leaves one as it was.

        Parameters
        ----------
        room_temp_c : float, optional
            Room air temperature [°C] (the climate's current temperature).
        setpoint_c : float, optional
            Setpoint in force [°C] (the climate's target temperature).
        mode : {"heat", "off"}, optional
            Mode in force.
        action : {"heating", "idle", "off"}, optional
            What the heater does now.
        power_w : float, optional
            Electric power drawn, all of it heat [W].
        hashrate_ths : float, optional
            Hash rate [TH/s].
        job : str, optional
            What the heat computes (``"bitcoin"``, a job's name, ``"idle"``).
        earnings_eur : float, optional
            What the heater has earned [EUR].
        energy_kwh : float, optional
            Electric energy the heater has drawn, all of it heat, since it was set up [kWh].
        accepted_work_diff1 : float, optional
            Mining work the coordinator's proxy accepted [difficulty-1 shares].
        mining_earnings_sat : int, optional
            Mining earnings credited to the owner for this heater, after fees [sat].

        Raises
        ------
        MqttUnavailableError
            While the broker cannot be reached.
        """
        t = self.topics
        numbers = (
            (t.room_temp, room_temp_c, 2),
            (t.setpoint_state, setpoint_c, 2),
            (t.power, power_w, 1),
            (t.hashrate, hashrate_ths, 3),
            (t.earnings, earnings_eur, 4),
            (t.energy, energy_kwh, 3),
        )
        for topic, value, digits in numbers:
            if value is not None and math.isfinite(value):
                await self._session.publish(topic, f"{round(value, digits)}", retain=True)
        counts = ((t.accepted_work, accepted_work_diff1), (t.mining_earnings, mining_earnings_sat))
        for topic, count in counts:
            if count is not None and math.isfinite(count):
                await self._session.publish(topic, f"{round(count)}", retain=True)
        for topic, text in ((t.mode_state, mode), (t.action, action), (t.job, job)):
            if text is not None:
                await self._session.publish(topic, text, retain=True)

    async def _announce(self) -> None:
        for topic, payload in discovery_messages(self.identity):
            await self._session.publish(topic, json.dumps(payload), retain=True)
        await self._session.publish(self.topics.availability, "online", retain=True)

    def _ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            self._commands.put_nowait(("announce", ""))

    def _enqueue(self, kind: str) -> Callable[[str, bytes], None]:
        def handler(_topic: str, payload: bytes) -> None:
            self._commands.put_nowait((kind, payload.decode(errors="replace").strip()))

        return handler

    async def _run_commands(self) -> None:
        while True:
            kind, text = await self._commands.get()
            try:
                await self._apply(kind, text)
            except Exception:
                _log.exception("Home Assistant: the %s command %r failed", kind, text[:40])
            finally:
                self._commands.task_done()

    async def _apply(self, kind: str, text: str) -> None:
        if kind == "announce":
            await self._announce()
        elif kind == "setpoint":
            setpoint_c = self._checked_setpoint_c(text)
            if setpoint_c is not None:
                await _call(self._on_setpoint, setpoint_c)
                await self.publish_state(setpoint_c=setpoint_c)
        elif text in _MODES:
            mode: Mode = "heat" if text == "heat" else "off"
            await _call(self._on_mode, mode)
            await self.publish_state(mode=mode)
        else:
            _log.warning(
                "ignored mode on %s: %r is not one of %s",
                self.topics.mode_command,
                text[:40],
                _MODES,
            )

    def _checked_setpoint_c(self, text: str) -> float | None:
        topic = self.topics.setpoint_command
        low_c, high_c = self.identity.min_setpoint_c, self.identity.max_setpoint_c
        try:
            setpoint_c = parse_reading(text.encode())
        except ValueError as error:
            _log.warning("ignored setpoint on %s: %s", topic, error)
            return None
        if not low_c <= setpoint_c <= high_c:
            _log.warning(
                "ignored setpoint on %s: %g °C is outside [%g, %g] °C",
                topic,
                setpoint_c,
                low_c,
                high_c,
            )
            return None
        return setpoint_c


async def _call(callback: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    result = callback(value)
    if inspect.isawaitable(result):
        await result
