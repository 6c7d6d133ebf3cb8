"""A room temperature sensor on any MQTT topic.

The payload is a plain number (``21.5``) or a JSON object holding it under ``key`` (dots
descend: ``"AM2301.Temperature"`` for a Tasmota ``SENSOR`` message, ``"temperature"`` for
zigbee2mqtt, ``"room_temp_c"`` for ``heatgrid emulate room``). Each reading carries the time it
was taken, ``reading_ts``: the payload's ``timestamp_key`` field when it has one (POSIX seconds,
``sample_ts`` by default, as ``heatgrid emulate room`` publishes), else the time it arrived. The
thermostat gets it as :attr:`heatgrid.core.control.Observation.reading_ts` and calls the sensor
stale when ``|now_ts - reading_ts|`` exceeds its ``max_age_s``: a retained value from yesterday
is old, not fresh, and so is a reading whose sensor stopped publishing. Payloads without a
finite number are ignored with a logged warning; the last good reading then ages until the
thermostat calls it stale. The broker connection is re-established with backoff when it drops.

How the agent daemon uses it::

    sensor = MqttTemperatureSensor("home/living/temperature", host=host, port=port,
                                   key="room_temp_c")
    await sensor.start()
    ...                                  # every tick:
    reading = sensor.latest              # None before the first reading
    observation = Observation(room_temp_c=math.nan if reading is None else reading.room_temp_c,
                              reading_ts=-math.inf if reading is None else reading.reading_ts)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from heatgrid.agent._mqtt import MqttSession, MqttUnavailableError, json_object, parse_reading
from heatgrid.core.errors import InputError

__all__ = ["MqttTemperatureSensor", "MqttUnavailableError", "TemperatureReading"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TemperatureReading:
    """One temperature from the sensor.

    Attributes
    ----------
    room_temp_c : float
        The temperature [°C].
    reading_ts : float
        When it was measured: the payload's timestamp, else ``received_ts`` [POSIX s].
    received_ts : float
        When the message arrived [POSIX s].
    """

    room_temp_c: float
    reading_ts: float
    received_ts: float

    def age_s(self, now_ts: float) -> float:
        """How old the reading is at ``now_ts`` [s]; negative when it claims to be from later."""
        return now_ts - self.reading_ts


class MqttTemperatureSensor:
    """Follows one topic and keeps its latest temperature.

    Parameters
    ----------
    topic : str
        The topic (no wildcards needed; any topic filter works).
    host : str
        MQTT broker address.
    port : int
        MQTT broker TCP port.
    key : str, optional
        JSON field holding the temperature; None for a plain-number payload.
    timestamp_key : str, optional
        JSON field holding the time the reading was taken [POSIX s], when present; ignored for
        plain-number payloads.
    clock : callable
        Returns the present [POSIX s]; stamps arrivals.
    retry_s : float
        First delay between connection attempts [s] (doubles up to 30 s).
    """

    def __init__(
        self,
        topic: str,
        *,
        host: str,
        port: int,
        key: str | None = None,
        timestamp_key: str | None = "sample_ts",
        clock: Callable[[], float] = time.time,
        retry_s: float = 0.5,
    ) -> None:
        if not topic:
            raise InputError("topic of the temperature sensor must not be empty")
        if key is not None and not all(key.split(".")):
            raise InputError(f"key must be a JSON field name, dots between names, got {key!r}")
        self.topic = topic
        self._key = key
        self._timestamp_key = timestamp_key
        self._clock = clock
        self._session = MqttSession(host, port, retry_s=retry_s)
        self._latest: TemperatureReading | None = None
        self._waiters: list[asyncio.Future[TemperatureReading]] = []

    @property
    def latest(self) -> TemperatureReading | None:
        """The latest good reading, or None before the first."""
        return self._latest

    async def start(self, *, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; raise :class:`MqttUnavailableError` if the broker is away."""
        await self._session.subscribe(self.topic, self._message)
        await self._session.start(timeout_s=timeout_s)

    async def wait_for_reading(self, timeout_s: float) -> TemperatureReading:
        """Wait up to ``timeout_s`` [s] for the next good reading.

        Raises
        ------
        TimeoutError
            If none arrived in time.
        """
        waiter: asyncio.Future[TemperatureReading] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def aclose(self) -> None:
        """Disconnect."""
        await self._session.aclose()

    def _message(self, topic: str, payload: bytes) -> None:
        received_ts = self._clock()
        try:
            room_temp_c = parse_reading(payload, self._key)
        except ValueError as error:
            _log.warning("temperature sensor %s: ignored payload: %s", topic, error)
            return
        self._latest = TemperatureReading(
            room_temp_c=room_temp_c,
            reading_ts=self._reading_ts(payload, received_ts),
            received_ts=received_ts,
        )
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(self._latest)

    def _reading_ts(self, payload: bytes, received_ts: float) -> float:
        if self._key is None or self._timestamp_key is None:
            return received_ts
        try:
            value = json_object(payload).get(self._timestamp_key)
        except ValueError:
            return received_ts
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return received_ts
