"""Decisions per second of the thermostat and the arbiter, scalar and vectorized.

The scalar path (``control.decide`` then ``arbiter.plan_many`` for one heater) is what an agent
runs each tick; the vectorized path (``control.decide_many`` + ``arbiter.plan_many`` over many
homes) is what the simulator runs. The scalar rate is the baseline, measured in the same run.

Also the command-to-90 %-power step time of the emulated miner driven through unmodified
pyasic over loopback TCP: from ``set_power_limit`` to the first pyasic reading at 90 % of the
step, on an emulated clock running ``--miner-speed`` times real time; its baseline is the
model's own ramp time for the same step (``0.9 · step / ramp_up_w_per_s``).
Usage: ``python bench/bench_control.py --out PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from heatgrid.core import arbiter, control
from heatgrid.emulators.miner_server import MinerEmulator, scaled_clock

with warnings.catch_warnings():
    # pyasic declares pydantic models with a class-based Config, and passlib imports the
    # deprecated crypt module: third-party deprecations raised once, at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from pyasic.miners.auradine import AuradineFluxAT1500

_TICK_S = 60.0


def _config() -> control.ThermostatConfig:
    gains = control.tune_pi(ua_w_per_k=200.0, time_constant_s=30 * 3600.0, max_power_w=1200.0)
    return control.ThermostatConfig(
        max_power_w=1200.0,
        kp_w_per_k=gains.kp_w_per_k,
        ki_w_per_k_s=gains.ki_w_per_k_s,
        schedule=control.WeeklySchedule.constant(20.0),
    )


def _best_rate(run: Callable[[], int], repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def _scalar(ticks: int) -> int:
    config = _config()
    device = arbiter.DeviceArrays.from_capabilities(
        [
            arbiter.DeviceCapability(
                device_id="asic",
                kind="asic",
                min_power_w=300.0,
                max_power_w=1200.0,
                min_cycle_s=600.0,
            )
        ]
    )
    device_state = arbiter.DeviceStateArrays.initial(1)
    state = control.ThermostatState()
    rng = np.random.default_rng(1)
    temps_c = 19.5 + rng.standard_normal(ticks)
    for i in range(ticks):
        now_ts = 1.7e9 + i * _TICK_S
        obs = control.Observation(room_temp_c=float(temps_c[i]), reading_ts=now_ts)
        state, command = control.decide(state, obs, now_ts, config)
        device_state, _ = arbiter.plan_many(device_state, command.heat_power_w, device, now_ts)
    return ticks


def _vectorized(homes: int, ticks: int) -> int:
    config = control.ThermostatConfigArrays.from_configs([_config()])
    device = arbiter.DeviceArrays.from_capabilities(
        [
            arbiter.DeviceCapability(
                device_id="asic",
                kind="asic",
                min_power_w=300.0,
                max_power_w=1200.0,
                min_cycle_s=600.0,
            )
        ]
        * homes
    )
    device_state = arbiter.DeviceStateArrays.initial(homes)
    state = control.ThermostatStateArrays.initial(homes)
    rng = np.random.default_rng(2)
    for i in range(ticks):
        now_ts = 1.7e9 + i * _TICK_S
        obs = control.ObservationArrays(
            room_temp_c=19.5 + rng.standard_normal(homes),
            reading_ts=np.full(homes, now_ts),
            device_temp_c=np.full(homes, np.nan),
            fan_ok=np.ones(homes, dtype=bool),
            upright=np.ones(homes, dtype=bool),
            mode=np.full(homes, int(control.Mode.AUTO)),
        )
        state, command = control.decide_many(state, obs, now_ts, config)
        device_state, _ = arbiter.plan_many(device_state, command.heat_power_w, device, now_ts)
    return homes * ticks


async def _step_time_s(speed: float, from_w: int, to_w: int) -> dict[str, float]:
    """Emulated seconds from a power command to the first pyasic reading at 90 % of the step."""
    clock = scaled_clock(speed)
    async with MinerEmulator(rpc_port=0, web_port=0, clock=clock) as emulator:
        miner = AuradineFluxAT1500("127.0.0.1")
        miner.rpc.port = emulator.rpc_port
        miner.web.port = emulator.web_port
        if not await miner.set_power_limit(from_w):
            raise RuntimeError(f"the emulated miner refused a {from_w} W target")
        while (await miner.get_wattage() or 0) < from_w:  # settle at the lower power
            await asyncio.sleep(0.02)
        threshold_w = from_w + 0.9 * (to_w - from_w)
        sent_ts = clock()
        if not await miner.set_power_limit(to_w):
            raise RuntimeError(f"the emulated miner refused a {to_w} W target")
        readings = 0
        while (await miner.get_wattage() or 0) < threshold_w:
            readings += 1
        reached_ts = clock()
        model_s = 0.9 * (to_w - from_w) / emulator.params.ramp_up_w_per_s
    return {
        "step_from_w": from_w,
        "step_to_w": to_w,
        "miner_speed": speed,
        "step_time_90pct_s": reached_ts - sent_ts,
        "model_step_time_90pct_s": model_s,
        "pyasic_readings": readings,
        "ratio_vs_model": (reached_ts - sent_ts) / model_s,
    }


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--homes", type=int, default=100_000)
    parser.add_argument("--miner-speed", type=float, default=10.0)
    args = parser.parse_args()
    if not args.homes > 0 or not args.miner_speed > 0:
        parser.error("--homes and --miner-speed must be positive")
    scalar_per_s = _best_rate(lambda: _scalar(2_000))
    vector_per_s = _best_rate(lambda: _vectorized(args.homes, 20))
    result = {
        "benchmark": "control",
        "what": "thermostat decide + arbiter plan per home per tick",
        "homes": args.homes,
        "scalar_decisions_per_s": scalar_per_s,
        "vectorized_decisions_per_s": vector_per_s,
        "baseline": "scalar_decisions_per_s (same run)",
        "ratio_vs_baseline": vector_per_s / scalar_per_s,
        "miner_step": asyncio.run(_step_time_s(args.miner_speed, 300, 1200)),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
