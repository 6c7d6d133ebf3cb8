"""Where a job's energy went: heat into homes, useful or not, and its CO2 against a data centre.

Every joule a device draws becomes heat where the device stands. A device in a home (it has a
room) delivers it into that home; the heat is *useful* while the room wanted heat (its
temperature at or below the setpoint plus the thermostat's hot tolerance) and *unwanted*
otherwise. A device without a room (a rack) delivers none into a home. The job's emissions are
each device's energy times its home's grid intensity.

The comparison: the same compute in a data centre draws ``pue`` times the energy, and its heat
is wasted, so the homes burn their usual heating for the heat heatgrid's devices delivered
usefully. Both sides of the comparison are printed with every figure they are made of, so a
reader can redo the sum.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import checked_array
from heatgrid.core.errors import InputError, require_finite

__all__ = [
    "DATA_CENTRE_PUE",
    "DATA_CENTRE_PUE_SOURCE",
    "JobEnergyReport",
    "job_energy_report",
    "useful_heat_fraction",
]

DATA_CENTRE_PUE = 1.56
"""Power usage effectiveness of the average data centre [dimensionless]."""

DATA_CENTRE_PUE_SOURCE = (
    "Uptime Institute, Global Data Center Survey 2024: average annual PUE 1.56 "
    "(flat since about 2019)"
)
"""Where :data:`DATA_CENTRE_PUE` comes from."""

_J_PER_KWH = 3.6e6


@dataclasses.dataclass(frozen=True, slots=True)
class JobEnergyReport:
    """A job's energy, heat and CO2, per device and in total.

    Per-device arrays follow the order of the inputs. Energies are [J], emissions [kg CO2e].
    ``energy_j == heat_into_homes_j + heat_outside_homes_j`` and
    ``heat_into_homes_j == useful_heat_j + unwanted_heat_j``, per device and in total.
    ``data_centre_co2_kg`` is the same compute's emissions in a data centre (``pue`` times the
    energy at ``data_centre_carbon_g_per_kwh``) and ``displaced_heating_co2_kg`` what the homes'
    own heating emits for the useful heat; ``co2_saved_kg`` is their sum less ``co2_kg``.
    """

    energy_j: np.ndarray
    useful_heat_j: np.ndarray
    unwanted_heat_j: np.ndarray
    heat_outside_homes_j: np.ndarray
    co2_kg: np.ndarray
    total_energy_j: float
    heat_into_homes_j: float
    total_useful_heat_j: float
    total_unwanted_heat_j: float
    total_heat_outside_homes_j: float
    total_co2_kg: float
    pue: float
    data_centre_carbon_g_per_kwh: float
    data_centre_energy_j: float
    data_centre_co2_kg: float
    displaced_heating_co2_kg: float
    co2_saved_kg: float


def useful_heat_fraction(
    power_w: ArrayLike,
    duration_s: ArrayLike,
    room_temp_c: ArrayLike,
    setpoint_c: ArrayLike,
    hot_tolerance_k: float,
) -> float | None:
    """Return the share of a device's heat delivered while its room wanted heat.

    Each telemetry sample stands for ``duration_s`` at ``power_w``; its heat is useful when
    ``room_temp_c <= setpoint_c + hot_tolerance_k``. A sample without a room temperature or a
    setpoint (NaN) counts as not useful: heat that cannot be shown to be wanted is not claimed.

    Parameters
    ----------
    power_w, duration_s : array_like
        Power of each sample [W] and the time it stands for [s], >= 0.
    room_temp_c, setpoint_c : array_like
        Room temperature and setpoint at each sample [°C]; NaN when unknown.
    hot_tolerance_k : float
        How far over the setpoint the room may be and still want heat [K], >= 0.

    Returns
    -------
    float or None
        Useful share of the heat [dimensionless], in [0, 1]; None without any heat.
    """
    power = checked_array("power_w", power_w, minimum=0.0)
    duration = checked_array("duration_s", duration_s, minimum=0.0)
    room = np.asarray(room_temp_c, dtype=np.float64)
    setpoint = np.asarray(setpoint_c, dtype=np.float64)
    tolerance = require_finite("hot_tolerance_k", hot_tolerance_k)
    if tolerance < 0.0:
        raise InputError(f"hot_tolerance_k must be >= 0, got {hot_tolerance_k!r}")
    heat = power * duration
    total = float(heat.sum())
    if total <= 0.0:
        return None
    with np.errstate(invalid="ignore"):
        wanted = room <= setpoint + tolerance  # NaN compares False
    return float(heat[wanted].sum()) / total


def job_energy_report(
    energy_j: ArrayLike,
    in_home: ArrayLike,
    useful_fraction: ArrayLike,
    grid_carbon_g_per_kwh: ArrayLike,
    displaced_co2_kg_per_kwh_heat: ArrayLike,
    *,
    pue: float = DATA_CENTRE_PUE,
    data_centre_carbon_g_per_kwh: float | None = None,
) -> JobEnergyReport:
    """Split a job's measured energy per device into heat and CO2, and compare.

    Parameters
    ----------
    energy_j : array_like
        Energy each device drew for the job [J], >= 0.
    in_home : array_like of bool
        Whether each device heats a room in a home.
    useful_fraction : array_like
        Share of each device's heat that its room wanted [dimensionless], in [0, 1]
        (:func:`useful_heat_fraction`; 0 where unknown); ignored for devices not in a home.
    grid_carbon_g_per_kwh : array_like
        Grid intensity where each device draws its power [g CO2e/kWh], >= 0.
    displaced_co2_kg_per_kwh_heat : float or array_like
        What each home's own heating emits per kWh of heat [kg CO2e/kWh], >= 0
        (:func:`heatgrid.core.heat_value.displaced_co2_kg` of 1 kWh); one value for all.
    pue : float, optional
        The data centre's power usage effectiveness [dimensionless], >= 1.
    data_centre_carbon_g_per_kwh : float, optional
        The data centre's grid intensity [g CO2e/kWh]; by default the energy-weighted mean of
        the devices' (the same compute on the same grids).
    """
    energy = checked_array("energy_j", energy_j, minimum=0.0)
    home = np.asarray(in_home, dtype=bool)
    fraction = checked_array("useful_fraction", useful_fraction, minimum=0.0)
    intensity = checked_array("grid_carbon_g_per_kwh", grid_carbon_g_per_kwh, minimum=0.0)
    count = energy.shape
    displaced = checked_array(
        "displaced_co2_kg_per_kwh_heat", displaced_co2_kg_per_kwh_heat, minimum=0.0
    )
    if displaced.ndim:
        if displaced.shape != count:
            raise InputError(
                f"displaced_co2_kg_per_kwh_heat must be one value or one per device {count}"
            )
    else:
        displaced = np.full(count, float(displaced))
    for name, values in (
        ("in_home", home),
        ("useful_fraction", fraction),
        ("grid_carbon_g_per_kwh", intensity),
    ):
        if values.shape != count:
            raise InputError(f"{name} must have one value per device, like energy_j {count}")
    if np.any(fraction > 1.0):
        raise InputError("useful_fraction must be at most 1")
    effectiveness = require_finite("pue", pue)
    if effectiveness < 1.0:
        raise InputError(f"pue must be >= 1, got {pue!r}")
    useful = np.where(home, energy * fraction, 0.0)
    unwanted = np.where(home, energy - useful, 0.0)
    outside = np.where(home, 0.0, energy)
    co2 = energy / _J_PER_KWH * intensity / 1000.0
    total = float(energy.sum())
    if data_centre_carbon_g_per_kwh is None:
        dc_intensity = float((energy * intensity).sum() / total) if total > 0 else 0.0
    else:
        dc_intensity = require_finite("data_centre_carbon_g_per_kwh", data_centre_carbon_g_per_kwh)
    dc_energy = effectiveness * total
    dc_co2 = dc_energy / _J_PER_KWH * dc_intensity / 1000.0
    heating_co2 = float((useful / _J_PER_KWH * displaced).sum())
    return JobEnergyReport(
        energy_j=energy,
        useful_heat_j=useful,
        unwanted_heat_j=unwanted,
        heat_outside_homes_j=outside,
        co2_kg=co2,
        total_energy_j=total,
        heat_into_homes_j=float(useful.sum() + unwanted.sum()),
        total_useful_heat_j=float(useful.sum()),
        total_unwanted_heat_j=float(unwanted.sum()),
        total_heat_outside_homes_j=float(outside.sum()),
        total_co2_kg=float(co2.sum()),
        pue=effectiveness,
        data_centre_carbon_g_per_kwh=dc_intensity,
        data_centre_energy_j=dc_energy,
        data_centre_co2_kg=dc_co2,
        displaced_heating_co2_kg=heating_co2,
        co2_saved_kg=dc_co2 + heating_co2 - float(co2.sum()),
    )
