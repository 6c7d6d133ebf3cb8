"""An emulated Tasmota smart plug with a power meter, switching a resistive heating element.

It speaks Tasmota's MQTT conventions (``FullTopic %prefix%/%topic%/``) for topic ``<name>``:

* ``cmnd/<name>/POWER`` with ``ON``/``OFF``/``TOGGLE`` (or ``1``/``0``/``2``) switches the relay;
  an empty payload asks for the state. Each answer goes to ``stat/<name>/RESULT``
  (``{"POWER": "ON"}``) and ``stat/<name>/POWER`` (``ON``).
* ``cmnd/<name>/STATUS`` with ``10`` (or ``8``, its older number) answers the power meter on
  ``stat/<name>/STATUS10`` (``{"StatusSNS": {"Time": …, "ENERGY": {…}}}``).
* ``cmnd/<name>/STATE`` answers ``{"Time": …, "POWER": …}`` on ``tele/<name>/STATE``.
* Telemetry: ``tele/<name>/SENSOR`` (``{"Time": …, "ENERGY": {"Total": kWh, "Power": W, …}}``)
  every ``telemetry_period_s`` (Tasmota's ``TelePeriod``, 300 s by default) of the injected
  clock, and at once when the power changes (as ``PowerDelta`` makes a real plug do).
* ``tele/<name>/LWT``: ``Online`` (retained) while connected, ``Offline`` as the last will.
* Other commands answer ``{"Command": "Unknown"}`` on ``stat/<name>/RESULT``.

The element is ideal: it draws its rated power while the relay is on. The energy total is
reported with 5 decimals (``EnergyRes 5``), and ``Time`` is UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from heatgrid.core.errors import InputError, require_non_negative, require_positive
from heatgrid.emulators._service import AsyncService

__all__ = ["PlugMeter", "TasmotaPlugEmulator"]

_J_PER_KWH = 3.6e6
_VOLTAGE_V = 230.0
_ON_WORDS = frozenset({"ON", "1", "TRUE"})
_OFF_WORDS = frozenset({"OFF", "0", "FALSE"})
_TOGGLE_WORDS = frozenset({"TOGGLE", "2"})


@dataclass(kw_only=True)
class PlugMeter:
    """The plug's relay and power meter, moved along by the caller's clock.

    Parameters
    ----------
    rated_power_w : float
        Power of the element while the relay is on [W], > 0.
    now_ts : float
        Time of the state [POSIX s].
    on : bool
        Relay state.
    energy_j : float
        Energy counted since the meter was reset [J].
    """

    rated_power_w: float
    now_ts: float
    on: bool = False
    energy_j: float = 0.0
    start_ts: float = field(init=False)

    def __post_init__(self) -> None:
        require_positive("rated_power_w", self.rated_power_w)
        require_non_negative("energy_j", self.energy_j)
        self.start_ts = self.now_ts

    @property
    def power_w(self) -> float:
        """Power drawn now [W]."""
        return self.rated_power_w if self.on else 0.0

    def advance(self, now_ts: float) -> None:
        """Count the energy drawn up to ``now_ts`` [POSIX s] (earlier times are ignored)."""
        if now_ts > self.now_ts:
            self.energy_j += self.power_w * (now_ts - self.now_ts)
            self.now_ts = now_ts

    def switch(self, on: bool, now_ts: float) -> None:
        """Set the relay at ``now_ts`` [POSIX s]."""
        self.advance(now_ts)
        self.on = on

    def energy_payload(self) -> dict[str, object]:
        """Tasmota's ``ENERGY`` object for the present state."""
        power_w = round(self.power_w)
        return {
            "TotalStartTime": _tasmota_time(self.start_ts),
            "Total": round(self.energy_j / _J_PER_KWH, 5),
            "Power": power_w,
            "ApparentPower": power_w,
            "ReactivePower": 0,
            "Factor": 1.0 if self.on else 0.0,
            "Voltage": round(_VOLTAGE_V),
            "Current": round(self.power_w / _VOLTAGE_V, 3),
        }


def _tasmota_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class TasmotaPlugEmulator(AsyncService):
    """An emulated Tasmota plug on an MQTT broker.

    Parameters
    ----------
    name : str
        Tasmota ``Topic`` of the plug (no ``/``, ``+`` or ``#``).
    host : str
        Broker address.
    port : int
        Broker TCP port.
    rated_power_w : float
        Power of the element it switches [W], > 0.
    clock : callable
        Returns the present time [POSIX s]; the emulator never sleeps on it.
    telemetry_period_s : float
        Emulated seconds between ``tele/<name>/SENSOR`` messages [s], > 0.
    poll_s : float
        Real seconds between checks of the clock for due telemetry [s], > 0.
    """

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        rated_power_w: float,
        clock: Callable[[], float] = time.time,
        telemetry_period_s: float = 300.0,
        poll_s: float = 0.1,
    ) -> None:
        if not name or any(c in name for c in "/+#"):
            raise InputError(f"plug name must be non-empty without '/', '+' or '#', got {name!r}")
        self.name = name
        self.host = host
        self.port = port
        self._clock = clock
        self.telemetry_period_s = require_positive("telemetry_period_s", telemetry_period_s)
        self._poll_s = require_positive("poll_s", poll_s)
        self.meter = PlugMeter(rated_power_w=rated_power_w, now_ts=clock())
        self._next_telemetry_ts = self.meter.now_ts + self.telemetry_period_s
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def power_w(self) -> float:
        """Power the element draws now [W] (the emulator's truth)."""
        return self.meter.power_w

    async def start(self) -> None:
        """Connect, announce ``Online`` and start answering commands."""
        lwt = f"tele/{self.name}/LWT"
        stack = contextlib.AsyncExitStack()
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"tasmota-{self.name}",
            will=aiomqtt.Will(lwt, "Offline", qos=1, retain=True),
        )
        await stack.enter_async_context(client)
        self._stack, self._client = stack, client
        await client.subscribe(f"cmnd/{self.name}/#", qos=1)
        await client.publish(lwt, "Online", qos=1, retain=True)
        await self._publish_power_state()
        await self.publish_telemetry()
        self._tasks = [
            asyncio.create_task(self._answer_commands()),
            asyncio.create_task(self._telemetry_loop()),
        ]

    async def stop(self) -> None:
        """Announce ``Offline`` and disconnect (the plug goes away; the relay stays as it is)."""
        while pending := [task for task in self._tasks if not task.done()]:
            for task in pending:  # again until they end: a cancel may be swallowed (3.11)
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        for task in self._tasks:
            if not task.cancelled():
                with contextlib.suppress(aiomqtt.MqttError):
                    task.result()
        self._tasks = []
        client, stack = self._client, self._stack
        self._client = self._stack = None
        if client is not None and stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(f"tele/{self.name}/LWT", "Offline", qos=1, retain=True)
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    async def publish_telemetry(self) -> None:
        """Publish ``tele/<name>/SENSOR`` for the present and schedule the next one."""
        now_ts = self._clock()
        self.meter.advance(now_ts)
        self._next_telemetry_ts = now_ts + self.telemetry_period_s
        payload = {"Time": _tasmota_time(now_ts), "ENERGY": self.meter.energy_payload()}
        await self._publish(f"tele/{self.name}/SENSOR", json.dumps(payload))

    async def _publish(self, topic: str, payload: str) -> None:
        if self._client is not None:
            await self._client.publish(topic, payload, qos=1)

    async def _publish_power_state(self) -> None:
        word = "ON" if self.meter.on else "OFF"
        await self._publish(f"stat/{self.name}/RESULT", json.dumps({"POWER": word}))
        await self._publish(f"stat/{self.name}/POWER", word)

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            if self._clock() >= self._next_telemetry_ts:
                await self.publish_telemetry()

    async def _answer_commands(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            command = message.topic.value.rsplit("/", 1)[-1].upper()
            raw = message.payload
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
            await self._answer(command, text.strip().upper())

    async def _answer(self, command: str, argument: str) -> None:
        now_ts = self._clock()
        if command in {"POWER", "POWER1"}:
            await self._power(argument, now_ts)
        elif command == "STATUS" and argument in {"8", "10"}:
            self.meter.advance(now_ts)
            sns = {"Time": _tasmota_time(now_ts), "ENERGY": self.meter.energy_payload()}
            await self._publish(f"stat/{self.name}/STATUS10", json.dumps({"StatusSNS": sns}))
        elif command == "STATE":
            word = "ON" if self.meter.on else "OFF"
            state = {"Time": _tasmota_time(now_ts), "POWER": word}
            await self._publish(f"tele/{self.name}/STATE", json.dumps(state))
        else:
            await self._publish(f"stat/{self.name}/RESULT", json.dumps({"Command": "Unknown"}))

    async def _power(self, argument: str, now_ts: float) -> None:
        was_on = self.meter.on
        if argument in _ON_WORDS:
            self.meter.switch(True, now_ts)
        elif argument in _OFF_WORDS:
            self.meter.switch(False, now_ts)
        elif argument in _TOGGLE_WORDS:
            self.meter.switch(not was_on, now_ts)
        elif argument:
            await self._publish(f"stat/{self.name}/RESULT", json.dumps({"Command": "Error"}))
            return
        await self._publish_power_state()
        if self.meter.on != was_on:
            await self.publish_telemetry()
