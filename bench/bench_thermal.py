"""Home-steps per second of the fleet thermal kernels.

The fused numba 2R2C kernel (:func:`heatgrid.core.thermal_kernels.advance_fleet_2r2c`, in
float64 and float32) against the baseline, the plain NumPy 1R1C fleet step
(:func:`~heatgrid.core.thermal_kernels.advance_fleet_1r1c_numpy`), run side by side in this
process on the same homes and weather. Each rate is the best of three timed runs of the public
call (input checks included) after a warm-up run that compiles the JIT. The float32 result is
compared with the float64 one (largest room-temperature difference after all steps).
Usage: ``python bench/bench_thermal.py --out PATH [--homes N] [--steps K]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from heatgrid.core import thermal, thermal_kernels

_STEP_S = 600.0
_GOAL_HOME_STEPS_PER_S = 1e9


def _best_rate(run: Callable[[], Any], home_steps: int, repeats: int = 3) -> tuple[float, Any]:
    best, result = 0.0, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = max(best, home_steps / (time.perf_counter() - start))
    return best, result


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--homes", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    homes, steps = args.homes, args.steps
    rng = np.random.default_rng(7)
    ua = rng.uniform(40.0, 500.0, homes)
    tau_h = rng.uniform(10.0, 60.0, homes)
    rooms = thermal.Room2R2C.from_ua_and_time_constant(ua, tau_h)
    coef64 = thermal_kernels.coefficients_2r2c(rooms, _STEP_S)
    coef32 = coef64.astype(np.float32)
    coef1 = thermal_kernels.coefficients_1r1c(thermal.Room1R1C(ua, ua * tau_h * 3600.0), _STEP_S)
    state = np.column_stack([rng.uniform(16.0, 22.0, homes), rng.uniform(14.0, 20.0, homes)])
    power_w = rng.uniform(0.0, 3000.0, homes)
    time_h = np.arange(steps) * _STEP_S / 3600.0
    outdoor_c = 4.0 + 5.0 * np.sin(2.0 * np.pi * (time_h - 9.0) / 24.0)

    # Warm up (JIT compile or load from cache) on a few homes and steps.
    for coef in (coef64, coef32):
        thermal_kernels.advance_fleet_2r2c(
            coef[:, :1000], state[:1000], power_w[:1000], outdoor_c[:3]
        )

    home_steps = homes * steps
    rate64, end64 = _best_rate(
        lambda: thermal_kernels.advance_fleet_2r2c(coef64, state, power_w, outdoor_c), home_steps
    )
    rate32, end32 = _best_rate(
        lambda: thermal_kernels.advance_fleet_2r2c(coef32, state, power_w, outdoor_c), home_steps
    )
    baseline, _ = _best_rate(
        lambda: thermal_kernels.advance_fleet_1r1c_numpy(coef1, state[:, 0], power_w, outdoor_c),
        home_steps,
    )
    result = {
        "benchmark": "thermal",
        "what": "2R2C homes advanced one exact ZOH step (home-steps/s), constant power per home, "
        "outdoor temperature shared",
        "homes": homes,
        "steps": steps,
        "step_s": _STEP_S,
        "kernel_2r2c_home_steps_per_s": rate64,
        "kernel_2r2c_float32_home_steps_per_s": rate32,
        "float32_max_abs_diff_room_c": float(np.max(np.abs(end32[:, 0] - end64[:, 0]))),
        "baseline": "baseline_numpy_1r1c_home_steps_per_s (plain NumPy 1R1C, in-place, same run)",
        "baseline_numpy_1r1c_home_steps_per_s": baseline,
        "ratio_vs_baseline": rate64 / baseline,
        "ratio_float32_vs_baseline": rate32 / baseline,
        "goal_home_steps_per_s": _GOAL_HOME_STEPS_PER_S,
        "goal_met": rate64 >= _GOAL_HOME_STEPS_PER_S,
        "threads": numba.get_num_threads(),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "system": platform.system(),
            "cpus": os.cpu_count(),
            "numba": numba.__version__,
            "numpy": np.__version__,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
