"""The thermostat and the arbiter give the outputs recorded from the NumPy implementation.

``data/control_arbiter_reference.npz`` holds a seeded random batch (400 homes, 12 ticks: bad
readings, interlocks, modes, schedules, continuous and discrete devices, stops) and what
:func:`decide_many` and :func:`plan_many` returned for it at commit b658457, before they ran on
numba kernels (``data/record_control_arbiter_reference.py`` recorded it). The vector forms, and
the scalar forms :func:`decide` and :func:`plan` on a sample of homes, must reproduce it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from heatgrid.core import _arbiter_kernel, _control_kernel, arbiter, control

_DATA = Path(__file__).with_name("data")
_RTOL = 1e-12
_ATOL = 1e-9


def _recorder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "record_control_arbiter_reference", _DATA / "record_control_arbiter_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorder() -> ModuleType:
    return _recorder()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    with np.load(_DATA / "control_arbiter_reference.npz") as data:
        return {key: data[key] for key in data.files}


def _assert_same(name: str, actual: Any, expected: Any) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, name
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(actual, expected, rtol=_RTOL, atol=_ATOL, err_msg=name)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=name)


def test_recorded_inputs_are_drawn_again(recorder: ModuleType, reference: dict[str, Any]) -> None:
    for key, value in recorder.draw_inputs().items():
        _assert_same(key, value, reference[key])


@pytest.mark.parametrize("shared", [False, True], ids=["per-home-config", "shared-config"])
def test_vector_forms_reproduce_the_reference(
    recorder: ModuleType, reference: dict[str, Any], shared: bool
) -> None:
    outputs = recorder.run(reference, shared=shared)
    prefix = "shared_" if shared else ""
    assert set(outputs) == {
        k.removeprefix(prefix) for k in reference if k.startswith(f"{prefix}out_")
    }
    for key, value in outputs.items():
        _assert_same(key, value, reference[prefix + key])


@pytest.mark.parametrize("shared", [False, True], ids=["per-home-config", "shared-config"])
def test_parallel_kernels_reproduce_the_reference(
    recorder: ModuleType,
    reference: dict[str, Any],
    shared: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Force numba's threads for any fleet; 11 copies make several chunks of homes.
    monkeypatch.setattr(control, "_PARALLEL_MIN_HOMES", 1)
    monkeypatch.setattr(arbiter, "_PARALLEL_MIN_DEVICES", 1)
    copies = 11
    assert recorder.HOMES * copies > _control_kernel.CHUNK
    assert recorder.HOMES * copies > _arbiter_kernel.CHUNK
    outputs = recorder.run(reference, shared=shared, copies=copies)
    prefix = "shared_" if shared else ""
    for key, value in outputs.items():
        _assert_same(key, value, np.tile(reference[prefix + key], copies))


def test_kernel_codes_are_the_enum_values() -> None:
    assert _control_kernel.MODE_AUTO == control.Mode.AUTO
    assert _control_kernel.MODE_AWAY == control.Mode.AWAY
    for flag in control.Alarm:
        if flag:
            assert getattr(_control_kernel, f"ALARM_{flag.name}") == flag.value
    for reason in control.Reason:
        assert getattr(_control_kernel, f"REASON_{reason.name}") == reason.value


def test_scalar_decide_reproduces_the_reference(
    recorder: ModuleType, reference: dict[str, Any]
) -> None:
    configs = recorder.configs(reference)
    start = recorder.thermostat_state(reference)
    for home in range(0, recorder.HOMES, 7):
        state = start.state(home)
        for tick in range(recorder.TICKS):
            now_ts = recorder.START_TS + tick * recorder.TICK_S
            observation = control.Observation(
                room_temp_c=float(reference["obs_room_temp_c"][tick, home]),
                reading_ts=now_ts - float(reference["obs_age_s"][tick, home]),
                device_temp_c=float(reference["obs_device_temp_c"][tick, home]),
                fan_ok=bool(reference["obs_fan_ok"][tick, home]),
                upright=bool(reference["obs_upright"][tick, home]),
                mode=int(reference["obs_mode"][tick, home]),  # type: ignore[arg-type]
            )
            state, command = control.decide(state, observation, now_ts, configs[home])
            for name in ("integral_w", "heating", "since_ts", "last_power_w", "alarm"):
                expected = reference[f"out_state_{name}"][tick, home]
                _assert_same(f"state {name}", getattr(state, name), expected)
            for name in ("heat_power_w", "setpoint_c", "reason", "send"):
                expected = reference[f"out_command_{name}"][tick, home]
                _assert_same(f"command {name}", getattr(command, name), expected)


def test_scalar_plan_reproduces_the_reference(
    recorder: ModuleType, reference: dict[str, Any]
) -> None:
    devices = recorder.capabilities(reference)
    offer = arbiter.WorkOffer.mining(0.05, 20.0)
    for home in range(0, recorder.HOMES, 5):
        state = arbiter.ArbiterState()
        for tick in range(recorder.TICKS):
            now_ts = recorder.START_TS + tick * recorder.TICK_S
            state, plans = arbiter.plan(
                state,
                float(reference["demand_w"][tick, home]),
                [devices[home]],
                [offer],
                now_ts,
                stop_now=bool(reference["stop_now"][tick, home]),
            )
            (device,) = state.devices
            for name in ("power_w", "target_w", "since_ts", "debt_j"):
                expected = reference[f"out_device_{name}"][tick, home]
                _assert_same(f"device {name}", getattr(device, name), expected)
            _assert_same("plan power_w", plans[0].power_w, reference["out_power_w"][tick, home])


def test_each_kernel_is_compiled_once_whatever_the_input_arrays() -> None:
    # Read-only, strided, int32 and broadcast inputs all reach the kernels in one form.
    config = control.ThermostatConfig(
        max_power_w=1000.0,
        kp_w_per_k=400.0,
        ki_w_per_k_s=0.05,
        schedule=control.WeeklySchedule.constant(20.0),
    )
    temps_c = np.linspace(15.0, 25.0, 12)[::2]
    temps_c.flags.writeable = False
    observation = control.ObservationArrays(
        room_temp_c=temps_c,
        reading_ts=np.asarray(1.7e9),
        device_temp_c=np.full(6, np.nan),
        fan_ok=np.ones(6, dtype=np.bool_),
        upright=np.asarray(True),
        mode=np.zeros(6, dtype=np.int32),
    )
    state = control.ThermostatStateArrays.initial(6)
    configs = control.ThermostatConfigArrays.from_configs([config])
    state, command = control.decide_many(state, observation, 1.7e9, configs)
    control.decide(control.ThermostatState(), control.Observation(19.0, 1.7e9), 1.7e9, config)
    devices = arbiter.DeviceArrays.from_capabilities(
        [arbiter.DeviceCapability(device_id="a", kind="asic", min_power_w=300.0, max_power_w=900.0)]
        * 6
    )
    arbiter.plan_many(arbiter.DeviceStateArrays.initial(6), command.heat_power_w, devices, 1.7e9)
    arbiter.plan_many(arbiter.DeviceStateArrays.initial(6), 500.0, devices, 1.7e9, stop_now=True)
    for kernel in (
        _control_kernel.decide_serial,
        _control_kernel.setpoints,
        _arbiter_kernel.realize_serial,
    ):
        assert len(kernel.signatures) <= 1, kernel
    assert np.all(command.heating == (temps_c <= 19.7))
