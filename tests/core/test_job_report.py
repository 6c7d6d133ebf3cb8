"""core.job_report: a job's energy splits into heat and CO2 that add up, and compare."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core import job_report
from heatgrid.core.errors import InputError

_DEVICES = st.lists(
    st.tuples(
        st.floats(0.0, 1e9),
        st.booleans(),
        st.floats(0.0, 1.0),
        st.floats(0.0, 900.0),
    ),
    min_size=1,
    max_size=20,
)


@given(_DEVICES, st.floats(0.0, 0.5), st.floats(1.0, 3.0))
def test_the_report_adds_up(
    devices: list[tuple[float, bool, float, float]], displaced: float, pue: float
) -> None:
    energy, home, fraction, grid = (np.array(column) for column in zip(*devices, strict=True))
    report = job_report.job_energy_report(energy, home, fraction, grid, displaced, pue=pue)
    scale = max(1.0, report.total_energy_j) * 1e-12
    assert math.isclose(report.total_energy_j, float(energy.sum()), abs_tol=scale)
    assert math.isclose(
        report.heat_into_homes_j + report.total_heat_outside_homes_j,
        report.total_energy_j,
        rel_tol=1e-12,
        abs_tol=scale,
    )
    assert math.isclose(
        report.total_useful_heat_j + report.total_unwanted_heat_j,
        report.heat_into_homes_j,
        rel_tol=1e-12,
        abs_tol=scale,
    )
    np.testing.assert_allclose(
        report.useful_heat_j + report.unwanted_heat_j + report.heat_outside_homes_j,
        energy,
        rtol=1e-12,
    )
    assert np.all(report.heat_outside_homes_j[home] == 0.0)
    assert np.all(report.useful_heat_j[~home] == 0.0)
    # the comparison is reproducible from the printed figures
    assert math.isclose(
        report.co2_saved_kg,
        report.data_centre_co2_kg + report.displaced_heating_co2_kg - report.total_co2_kg,
        rel_tol=1e-9,
        abs_tol=1e-9,
    )
    assert math.isclose(
        report.data_centre_co2_kg,
        report.data_centre_energy_j / 3.6e6 * report.data_centre_carbon_g_per_kwh / 1000.0,
        rel_tol=1e-9,
        abs_tol=1e-12,
    )


def test_a_job_in_two_homes_in_numbers() -> None:
    kwh = 3.6e6
    report = job_report.job_energy_report(
        energy_j=[2 * kwh, 1 * kwh, 1 * kwh],
        in_home=[True, True, False],
        useful_fraction=[0.75, 1.0, 1.0],
        grid_carbon_g_per_kwh=[400.0, 100.0, 100.0],
        displaced_co2_kg_per_kwh_heat=0.2,
        pue=1.5,
    )
    assert report.total_useful_heat_j == pytest.approx(2.5 * kwh)
    assert report.total_unwanted_heat_j == pytest.approx(0.5 * kwh)
    assert report.total_heat_outside_homes_j == pytest.approx(1 * kwh)
    assert report.total_co2_kg == pytest.approx(0.8 + 0.1 + 0.1)
    assert report.data_centre_carbon_g_per_kwh == pytest.approx(250.0)  # energy-weighted
    assert report.data_centre_co2_kg == pytest.approx(1.5 * 4 * 0.25)
    assert report.displaced_heating_co2_kg == pytest.approx(2.5 * 0.2)
    assert report.co2_saved_kg == pytest.approx(1.5 + 0.5 - 1.0)


def test_each_home_displaces_its_own_heating() -> None:
    kwh = 3.6e6
    report = job_report.job_energy_report(
        [kwh, kwh], [True, True], [1.0, 0.5], [100.0, 100.0], [0.2, 0.4]
    )
    assert report.displaced_heating_co2_kg == pytest.approx(0.2 + 0.5 * 0.4)


def test_useful_fraction_counts_heat_while_the_room_wanted_it() -> None:
    fraction = job_report.useful_heat_fraction(
        power_w=[1000.0, 1000.0, 500.0, 1000.0],
        duration_s=[60.0, 60.0, 120.0, 60.0],
        room_temp_c=[19.0, 21.4, 22.0, math.nan],
        setpoint_c=[21.0, 21.0, 21.0, 21.0],
        hot_tolerance_k=0.5,
    )
    assert fraction == pytest.approx(120_000.0 / 240_000.0)
    assert job_report.useful_heat_fraction([0.0], [60.0], [19.0], [21.0], 0.5) is None


def test_bad_report_input_is_named() -> None:
    with pytest.raises(InputError, match="in_home"):
        job_report.job_energy_report([1.0, 2.0], [True], [0.5, 0.5], [1.0, 1.0], 0.2)
    with pytest.raises(InputError, match="useful_fraction"):
        job_report.job_energy_report([1.0], [True], [1.5], [1.0], 0.2)
    with pytest.raises(InputError, match="pue"):
        job_report.job_energy_report([1.0], [True], [0.5], [1.0], 0.2, pue=0.9)
    with pytest.raises(InputError, match="energy_j"):
        job_report.job_energy_report([-1.0], [True], [0.5], [1.0], 0.2)
    with pytest.raises(InputError, match="displaced_co2"):
        job_report.job_energy_report([1.0, 1.0], [True] * 2, [0.5] * 2, [1.0] * 2, [0.2] * 3)
    with pytest.raises(InputError, match="hot_tolerance_k"):
        job_report.useful_heat_fraction([1.0], [1.0], [1.0], [1.0], -1.0)
