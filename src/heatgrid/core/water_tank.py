"""A hot-water cylinder as one well-mixed node, integrated exactly, and a household draw profile.

``C dT/dt = P_heat + UA (T_ambient − T) + ρc · q (T_mains − T)``: the heater adds power, the
jacket loses heat to the room around the tank, and a draw of ``q`` litres per second replaces
hot water by cold mains water. The draw makes the decay rate ``(UA + ρc q) / C`` depend on the
input; with ``q`` held constant over each step (zero-order hold) each step is still an exact
exponential, and the standby and draw losses over the step are exact integrals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.errors import InputError, require_finite, require_positive

__all__ = [
    "WATER_HEAT_CAPACITY_J_PER_L_K",
    "TankRun",
    "WaterTank",
    "household_draw_l_per_s",
    "simulate_tank",
    "tank_step",
]

WATER_HEAT_CAPACITY_J_PER_L_K = 4180.0
"""Volumetric heat capacity of water [J/(L·K)] (1 kg/L × 4180 J/(kg·K); ±1 % over 10–60 °C)."""

_S_PER_DAY = 86_400.0
_J_PER_KWH = 3.6e6

# Load profile "M" of the EN 16147 / Commission Regulation (EU) No 814/2013 tapping cycles
# (Annex III, table 2): 23 tappings, 5.845 kWh of useful hot water a day. Each entry is the
# tapping's start in hours after local midnight and its useful energy [kWh]. Small tappings
# are hand washing and cleaning; 1.4 kWh ones are showers; 0.315 and 0.735 kWh are dishwashing.
_PROFILE_M_TAPPINGS: tuple[tuple[float, float], ...] = (
    (7.0, 0.105),
    (7.0 + 5 / 60, 1.4),
    (7.5, 0.105),
    (8.0 + 1 / 60, 0.105),
    (8.25, 0.105),
    (8.5, 0.105),
    (8.75, 0.105),
    (9.0, 0.105),
    (9.5, 0.105),
    (10.5, 0.105),
    (11.5, 0.105),
    (11.75, 0.105),
    (12.75, 0.315),
    (14.5, 0.105),
    (15.5, 0.105),
    (16.5, 0.105),
    (18.0, 0.105),
    (18.25, 0.105),
    (18.5, 0.105),
    (19.0, 0.105),
    (20.5, 0.735),
    (21.25, 0.105),
    (21.5, 1.4),
)


@dataclass(frozen=True)
class WaterTank:
    """A well-mixed hot-water cylinder.

    Parameters
    ----------
    volume_l : float or ndarray
        Water volume [L], > 0.
    ua_w_per_k : float or ndarray
        Standby loss coefficient of the jacket [W/K], > 0 (about 1.5–3 W/K for 150–300 L).
    ambient_temp_c : float or ndarray
        Temperature of the air around the tank [°C], finite.
    """

    volume_l: FloatOrArray
    ua_w_per_k: FloatOrArray
    ambient_temp_c: FloatOrArray

    def __post_init__(self) -> None:
        for name in ("volume_l", "ua_w_per_k"):
            value = checked_array(name, getattr(self, name), minimum=0.0, strictly_above=True)
            object.__setattr__(self, name, _frozen(value))
        object.__setattr__(
            self, "ambient_temp_c", _frozen(checked_array("ambient_temp_c", self.ambient_temp_c))
        )
        shapes = [np.shape(self.volume_l), np.shape(self.ua_w_per_k), np.shape(self.ambient_temp_c)]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise InputError(
                f"the fields of WaterTank must broadcast together, got {shapes}"
            ) from None

    @property
    def capacity_j_per_k(self) -> FloatOrArray:
        """Heat capacity of the water [J/K]."""
        return scalar_or_array(np.asarray(WATER_HEAT_CAPACITY_J_PER_L_K * self.volume_l))


def _frozen(array: FloatArray) -> FloatOrArray:
    if array.ndim == 0:
        return float(array)
    array = array.copy()
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class TankRun:
    """Tank temperatures of a run and the heat that crossed the tank boundary in each step.

    ``Σ (heat_input_j − standby_loss_j − draw_loss_j) == C (T_end − T_start)`` to rounding.

    Parameters
    ----------
    tank_temp_c : ndarray
        Water temperature at every step boundary, shape (T+1, ...) [°C].
    heat_input_j : ndarray
        Heater energy per step, shape (T, ...) [J].
    standby_loss_j : ndarray
        Heat lost through the jacket per step, shape (T, ...) [J].
    draw_loss_j : ndarray
        Heat carried away by the draw (relative to mains water) per step, shape (T, ...) [J].
    """

    tank_temp_c: FloatArray
    heat_input_j: FloatArray
    standby_loss_j: FloatArray
    draw_loss_j: FloatArray


def _step_terms(
    tank: WaterTank,
    tank_temp_c: FloatArray,
    heat_power_w: FloatArray,
    draw_l_per_s: FloatArray,
    mains_temp_c: FloatArray,
    *,
    step_s: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """End temperature, standby loss and draw loss of one exact step."""
    capacity = WATER_HEAT_CAPACITY_J_PER_L_K * np.asarray(tank.volume_l)
    ambient = np.asarray(tank.ambient_temp_c)
    ua = np.asarray(tank.ua_w_per_k)
    draw_w_per_k = WATER_HEAT_CAPACITY_J_PER_L_K * draw_l_per_s
    total = ua + draw_w_per_k
    equilibrium = (heat_power_w + ua * ambient + draw_w_per_k * mains_temp_c) / total
    x = total * step_s / capacity
    start_excess = tank_temp_c - equilibrium
    end = equilibrium + start_excess * np.exp(-x)
    mean = equilibrium + start_excess * (-np.expm1(-x) / x)  # mean temperature over the step
    standby = ua * (mean - ambient) * step_s
    draw = draw_w_per_k * (mean - mains_temp_c) * step_s
    return np.asarray(end), np.asarray(standby), np.asarray(draw)


def _tank_inputs(
    heat_power_w: ArrayLike, draw_l_per_s: ArrayLike, mains_temp_c: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    return (
        checked_array("heat_power_w", heat_power_w),
        checked_array("draw_l_per_s", draw_l_per_s, minimum=0.0),
        checked_array("mains_temp_c", mains_temp_c),
    )


def tank_step(
    tank: WaterTank,
    tank_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    draw_l_per_s: ArrayLike,
    mains_temp_c: ArrayLike,
    *,
    step_s: float,
) -> FloatOrArray:
    """Advance the tank temperature by one step with the inputs held constant (exact).

    Parameters
    ----------
    tank : WaterTank
        The tank(s).
    tank_temp_c : float or array_like
        Water temperature at the start of the step [°C].
    heat_power_w : float or array_like
        Heater power during the step [W].
    draw_l_per_s : float or array_like
        Hot-water draw during the step [L/s], >= 0, replaced by mains water.
    mains_temp_c : float or array_like
        Cold mains water temperature [°C].
    step_s : float
        Step size [s], > 0.

    Returns
    -------
    float or ndarray
        Water temperature at the end of the step [°C].
    """
    h = require_positive("step_s", step_s)
    temp = checked_array("tank_temp_c", tank_temp_c)
    power, draw, mains = _tank_inputs(heat_power_w, draw_l_per_s, mains_temp_c)
    end, _, _ = _step_terms(tank, temp, power, draw, mains, step_s=h)
    return scalar_or_array(end)


def simulate_tank(
    tank: WaterTank,
    initial_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    draw_l_per_s: ArrayLike,
    mains_temp_c: ArrayLike,
    *,
    step_s: float,
) -> TankRun:
    """Run the tank through a series of steps, exactly, with its energy accounts.

    Parameters
    ----------
    tank : WaterTank
        The tank(s).
    initial_temp_c : float or array_like
        Water temperature at the start [°C].
    heat_power_w : float or array_like
        Heater power per step [W]; time first, shape (T, ...) or broadcastable.
    draw_l_per_s : float or array_like
        Hot-water draw per step [L/s], >= 0; time first.
    mains_temp_c : float or array_like
        Mains water temperature per step [°C]; time first.
    step_s : float
        Step size [s], > 0.

    Returns
    -------
    TankRun
        Temperatures at every step boundary and the heat of every step.
    """
    h = require_positive("step_s", step_s)
    temp = checked_array("initial_temp_c", initial_temp_c)
    power, draw, mains = _tank_inputs(heat_power_w, draw_l_per_s, mains_temp_c)
    try:
        shape = np.broadcast_shapes(power.shape, draw.shape, mains.shape)
    except ValueError:
        raise InputError(
            "heat_power_w, draw_l_per_s and mains_temp_c must broadcast together (time first), "
            f"got shapes {power.shape}, {draw.shape}, {mains.shape}"
        ) from None
    if len(shape) == 0 or shape[0] == 0:
        raise InputError(f"the inputs need a time axis first with at least one step, got {shape}")
    power, draw, mains = (np.broadcast_to(a, shape) for a in (power, draw, mains))
    batch = np.broadcast_shapes(shape[1:], temp.shape, np.shape(tank.volume_l))
    batch = np.broadcast_shapes(batch, np.shape(tank.ua_w_per_k), np.shape(tank.ambient_temp_c))
    n_steps = shape[0]
    temps = np.empty((n_steps + 1, *batch))
    standby = np.empty((n_steps, *batch))
    drawn = np.empty((n_steps, *batch))
    temps[0] = temp
    for k in range(n_steps):
        temps[k + 1], standby[k], drawn[k] = _step_terms(
            tank, temps[k], power[k], draw[k], mains[k], step_s=h
        )
    return TankRun(
        tank_temp_c=temps,
        heat_input_j=np.broadcast_to(power * h, (n_steps, *batch)).copy(),
        standby_loss_j=standby,
        draw_loss_j=drawn,
    )


def household_draw_l_per_s(
    step_s: float = 3600.0,
    *,
    hot_water_temp_c: float = 55.0,
    mains_temp_c: float = 10.0,
    daily_energy_kwh: float = 5.845,
) -> FloatArray:
    """Mean hot-water draw of a household in each step of one day, from local midnight.

    The shape is load profile "M" of the EN 16147 tapping cycles (Commission Regulation (EU)
    No 814/2013, Annex III): 23 tappings from 07:00 to 21:30, two showers of 1.4 kWh, two
    dishwashing tappings and small hand-washing and cleaning ones, 5.845 kWh a day in all (a
    household of about three). Each tapping's energy becomes a volume of water at
    ``hot_water_temp_c`` replacing water at ``mains_temp_c`` and is spread over the step in
    which it starts. ``daily_energy_kwh`` scales the whole profile (e.g. 2.100 for profile "S",
    11.655 for "L").

    Parameters
    ----------
    step_s : float
        Step size [s], > 0; must divide a day into a whole number of steps.
    hot_water_temp_c : float
        Temperature of the drawn hot water [°C].
    mains_temp_c : float
        Mains water temperature [°C], below ``hot_water_temp_c``.
    daily_energy_kwh : float
        Useful hot-water energy of the day [kWh], > 0.

    Returns
    -------
    ndarray
        Mean draw in each step [L/s], shape (86400 / step_s,).
    """
    h = require_positive("step_s", step_s)
    n_steps = round(_S_PER_DAY / h)
    if n_steps < 1 or abs(n_steps * h - _S_PER_DAY) > 1e-9 * _S_PER_DAY:
        raise InputError(f"step_s must divide a day (86400 s) into whole steps, got {step_s!r}")
    hot = require_finite("hot_water_temp_c", hot_water_temp_c)
    mains = require_finite("mains_temp_c", mains_temp_c)
    if hot <= mains:
        raise InputError(f"hot_water_temp_c ({hot!r} °C) must be above mains_temp_c ({mains!r} °C)")
    scale = require_positive("daily_energy_kwh", daily_energy_kwh) / sum(
        energy for _, energy in _PROFILE_M_TAPPINGS
    )
    litres = np.zeros(n_steps)
    for start_h, energy_kwh in _PROFILE_M_TAPPINGS:
        volume_l = scale * energy_kwh * _J_PER_KWH / (WATER_HEAT_CAPACITY_J_PER_L_K * (hot - mains))
        litres[int(start_h * 3600.0 // h)] += volume_l
    return litres / h
