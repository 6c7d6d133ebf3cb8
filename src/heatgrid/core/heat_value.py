"""The value of heat: what the home would otherwise pay and emit for the same heat.

A compute heater's heat displaces heat from the home's usual heating: a resistive heater
(1 kWh of electricity per kWh of heat), an air-source heat pump (1/COP kWh of electricity) or a
gas boiler (1/efficiency kWh of gas). All functions work per hour on arrays.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args, overload

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.carbon import GAS_CARBON_G_PER_KWH
from heatgrid.core.defaults import DEFAULT_BOILER_EFFICIENCY, DEFAULT_FLOW_TEMP_C
from heatgrid.core.errors import InputError

__all__ = [
    "DEFAULT_BOILER_EFFICIENCY",
    "DEFAULT_FLOW_TEMP_C",
    "HEATING_ALTERNATIVES",
    "HeatingAlternative",
    "displaced_co2_kg",
    "displaced_energy_kwh",
    "displaced_heating_cost_eur",
    "heat_pump_cop",
]

HeatingAlternative: TypeAlias = Literal["resistive", "heat-pump", "gas"]
HEATING_ALTERNATIVES: tuple[str, ...] = get_args(HeatingAlternative)
"""The heating a compute heater can displace."""


# Staffell, Brett, Brandon, Hawkes (2012), "A review of domestic heat pumps", Energy Environ.
# Sci. 5, 9291-9306: regression of field and test data for air-source heat pumps.
_COP_A = 6.81
_COP_B = 0.121  # per K
_COP_C = 0.000630  # per K²
_MIN_LIFT_K = 15.0
_VERTEX_LIFT_K = _COP_B / (2.0 * _COP_C)  # ≈ 96 K, where the quadratic reaches its minimum
_MIN_COP = 1.0


@overload
def heat_pump_cop(lift_k: float) -> float: ...
@overload
def heat_pump_cop(lift_k: ArrayLike) -> FloatArray: ...
def heat_pump_cop(lift_k: ArrayLike) -> FloatOrArray:
    """Return the coefficient of performance of an air-source heat pump [dimensionless].

    ``COP = 6.81 − 0.121 ΔT + 0.000630 ΔT²`` (Staffell et al. 2012, air source), with
    ``ΔT = sink − source``, e.g. flow temperature minus outdoor temperature.

    The fit comes from data with lifts of roughly 15–60 K. Outside it the lift is clipped:
    below 15 K the COP is held at COP(15 K) ≈ 5.14 rather than climbing towards 6.81, and above
    the parabola's vertex (≈ 96 K, COP ≈ 1.0) it is held at the vertex instead of rising again,
    which would be unphysical. The result is never below 1: at such lifts a real unit runs on
    its resistive backup. COP is thus non-increasing in lift everywhere.

    Parameters
    ----------
    lift_k : float or array_like
        Temperature lift ΔT = sink − source [K]; any finite value.

    Returns
    -------
    float or numpy.ndarray
        COP [dimensionless], in [1, 5.14].
    """
    lift = np.clip(checked_array("lift_k", lift_k), _MIN_LIFT_K, _VERTEX_LIFT_K)
    cop = _COP_A - _COP_B * lift + _COP_C * lift * lift
    return scalar_or_array(np.maximum(cop, _MIN_COP))


@overload
def displaced_energy_kwh(
    heat_kwh: float,
    alternative: HeatingAlternative,
    *,
    outdoor_temp_c: float | None = None,
    flow_temp_c: float = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> float: ...
@overload
def displaced_energy_kwh(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatArray: ...
def displaced_energy_kwh(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatOrArray:
    """Return the energy the alternative heating would have bought for the same heat [kWh].

    Electricity for ``"resistive"`` (``heat_kwh``) and ``"heat-pump"`` (``heat_kwh / COP``, COP
    from :func:`heat_pump_cop` of ``flow_temp_c − outdoor_temp_c``); gas fuel energy (net
    calorific value) for ``"gas"`` (``heat_kwh / boiler_efficiency``).

    Parameters
    ----------
    heat_kwh : float or array_like
        Heat delivered by the compute heater [kWh], >= 0; e.g. one value per hour.
    alternative : {"resistive", "heat-pump", "gas"}
        The heating it displaces.
    outdoor_temp_c : float or array_like, optional
        Outdoor air temperature [°C]; required for ``"heat-pump"``.
    flow_temp_c : float or array_like
        Heat-pump flow temperature [°C].
    boiler_efficiency : float
        Gas boiler efficiency, heat out per fuel energy in [dimensionless], in (0, 1.1].

    Returns
    -------
    float or numpy.ndarray
        Displaced electricity or gas [kWh].
    """
    heat = checked_array("heat_kwh", heat_kwh, minimum=0.0)
    return scalar_or_array(
        heat / _efficiency(alternative, outdoor_temp_c, flow_temp_c, boiler_efficiency)
    )


@overload
def displaced_heating_cost_eur(
    heat_kwh: float,
    alternative: HeatingAlternative,
    *,
    electricity_price_eur_per_kwh: float | None = None,
    gas_price_eur_per_kwh: float | None = None,
    outdoor_temp_c: float | None = None,
    flow_temp_c: float = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> float: ...
@overload
def displaced_heating_cost_eur(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    electricity_price_eur_per_kwh: ArrayLike | None = None,
    gas_price_eur_per_kwh: ArrayLike | None = None,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatArray: ...
def displaced_heating_cost_eur(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    electricity_price_eur_per_kwh: ArrayLike | None = None,
    gas_price_eur_per_kwh: ArrayLike | None = None,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatOrArray:
    """Return what the alternative heating would have cost for the same heat [EUR].

    Resistive: ``heat · price``; heat pump: ``heat · price / COP`` per hour; gas:
    ``heat · gas_price / boiler_efficiency``. This is the value of the compute heater's heat.

    Parameters
    ----------
    heat_kwh : float or array_like
        Heat delivered [kWh], >= 0.
    alternative : {"resistive", "heat-pump", "gas"}
        The heating it displaces.
    electricity_price_eur_per_kwh : float or array_like, optional
        Electricity price [EUR/kWh], per hour or flat; required for resistive and heat pump.
        Negative prices are allowed (wholesale series).
    gas_price_eur_per_kwh : float or array_like, optional
        Gas price per kWh of fuel energy [EUR/kWh], >= 0; required for gas. Use the same
        calorific basis (net or gross) as ``boiler_efficiency``.
    outdoor_temp_c : float or array_like, optional
        Outdoor air temperature [°C]; required for heat pump.
    flow_temp_c : float or array_like
        Heat-pump flow temperature [°C].
    boiler_efficiency : float
        Gas boiler efficiency [dimensionless], in (0, 1.1].

    Returns
    -------
    float or numpy.ndarray
        Displaced heating cost [EUR], element-wise.
    """
    energy = np.asarray(
        displaced_energy_kwh(
            heat_kwh,
            alternative,
            outdoor_temp_c=outdoor_temp_c,
            flow_temp_c=flow_temp_c,
            boiler_efficiency=boiler_efficiency,
        )
    )
    if alternative == "gas":
        if gas_price_eur_per_kwh is None:
            raise InputError('gas_price_eur_per_kwh is required for alternative="gas"')
        price = checked_array("gas_price_eur_per_kwh", gas_price_eur_per_kwh, minimum=0.0)
    else:
        if electricity_price_eur_per_kwh is None:
            raise InputError(
                f"electricity_price_eur_per_kwh is required for alternative={alternative!r}"
            )
        price = checked_array("electricity_price_eur_per_kwh", electricity_price_eur_per_kwh)
    return scalar_or_array(energy * price)


@overload
def displaced_co2_kg(
    heat_kwh: float,
    alternative: HeatingAlternative,
    *,
    grid_carbon_g_per_kwh: float | None = None,
    gas_carbon_g_per_kwh: float = GAS_CARBON_G_PER_KWH,
    outdoor_temp_c: float | None = None,
    flow_temp_c: float = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> float: ...
@overload
def displaced_co2_kg(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    grid_carbon_g_per_kwh: ArrayLike | None = None,
    gas_carbon_g_per_kwh: float = GAS_CARBON_G_PER_KWH,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatArray: ...
def displaced_co2_kg(
    heat_kwh: ArrayLike,
    alternative: HeatingAlternative,
    *,
    grid_carbon_g_per_kwh: ArrayLike | None = None,
    gas_carbon_g_per_kwh: float = GAS_CARBON_G_PER_KWH,
    outdoor_temp_c: ArrayLike | None = None,
    flow_temp_c: ArrayLike = DEFAULT_FLOW_TEMP_C,
    boiler_efficiency: float = DEFAULT_BOILER_EFFICIENCY,
) -> FloatOrArray:
    """Return the CO2 the alternative heating would have emitted for the same heat [kg CO2e].

    Displaced electricity times the grid intensity for resistive and heat pump; displaced gas
    times ``gas_carbon_g_per_kwh`` (combustion, 202 g/kWh by default) for gas.

    Parameters
    ----------
    heat_kwh : float or array_like
        Heat delivered [kWh], >= 0.
    alternative : {"resistive", "heat-pump", "gas"}
        The heating it displaces.
    grid_carbon_g_per_kwh : float or array_like, optional
        Grid intensity [g CO2e/kWh], >= 0, flat or hourly; required for resistive and heat pump.
    gas_carbon_g_per_kwh : float
        Emission factor of gas per kWh of fuel [g CO2/kWh], >= 0.
    outdoor_temp_c : float or array_like, optional
        Outdoor air temperature [°C]; required for heat pump.
    flow_temp_c : float or array_like
        Heat-pump flow temperature [°C].
    boiler_efficiency : float
        Gas boiler efficiency [dimensionless], in (0, 1.1].

    Returns
    -------
    float or numpy.ndarray
        Displaced emissions [kg CO2e], element-wise.
    """
    energy = np.asarray(
        displaced_energy_kwh(
            heat_kwh,
            alternative,
            outdoor_temp_c=outdoor_temp_c,
            flow_temp_c=flow_temp_c,
            boiler_efficiency=boiler_efficiency,
        )
    )
    if alternative == "gas":
        intensity = checked_array("gas_carbon_g_per_kwh", gas_carbon_g_per_kwh, minimum=0.0)
    else:
        if grid_carbon_g_per_kwh is None:
            raise InputError(f"grid_carbon_g_per_kwh is required for alternative={alternative!r}")
        intensity = checked_array("grid_carbon_g_per_kwh", grid_carbon_g_per_kwh, minimum=0.0)
    return scalar_or_array(energy * intensity / 1000.0)


def _efficiency(
    alternative: str,
    outdoor_temp_c: ArrayLike | None,
    flow_temp_c: ArrayLike,
    boiler_efficiency: float,
) -> FloatArray:
    """Heat out per energy bought for an alternative [dimensionless]."""
    if alternative == "resistive":
        return np.asarray(1.0)
    if alternative == "heat-pump":
        if outdoor_temp_c is None:
            raise InputError('outdoor_temp_c is required for alternative="heat-pump"')
        outdoor = checked_array("outdoor_temp_c", outdoor_temp_c)
        flow = checked_array("flow_temp_c", flow_temp_c)
        return np.asarray(heat_pump_cop(flow - outdoor), dtype=np.float64)
    if alternative == "gas":
        efficiency = checked_array(
            "boiler_efficiency", boiler_efficiency, minimum=0.0, strictly_above=True
        )
        if bool(np.any(efficiency > 1.1)):
            raise InputError(f"boiler_efficiency must be at most 1.1, got {boiler_efficiency!r}")
        return efficiency
    raise InputError(
        f"alternative must be one of {', '.join(HEATING_ALTERNATIVES)}, got {alternative!r}"
    )
