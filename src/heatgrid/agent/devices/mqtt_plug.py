"""A resistive boost element switched by a Tasmota smart plug over MQTT.

Topics for the plug's Tasmota ``Topic`` ``<plug>`` (``FullTopic %prefix%/%topic%/``):

* switch: ``cmnd/<plug>/POWER`` ``ON``/``OFF``; the plug confirms on ``stat/<plug>/POWER``
  (and ``stat/<plug>/RESULT`` ``{"POWER": …}``). A command not confirmed within
  ``command_timeout_s`` raises :class:`DeviceCommandError`.
* read: ``cmnd/<plug>/STATUS`` ``10`` asks the meter; it answers on ``stat/<plug>/STATUS10``
  ``{"StatusSNS": {"ENERGY": {"Power": W, "Total": kWh}}}``. Periodic ``tele/<plug>/SENSOR``
  telemetry updates the same reading. No answer within the timeout raises
  :class:`DeviceUnavailableError`.

The element has one power level, its rated power; its minimum cycle protects the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from heatgrid.agent._mqtt import MqttSession, MqttUnavailableError, json_object
from heatgrid.agent.devices.base import (
    DeviceAdapter,
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
)
from heatgrid.agent.devices.settings import MqttPlugDeviceSpec
from heatgrid.core.arbiter import DeviceCapability

__all__ = ["MqttPlug"]

_log = logging.getLogger(__name__)
_J_PER_KWH = 3.6e6
_POWER_MATCH_W = 0.5


class MqttPlug(DeviceAdapter):
    """A Tasmota plug switching a resistive element: a :class:`HeatDevice`.

    Parameters
    ----------
    settings : MqttPlugDeviceSpec
        The validated settings: name, plug topic, broker, rated power, minimum cycle and
        command timeout.
    clock : callable
        Returns the present time [POSIX s]; stamps readings.
    """

    def __init__(
        self, settings: MqttPlugDeviceSpec, *, clock: Callable[[], float] = time.time
    ) -> None:
        name = settings.name
        self._name = name
        self.plug = settings.plug
        self._capability = DeviceCapability(
            device_id=name,
            kind="resistive",
            min_power_w=settings.rated_power_w,
            max_power_w=settings.rated_power_w,
            power_levels_w=(settings.rated_power_w,),
            min_cycle_s=settings.min_cycle_s,
        )
        self._timeout_s = settings.command_timeout_s
        self._clock = clock
        self._session = MqttSession(settings.host, settings.port, identifier=None)
        self._relay_on: bool | None = None
        self._relay_waiters: list[tuple[bool | None, asyncio.Future[bool]]] = []
        self._meter_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self._closed = False
        self.last_telemetry: dict[str, Any] | None = None
        """The latest ``ENERGY`` object from ``tele/<plug>/SENSOR`` (None before the first)."""

    async def start(self) -> None:
        """Connect to the broker and follow the plug's topics.

        Raises
        ------
        DeviceUnavailableError
            If the broker cannot be reached within the command timeout.
        """
        session = self._session
        await session.subscribe(f"stat/{self.plug}/POWER", self._on_power_word)
        await session.subscribe(f"stat/{self.plug}/RESULT", self._on_result)
        await session.subscribe(f"stat/{self.plug}/STATUS10", self._on_status)
        await session.subscribe(f"stat/{self.plug}/STATUS8", self._on_status)
        await session.subscribe(f"tele/{self.plug}/SENSOR", self._on_sensor)
        try:
            await session.start(timeout_s=self._timeout_s)
        except MqttUnavailableError as error:
            await session.aclose()
            raise DeviceUnavailableError(f"{self._name}: {error}") from None

    async def __aenter__(self) -> MqttPlug:
        await self.start()
        return self

    async def read(self) -> DeviceReading:
        """Ask the plug's meter and relay; raise :class:`DeviceUnavailableError` on silence."""
        if self._closed:
            raise DeviceUnavailableError(f"{self._name}: closed")
        if self._relay_on is None:
            await self._ask_relay()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._meter_waiters.append(future)
        try:
            await self._session.publish(f"cmnd/{self.plug}/STATUS", "10")
            async with asyncio.timeout(self._timeout_s):
                energy = await future
        except (MqttUnavailableError, TimeoutError) as error:
            raise DeviceUnavailableError(
                f"{self._name}: plug {self.plug!r} on {self._session.address} did not answer "
                f"STATUS 10 within {self._timeout_s:g} s ({error or 'timeout'})"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._meter_waiters.remove(future)
        return self._reading(energy)

    async def set_power(self, power_w: float) -> None:
        """Switch on at the rated power or off at 0 W; raise :class:`DeviceCommandError`."""
        rated_w = self._capability.max_power_w
        if math.isfinite(power_w) and abs(power_w) <= _POWER_MATCH_W:
            await self._switch(on=False)
        elif math.isfinite(power_w) and abs(power_w - rated_w) <= _POWER_MATCH_W:
            await self._switch(on=True)
        else:
            raise DeviceCommandError(
                f"{self._name}: set_power({power_w!r} W) refused: the plug offers only 0 W "
                f"or its rated {rated_w:g} W"
            )

    async def safe_state(self) -> None:
        """Switch the element off; raise :class:`DeviceCommandError` when not confirmed."""
        await self._switch(on=False)

    async def aclose(self) -> None:
        """Switch off (logged when that fails) and disconnect."""
        if self._closed:
            return
        if self._session.connected:
            try:
                await self.safe_state()
            except DeviceCommandError as error:
                _log.warning("%s: left on at close: %s", self._name, error)
        self._closed = True
        await self._session.aclose()

    # ------------------------------------------------------------------ commands

    async def _switch(self, *, on: bool) -> None:
        word = "ON" if on else "OFF"
        if self._closed:
            raise DeviceCommandError(f"{self._name}: closed, POWER {word} not sent")
        topic = f"cmnd/{self.plug}/POWER"
        try:
            await self._command_and_wait(word, on)
        except MqttUnavailableError as error:
            raise DeviceCommandError(f"{self._name}: {topic} {word} not sent: {error}") from None
        except TimeoutError:
            raise DeviceCommandError(
                f"{self._name}: {topic} {word} not confirmed on stat/{self.plug}/POWER "
                f"within {self._timeout_s:g} s"
            ) from None

    async def _ask_relay(self) -> None:
        try:
            await self._command_and_wait("", None)
        except (MqttUnavailableError, TimeoutError) as error:
            raise DeviceUnavailableError(
                f"{self._name}: plug {self.plug!r} on {self._session.address} did not report "
                f"its relay within {self._timeout_s:g} s ({error or 'timeout'})"
            ) from None

    async def _command_and_wait(self, word: str, expected: bool | None) -> None:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiter = (expected, future)
        self._relay_waiters.append(waiter)
        try:
            await self._session.publish(f"cmnd/{self.plug}/POWER", word)
            async with asyncio.timeout(self._timeout_s):
                await future
        finally:
            with contextlib.suppress(ValueError):
                self._relay_waiters.remove(waiter)

    # ------------------------------------------------------------------ messages

    def _on_power_word(self, _topic: str, payload: bytes) -> None:
        word = payload.decode(errors="replace").strip().upper()
        if word in {"ON", "OFF"}:
            self._relay(word == "ON")

    def _on_result(self, _topic: str, payload: bytes) -> None:
        with contextlib.suppress(ValueError):
            word = json_object(payload).get("POWER")
            if word in {"ON", "OFF"}:
                self._relay(word == "ON")

    def _relay(self, on: bool) -> None:
        self._relay_on = on
        for expected, future in self._relay_waiters:
            if expected in {None, on} and not future.done():
                future.set_result(on)

    def _on_status(self, topic: str, payload: bytes) -> None:
        energy = self._energy(topic, payload, "StatusSNS")
        if energy is not None:
            for future in self._meter_waiters:
                if not future.done():
                    future.set_result(energy)

    def _on_sensor(self, topic: str, payload: bytes) -> None:
        self.last_telemetry = self._energy(topic, payload, None)

    def _energy(self, topic: str, payload: bytes, outer: str | None) -> dict[str, Any] | None:
        """Return the ``ENERGY`` object of a meter message, or None (logged) without one."""
        try:
            body: Any = json_object(payload)
            if outer is not None:
                body = body[outer]
            energy = body["ENERGY"]
            float(energy["Power"])
        except (ValueError, KeyError, TypeError) as error:
            _log.warning("%s: ignored %s: %s", self._name, topic, error)
            return None
        return dict(energy)

    def _reading(self, energy: dict[str, Any]) -> DeviceReading:
        power_w = float(energy["Power"])
        total = energy.get("Total")
        energy_j = float(total) * _J_PER_KWH if isinstance(total, int | float) else None
        on = bool(self._relay_on)
        return DeviceReading(
            read_ts=self._clock(),
            power_w=power_w,
            power_measured=True,
            energy_j=energy_j,
            power_target_w=self._capability.max_power_w if on else 0.0,
            running=on,
        )
