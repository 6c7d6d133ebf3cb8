"""The emulated side of ``heatgrid demo``: homes (a room, its miners, a CPU heater) and a test pool.

Everything here runs in the demo's own event loop on loopback ports: each home is an emulated
room (:class:`~heatgrid.emulators.room_mqtt.RoomService`, publishing on the demo's MQTT broker)
heated by emulated Auradine FluxOS miners (:class:`~heatgrid.emulators.miner_server.MinerEmulator`)
that the home's agent drives through pyasic, exactly as it would drive hardware; the room reads
their power through pyasic too. Some homes also have a CPU heater that runs job tasks: its agent
is a real ``heatgrid agent`` whose CPU device and sandboxed tasks really use this machine's CPU,
and the room reads its power from an emulated meter on that agent's processes
(:class:`~heatgrid.emulators.cpu_meter.ProcessTreeMeter`: one busy core stands for
:data:`CPU_CORE_POWER_W`). The miners mine real shares, through the coordinator's Stratum proxy,
into a Stratum test pool (:class:`~heatgrid.emulators.stratum_pool.StratumPool`) at a difficulty
a CPU finds, at most :data:`SHARES_PER_S` a second each while the agent lets them hash, so that
the demo leaves the machine's CPU to the agents and the coordinator. Rooms and miners run on the
demo's shared emulated clock (:func:`demo_clock`), which starts on a fixed winter morning of
the homes' weather whatever today's date is: a demo run in July heats as one run in January.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heatgrid.cli._emulate_room import RoomOptions, build_room
from heatgrid.core.clock import ClockSpec
from heatgrid.emulators import miner_model
from heatgrid.emulators.cpu_meter import ProcessTreeMeter
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.emulators.room_mqtt import MinerAddress, RoomService
from heatgrid.emulators.stratum_miner import PoolFollower
from heatgrid.emulators.stratum_pool import StratumPool

__all__ = [
    "COMFORT_BAND_K",
    "CPU_CORE_POWER_W",
    "CPU_IDLE_POWER_W",
    "DEMO_START_TS",
    "HOMES",
    "POOL_DIFFICULTY",
    "SHARES_PER_S",
    "HomeSpec",
    "HomeStats",
    "World",
    "demo_clock",
    "room_options",
    "room_topic",
]

POOL_DIFFICULTY = 2.0**-24
"""Share difficulty of the test pool: about 256 hashes a share, cheap for a CPU [-]."""
SHARES_PER_S = 1.0
"""Most shares a second one emulated miner submits while it hashes [1/s]."""
_DIFF1_HASHES = 2.0**32
CPU_IDLE_POWER_W = 50.0
"""Draw of a demo CPU heater with nothing running [W]."""
CPU_CORE_POWER_W = 250.0
"""Power one busy core of this machine stands for in a demo CPU heater [W].

Small enough that a home's miners heat the rest on most winter days: tasks come before mining,
so a CPU heater that covered the whole demand (550 W did, on a mild December afternoon in the
Berlin flat) left that home's miner idle and its owner without shares."""
DEMO_START_TS = datetime(2026, 1, 14, 6, 0, tzinfo=UTC).timestamp()
"""Where the demo's emulated clock starts, whatever today's date: 14 January, 06:00 UTC [POSIX s].

A winter morning of the homes' (synthetic, deterministic) weather on which every home needs
its miners: from then on for more than a day, -5 to 4 °C outside in Berlin, Stockholm, Paris
and Vienna, cold enough that each home's CPU heater alone is not enough (so every home mines)
and mild enough that its heaters keep it comfortable. Emulating the days before today instead
made the demo depend on the season it ran in: on a summer day no home wanted heat and nothing
mined (``tests/cli/test_demo_season.py``)."""
COMFORT_BAND_K = 1.0
"""A room this close to its setpoint is comfortable (the dashboard's "ok" health) [K]."""
_START_BELOW_SETPOINT_K = 0.4  # a room the thermostat finds cold: it heats from the start


def demo_clock(real_now_ts: float, speed: float) -> ClockSpec:
    """Return the demo's shared clock: :data:`DEMO_START_TS` at ``real_now_ts``, ``speed`` fast.

    Parameters
    ----------
    real_now_ts : float
        The wall clock when the demo starts [POSIX s]; only the origin, never the date shown.
    speed : float
        Emulated seconds per real second [-].
    """
    return ClockSpec(start_ts=DEMO_START_TS, origin_ts=real_now_ts, speed=speed)


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
    cpu_heater_max_power_w: float = 0.0
    """Highest draw of the home's CPU heater, which runs job tasks [W]; 0: it has none."""


HOMES: tuple[HomeSpec, ...] = (
    HomeSpec(
        name="Berlin flat",
        weather="Berlin",
        ua_w_per_k=80.0,  # an older flat: its CPU heater alone is not enough below 12 °C
        time_constant_h=35.0,
        setpoint_c=21.0,
        miners_max_power_w=(1500.0,),
        cpu_heater_max_power_w=CPU_IDLE_POWER_W + CPU_CORE_POWER_W,
    ),
    HomeSpec(
        name="Stockholm passive house",
        weather="Stockholm",
        ua_w_per_k=45.0,
        time_constant_h=60.0,
        setpoint_c=20.5,
        miners_max_power_w=(1500.0,),
        gains_w=350.0,
        cpu_heater_max_power_w=CPU_IDLE_POWER_W + CPU_CORE_POWER_W,
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
"""The homes ``heatgrid demo --homes N`` runs, the first N of them (cycled beyond).

The first two, of different owners, have a CPU heater: a job's tasks can run in both, so that a
result can be checked on another owner's heater."""


@dataclass
class HomeStats:
    """What one home did, in emulated time."""

    name: str
    setpoint_c: float
    room_temp_c: float
    outdoor_temp_c: float
    heat_power_w: float
    energy_kwh: float
    """Energy drawn by every heater of the home, all of it heat in the room [kWh]."""
    miners_energy_kwh: float
    cpu_heater_energy_kwh: float
    cpu_heater_power_w: float | None
    """The CPU heater's power now [W]; None: the home has none."""
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
    pool_workers: set[str] = field(default_factory=set)
    temps_c: list[tuple[float, float]] = field(default_factory=list)
    cpu_meter: ProcessTreeMeter | None = None
    cpu_power_w: float = 0.0
    cpu_energy_j: float = 0.0


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
                miner.device.set_sleep(True)  # off, as its agent leaves it, until it resumes it
                miners.append(miner)
            room = RoomService(
                build_room(room_options(spec), self._clock()),
                clock=self._clock,
                host=self._broker[0],
                port=self._broker[1],
                topic=room_topic(index),
                miners=[MinerAddress("127.0.0.1", m.rpc_port, m.web_port) for m in miners],
            )
            await room.start()
            self.homes.append(_Home(spec, room, miners))
        self._start_ts = self._clock()

    def mine(self, home: int, pool_worker: str) -> None:
        """Let the home's miners mine into the pool set through their API, as real firmware does.

        Its agent sets that pool (the coordinator's Stratum proxy) through pyasic; until then a
        miner mines nowhere. ``pool_worker`` is the worker the test pool counts their shares
        under (the proxy's ``POOL_USER.DEVICE_ID``).
        """
        self.homes[home].pool_workers.add(pool_worker)
        for miner in self.homes[home].miners:
            self._spawn(PoolFollower(_configured_pool(miner), _capped_hashrate(miner)).run())

    def add_cpu_heater(self, home: int, agent_pid: int) -> None:
        """Let home ``home``'s room be heated by the CPU heater whose agent is ``agent_pid``.

        The room reads the heater's power from an emulated meter on the agent's processes:
        :data:`CPU_IDLE_POWER_W` plus :data:`CPU_CORE_POWER_W` per busy core, at most the home's
        ``cpu_heater_max_power_w``.
        """
        target = self.homes[home]
        meter = ProcessTreeMeter(
            agent_pid,
            idle_power_w=CPU_IDLE_POWER_W,
            core_power_w=CPU_CORE_POWER_W,
            max_power_w=target.spec.cpu_heater_max_power_w,
        )
        target.cpu_meter = meter

        def read_w() -> float:
            target.cpu_power_w = meter.power_w()
            return target.cpu_power_w

        target.room.heaters.append(read_w)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        """Advance and publish every room; record its temperature."""
        for home in self.homes:
            held_w, before_ts = home.cpu_power_w, home.room.room.now_ts
            temp_c = await home.room.tick()
            home.cpu_energy_j += held_w * max(home.room.room.now_ts - before_ts, 0.0)
            home.temps_c.append((home.room.room.now_ts, temp_c))

    def stats(self) -> list[HomeStats]:
        """Return what each home did so far."""
        return [self._home_stats(home) for home in self.homes]

    def _home_stats(self, home: _Home) -> HomeStats:
        states = [miner.state for miner in home.miners]
        users = home.pool_workers
        accepted = sum(self.pool.stats.accepted_shares[user] for user in users)
        rejected = sum(n for (user, _), n in self.pool.stats.rejected.items() if user in users)
        miners_kwh = sum(state.energy_wh for state in states) / 1000.0
        cpu_kwh = home.cpu_energy_j / 3.6e6
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
            energy_kwh=miners_kwh + cpu_kwh,
            miners_energy_kwh=miners_kwh,
            cpu_heater_energy_kwh=cpu_kwh,
            cpu_heater_power_w=None if home.cpu_meter is None else home.cpu_power_w,
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


def room_options(spec: HomeSpec) -> RoomOptions:
    """Return the emulated room of home ``spec`` (a 2R2C model in its city's weather)."""
    return RoomOptions(
        model="2r2c",
        preset="terraced",
        ua_w_per_k=spec.ua_w_per_k,
        capacity_j_per_k=spec.ua_w_per_k * spec.time_constant_h * 3600.0,
        weather=spec.weather,
        start=None,
        initial_temp_c=spec.setpoint_c - _START_BELOW_SETPOINT_K,
        gains_w=spec.gains_w,
    )


def room_topic(index: int) -> str:
    """Return the MQTT topic of home ``index``'s room temperature."""
    return f"heatgrid/demo/home{index}/room"


def _configured_pool(miner: MinerEmulator) -> Callable[[], tuple[str, str, str] | None]:
    """Return the first pool set on ``miner`` through its API (url, user, password), if any."""

    def configured() -> tuple[str, str, str] | None:
        pools = miner.device.view().pools
        return (pools[0].url, pools[0].user, pools[0].password) if pools else None

    return configured


def _capped_hashrate(miner: MinerEmulator) -> Callable[[], float]:
    """Return the miner's hashrate, capped so that it submits at most SHARES_PER_S shares [H/s]."""
    cap_hs = POOL_DIFFICULTY * _DIFF1_HASHES * SHARES_PER_S

    def hashrate_hs() -> float:
        return min(miner_model.hashrate_ths(miner.state, miner.params) * 1e12, cap_hs)

    return hashrate_hs
