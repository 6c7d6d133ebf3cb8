"""A year of one home with a compute heater: physics bounds, money identities, comfort."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core.catalog import Device, load_catalog
from heatgrid.core.economics import FlatTariff, MarketSnapshot, SeriesTariff
from heatgrid.core.errors import InputError
from heatgrid.core.homeyear import (
    PROGRESS_EVERY_STEPS,
    HomeYearInputs,
    HomeYearResult,
    simulate_home_year,
)
from heatgrid.core.thermal import HOUSE_PRESETS, Room1R1C

T0_TS = 1_672_531_200.0  # 2023-01-01T00:00:00Z
HOUR_S = 3600.0
J_PER_KWH = 3.6e6


def _asic(max_power_w: float, min_power_w: float, hashrate_ths: float = 10.0) -> Device:
    return Device(
        name="test asic",
        kind="asic",
        max_power_w=max_power_w,
        min_power_w=min_power_w,
        source="test",
        hashrate_ths=hashrate_ths,
    )


def _gpu(max_power_w: float, min_power_w: float) -> Device:
    return Device(
        name="test gpu", kind="gpu", max_power_w=max_power_w, min_power_w=min_power_w, source="t"
    )


def _inputs(
    outdoor_temp_c: Any = None, *, step_s: float = HOUR_S, **overrides: Any
) -> HomeYearInputs:
    if outdoor_temp_c is None:
        outdoor_temp_c = 2.0 + 6.0 * np.sin(np.arange(48) * 2.0 * np.pi / 24.0)
    outdoor = np.asarray(outdoor_temp_c, dtype=np.float64)
    values: dict[str, Any] = {
        "model": Room1R1C(ua_w_per_k=200.0, capacity_j_per_k=200.0 * 20.0 * HOUR_S),
        "timestamps_ts": T0_TS + step_s * np.arange(1, outdoor.size + 1),
        "outdoor_temp_c": outdoor,
        "device": _asic(1500.0, 600.0, 50.0),
        "tariff": FlatTariff(0.25),
        "step_s": step_s,
    }
    values.update(overrides)
    return HomeYearInputs(**values)


def _zoh_1r1c(
    ua_w_per_k: float,
    *,
    capacity_j_per_k: float,
    start_c: float,
    power_w: float,
    outdoor_c: float,
    step_s: float,
) -> tuple[float, float]:
    """Exact 1R1C step by hand: (end temperature [°C], ∫ (T − T_out − P/UA) dt over the step)."""
    decay = math.exp(-ua_w_per_k * step_s / capacity_j_per_k)
    steady_c = outdoor_c + power_w / ua_w_per_k
    end_c = steady_c + (start_c - steady_c) * decay
    return end_c, (start_c - steady_c) * capacity_j_per_k / ua_w_per_k * (1.0 - decay)


def _band_capacity_1r1c(ua_w_per_k: float, capacity_j_per_k: float, step_s: float) -> float:
    x = ua_w_per_k * step_s / capacity_j_per_k
    return capacity_j_per_k * x / (1.0 - math.exp(-x))


def _delivered_kwh(result: HomeYearResult) -> np.ndarray:
    return result.heat_from_device_kwh + result.backup_heat_kwh


@st.composite
def _homes(draw: st.DrawFn, *, with_backup: bool | None = None) -> HomeYearInputs:
    n_steps = draw(st.integers(6, 60))
    step_s = draw(st.sampled_from([900.0, 3600.0, 7200.0]))
    ua = draw(st.floats(50.0, 500.0))
    tau_h = draw(st.floats(2.0, 60.0))
    outdoor = draw(st.lists(st.floats(-15.0, 25.0), min_size=n_steps, max_size=n_steps))
    max_power_w = draw(st.floats(100.0, 5000.0))
    min_power_w = max_power_w * draw(st.floats(0.05, 1.0))
    if with_backup is None:
        backup = draw(st.sampled_from(["resistive", "heat-pump", "gas", "none"]))
    else:
        backup = draw(st.sampled_from(["resistive", "heat-pump", "gas"])) if with_backup else "none"
    return _inputs(
        outdoor,
        step_s=step_s,
        model=Room1R1C(ua_w_per_k=ua, capacity_j_per_k=ua * tau_h * HOUR_S),
        device=_asic(max_power_w, min_power_w, draw(st.floats(0.1, 300.0))),
        setpoint_c=draw(st.floats(16.0, 23.0)),
        hot_tolerance_k=draw(st.floats(0.0, 2.0)),
        cold_tolerance_k=draw(st.floats(0.0, 2.0)),
        backup=backup,
        tariff=FlatTariff(draw(st.floats(0.0, 0.6))),
    )


@settings(max_examples=60)
@given(inputs=_homes())
def test_energy_bounds_and_trajectory_of_a_1r1c_home(inputs: HomeYearInputs) -> None:
    result = simulate_home_year(inputs)
    model = inputs.model
    assert isinstance(model, Room1R1C)
    ua, capacity, step_s = model.ua_w_per_k, model.capacity_j_per_k, inputs.step_s
    band_j_per_k = _band_capacity_1r1c(ua, capacity, step_s)
    assert result.band_capacity_j_per_k == pytest.approx(band_j_per_k, rel=1e-9)

    for name in (
        "heat_demand_kwh",
        "heat_request_kwh",
        "heat_from_device_kwh",
        "backup_heat_kwh",
        "device_on_h",
        "hashrate_ths",
        "mining_revenue_btc",
        "backup_energy_kwh",
        "co2_kg",
    ):
        assert np.all(getattr(result, name) >= 0.0), name
    max_step_kwh = inputs.device.max_power_w * step_s / J_PER_KWH
    assert np.all(result.heat_from_device_kwh <= max_step_kwh * (1 + 1e-12))
    assert np.all(result.device_on_h <= step_s / HOUR_S * (1 + 1e-12))
    if inputs.backup == "none":
        assert np.all(result.backup_heat_kwh == 0.0)

    # Every step: delivered − request ≤ hot tolerance · band capacity, and only cycling steps
    # (device below its floor) deliver more than requested.
    slack_kwh = 1e-9 * (1.0 + max_step_kwh)
    band_kwh = inputs.hot_tolerance_k * band_j_per_k / J_PER_KWH
    excess_kwh = _delivered_kwh(result) - result.heat_request_kwh
    assert np.all(excess_kwh <= band_kwh + slack_kwh)
    min_step_kwh = inputs.device.min_power_w * step_s / J_PER_KWH
    cycling = result.heat_request_kwh < min_step_kwh
    assert np.all(excess_kwh[~cycling] <= slack_kwh)
    if inputs.backup != "none":
        assert np.all(np.abs(excess_kwh[~cycling]) <= slack_kwh)

    # The room trajectory is the exact 1R1C solution under the delivered power, and the energy
    # balance against the ideal heater holds exactly: excess = C·ΔT_end + UA·∫ΔT dt.
    room_c = ideal_c = float(result.setpoint_c[0])
    extra_loss_j = 0.0
    delivered_w = _delivered_kwh(result) * J_PER_KWH / step_s
    ideal_w = result.heat_demand_kwh * J_PER_KWH / step_s
    for k, outdoor_c in enumerate(inputs.outdoor_temp_c):
        room_c, room_int = _zoh_1r1c(
            ua,
            capacity_j_per_k=capacity,
            start_c=room_c,
            power_w=delivered_w[k],
            outdoor_c=outdoor_c,
            step_s=step_s,
        )
        ideal_c, ideal_int = _zoh_1r1c(
            ua,
            capacity_j_per_k=capacity,
            start_c=ideal_c,
            power_w=ideal_w[k],
            outdoor_c=outdoor_c,
            step_s=step_s,
        )
        # ∫T dt = ∫(T − T_out − P/UA) dt + (T_out + P/UA)·step
        extra_loss_j += ua * (room_int - ideal_int) + (delivered_w[k] - ideal_w[k]) * step_s
        assert result.room_temp_c[k] == pytest.approx(room_c, abs=1e-6)
        assert result.ideal_room_temp_c[k] == pytest.approx(ideal_c, abs=1e-6)
    total_excess_j = float(np.sum(_delivered_kwh(result) - result.heat_demand_kwh)) * J_PER_KWH
    stored_j = capacity * (result.room_temp_c[-1] - result.ideal_room_temp_c[-1])
    assert total_excess_j == pytest.approx(stored_j + extra_loss_j, abs=1e-3 * J_PER_KWH)

    summary = result.summary()
    assert summary["device_energy_kwh"] == summary["heat_from_device_kwh"]
    assert summary["heat_delivered_kwh"] == pytest.approx(
        summary["heat_from_device_kwh"] + summary["backup_heat_kwh"]
    )


@settings(max_examples=60)
@given(inputs=_homes(with_backup=True))
def test_with_a_backup_the_room_stays_in_the_band_above_the_ideal_heater(
    inputs: HomeYearInputs,
) -> None:
    result = simulate_home_year(inputs)
    hot_k = inputs.hot_tolerance_k
    gap_k = result.room_temp_c - result.ideal_room_temp_c
    assert np.all(gap_k >= -1e-7)
    assert np.all(gap_k <= hot_k + 1e-7)
    assert np.all(result.room_temp_c >= result.setpoint_c - 1e-7)
    assert result.comfort_deficit_k_h == pytest.approx(0.0, abs=1e-9)
    # Against the device-independent demand, each step's excess is within the band's heat.
    band_kwh = hot_k * result.band_capacity_j_per_k / J_PER_KWH
    excess_kwh = _delivered_kwh(result) - result.heat_demand_kwh
    assert np.all(excess_kwh <= band_kwh + 1e-7)
    n_cycling = int(np.count_nonzero(excess_kwh > 1e-7))
    # steps not counted as cycling may each carry up to 1e-7 kWh of rounding
    assert float(np.sum(excess_kwh)) <= n_cycling * band_kwh + 1e-7 * excess_kwh.size


@settings(max_examples=40)
@given(
    inputs=_homes(),
    btc_price_usd=st.floats(1_000.0, 500_000.0),
    difficulty=st.floats(1e12, 1e15),
    subsidy_btc=st.sampled_from([6.25, 3.125, 1.5625]),
    fees_btc_per_block=st.floats(0.0, 1.0),
)
def test_mining_revenue_is_the_block_reward_formula(
    inputs: HomeYearInputs,
    btc_price_usd: float,
    difficulty: float,
    subsidy_btc: float,
    fees_btc_per_block: float,
) -> None:
    market = MarketSnapshot(btc_price_usd, difficulty, fees_btc_per_block, subsidy_btc, 1.1)
    result = simulate_home_year(_replace(inputs, market=market))
    device = inputs.device
    power_w = result.heat_from_device_kwh * J_PER_KWH / inputs.step_s
    hashrate_hs = device.hashrate_ths * 1e12 * power_w / device.max_power_w
    expected_btc = float(
        np.sum(
            hashrate_hs
            * inputs.step_s
            / (difficulty * 2.0**32)
            * (subsidy_btc + fees_btc_per_block)
        )
    )
    summary = result.summary()
    assert summary["mining_revenue_btc"] == pytest.approx(expected_btc, rel=1e-9, abs=1e-18)
    assert summary["mining_revenue_eur"] == pytest.approx(
        expected_btc * btc_price_usd / 1.1, rel=1e-9, abs=1e-12
    )
    assert summary["savings_eur_gas"] == pytest.approx(
        summary["displaced_cost_eur_gas"] - summary["net_heating_cost_eur"]
    )


@settings(max_examples=30)
@given(inputs=_homes(), hashprice_usd_per_ph_day=st.floats(0.0, 200.0))
def test_a_quoted_hashprice_sets_revenue(
    inputs: HomeYearInputs, hashprice_usd_per_ph_day: float
) -> None:
    result = simulate_home_year(_replace(inputs, hashprice_usd_per_ph_day=hashprice_usd_per_ph_day))
    device = inputs.device
    device_h = float(np.sum(result.heat_from_device_kwh)) * 1000.0 / device.max_power_w
    expected_usd = device.hashrate_ths / 1000.0 * hashprice_usd_per_ph_day * device_h / 24.0
    summary = result.summary()
    assert summary["mining_revenue_usd"] == pytest.approx(expected_usd, rel=1e-9, abs=1e-12)
    assert summary["hashprice_usd_per_ph_day"] == hashprice_usd_per_ph_day


@settings(max_examples=40)
@given(
    inputs=_homes(),
    flow_temp_c=st.floats(45.0, 55.0),
    price_eur_per_kwh=st.floats(0.05, 0.5),
    gas_price_eur_per_kwh=st.floats(0.02, 0.3),
    boiler_efficiency=st.floats(0.6, 1.05),
)
def test_displaced_costs_follow_the_cop_curve_and_the_boiler(
    inputs: HomeYearInputs,
    flow_temp_c: float,
    price_eur_per_kwh: float,
    gas_price_eur_per_kwh: float,
    boiler_efficiency: float,
) -> None:
    result = simulate_home_year(
        _replace(
            inputs,
            flow_temp_c=flow_temp_c,
            tariff=FlatTariff(price_eur_per_kwh),
            gas_price_eur_per_kwh=gas_price_eur_per_kwh,
            boiler_efficiency=boiler_efficiency,
        )
    )
    lift_k = flow_temp_c - inputs.outdoor_temp_c  # 20 … 70 K: inside the fit, no clipping
    cop = 6.81 - 0.121 * lift_k + 0.000630 * lift_k**2
    demand = result.heat_demand_kwh
    summary = result.summary()
    assert summary["displaced_cost_eur_heat_pump"] == pytest.approx(
        float(np.sum(demand * price_eur_per_kwh / cop)), rel=1e-9, abs=1e-9
    )
    assert summary["displaced_cost_eur_resistive"] == pytest.approx(
        float(np.sum(demand)) * price_eur_per_kwh, rel=1e-9, abs=1e-9
    )
    assert summary["displaced_cost_eur_gas"] == pytest.approx(
        float(np.sum(demand)) * gas_price_eur_per_kwh / boiler_efficiency, rel=1e-9, abs=1e-9
    )
    for key in ("resistive", "heat_pump", "gas"):
        assert summary[f"savings_eur_{key}"] == pytest.approx(
            summary[f"displaced_cost_eur_{key}"] - summary["net_heating_cost_eur"]
        )


@settings(max_examples=30)
@given(inputs=_homes(with_backup=True))
def test_a_device_without_hashrate_costs_its_electricity(inputs: HomeYearInputs) -> None:
    gpu = _gpu(inputs.device.max_power_w, inputs.device.min_power_w)
    result = simulate_home_year(_replace(inputs, device=gpu, backup="resistive"))
    summary = result.summary()
    assert summary["mining_revenue_btc"] == 0.0
    assert summary["mining_revenue_eur"] == 0.0
    assert summary["net_heating_cost_eur"] == pytest.approx(summary["electricity_cost_eur"])
    assert summary["electricity_cost_eur"] == pytest.approx(
        float(np.sum(_delivered_kwh(result) * result.price_eur_per_kwh))
    )


def _replace(inputs: HomeYearInputs, **changes: Any) -> HomeYearInputs:
    fields = {
        name: getattr(inputs, name)
        for name in HomeYearInputs.__dataclass_fields__
        if name not in changes
    }
    return HomeYearInputs(**fields, **changes)


def test_a_large_modulating_heater_holds_the_setpoint_exactly() -> None:
    result = simulate_home_year(_inputs(device=_asic(10_000.0, 1.0, 100.0), setpoint_c=20.0))
    assert np.all(result.heat_demand_kwh > 0.0)
    np.testing.assert_allclose(result.room_temp_c, 20.0, atol=1e-9)
    np.testing.assert_allclose(result.heat_from_device_kwh, result.heat_demand_kwh, rtol=1e-9)
    assert float(np.sum(result.backup_heat_kwh)) == 0.0
    assert result.summary()["device_heat_share_pct"] == pytest.approx(100.0)
    assert result.summary()["device_hours_on_h"] == pytest.approx(48.0)


def test_an_undersized_heater_leaves_the_home_cold_without_a_backup() -> None:
    small = _asic(800.0, 400.0, 20.0)
    cold = simulate_home_year(_inputs(device=small, backup="none", setpoint_c=21.0))
    assert cold.comfort_deficit_k_h > 1.0
    assert cold.summary()["min_room_temp_c"] < 21.0 - 0.5
    assert float(np.sum(cold.backup_heat_kwh)) == 0.0
    warm = simulate_home_year(_inputs(device=small, backup="resistive", setpoint_c=21.0))
    assert warm.comfort_deficit_k_h == pytest.approx(0.0, abs=1e-9)
    assert float(np.sum(warm.backup_heat_kwh)) > 10.0
    np.testing.assert_allclose(
        warm.heat_from_device_kwh + warm.backup_heat_kwh, warm.heat_demand_kwh, rtol=1e-9
    )
    # The device runs flat out whenever the backup helps.
    helped = warm.backup_heat_kwh > 0.0
    np.testing.assert_allclose(warm.heat_from_device_kwh[helped], 0.8)


def test_a_device_below_its_floor_cycles_inside_the_hot_band() -> None:
    # A light room (small capacity) in mild weather: demand ≈ 200 W · (20 − 12) = 1.6 kW is
    # below the 3 kW floor, and the band holds less heat than an hour at the floor.
    light = Room1R1C(ua_w_per_k=200.0, capacity_j_per_k=2.0e6)
    outdoor = np.full(24, 12.0)
    inputs = _inputs(outdoor, model=light, device=_asic(3500.0, 3000.0, 200.0), hot_tolerance_k=1.0)
    result = simulate_home_year(inputs)
    on_h = result.device_on_h
    assert np.all(on_h < 1.0)
    assert np.any(on_h > 0.0)
    heated = result.heat_from_device_kwh > 0.0
    assert np.all(result.room_temp_c[heated] <= 21.0 + 1e-9)
    assert np.any(result.room_temp_c > 20.5)
    # Cycling at the floor: mean power = floor · on fraction.
    np.testing.assert_allclose(result.heat_from_device_kwh[heated], 3.0 * on_h[heated], rtol=1e-12)
    # Overshoot costs heat: more than the ideal demand, at most one band per cycling step.
    excess_kwh = float(np.sum(result.heat_from_device_kwh - result.heat_demand_kwh))
    band_kwh = 1.0 * result.band_capacity_j_per_k / J_PER_KWH
    assert 0.0 < excess_kwh <= np.count_nonzero(heated) * band_kwh + 1e-9
    # With no hot tolerance the device cycles to the request exactly (ideal cycling).
    tight = simulate_home_year(_replace(inputs, hot_tolerance_k=0.0))
    np.testing.assert_allclose(tight.room_temp_c, 20.0, atol=1e-9)
    np.testing.assert_allclose(tight.heat_from_device_kwh, tight.heat_demand_kwh, rtol=1e-9)


def test_warm_weather_needs_no_heat_and_earns_nothing() -> None:
    result = simulate_home_year(_inputs(np.full(24, 25.0), setpoint_c=20.0))
    summary = result.summary()
    for key in ("heat_demand_kwh", "heat_from_device_kwh", "backup_heat_kwh", "mining_revenue_eur"):
        assert summary[key] == 0.0
    assert summary["net_heating_cost_eur"] == 0.0
    assert summary["device_heat_share_pct"] == 0.0
    assert summary["max_room_temp_c"] > 20.0


def test_the_schedule_follows_local_time() -> None:
    schedule = np.full(24, 20.0)
    schedule[22:] = schedule[:6] = 17.0
    inputs = _inputs(setpoint_c=schedule, tz_offset_h=1.0)
    setpoint = inputs.setpoint_schedule_c()
    # Step k ends at T0 + (k + 1) h UTC; its middle is at (k + 0.5) h UTC = (k + 1.5) h local.
    local_hour = (np.arange(48) + 1) % 24
    np.testing.assert_array_equal(setpoint, schedule[local_hour])
    assert setpoint[4] == 17.0  # 05:30 local
    assert setpoint[5] == 20.0  # 06:30 local
    result = simulate_home_year(inputs)
    np.testing.assert_array_equal(result.setpoint_c, setpoint)
    assert result.room_temp_c[5] == pytest.approx(20.0)  # 07:00 local, heated to the day setpoint
    assert setpoint[21] == 17.0  # 22:30 local: the setback starts, the room floats down
    assert result.heat_demand_kwh[21] == 0.0
    assert result.room_temp_c[21] > 17.5


def test_months_split_at_local_midnight_and_sum_to_the_totals() -> None:
    jan31_ts = T0_TS + 30 * 86_400.0
    outdoor = np.full(48, 0.0)
    inputs = _inputs(
        outdoor,
        timestamps_ts=jan31_ts + HOUR_S * np.arange(1, 49),
        tz_offset_h=2.0,
    )
    months = inputs.local_months()
    assert np.count_nonzero(months == 1) == 22  # 02:00–24:00 local on 31 January
    assert np.count_nonzero(months == 2) == 26
    result = simulate_home_year(inputs)
    monthly = result.monthly()
    for name, values in monthly.items():
        assert values.shape == (12,)
        assert np.all(values[2:] == 0.0), name
    assert float(np.sum(monthly["heat_from_device_kwh"])) == pytest.approx(
        result.summary()["heat_from_device_kwh"]
    )
    assert float(np.sum(monthly["net_heating_cost_eur"])) == pytest.approx(
        result.summary()["net_heating_cost_eur"]
    )


def test_a_price_series_is_read_at_the_middle_of_each_step() -> None:
    prices = np.linspace(0.1, 0.5, 48)
    tariff = SeriesTariff(T0_TS + HOUR_S * np.arange(48), prices)  # hour-start stamps
    carbon = np.linspace(50.0, 400.0, 48)
    result = simulate_home_year(_inputs(tariff=tariff, carbon_g_per_kwh=carbon, setpoint_c=22.0))
    np.testing.assert_allclose(result.price_eur_per_kwh, prices)
    np.testing.assert_allclose(result.device_cost_eur, result.heat_from_device_kwh * prices)
    delivered = _delivered_kwh(result)
    np.testing.assert_allclose(result.co2_kg, delivered * carbon / 1000.0, rtol=1e-12)


def test_a_gas_backup_is_priced_as_gas() -> None:
    result = simulate_home_year(
        _inputs(
            device=_asic(500.0, 250.0, 20.0),
            backup="gas",
            gas_price_eur_per_kwh=0.08,
            boiler_efficiency=0.8,
        )
    )
    np.testing.assert_allclose(result.backup_energy_kwh, result.backup_heat_kwh / 0.8)
    np.testing.assert_allclose(result.backup_cost_eur, result.backup_heat_kwh / 0.8 * 0.08)
    summary = result.summary()
    assert summary["backup_heat_kwh"] > 0.0
    assert summary["electricity_cost_eur"] == pytest.approx(summary["device_electricity_cost_eur"])
    assert summary["heating_cost_eur"] == pytest.approx(
        summary["device_electricity_cost_eur"] + summary["backup_cost_eur"]
    )
    assert summary["co2_kg"] == pytest.approx(
        summary["device_energy_kwh"] * 0.240 + summary["backup_energy_kwh"] * 0.202
    )


@pytest.mark.parametrize("preset", sorted(HOUSE_PRESETS))
def test_two_node_presets_keep_the_band_bound(preset: str) -> None:
    outdoor = -2.0 + 8.0 * np.sin(np.arange(96) * 2.0 * np.pi / 24.0)
    inputs = _inputs(outdoor, model=HOUSE_PRESETS[preset], device=_asic(1300.0, 800.0, 60.0))
    result = simulate_home_year(inputs)
    band_kwh = inputs.hot_tolerance_k * result.band_capacity_j_per_k / J_PER_KWH
    excess_kwh = _delivered_kwh(result) - result.heat_request_kwh
    assert np.all(excess_kwh <= band_kwh + 1e-9)
    heated = _delivered_kwh(result) > 0.0
    assert np.all(result.room_temp_c[heated] <= result.setpoint_c[heated] + 1.0 + 1e-9)
    assert np.all(result.room_temp_c[heated] >= result.setpoint_c[heated] - 1e-9)
    assert result.summary()["heat_demand_kwh"] > 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timestamps_ts": T0_TS + HOUR_S * np.r_[1:24, 25:50]}, "step by step_s"),
        ({"timestamps_ts": T0_TS + HOUR_S * np.arange(1, 4)}, "outdoor_temp_c has 48 values"),
        ({"outdoor_temp_c": np.r_[np.zeros(47), np.nan]}, "outdoor_temp_c must be finite"),
        ({"hot_tolerance_k": -1.0}, "hot_tolerance_k must not be negative"),
        ({"cold_tolerance_k": math.inf}, "cold_tolerance_k must be a finite number"),
        ({"setpoint_c": [20.0, 21.0, 22.0]}, "24 values by local hour"),
        ({"backup": "oil"}, "backup must be one of"),
        ({"tz_offset_h": 20.0}, "tz_offset_h must be within"),
        ({"initial_state_c": [20.0, 19.0]}, "initial_state_c needs 1 node"),
        ({"carbon_g_per_kwh": np.ones(5)}, "carbon_g_per_kwh must be one value or one per step"),
        ({"boiler_efficiency": 1.5}, "boiler_efficiency must be at most 1.1"),
        ({"hashprice_usd_per_ph_day": -3.0}, "hashprice_usd_per_ph_day must not be negative"),
        ({"step_s": 0.0}, "step_s must be greater than 0"),
    ],
)
def test_bad_inputs_are_refused_by_name(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _inputs(**changes)


def test_progress_is_reported_weekly_and_after_the_last_step() -> None:
    n = 2 * PROGRESS_EVERY_STEPS + 5
    inputs = HomeYearInputs(
        model=Room1R1C(ua_w_per_k=150.0, capacity_j_per_k=2e7),
        timestamps_ts=3600.0 * np.arange(1, n + 1),
        outdoor_temp_c=np.full(n, 0.0),
        device=load_catalog().find("Avalon Q"),
        tariff=FlatTariff(0.3),
    )
    seen: list[int] = []
    simulate_home_year(inputs, progress=seen.append)
    assert seen == [PROGRESS_EVERY_STEPS, 2 * PROGRESS_EVERY_STEPS, n]
