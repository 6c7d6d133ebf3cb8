"""The numba kernels take and give named bundles that match the public arrays field by field.

A reorder of a validation group in core.control (or of a kernel's named tuple) cannot swap two
settings: the bundles are built and read by name, which these tests check.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heatgrid.core import _arbiter_kernel, _control_kernel, arbiter, control


def _field_names(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def test_the_control_kernel_bundles_name_the_public_fields() -> None:
    numbers = set(control._CONFIG_NUMBERS)
    assert len(numbers) == len(control._CONFIG_NUMBERS)
    assert set(_control_kernel.Config._fields) == numbers
    assert numbers == _field_names(control.ThermostatConfig) - {"schedule"}
    assert set(_control_kernel.Observation._fields) == _field_names(control.ObservationArrays)
    assert set(_control_kernel.State._fields) == _field_names(control.ThermostatStateArrays)
    assert _control_kernel.Tick._fields == (
        *_control_kernel.State._fields,
        "heat_power_w",
        "reason",
        "send",
    )
    outputs = control._FLOAT_OUTPUTS + control._BOOL_OUTPUTS + control._CODE_OUTPUTS
    assert set(_control_kernel.Outputs._fields) == set(outputs)
    assert len(outputs) == len(set(outputs))


def test_the_arbiter_kernel_bundles_name_the_public_fields() -> None:
    assert set(_arbiter_kernel.DeviceState._fields) == _field_names(arbiter.DeviceStateArrays)
    assert set(_arbiter_kernel.Devices._fields) <= _field_names(arbiter.DeviceArrays)
    assert set(_arbiter_kernel.Realized._fields) <= set(_arbiter_kernel.DeviceState._fields)


def _decide() -> control.HeatCommandArrays:
    configs = [
        control.ThermostatConfig(
            max_power_w=800.0 + 100.0 * i,
            kp_w_per_k=300.0 + 50.0 * i,
            ki_w_per_k_s=0.02 * (i + 1),
            schedule=control.WeeklySchedule.constant(19.0 + i),
            cold_tolerance_k=0.1 * i,
            hot_tolerance_k=0.5,
            min_on_s=60.0 * i,
            min_off_s=0.0,
            power_step_w=5.0 * i,
        )
        for i in range(4)
    ]
    state = control.ThermostatStateArrays.initial(4)
    observation = control.ObservationArrays.from_observations(
        [control.Observation(17.5 + 0.5 * i, 1.7e9) for i in range(4)]
    )
    arrays = control.ThermostatConfigArrays.from_configs(configs)
    for now_ts in (1.7e9, 1.7e9 + 60.0, 1.7e9 + 120.0):
        state, command = control.decide_many(state, observation, now_ts, arrays)
    return command


def test_reordering_the_validation_groups_changes_no_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _decide()
    assert np.all(expected.heat_power_w > 0.0)
    monkeypatch.setattr(control, "_CONFIG_NUMBERS", tuple(reversed(control._CONFIG_NUMBERS)))
    reordered = _decide()
    for field in dataclasses.fields(expected):
        np.testing.assert_array_equal(
            getattr(reordered, field.name), getattr(expected, field.name), err_msg=field.name
        )
