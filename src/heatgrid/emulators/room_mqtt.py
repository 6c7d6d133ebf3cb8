"""The emulated room on MQTT: reads the heaters in the room, publishes its temperature.

Each :meth:`RoomService.tick` moves the :class:`~heatgrid.emulators.room.RoomEmulator` to the
injected clock's present with the heat power read at the previous tick (held in between), then
reads the heaters again and publishes, retained, on the room's topic::

    {"room_temp_c": 20.73, "outdoor_temp_c": 3.1, "heat_power_w": 1450.0,
     "sample_ts": 1767225600.0}

(an MQTT temperature sensor reads it with the JSON key ``room_temp_c``). The heaters are:

* emulated (or real) Auradine FluxOS miners, read through pyasic's Auradine backend at
  ``host:rpc_port:web_port`` (a miner that does not answer counts 0 W, with a logged warning);
* Tasmota plugs, asked for their meter (``cmnd/<plug>/STATUS 10``) at each connection and
  followed on ``tele/<plug>/SENSOR``, ``stat/<plug>/STATUS10`` (``ENERGY.Power``) and
  ``stat/<plug>/POWER`` (``OFF`` means 0 W at once);
* any other heater whose power a callable reads, such as the meter on an emulated CPU heater
  (:class:`heatgrid.emulators.cpu_meter.ProcessTreeMeter`), in :attr:`RoomService.heaters`.

All the electric power of the heaters becomes heat in the room air. When the broker goes away
the room keeps evolving; each tick tries to connect again, and the plugs keep their last power.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt

from heatgrid.emulators._service import AsyncService
from heatgrid.emulators.room import RoomEmulator

with warnings.catch_warnings():
    # pyasic 0.79 declares pydantic models with a class-based Config, and passlib imports the
    # deprecated crypt module: third-party deprecations raised once, at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(pyasic|passlib)\b")
    from pyasic.miners.auradine import AuradineFluxAT1500

__all__ = ["MinerAddress", "RoomService"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinerAddress:
    """Where a FluxOS miner listens: its host, GCMiner RPC port and web API port."""

    host: str
    rpc_port: int
    web_port: int


class RoomService(AsyncService):
    """Publishes an emulated room's temperature from the power of the heaters in it.

    Parameters
    ----------
    room : RoomEmulator
        The room's thermal state.
    clock : callable
        Returns the present [POSIX s] (use ``scaled_clock`` to accelerate).
    host : str
        MQTT broker address.
    port : int
        MQTT broker TCP port.
    topic : str
        Topic of the room temperature (published retained).
    miners : sequence of MinerAddress
        FluxOS miners heating the room.
    plugs : sequence of str
        Tasmota topics of the plugs of resistive elements heating the room.
    heaters : sequence of callable
        Other heaters in the room, each a callable returning its power now [W]; kept in the
        list :attr:`heaters`, which may grow while the room runs.
    """

    def __init__(
        self,
        room: RoomEmulator,
        *,
        clock: Callable[[], float],
        host: str,
        port: int,
        topic: str,
        miners: Sequence[MinerAddress] = (),
        plugs: Sequence[str] = (),
        heaters: Sequence[Callable[[], float]] = (),
    ) -> None:
        self.room = room
        self._clock = clock
        self.host, self.port, self.topic = host, port, topic
        self._miners = [_pyasic_miner(address) for address in miners]
        self._plug_power_w = dict.fromkeys(plugs, 0.0)
        self.heaters: list[Callable[[], float]] = list(heaters)
        """Other heaters in the room: callables returning their power now [W]."""
        self.heat_power_w = 0.0
        self._client: aiomqtt.Client | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to the broker, follow the plugs and ask each for its meter.

        Raises
        ------
        aiomqtt.MqttError
            If the broker cannot be reached.
        """
        client = aiomqtt.Client(self.host, self.port)
        await client.__aenter__()
        self._client = client
        try:
            for plug in self._plug_power_w:
                for topic in (f"tele/{plug}/SENSOR", f"stat/{plug}/STATUS10", f"stat/{plug}/POWER"):
                    await client.subscribe(topic, qos=1)
            self._listener = asyncio.create_task(self._follow_plugs(client))
            for plug in self._plug_power_w:
                await client.publish(f"cmnd/{plug}/STATUS", "10", qos=1)
        except aiomqtt.MqttError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Disconnect."""
        listener, self._listener = self._listener, None
        while listener is not None and not listener.done():
            listener.cancel()  # again until it ends: a cancel may be swallowed (3.11)
            await asyncio.wait({listener}, timeout=1.0)
        if listener is not None and not listener.cancelled():
            with contextlib.suppress(aiomqtt.MqttError):
                listener.result()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def tick(self) -> float:
        """Advance the room to now, publish its temperature, read the heaters for the next tick.

        The room keeps its physics when the broker is away: a failed publication is logged,
        and the next tick connects again.

        Returns
        -------
        float
            The room air temperature published [°C].
        """
        now_ts = self._clock()
        room_temp_c = self.room.advance(max(now_ts, self.room.now_ts), self.heat_power_w)
        payload = {
            "room_temp_c": round(room_temp_c, 4),
            "outdoor_temp_c": round(self.room.outdoor_temp_c(self.room.now_ts), 2),
            "heat_power_w": round(self.heat_power_w, 1),
            "sample_ts": self.room.now_ts,
        }
        try:
            await self._publish(json.dumps(payload))
        except aiomqtt.MqttError as error:
            _log.warning("room: MQTT broker %s:%s: %s", self.host, self.port, error)
            await self.stop()
        self.heat_power_w = await self.read_heat_power_w()
        return room_temp_c

    async def _publish(self, payload: str) -> None:
        """Publish on the room's topic, connecting first if needed; fail fast on a lost link."""
        if self._client is None or self._listener is None:
            await self.start()
        client, listener = self._client, self._listener
        assert client is not None
        assert listener is not None
        publish = asyncio.ensure_future(client.publish(self.topic, payload, qos=1, retain=True))
        # The listener ends when the connection drops: do not wait out the publish timeout.
        await asyncio.wait((publish, listener), return_when=asyncio.FIRST_COMPLETED)
        if not publish.done():
            publish.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await publish
            raise aiomqtt.MqttError("connection lost")
        publish.result()

    async def run(self, period_s: float) -> None:
        """Tick every ``period_s`` real seconds [s] until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(period_s)

    async def read_heat_power_w(self) -> float:
        """Power of every heater in the room now [W]."""
        miners_w = await asyncio.gather(*(_miner_power_w(miner) for miner in self._miners))
        others_w = [_heater_power_w(heater) for heater in self.heaters]
        return float(sum(miners_w) + sum(self._plug_power_w.values()) + sum(others_w))

    async def _follow_plugs(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            _, plug, kind = message.topic.value.split("/", 2)
            raw = message.payload
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            if kind == "POWER":
                if text.strip().upper() == "OFF":
                    self._plug_power_w[plug] = 0.0
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                body = json.loads(text)
                energy = body["StatusSNS"]["ENERGY"] if kind == "STATUS10" else body["ENERGY"]
                power_w = float(energy["Power"])
                if math.isfinite(power_w) and power_w >= 0.0:
                    self._plug_power_w[plug] = power_w


def _heater_power_w(heater: Callable[[], float]) -> float:
    """Read one other heater; a reading that fails or is not a finite power counts 0 W."""
    try:
        power_w = float(heater())
    except Exception as error:  # a meter's failure must not stop the room's physics
        _log.warning("heater %r: power not read: %s", heater, error)
        return 0.0
    if not (math.isfinite(power_w) and power_w >= 0.0):
        _log.warning("heater %r: power %r is not a power; counted 0 W", heater, power_w)
        return 0.0
    return power_w


def _pyasic_miner(address: MinerAddress) -> AuradineFluxAT1500:
    miner = AuradineFluxAT1500(address.host)
    miner.rpc.port = address.rpc_port
    miner.web.port = address.web_port
    return miner


async def _miner_power_w(miner: AuradineFluxAT1500) -> float:
    try:
        power_w = await miner.get_wattage()
    except Exception as error:  # pyasic raises many kinds; the room only needs a number
        _log.warning("miner %s: power not read: %s", miner.ip, error)
        return 0.0
    if power_w is None:
        _log.warning("miner %s: no power reading", miner.ip)
        return 0.0
    return float(power_w)
