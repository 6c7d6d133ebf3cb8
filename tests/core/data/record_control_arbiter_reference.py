"""Record the thermostat's and the arbiter's outputs on a seeded random batch.

Run once against the NumPy implementation of commit b658457 (before the numba kernels):
``python tests/core/data/record_control_arbiter_reference.py``. It writes
``control_arbiter_reference.npz`` beside itself: the inputs (drawn by :func:`draw_inputs`) and
the outputs of :func:`heatgrid.core.control.decide_many` and
:func:`heatgrid.core.arbiter.plan_many` over ``TICKS`` ticks. ``test_reference_batch.py`` replays
the inputs through the current code and compares.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from heatgrid.core import arbiter, control

HOMES = 400
TICKS = 12
TICK_S = 97.0
START_TS = 1.736942400e9  # 2025-01-15 12:00 UTC, a Wednesday
PATH = Path(__file__).with_name("control_arbiter_reference.npz")


def draw_inputs(seed: int = 20251125) -> dict[str, Any]:
    """Draw configs, states, observations, devices, demands and stops (all finite where needed)."""
    rng = np.random.default_rng(seed)
    n = HOMES
    out: dict[str, Any] = {}
    # Thermostat settings: schedules of 1-6 change points on integer minutes.
    width = 6
    points = rng.integers(1, width + 1, n)
    start_min = np.zeros((n, width), dtype=np.int64)
    setpoint_c = np.zeros((n, width))
    for i in range(n):
        chosen = np.sort(rng.choice(7 * 1440, size=points[i], replace=False))
        start_min[i, : points[i]] = chosen
        setpoint_c[i, : points[i]] = rng.uniform(5.0, 28.0, points[i])
    out["schedule_points"] = points
    out["schedule_start_min"] = start_min
    out["schedule_setpoint_c"] = setpoint_c
    out["utc_offset_h"] = rng.uniform(-12.0, 14.0, n)
    out["max_power_w"] = rng.uniform(100.0, 5000.0, n)
    out["kp_w_per_k"] = rng.uniform(0.0, 5000.0, n)
    out["ki_w_per_k_s"] = rng.uniform(0.0, 1.0, n)
    out["away_setpoint_c"] = rng.uniform(5.0, 20.0, n)
    out["cold_tolerance_k"] = rng.uniform(0.0, 2.0, n)
    out["hot_tolerance_k"] = rng.uniform(0.0, 2.0, n)
    out["min_on_s"] = rng.choice([0.0, 60.0, 600.0, 1800.0], n)
    out["min_off_s"] = rng.choice([0.0, 60.0, 600.0, 1800.0], n)
    out["keep_alive_s"] = rng.uniform(1.0, 600.0, n)
    out["max_age_s"] = rng.uniform(10.0, 600.0, n)
    out["room_limit_c"] = rng.uniform(25.0, 40.0, n)
    out["device_limit_c"] = rng.uniform(60.0, 110.0, n)
    out["power_step_w"] = rng.uniform(0.0, 100.0, n)
    # Thermostat start states (-inf: never).
    never = rng.random((3, n)) < 0.2
    ago = rng.uniform(0.0, 5000.0, (3, n))
    times = np.where(never, -np.inf, START_TS - ago)
    out["state_integral_w"] = rng.uniform(0.0, 1.0, n) * out["max_power_w"]
    out["state_heating"] = rng.random(n) < 0.5
    out["state_since_ts"] = times[0]
    out["state_last_tick_ts"] = times[1]
    out["state_last_command_ts"] = times[2]
    out["state_last_power_w"] = rng.uniform(0.0, 5000.0, n)
    out["state_alarm"] = rng.integers(0, 128, n) * (rng.random(n) < 0.2)
    # Observations per tick: mostly plausible rooms near the setpoints, some bad readings.
    shape = (TICKS, n)
    temp_c = rng.normal(19.0, 3.0, shape)
    special = rng.random(shape)
    temp_c = np.where(special < 0.02, np.nan, temp_c)
    temp_c = np.where((special >= 0.02) & (special < 0.03), 75.0, temp_c)
    temp_c = np.where((special >= 0.03) & (special < 0.04), 33.0, temp_c)
    out["obs_room_temp_c"] = temp_c
    age_s = np.where(rng.random(shape) < 0.05, rng.uniform(-2000.0, 2000.0, shape), 0.0)
    out["obs_age_s"] = np.where(rng.random(shape) < 0.01, np.nan, age_s)
    out["obs_device_temp_c"] = np.where(
        rng.random(shape) < 0.5, np.nan, rng.uniform(20.0, 100.0, shape)
    )
    out["obs_fan_ok"] = rng.random(shape) > 0.02
    out["obs_upright"] = rng.random(shape) > 0.02
    out["obs_mode"] = rng.choice([0, 0, 0, 0, 0, 0, 1, 2, 7], shape)
    # Devices: continuous (floor) and discrete (2-5 levels), min cycle 0-900 s.
    min_w = rng.uniform(50.0, 800.0, n)
    max_w = min_w + rng.uniform(0.0, 3000.0, n)
    max_w = np.where(rng.random(n) < 0.05, min_w, max_w)
    n_levels = np.where(rng.random(n) < 0.5, 0, rng.integers(2, 6, n))
    n_levels = np.where(max_w == min_w, 0, n_levels)
    levels = np.full((n, 5), np.nan)
    for i in range(n):
        k = n_levels[i]
        if k:
            inner = np.sort(rng.uniform(min_w[i], max_w[i], k - 2))
            levels[i, :k] = np.concatenate([[min_w[i]], inner, [max_w[i]]])
    out["device_min_power_w"] = min_w
    out["device_max_power_w"] = max_w
    out["device_power_levels_w"] = levels
    out["device_min_cycle_s"] = rng.choice([0.0, 60.0, 300.0, 900.0], n)
    # Demands per tick: zero, exactly on a level or the floor, or anywhere up to 1.2 x max.
    demand_w = rng.uniform(0.0, 1.2, shape) * max_w
    pick = rng.random(shape)
    demand_w = np.where(pick < 0.1, 0.0, demand_w)
    demand_w = np.where((pick >= 0.1) & (pick < 0.15), min_w, demand_w)
    first_inner = np.where(np.isnan(levels[:, 1]), min_w, levels[:, 1])
    demand_w = np.where((pick >= 0.15) & (pick < 0.2), first_inner, demand_w)
    out["demand_w"] = demand_w
    out["stop_now"] = rng.random(shape) < 0.03
    return out


def configs(inputs: dict[str, Any]) -> list[control.ThermostatConfig]:
    """Build one scalar :class:`ThermostatConfig` per home from the drawn inputs."""
    result = []
    names = control._CONFIG_NUMBERS
    for i in range(HOMES):
        k = int(inputs["schedule_points"][i])
        points = tuple(
            (
                int(m) // 1440,
                int(m) % 1440,
                float(inputs["schedule_setpoint_c"][i, j]),
            )
            for j, m in enumerate(inputs["schedule_start_min"][i, :k])
        )
        schedule = control.WeeklySchedule(points, float(inputs["utc_offset_h"][i]))
        numbers = {name: float(inputs[name][i]) for name in names if name in inputs}
        numbers.setdefault("min_valid_temp_c", -30.0)
        numbers.setdefault("max_valid_temp_c", 60.0)
        result.append(control.ThermostatConfig(schedule=schedule, **numbers))
    return result


def capabilities(inputs: dict[str, Any]) -> list[arbiter.DeviceCapability]:
    """Build one :class:`DeviceCapability` per device from the drawn inputs."""
    result = []
    for i in range(HOMES):
        row = inputs["device_power_levels_w"][i]
        result.append(
            arbiter.DeviceCapability(
                device_id=f"d{i}",
                kind="asic",
                min_power_w=float(inputs["device_min_power_w"][i]),
                max_power_w=float(inputs["device_max_power_w"][i]),
                power_levels_w=tuple(float(v) for v in row[~np.isnan(row)]),
                min_cycle_s=float(inputs["device_min_cycle_s"][i]),
            )
        )
    return result


def thermostat_state(inputs: dict[str, Any]) -> control.ThermostatStateArrays:
    """The drawn start states of the thermostats."""
    return control.ThermostatStateArrays(
        integral_w=inputs["state_integral_w"],
        heating=inputs["state_heating"],
        since_ts=inputs["state_since_ts"],
        last_tick_ts=inputs["state_last_tick_ts"],
        last_command_ts=inputs["state_last_command_ts"],
        last_power_w=inputs["state_last_power_w"],
        alarm=inputs["state_alarm"].astype(np.int64),
    )


def observation(inputs: dict[str, Any], tick: int, now_ts: float) -> control.ObservationArrays:
    """The drawn observations of one tick."""
    return control.ObservationArrays(
        room_temp_c=inputs["obs_room_temp_c"][tick],
        reading_ts=now_ts - inputs["obs_age_s"][tick],
        device_temp_c=inputs["obs_device_temp_c"][tick],
        fan_ok=inputs["obs_fan_ok"][tick],
        upright=inputs["obs_upright"][tick],
        mode=inputs["obs_mode"][tick].astype(np.int64),
    )


def shared_config(inputs: dict[str, Any]) -> control.ThermostatConfigArrays:
    """Per-home gains and schedules, every other setting one 0-d array (as the simulator does)."""
    config = control.ThermostatConfigArrays.from_configs(configs(inputs))
    per_home = {"max_power_w", "kp_w_per_k", "ki_w_per_k_s", "utc_offset_h"}
    shared = {
        name: np.asarray(getattr(config, name)[0])
        for name in control._CONFIG_NUMBERS
        if name not in per_home
    }
    return replace(config, **shared)


def tiled(arrays: Any, copies: int) -> Any:
    """Return a struct of arrays with every per-home field repeated ``copies`` times."""
    if copies == 1:
        return arrays
    values = {}
    for name, value in vars(arrays).items():
        array = np.asarray(value)
        values[name] = array if array.ndim == 0 else np.concatenate([array] * copies, axis=0)
    return replace(arrays, **values)


def run(inputs: dict[str, Any], *, shared: bool = False, copies: int = 1) -> dict[str, Any]:
    """Run ``TICKS`` ticks of ``decide_many`` and ``plan_many``; return every output.

    With ``copies`` > 1 the fleet is the drawn one repeated, and so are the outputs.
    """
    if shared:
        config = shared_config(inputs)
    else:
        config = control.ThermostatConfigArrays.from_configs(configs(inputs))
    config = tiled(config, copies)
    devices = tiled(arbiter.DeviceArrays.from_capabilities(capabilities(inputs)), copies)
    state = tiled(thermostat_state(inputs), copies)
    device_state = arbiter.DeviceStateArrays.initial(HOMES * copies)
    outputs: dict[str, list[Any]] = {}
    for tick in range(TICKS):
        now_ts = START_TS + tick * TICK_S
        observed = tiled(observation(inputs, tick, now_ts), copies)
        state, command = control.decide_many(state, observed, now_ts, config)
        # The arbiter plans the drawn demand (not the thermostat's) to reach every branch.
        device_state, power_w = arbiter.plan_many(
            device_state,
            np.tile(inputs["demand_w"][tick], copies),
            devices,
            now_ts,
            stop_now=np.tile(inputs["stop_now"][tick], copies),
        )
        values = {
            **{f"state_{k}": v for k, v in vars(state).items()},
            **{f"command_{k}": v for k, v in vars(command).items()},
            **{f"device_{k}": v for k, v in vars(device_state).items()},
            "power_w": power_w,
        }
        for key, value in values.items():
            outputs.setdefault(f"out_{key}", []).append(np.array(value))
    return {key: np.stack(value) for key, value in outputs.items()}


if __name__ == "__main__":
    drawn = draw_inputs()
    shared_outputs = {f"shared_{k}": v for k, v in run(drawn, shared=True).items()}
    np.savez_compressed(PATH, **drawn, **run(drawn), **shared_outputs)
    print(f"wrote {PATH}")
