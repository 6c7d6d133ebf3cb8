"""The emulated side of ``heatgrid demo``: homes (a room and its miners) and a test pool.

Everything here runs in the demo's own event loop on loopback ports: each home is an emulated
room (:class:`~heatgrid.emulators.room_mqtt.RoomService`, publishing on the demo's MQTT broker)
heated by emulated Auradine FluxOS miners (:class:`~heatgrid.emulators.miner_server.MinerEmulator`)
that the home's agent drives through pyasic, exactly as it would drive hardware; the room reads
their power through pyasic too. The miners mine real shares into a Stratum test pool
(:class:`~heatgrid.emulators.stratum_pool.StratumPool`) at a difficulty a CPU finds, at most
:data:`SHARES_PER_S` a second each while the agent lets them hash, so that the demo leaves the
machine's CPU to the agents and the coordinator. Rooms and miners run on the demo's shared
emulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from heatgrid.cli._emulate_room import RoomOptions, build_room
from heatgrid.emulators import miner_model
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.emulators.room_mqtt import MinerAddress, RoomService
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool

__all__ = [
    "COMFORT_BAND_K",
    "HOMES",
    "POOL_DIFFICULTY",
    "SHARES_PER_S",
    "HomeSpec",
    "HomeStats",
    "MiningTarget",
    "World",
    "room_topic",
]

POOL_DIFFICULTY = 2.0**-24
"""Share difficulty of the test pool: about 256 hashes a share, cheap for a CPU [-]."""
SHARES_PER_S = 1.0
"""Most shares a second one emulated miner submits while it hashes [1/s]."""
_DIFF1_HASHES = 2.0**32
COMFORT_BAND_K = 1.0
"""A room this close to its setpoint is comfortable (the dashboard's "ok" health) [K]."""
_START_BELOW_SETPOINT_K = 0.4  # a room the thermostat finds cold: it heats from the start


@dataclass(frozen=True, kw_only=True)
class HomeSpec:
    """One emulated home: where, how it loses heat, and the miners that heat it."""

    name: str
    weather: str
    ua_w_per_k: float
    time_constant_h: float
    setpoint_c: float
    miners_max_power_w: tuple[float, ...]
    gains_w: float = 400.0
    """Heat from people, appliances and sun [W]; the miners heat the rest."""
    min_power_w: float = 300.0


HOMES: tuple[HomeSpec, ...] = (
    HomeSpec(
        name="Berlin flat",
        weather="Berlin",
        ua_w_per_k=50.0,
        time_constant_h=35.0,
        setpoint_c=21.0,
        miners_max_power_w=(1500.0,),
    ),
    HomeSpec(
        name="Stockholm passive house",
        weather="Stockholm",
        ua_w_per_k=45.0,
        time_constant_h=60.0,
        setpoint_c=20.5,
        miners_max_power_w=(1500.0,),
        gains_w=350.0,
    ),
    HomeSpec(
        name="Paris terraced house",
        weather="Paris",
        ua_w_per_k=90.0,
        time_constant_h=30.0,
        setpoint_c=21.0,
        miners_max_power_w=(1200.0, 1200.0),
        gains_w=500.0,
    ),
    HomeSpec(
        name="Vienna apartment",
        weather="Vienna",
        ua_w_per_k=60.0,
        time_constant_h=40.0,
        setpoint_c=21.5,
        miners_max_power_w=(1500.0,),
    ),
)
"""The homes ``heatgrid demo --homes N`` runs, the first N of them (cycled beyond)."""


@dataclass(frozen=True)
class MiningTarget:
    """Where one miner mines, and as whom (a Stratum URL, user and password)."""

    url: str
    user: str
    password: str


@dataclass
class HomeStats:
    """What one home did, in emulated time."""

    name: str
    setpoint_c: float
    room_temp_c: float
    outdoor_temp_c: float
    heat_power_w: float
    energy_kwh: float
    work_th: float
    shares_accepted: int
    shares_rejected: int
    min_temp_c: float
    max_temp_c: float
    comfort_share: float
    """Share of the samples after warm-up within COMFORT_BAND_K of the setpoint [-]."""


@dataclass
class _Home:
    spec: HomeSpec
    room: RoomService
    miners: list[MinerEmulator]
    clients: list[StratumMinerClient] = field(default_factory=list)
    temps_c: list[tuple[float, float]] = field(default_factory=list)


class World:
    """The emulated homes and the test pool of one demo.

    Parameters
    ----------
    homes : sequence of HomeSpec
        The homes to emulate.
    clock : callable
        The shared emulated clock [POSIX s].
    broker : tuple of str and int
        The MQTT broker the rooms publish on.
    warmup_s : float
        Emulated time after the start before comfort counts [s].
    """

    def __init__(
        self,
        homes: tuple[HomeSpec, ...],
        *,
        clock: Callable[[], float],
        broker: tuple[str, int],
        warmup_s: float,
    ) -> None:
        self._specs = homes
        self._clock = clock
        self._broker = broker
        self._warmup_s = warmup_s
        self.pool = StratumPool(difficulty=POOL_DIFFICULTY, clock=clock)
        self.homes: list[_Home] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_ts = clock()

    async def start(self) -> None:
        """Start the pool, every miner and every room (rooms publish once at once)."""
        await self.pool.start()
        for index, spec in enumerate(self._specs):
            miners = []
            for max_power_w in spec.miners_max_power_w:
                params = miner_model.MinerParams(
                    max_power_w=max_power_w, min_power_w=spec.min_power_w
                )
                miner = MinerEmulator(params, rpc_port=0, web_port=0, clock=self._clock)
                await miner.start()
                miners.append(miner)
            options = RoomOptions(
                model="2r2c",
                preset="terraced",
                ua_w_per_k=spec.ua_w_per_k,
                capacity_j_per_k=spec.ua_w_per_k * spec.time_constant_h * 3600.0,
                weather=spec.weather,
                start=None,
                initial_temp_c=spec.setpoint_c - _START_BELOW_SETPOINT_K,
                gains_w=spec.gains_w,
            )
            room = RoomService(
                build_room(options, self._clock()),
                clock=self._clock,
                host=self._broker[0],
                port=self._broker[1],
                topic=room_topic(index),
                miners=[MinerAddress("127.0.0.1", m.rpc_port, m.web_port) for m in miners],
            )
            await room.start()
            self.homes.append(_Home(spec, room, miners))
        self._start_ts = self._clock()

    def mine(self, home: int, targets: list[MiningTarget]) -> None:
        """Start the home's miners mining, the i-th miner into ``targets[i]``."""
        for miner, target in zip(self.homes[home].miners, targets, strict=True):
            client = StratumMinerClient(
                target.url, target.user, target.password, _capped_hashrate(miner)
            )
            self.homes[home].clients.append(client)
            self._spawn(client.run())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        """Advance and publish every room; record its temperature."""
        for home in self.homes:
            temp_c = await home.room.tick()
            home.temps_c.append((home.room.room.now_ts, temp_c))

    def stats(self) -> list[HomeStats]:
        """Return what each home did so far."""
        return [self._home_stats(home) for home in self.homes]

    def _home_stats(self, home: _Home) -> HomeStats:
        states = [miner.state for miner in home.miners]
        users = {client.user for client in home.clients}
        accepted = sum(self.pool.stats.accepted_shares[user] for user in users)
        rejected = sum(n for (user, _), n in self.pool.stats.rejected.items() if user in users)
        settled = [t for ts, t in home.temps_c if ts >= self._start_ts + self._warmup_s]
        setpoint_c = home.spec.setpoint_c
        within = [t for t in settled if abs(t - setpoint_c) <= COMFORT_BAND_K]
        room = home.room.room
        return HomeStats(
            name=home.spec.name,
            setpoint_c=setpoint_c,
            room_temp_c=room.room_temp_c,
            outdoor_temp_c=room.outdoor_temp_c(room.now_ts),
            heat_power_w=home.room.heat_power_w,
            energy_kwh=sum(state.energy_wh for state in states) / 1000.0,
            work_th=sum(state.work_th for state in states),
            shares_accepted=accepted,
            shares_rejected=rejected,
            min_temp_c=min(settled, default=math.nan),
            max_temp_c=max(settled, default=math.nan),
            comfort_share=len(within) / len(settled) if settled else math.nan,
        )

    async def stop(self) -> None:
        """Stop mining, the rooms, the miners and the pool."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for home in self.homes:
            await home.room.stop()
            for miner in home.miners:
                await miner.stop()
        await self.pool.stop()


def room_topic(index: int) -> str:
    """Return the MQTT topic of home ``index``'s room temperature."""
    return f"heatgrid/demo/home{index}/room"


def _capped_hashrate(miner: MinerEmulator) -> Callable[[], float]:
    """Return the miner's hashrate, capped so that it submits at most SHARES_PER_S shares [H/s]."""
    cap_hs = POOL_DIFFICULTY * _DIFF1_HASHES * SHARES_PER_S

    def hashrate_hs() -> float:
        return min(miner_model.hashrate_ths(miner.state, miner.params) * 1e12, cap_hs)

    return hashrate_hs
