"""Tests for heat-pump COP, displaced heating cost and energy, and carbon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.carbon import (
    GAS_CARBON_G_PER_KWH,
    GRID_CARBON_G_PER_KWH,
    co2_kg,
    grid_carbon_g_per_kwh,
)
from heatgrid.core.errors import InputError
from heatgrid.core.heat_value import (
    displaced_co2_kg,
    displaced_energy_kwh,
    displaced_heating_cost_eur,
    heat_pump_cop,
)

temps_c = st.floats(min_value=-30.0, max_value=25.0)
heats_kwh = st.floats(min_value=0.0, max_value=100.0)


def test_cop_follows_staffell_fit() -> None:
    # 6.81 - 0.121 * 35 + 0.00063 * 35**2, worked by hand.
    assert heat_pump_cop(35.0) == pytest.approx(3.34675)
    assert heat_pump_cop(50.0) == pytest.approx(6.81 - 6.05 + 1.575)


def test_cop_is_clipped_outside_the_fit() -> None:
    assert heat_pump_cop(0.0) == heat_pump_cop(15.0) == pytest.approx(5.13675)
    assert heat_pump_cop(-10.0) == heat_pump_cop(15.0)
    assert heat_pump_cop(150.0) == heat_pump_cop(96.0327) >= 1.0
    assert heat_pump_cop(150.0) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InputError, match="lift_k"):
        heat_pump_cop(float("nan"))


@given(st.floats(min_value=-50.0, max_value=200.0), st.floats(min_value=0.0, max_value=50.0))
def test_cop_never_increases_with_lift(lift_k: float, extra_k: float) -> None:
    assert heat_pump_cop(lift_k + extra_k) <= heat_pump_cop(lift_k)
    assert 1.0 <= heat_pump_cop(lift_k) <= heat_pump_cop(15.0)


@given(st.floats(min_value=15.0, max_value=59.0), st.floats(min_value=0.5, max_value=1.0))
def test_cop_strictly_decreasing_over_valid_range(lift_k: float, step_k: float) -> None:
    assert heat_pump_cop(lift_k + step_k) < heat_pump_cop(lift_k)


@given(heats_kwh, temps_c, st.floats(min_value=0.0, max_value=2.0))
def test_heat_pump_never_costs_more_than_resistive(
    heat_kwh: float, outdoor_temp_c: float, price: float
) -> None:
    resistive = displaced_heating_cost_eur(
        heat_kwh, "resistive", electricity_price_eur_per_kwh=price
    )
    heat_pump = displaced_heating_cost_eur(
        heat_kwh, "heat-pump", electricity_price_eur_per_kwh=price, outdoor_temp_c=outdoor_temp_c
    )
    assert 0.0 <= heat_pump <= resistive
    assert resistive == pytest.approx(heat_kwh * price)


def test_displaced_cost_hourly_arrays() -> None:
    heat_kwh = np.array([1.0, 2.0, 0.0])
    price = np.array([0.2, 0.3, 0.4])
    outdoor_c = np.array([10.0, -5.0, 0.0])
    cost = displaced_heating_cost_eur(
        heat_kwh, "heat-pump", electricity_price_eur_per_kwh=price, outdoor_temp_c=outdoor_c
    )
    expected = heat_kwh * price / heat_pump_cop(45.0 - outdoor_c)
    np.testing.assert_allclose(cost, expected)
    gas = displaced_heating_cost_eur(heat_kwh, "gas", gas_price_eur_per_kwh=0.09)
    np.testing.assert_allclose(gas, heat_kwh * 0.09 / 0.9)


def test_displaced_energy_per_alternative() -> None:
    assert displaced_energy_kwh(9.0, "resistive") == 9.0
    assert displaced_energy_kwh(9.0, "gas", boiler_efficiency=0.9) == pytest.approx(10.0)
    assert displaced_energy_kwh(9.0, "heat-pump", outdoor_temp_c=10.0) == pytest.approx(
        9.0 / 3.34675
    )


def test_displaced_heating_needs_its_inputs() -> None:
    with pytest.raises(InputError, match="outdoor_temp_c"):
        displaced_energy_kwh(1.0, "heat-pump")
    with pytest.raises(InputError, match="electricity_price_eur_per_kwh"):
        displaced_heating_cost_eur(1.0, "resistive")
    with pytest.raises(InputError, match="gas_price_eur_per_kwh"):
        displaced_heating_cost_eur(1.0, "gas")
    with pytest.raises(InputError, match="alternative"):
        displaced_energy_kwh(1.0, "wood")  # type: ignore[call-overload]
    with pytest.raises(InputError, match="boiler_efficiency"):
        displaced_energy_kwh(1.0, "gas", boiler_efficiency=0.0)
    with pytest.raises(InputError, match="heat_kwh"):
        displaced_energy_kwh(-1.0, "resistive")
    with pytest.raises(InputError, match="grid_carbon_g_per_kwh"):
        displaced_co2_kg(1.0, "resistive")


def test_displaced_co2() -> None:
    assert displaced_co2_kg(9.0, "gas") == pytest.approx(10.0 * 0.202)
    assert displaced_co2_kg(2.0, "resistive", grid_carbon_g_per_kwh=60.0) == pytest.approx(0.12)
    hourly = displaced_co2_kg(
        np.ones(2), "heat-pump", grid_carbon_g_per_kwh=np.array([100.0, 300.0]), outdoor_temp_c=10.0
    )
    np.testing.assert_allclose(hourly, np.array([0.1, 0.3]) / 3.34675)


def test_gas_factor_follows_ipcc_default() -> None:
    # IPCC 2006: 56,100 kg CO2 per TJ of natural gas; 1 kWh = 3.6e-6 TJ.
    assert pytest.approx(56_100 * 3.6e-6 * 1000, abs=0.5) == GAS_CARBON_G_PER_KWH


def test_co2_scalar_and_series() -> None:
    assert co2_kg(1000.0, 56.0) == pytest.approx(56.0)
    hourly = co2_kg(np.array([1.0, 2.0]), np.array([100.0, 400.0]))
    np.testing.assert_allclose(hourly, [0.1, 0.8])
    with pytest.raises(InputError, match="same shape"):
        co2_kg(np.ones(3), np.ones(2))
    with pytest.raises(InputError, match="carbon_g_per_kwh"):
        co2_kg(1.0, -5.0)


def test_grid_carbon_table() -> None:
    assert len(GRID_CARBON_G_PER_KWH) >= 30
    assert all(0 < value < 1000 for value in GRID_CARBON_G_PER_KWH.values())
    # Nuclear/hydro grids are cleaner than coal-heavy ones.
    assert grid_carbon_g_per_kwh("fr") < grid_carbon_g_per_kwh("DE") < grid_carbon_g_per_kwh("PL")
    assert grid_carbon_g_per_kwh("uk") == grid_carbon_g_per_kwh("GB")
    with pytest.raises(InputError, match=r"'XX'.*known codes: AT"):
        grid_carbon_g_per_kwh("XX")
