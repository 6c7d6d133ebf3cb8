"""A year of one home heated by a compute heater with a backup: heat, comfort, money and CO2.

:func:`simulate_home_year` steps a room model (:mod:`heatgrid.core.thermal`) through a weather
series, by default one hour at a time, twice: once with an *ideal* heater, to measure what the
home needs, and once with the compute heater and its backup, to see what it gets.

1. **Demand** (the ideal heater). Each step, an unlimited, freely modulating heater delivers
   the constant power that puts the room air exactly at the setpoint at the end of the step
   (:func:`~heatgrid.core.thermal.heat_power_for_target_w`), or nothing when the room would
   stay warm enough without heat. Its heat is :attr:`HomeYearResult.heat_demand_kwh`: what
   *any* heater must deliver to hold the setpoint schedule. It does not depend on the device,
   and it is what the displaced alternatives are priced on.
2. **Request** (the compute heater's thermostat). In the real run the thermostat computes the
   same holding power from the room's *actual* state (:attr:`HomeYearResult.heat_request_kwh`).
3. **Device at or above its floor.** If the request is at least the device's ``min_power_w``,
   the device delivers it, up to ``max_power_w`` (a device with discrete power levels
   alternates between neighbouring levels within the step, so any mean power in
   ``[min_power_w, max_power_w]`` is reachable on this time scale).
4. **Device below its floor: on/off cycling in the hot band.** If the request is positive but
   below ``min_power_w``, the device cannot modulate down to it. It runs at ``min_power_w``
   until the room air reaches ``setpoint_c + hot_tolerance_k``, then switches off: its mean
   power over the step is ``min(min_power_w, P_up)``, where ``P_up`` ends the step exactly at
   the top of the band, and it ran ``mean power / min_power_w`` of the step. The heat stored in
   the band lowers the following requests: the device stays off until the room would fall
   below the setpoint again. With a zero hot tolerance this is ideal cycling at the request.
5. **Backup.** A request above ``max_power_w`` is topped up by the backup (a resistive heater,
   the home's heat pump or gas boiler), so the room ends the step at the setpoint; with
   ``backup="none"`` the room falls short, and :attr:`HomeYearResult.comfort_deficit_k_h`
   counts the degree-hours below ``setpoint_c − cold_tolerance_k``.
6. **Integration.** Both runs advance the room state with the exact zero-order-hold step of the
   room model under the mean power of the step, so the trajectories are the model's.

Energy bounds, exact (tested): every step, ``heat delivered − heat request ≤ hot_tolerance_k ·
band_capacity_j_per_k``, with equality at most in cycling steps and no excess at all
otherwise. ``band_capacity_j_per_k = (∂P/∂T_end) · step_s`` is the heat that raises the room air
at the end of one step by 1 K: for a 1R1C room ``C · x / (1 − e^(−x))`` with
``x = UA · step_s / C``, the capacity ``C`` plus what the warmer room leaks during the step (it
tends to ``C`` for short steps). So one excursion into the hot band costs at most the heat the
band stores. For a 1R1C room with a backup the same bound holds against the ideal demand, the
room stays within ``[T_ideal, T_ideal + hot_tolerance_k]``, and over the whole run
``Σ delivered − Σ demand = C · (T_N − T_ideal,N) + UA · ∫ (T − T_ideal) dt``: the heat still
stored in the band at the end plus the extra losses of the warmer room.

Money and carbon: all electric power becomes heat (device energy == device heat); hashrate is
proportional to power (``hashrate_ths · power / max_power_w``) and earns the expected mining
revenue ``H · t / (difficulty · 2**32) · (subsidy + fees)`` (or a quoted hashprice); the
displaced cost of each alternative is what it would cost to meet the *same* heat demand
(:func:`~heatgrid.core.heat_value.displaced_heating_cost_eur`, step by step, the heat pump's COP
from the outdoor temperature and its flow temperature). A heat-pump or gas backup is priced the
same way.

Time: ``timestamps_ts[i]`` is the *end* of step ``i`` (EPW and ``WeatherYear`` convention); the
setpoint schedule, tariff and month of a step are taken at its middle, in local standard time
``UTC + tz_offset_h`` for the schedule and the months.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.carbon import GAS_CARBON_G_PER_KWH
from heatgrid.core.catalog import Device
from heatgrid.core.economics import (
    MarketSnapshot,
    mining_revenue_btc,
    mining_revenue_from_hashprice_usd,
)
from heatgrid.core.errors import InputError, require_finite, require_non_negative, require_positive
from heatgrid.core.heat_value import (
    DEFAULT_BOILER_EFFICIENCY,
    DEFAULT_FLOW_TEMP_C,
    HEATING_ALTERNATIVES,
    HeatingAlternative,
    displaced_co2_kg,
    displaced_energy_kwh,
    displaced_heating_cost_eur,
)
from heatgrid.core.tariffs import Tariff
from heatgrid.core.thermal import (
    DiscreteModel,
    Room1R1C,
    Room2R2C,
    RoomModel,
    discretize,
    heat_power_for_target_w,
    step,
)

__all__ = [
    "BACKUP_KINDS",
    "DEFAULT_GAS_PRICE_EUR_PER_KWH",
    "PROGRESS_EVERY_STEPS",
    "BackupKind",
    "HomeYearInputs",
    "HomeYearResult",
    "simulate_home_year",
]

BackupKind: TypeAlias = Literal["resistive", "heat-pump", "gas", "none"]
BACKUP_KINDS: tuple[str, ...] = get_args(BackupKind)
"""Backup heating for the demand above the device's maximum power."""

DEFAULT_GAS_PRICE_EUR_PER_KWH = 0.10
"""Default retail gas price per kWh of fuel, a round figure for Western Europe in 2025 [EUR/kWh]."""

PROGRESS_EVERY_STEPS = 168
"""Steps between two calls of :func:`simulate_home_year`'s progress callback (a week of hours)."""

_J_PER_KWH = 3.6e6
_S_PER_H = 3600.0
_HOURS_PER_DAY = 24
_STEP_TOLERANCE_S = 1e-6
_NEGLIGIBLE_W = 1e-6  # a request this small is rounding error, not a reason to start a cycle


@dataclass(frozen=True, eq=False)
class HomeYearInputs:
    """Everything :func:`simulate_home_year` needs; validated on construction.

    Parameters
    ----------
    model : Room1R1C or Room2R2C
        Thermal model of the home.
    timestamps_ts : array_like
        End of each step, POSIX UTC [s]; strictly increasing by ``step_s``.
    outdoor_temp_c : array_like
        Outdoor air temperature during each step [°C], one per timestamp.
    device : Device
        The compute heater (its ``min_power_w``, ``max_power_w`` and ``hashrate_ths`` at
        ``max_power_w`` are used).
    tariff : Tariff
        Electricity price, looked up at the middle of each step.
    setpoint_c : float or array_like
        Room setpoint [°C]: one value, or 24 values by local hour of day (index 0 is 00:00–01:00).
    tz_offset_h : float
        Local standard time minus UTC [h], in [−14, 14]; for the schedule and the months.
    cold_tolerance_k : float
        How far below the setpoint the room may be before it counts as too cold [K], >= 0.
    hot_tolerance_k : float
        How far above the setpoint a cycling device may push the room [K], >= 0.
    backup : {"resistive", "heat-pump", "gas", "none"}
        Heating for the demand above the device's maximum power.
    market : MarketSnapshot
        Bitcoin price, difficulty, subsidy, fees and exchange rate.
    hashprice_usd_per_ph_day : float, optional
        Quoted hashprice [USD per PH/s per day], >= 0; overrides the snapshot's difficulty,
        subsidy and fees for revenue (its BTC price still converts revenue to BTC).
    flow_temp_c : float
        Heat-pump flow temperature [°C], for the heat-pump backup and alternative.
    gas_price_eur_per_kwh : float
        Gas price per kWh of fuel [EUR/kWh], >= 0.
    boiler_efficiency : float
        Gas boiler efficiency, heat out per fuel in [dimensionless], in (0, 1.1].
    carbon_g_per_kwh : float or array_like
        Grid carbon intensity [g CO2e/kWh], >= 0: one value or one per step.
    gains_w : float
        Constant internal and solar gains into the room air [W], >= 0.
    step_s : float
        Step length [s], > 0; 3600 for hourly weather.
    initial_state_c : array_like, optional
        Initial node temperatures [°C], room air first; all nodes at the first setpoint if
        omitted.
    """

    model: RoomModel
    timestamps_ts: FloatArray
    outdoor_temp_c: FloatArray
    device: Device
    tariff: Tariff
    setpoint_c: float | FloatArray = 20.0
    tz_offset_h: float = 0.0
    cold_tolerance_k: float = 0.5
    hot_tolerance_k: float = 1.0
    backup: BackupKind = "resistive"
    market: MarketSnapshot = field(default_factory=MarketSnapshot)
    hashprice_usd_per_ph_day: float | None = None
    flow_temp_c: float = DEFAULT_FLOW_TEMP_C
    gas_price_eur_per_kwh: float = DEFAULT_GAS_PRICE_EUR_PER_KWH
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY
    carbon_g_per_kwh: float | FloatArray = 240.0
    gains_w: float = 0.0
    step_s: float = 3600.0
    initial_state_c: FloatArray | None = None

    def __post_init__(self) -> None:
        step_s = require_positive("step_s", self.step_s)
        timestamps, outdoor = _checked_series(self.timestamps_ts, self.outdoor_temp_c, step_s)
        setpoint = checked_array("setpoint_c", self.setpoint_c)
        if setpoint.ndim != 0 and setpoint.shape != (_HOURS_PER_DAY,):
            raise InputError(
                f"setpoint_c must be one value or 24 values by local hour, got shape "
                f"{setpoint.shape}"
            )
        tz_offset_h = require_finite("tz_offset_h", self.tz_offset_h)
        if not -14.0 <= tz_offset_h <= 14.0:
            raise InputError(f"tz_offset_h must be within ±14 h, got {self.tz_offset_h!r}")
        require_non_negative("cold_tolerance_k", self.cold_tolerance_k)
        require_non_negative("hot_tolerance_k", self.hot_tolerance_k)
        require_non_negative("gains_w", self.gains_w)
        if self.backup not in BACKUP_KINDS:
            raise InputError(
                f"backup must be one of {', '.join(BACKUP_KINDS)}, got {self.backup!r}"
            )
        if not isinstance(self.device, Device):
            raise InputError(f"device must be a catalog Device, got {self.device!r}")
        n_nodes = _discrete(self.model, step_s).n_nodes
        if self.initial_state_c is not None:
            initial = _vector("initial_state_c", self.initial_state_c)
            if initial.size != n_nodes:
                raise InputError(
                    f"initial_state_c needs {n_nodes} node temperatures, got {initial.size}"
                )
            object.__setattr__(self, "initial_state_c", initial)
        _check_prices(self)
        carbon = checked_array("carbon_g_per_kwh", self.carbon_g_per_kwh, minimum=0.0)
        if carbon.ndim != 0 and carbon.shape != timestamps.shape:
            raise InputError(
                f"carbon_g_per_kwh must be one value or one per step ({timestamps.size}), "
                f"got shape {carbon.shape}"
            )
        object.__setattr__(self, "step_s", step_s)
        object.__setattr__(self, "timestamps_ts", timestamps)
        object.__setattr__(self, "outdoor_temp_c", outdoor)
        object.__setattr__(self, "setpoint_c", float(setpoint) if setpoint.ndim == 0 else setpoint)
        object.__setattr__(self, "carbon_g_per_kwh", float(carbon) if carbon.ndim == 0 else carbon)

    def setpoint_schedule_c(self) -> FloatArray:
        """Return the setpoint in force during each step [°C] (local hour of the step's middle)."""
        middle_local_s = self.timestamps_ts - self.step_s / 2.0 + self.tz_offset_h * _S_PER_H
        if isinstance(self.setpoint_c, float):
            return np.full(self.timestamps_ts.shape, self.setpoint_c)
        hour = np.floor(middle_local_s / _S_PER_H).astype(np.int64) % _HOURS_PER_DAY
        schedule: FloatArray = np.asarray(self.setpoint_c, dtype=np.float64)[hour]
        return schedule

    def local_months(self) -> NDArray[np.int64]:
        """Return the local calendar month (1–12) of each step's middle."""
        middle_local_s = self.timestamps_ts - self.step_s / 2.0 + self.tz_offset_h * _S_PER_H
        months = (
            np.floor(middle_local_s)
            .astype(np.int64)
            .astype("datetime64[s]")
            .astype("datetime64[M]")
        ).astype(np.int64)
        result: NDArray[np.int64] = months % 12 + 1
        return result


@dataclass(frozen=True, eq=False)
class HomeYearResult:
    """Step-by-step outcome of :func:`simulate_home_year`; every array has one value per step.

    Parameters
    ----------
    inputs : HomeYearInputs
        What was simulated.
    setpoint_c : numpy.ndarray
        Setpoint in force [°C].
    room_temp_c : numpy.ndarray
        Room air temperature at the end of the step [°C].
    ideal_room_temp_c : numpy.ndarray
        Room air temperature at the end of the step under the ideal heater [°C].
    heat_demand_kwh : numpy.ndarray
        Heat the ideal heater delivers to hold the setpoint [kWh], >= 0; device-independent.
    heat_request_kwh : numpy.ndarray
        Heat the thermostat asks for to end the step at the setpoint from the room's actual
        state [kWh], >= 0.
    heat_from_device_kwh : numpy.ndarray
        Heat from the compute heater [kWh]; equal to its electric energy.
    backup_heat_kwh : numpy.ndarray
        Heat from the backup [kWh].
    device_on_h : numpy.ndarray
        Time the device ran during the step [h].
    hashrate_ths : numpy.ndarray
        Mean hashrate over the step [TH/s].
    mining_revenue_btc : numpy.ndarray
        Expected mining revenue [BTC].
    mining_revenue_eur : numpy.ndarray
        The same in euros [EUR].
    price_eur_per_kwh : numpy.ndarray
        Electricity price at the middle of the step [EUR/kWh].
    device_cost_eur : numpy.ndarray
        Electricity bought for the device [EUR].
    backup_energy_kwh : numpy.ndarray
        Energy bought for the backup [kWh]: electricity (resistive, heat pump) or gas fuel.
    backup_cost_eur : numpy.ndarray
        Cost of that energy [EUR].
    co2_kg : numpy.ndarray
        Emissions of the device's and the backup's energy [kg CO2e].
    displaced_cost_eur : Mapping of str to numpy.ndarray
        Per alternative ("resistive", "heat-pump", "gas"): cost of meeting the same heat demand
        with it [EUR].
    displaced_energy_kwh : Mapping of str to numpy.ndarray
        Per alternative: electricity or gas it would buy for that demand [kWh].
    displaced_co2_kg : Mapping of str to numpy.ndarray
        Per alternative: its emissions for that demand [kg CO2e].
    band_capacity_j_per_k : float
        Heat that raises the room air at the end of one step by 1 K [J/K] (see the module
        docstring: the bound on overshoot heat per step).
    months : numpy.ndarray of int64
        Local calendar month of the step, 1–12.
    """

    inputs: HomeYearInputs
    setpoint_c: FloatArray
    room_temp_c: FloatArray
    ideal_room_temp_c: FloatArray
    heat_demand_kwh: FloatArray
    heat_request_kwh: FloatArray
    heat_from_device_kwh: FloatArray
    backup_heat_kwh: FloatArray
    device_on_h: FloatArray
    hashrate_ths: FloatArray
    mining_revenue_btc: FloatArray
    mining_revenue_eur: FloatArray
    price_eur_per_kwh: FloatArray
    device_cost_eur: FloatArray
    backup_energy_kwh: FloatArray
    backup_cost_eur: FloatArray
    co2_kg: FloatArray
    displaced_cost_eur: Mapping[str, FloatArray]
    displaced_energy_kwh: Mapping[str, FloatArray]
    displaced_co2_kg: Mapping[str, FloatArray]
    band_capacity_j_per_k: float
    months: NDArray[np.int64]

    @property
    def device_energy_kwh(self) -> FloatArray:
        """Electricity drawn by the device [kWh]: all of it becomes heat."""
        return self.heat_from_device_kwh

    @property
    def electricity_cost_eur(self) -> FloatArray:
        """Electricity bought for the device and an electric backup [EUR]."""
        if self.inputs.backup == "gas":
            return self.device_cost_eur
        result: FloatArray = self.device_cost_eur + self.backup_cost_eur
        return result

    @property
    def net_heating_cost_eur(self) -> FloatArray:
        """Energy bought for heating (device and backup) minus mining revenue [EUR]."""
        result: FloatArray = self.device_cost_eur + self.backup_cost_eur - self.mining_revenue_eur
        return result

    @property
    def comfort_deficit_k_h(self) -> float:
        """Degree-hours of room air below ``setpoint − cold_tolerance_k`` at step ends [K·h]."""
        floor_c = self.setpoint_c - self.inputs.cold_tolerance_k
        deficit_k = np.maximum(floor_c - self.room_temp_c, 0.0)
        return float(np.sum(deficit_k)) * self.inputs.step_s / _S_PER_H

    def summary(self) -> dict[str, float]:
        """Return totals and statistics over the whole run, every unit in its key.

        Returns
        -------
        dict of str to float
            Energies [kWh], money [EUR, USD, BTC], CO2 [kg], temperatures [°C], degree-hours
            [K·h], hours [h]. Shares: ``device_heat_share_pct`` and ``backup_heat_share_pct``
            are shares of ``heat_delivered_kwh`` (not of the demand). ``heat_above_demand_kwh``
            is delivered minus demand: positive when on/off cycling pushed the room into the
            hot band (the warmer room loses more, and the band still holds heat at the end),
            negative when the room fell short without a backup. ``displaced_cost_eur_<alt>``,
            ``savings_eur_<alt>``,
            ``displaced_co2_kg_<alt>`` and ``co2_saved_kg_<alt>`` for ``resistive``,
            ``heat_pump`` and ``gas``.
        """
        inputs = self.inputs
        demand = float(np.sum(self.heat_demand_kwh))
        device_heat = float(np.sum(self.heat_from_device_kwh))
        backup_heat = float(np.sum(self.backup_heat_kwh))
        delivered = device_heat + backup_heat
        revenue_btc = float(np.sum(self.mining_revenue_btc))
        revenue_eur = float(np.sum(self.mining_revenue_eur))
        device_cost = float(np.sum(self.device_cost_eur))
        backup_cost = float(np.sum(self.backup_cost_eur))
        net = float(np.sum(self.net_heating_cost_eur))
        co2 = float(np.sum(self.co2_kg))
        hp_electricity = float(np.sum(self.displaced_energy_kwh["heat-pump"]))
        summary: dict[str, float] = {
            "hours_h": self.setpoint_c.size * inputs.step_s / _S_PER_H,
            "heat_demand_kwh": demand,
            "heat_delivered_kwh": delivered,
            "heat_from_device_kwh": device_heat,
            "backup_heat_kwh": backup_heat,
            "heat_above_demand_kwh": delivered - demand,
            "device_heat_share_pct": 100.0 * device_heat / delivered if delivered > 0 else 0.0,
            "backup_heat_share_pct": 100.0 * backup_heat / delivered if delivered > 0 else 0.0,
            "device_energy_kwh": device_heat,
            "backup_energy_kwh": float(np.sum(self.backup_energy_kwh)),
            "device_hours_on_h": float(np.sum(self.device_on_h)),
            "mining_revenue_btc": revenue_btc,
            "mining_revenue_usd": revenue_btc * inputs.market.btc_price_usd,
            "mining_revenue_eur": revenue_eur,
            "hashprice_usd_per_ph_day": _hashprice_usd_per_ph_day(inputs),
            "device_electricity_cost_eur": device_cost,
            "backup_cost_eur": backup_cost,
            "electricity_cost_eur": float(np.sum(self.electricity_cost_eur)),
            "heating_cost_eur": device_cost + backup_cost,
            "net_heating_cost_eur": net,
            "co2_kg": co2,
            "heat_pump_seasonal_cop": demand / hp_electricity if hp_electricity > 0 else math.nan,
            "mean_room_temp_c": float(np.mean(self.room_temp_c)),
            "min_room_temp_c": float(np.min(self.room_temp_c)),
            "max_room_temp_c": float(np.max(self.room_temp_c)),
            "comfort_deficit_k_h": self.comfort_deficit_k_h,
        }
        for alternative in HEATING_ALTERNATIVES:
            key = alternative.replace("-", "_")
            displaced = float(np.sum(self.displaced_cost_eur[alternative]))
            displaced_co2 = float(np.sum(self.displaced_co2_kg[alternative]))
            summary[f"displaced_cost_eur_{key}"] = displaced
            summary[f"savings_eur_{key}"] = displaced - net
            summary[f"displaced_co2_kg_{key}"] = displaced_co2
            summary[f"co2_saved_kg_{key}"] = displaced_co2 - co2
        return summary

    def monthly(self) -> dict[str, FloatArray]:
        """Return monthly totals, twelve values each, January first (0 for absent months).

        Returns
        -------
        dict of str to numpy.ndarray
            ``heat_demand_kwh``, ``heat_from_device_kwh``, ``backup_heat_kwh``,
            ``mining_revenue_eur``, ``electricity_cost_eur``, ``net_heating_cost_eur`` and
            ``displaced_cost_eur_<alt>`` for ``resistive``, ``heat_pump`` and ``gas``.
        """
        series = {
            "heat_demand_kwh": self.heat_demand_kwh,
            "heat_from_device_kwh": self.heat_from_device_kwh,
            "backup_heat_kwh": self.backup_heat_kwh,
            "mining_revenue_eur": self.mining_revenue_eur,
            "electricity_cost_eur": self.electricity_cost_eur,
            "net_heating_cost_eur": self.net_heating_cost_eur,
        }
        for alternative in HEATING_ALTERNATIVES:
            key = alternative.replace("-", "_")
            series[f"displaced_cost_eur_{key}"] = self.displaced_cost_eur[alternative]
        index = self.months - 1
        return {
            name: np.bincount(index, weights=values, minlength=12).astype(np.float64)
            for name, values in series.items()
        }


def simulate_home_year(
    inputs: HomeYearInputs, *, progress: Callable[[int], None] | None = None
) -> HomeYearResult:
    """Simulate one home heated by a compute heater and a backup over a weather series.

    Parameters
    ----------
    inputs : HomeYearInputs
        The home, weather, device, prices and tolerances.
    progress : callable, optional
        Called with the number of steps done, every :data:`PROGRESS_EVERY_STEPS` steps and
        after the last one (for a progress bar).

    Returns
    -------
    HomeYearResult
        Step-by-step heat, comfort, revenue, costs and CO2, with :meth:`~HomeYearResult.summary`
        and :meth:`~HomeYearResult.monthly`.
    """
    step_s = inputs.step_s
    model = _discrete(inputs.model, step_s)
    gains_w = inputs.gains_w
    setpoint = inputs.setpoint_schedule_c()
    outdoor = inputs.outdoor_temp_c
    state = (
        np.full(model.n_nodes, setpoint[0])
        if inputs.initial_state_c is None
        else np.asarray(inputs.initial_state_c, dtype=np.float64)
    )
    ideal_state = state.copy()
    w_per_k = _power_per_kelvin_w(model, state, float(outdoor[0]), step_s, gains_w)
    has_backup = inputs.backup != "none"
    run = _Run.empty(outdoor.size)
    for k in range(outdoor.size):
        outdoor_c = float(outdoor[k])
        target_c = float(setpoint[k])
        ideal_w = max(
            float(
                heat_power_for_target_w(model, ideal_state, target_c, outdoor_c, step_s, gains_w)
            ),
            0.0,
        )
        ideal_state = np.asarray(
            step(model, ideal_state, ideal_w, outdoor_c, step_s, gains_w), dtype=np.float64
        )
        hold_w = float(heat_power_for_target_w(model, state, target_c, outdoor_c, step_s, gains_w))
        device_w, backup_w, on_fraction = _thermostat(
            hold_w,
            w_per_k=w_per_k,
            min_power_w=inputs.device.min_power_w,
            max_power_w=inputs.device.max_power_w,
            hot_tolerance_k=inputs.hot_tolerance_k,
            has_backup=has_backup,
        )
        state = np.asarray(
            step(model, state, device_w + backup_w, outdoor_c, step_s, gains_w), dtype=np.float64
        )
        run.demand_w[k] = ideal_w
        run.ideal_room_c[k] = ideal_state[0]
        run.request_w[k] = max(hold_w, 0.0)
        run.device_w[k] = device_w
        run.backup_w[k] = backup_w
        run.on_fraction[k] = on_fraction
        run.room_c[k] = state[0]
        if progress is not None and ((k + 1) % PROGRESS_EVERY_STEPS == 0 or k + 1 == outdoor.size):
            progress(k + 1)
    return _account(inputs, setpoint, run, w_per_k)


@dataclass(frozen=True)
class _Run:
    """Per-step powers [W], temperatures [°C] and on fractions of one simulation."""

    demand_w: FloatArray
    ideal_room_c: FloatArray
    request_w: FloatArray
    device_w: FloatArray
    backup_w: FloatArray
    on_fraction: FloatArray
    room_c: FloatArray

    @classmethod
    def empty(cls, n_steps: int) -> _Run:
        return cls(*(np.empty(n_steps) for _ in range(7)))


def _thermostat(
    hold_w: float,
    *,
    w_per_k: float,
    min_power_w: float,
    max_power_w: float,
    hot_tolerance_k: float,
    has_backup: bool,
) -> tuple[float, float, float]:
    """Split one step's heat between device and backup: (device W, backup W, device on fraction).

    ``hold_w`` is the power that ends the step at the setpoint, ``w_per_k`` the extra power per
    kelvin of end-of-step room temperature (> 0). See the module docstring for the rules.
    """
    if hold_w <= _NEGLIGIBLE_W:
        return 0.0, 0.0, 0.0
    if hold_w >= min_power_w:
        device = min(hold_w, max_power_w)
        backup = max(hold_w - max_power_w, 0.0) if has_backup else 0.0
        return device, backup, 1.0
    up_w = hold_w + hot_tolerance_k * w_per_k
    device = min(min_power_w, up_w)
    return device, 0.0, device / min_power_w


def _account(
    inputs: HomeYearInputs, setpoint: FloatArray, run: _Run, w_per_k: float
) -> HomeYearResult:
    """Turn the step powers into energy, money and CO2."""
    step_s = inputs.step_s
    to_kwh = step_s / _J_PER_KWH
    middle_ts = inputs.timestamps_ts - step_s / 2.0
    price = np.asarray(inputs.tariff.price_eur_per_kwh(middle_ts), dtype=np.float64)
    demand_kwh = run.demand_w * to_kwh
    device_kwh = run.device_w * to_kwh
    backup_heat_kwh = run.backup_w * to_kwh
    hashrate = inputs.device.hashrate_ths * run.device_w / inputs.device.max_power_w
    revenue_btc, revenue_eur = _mining_revenue(inputs, hashrate)
    carbon = inputs.carbon_g_per_kwh
    displaced_cost: dict[str, FloatArray] = {}
    displaced_energy: dict[str, FloatArray] = {}
    displaced_co2: dict[str, FloatArray] = {}
    for alternative in HEATING_ALTERNATIVES:
        (
            displaced_energy[alternative],
            displaced_cost[alternative],
            displaced_co2[alternative],
        ) = _heat_bought(inputs, demand_kwh, _alt(alternative), price)
    if inputs.backup == "none":
        zeros = np.zeros_like(backup_heat_kwh)
        backup_energy, backup_cost, backup_co2 = zeros, zeros, zeros
    else:
        backup_energy, backup_cost, backup_co2 = _heat_bought(
            inputs, backup_heat_kwh, _alt(inputs.backup), price
        )
    return HomeYearResult(
        inputs=inputs,
        setpoint_c=setpoint,
        room_temp_c=run.room_c,
        ideal_room_temp_c=run.ideal_room_c,
        heat_demand_kwh=demand_kwh,
        heat_request_kwh=run.request_w * to_kwh,
        heat_from_device_kwh=device_kwh,
        backup_heat_kwh=backup_heat_kwh,
        device_on_h=run.on_fraction * step_s / _S_PER_H,
        hashrate_ths=hashrate,
        mining_revenue_btc=revenue_btc,
        mining_revenue_eur=revenue_eur,
        price_eur_per_kwh=price,
        device_cost_eur=device_kwh * price,
        backup_energy_kwh=backup_energy,
        backup_cost_eur=backup_cost,
        co2_kg=device_kwh * np.asarray(carbon) / 1000.0 + backup_co2,
        displaced_cost_eur=MappingProxyType(displaced_cost),
        displaced_energy_kwh=MappingProxyType(displaced_energy),
        displaced_co2_kg=MappingProxyType(displaced_co2),
        band_capacity_j_per_k=w_per_k * step_s,
        months=inputs.local_months(),
    )


def _heat_bought(
    inputs: HomeYearInputs, heat_kwh: FloatArray, alternative: HeatingAlternative, price: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Energy bought [kWh], its cost [EUR] and CO2 [kg] to make ``heat_kwh`` with an alternative."""
    outdoor = inputs.outdoor_temp_c
    energy = displaced_energy_kwh(
        heat_kwh,
        alternative,
        outdoor_temp_c=outdoor,
        flow_temp_c=inputs.flow_temp_c,
        boiler_efficiency=inputs.boiler_efficiency,
    )
    cost = displaced_heating_cost_eur(
        heat_kwh,
        alternative,
        electricity_price_eur_per_kwh=price,
        gas_price_eur_per_kwh=inputs.gas_price_eur_per_kwh,
        outdoor_temp_c=outdoor,
        flow_temp_c=inputs.flow_temp_c,
        boiler_efficiency=inputs.boiler_efficiency,
    )
    co2 = displaced_co2_kg(
        heat_kwh,
        alternative,
        grid_carbon_g_per_kwh=inputs.carbon_g_per_kwh,
        gas_carbon_g_per_kwh=GAS_CARBON_G_PER_KWH,
        outdoor_temp_c=outdoor,
        flow_temp_c=inputs.flow_temp_c,
        boiler_efficiency=inputs.boiler_efficiency,
    )
    return (
        np.asarray(energy, dtype=np.float64),
        np.asarray(cost, dtype=np.float64),
        np.asarray(co2, dtype=np.float64),
    )


def _mining_revenue(
    inputs: HomeYearInputs, hashrate_ths: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return the expected mining revenue per step in BTC and in EUR."""
    market = inputs.market
    if inputs.hashprice_usd_per_ph_day is None:
        btc = np.asarray(
            mining_revenue_btc(
                hashrate_ths,
                inputs.step_s,
                market.difficulty,
                market.subsidy_btc,
                market.fees_btc_per_block,
            ),
            dtype=np.float64,
        )
        usd = btc * market.btc_price_usd
    else:
        usd = np.asarray(
            mining_revenue_from_hashprice_usd(
                hashrate_ths, inputs.step_s, inputs.hashprice_usd_per_ph_day
            ),
            dtype=np.float64,
        )
        btc = usd / market.btc_price_usd
    eur: FloatArray = usd / market.usd_per_eur
    return btc, eur


def _hashprice_usd_per_ph_day(inputs: HomeYearInputs) -> float:
    """Return the hashprice the run used [USD per PH/s per day]."""
    if inputs.hashprice_usd_per_ph_day is not None:
        return float(inputs.hashprice_usd_per_ph_day)
    return inputs.market.hashprice_usd_per_ph_day


def _power_per_kelvin_w(
    model: DiscreteModel, state_c: FloatArray, outdoor_temp_c: float, step_s: float, gains_w: float
) -> float:
    """Extra constant power that ends a step 1 K warmer [W/K]; the same in every state.

    The room model is linear, so the power for a target is affine in the target with this
    slope whatever the state, outdoor temperature and gains.
    """
    at_one = heat_power_for_target_w(model, state_c, 1.0, outdoor_temp_c, step_s, gains_w)
    at_zero = heat_power_for_target_w(model, state_c, 0.0, outdoor_temp_c, step_s, gains_w)
    slope = float(at_one) - float(at_zero)
    if not (math.isfinite(slope) and slope > 0.0):
        raise InputError(f"the room model gives a non-positive power per kelvin ({slope!r} W/K)")
    return slope


def _discrete(model: RoomModel, step_s: float) -> DiscreteModel:
    """Return the exact step matrices of one room (a scalar model, not a fleet)."""
    if not isinstance(model, Room1R1C | Room2R2C):
        raise InputError(f"model must be a Room1R1C or Room2R2C, got {model!r}")
    discrete = discretize(model, step_s)
    if discrete.a.ndim != 2:
        raise InputError("model must describe one home: its fields must be numbers, not arrays")
    return discrete


def _alt(kind: str) -> HeatingAlternative:
    """Narrow a validated alternative name to the literal type."""
    if kind == "resistive":
        return "resistive"
    if kind == "heat-pump":
        return "heat-pump"
    if kind == "gas":
        return "gas"
    raise InputError(f"unknown heating alternative {kind!r}")


def _checked_series(
    timestamps_ts: ArrayLike, outdoor_temp_c: ArrayLike, step_s: float
) -> tuple[FloatArray, FloatArray]:
    """Check the time and weather series: same length, finite, evenly spaced by ``step_s``."""
    timestamps = _vector("timestamps_ts", timestamps_ts)
    outdoor = _vector("outdoor_temp_c", outdoor_temp_c)
    if outdoor.size != timestamps.size:
        raise InputError(
            f"outdoor_temp_c has {outdoor.size} values, timestamps_ts has {timestamps.size}"
        )
    off = np.abs(np.diff(timestamps) - step_s) > _STEP_TOLERANCE_S
    if bool(np.any(off)):
        first = int(np.flatnonzero(off)[0])
        gap_s = float(timestamps[first + 1] - timestamps[first])
        raise InputError(
            f"timestamps_ts must step by step_s = {step_s:g} s; step {first} is {gap_s:g} s"
        )
    return timestamps, outdoor


def _check_prices(inputs: HomeYearInputs) -> None:
    """Check the market and price inputs."""
    if not isinstance(inputs.market, MarketSnapshot):
        raise InputError(f"market must be a MarketSnapshot, got {inputs.market!r}")
    if inputs.hashprice_usd_per_ph_day is not None:
        require_non_negative("hashprice_usd_per_ph_day", inputs.hashprice_usd_per_ph_day)
    require_finite("flow_temp_c", inputs.flow_temp_c)
    require_non_negative("gas_price_eur_per_kwh", inputs.gas_price_eur_per_kwh)
    efficiency = require_positive("boiler_efficiency", inputs.boiler_efficiency)
    if efficiency > 1.1:
        raise InputError(f"boiler_efficiency must be at most 1.1, got {inputs.boiler_efficiency!r}")


def _vector(name: str, values: ArrayLike) -> FloatArray:
    """Return a finite, non-empty, one-dimensional, read-only float copy of ``values``."""
    array = checked_array(name, values).copy()
    if array.ndim != 1 or array.size == 0:
        raise InputError(
            f"{name} must be a non-empty one-dimensional array, got shape {array.shape}"
        )
    array.setflags(write=False)
    return array
