"""The contract every :class:`~heatgrid.agent.devices.base.HeatDevice` implementation passes.

How to use it. A test module for one implementation subclasses :class:`HeatDeviceContract`
(the class name must start with ``Test`` so that pytest collects it) and provides four
fixtures, as methods of the subclass or in the module::

    class TestMyDevice(HeatDeviceContract):
        @pytest.fixture
        def device_factory(self) -> DeviceFactory: ...   # a fresh device per call
        @pytest.fixture
        def true_power_w(self) -> TruePower: ...          # the hardware's truth, or None
        @pytest.fixture
        def advance(self) -> Advance: ...                 # move time on by some seconds
        @pytest.fixture
        def contract_spec(self) -> ContractSpec: ...      # settling time and accuracy

* ``device_factory()`` returns an *async* context manager that starts whatever the device needs
  (an emulator on loopback port 0, a broker, worker processes), yields the opened device, and on
  exit closes the device and stops everything it started. Each test calls it inside its own
  ``asyncio.run`` (there is no pytest-asyncio), so servers must be started in the factory, in the
  running loop, not in the fixture.
* ``true_power_w`` is a plain callable giving the power the hardware or emulator really draws
  now [W] (the emulator's model state, a meter's reading), or None where nothing truer than the
  adapter's own reading exists (a real CPU or GPU).
* ``advance(duration_s)`` is an async callable that moves the device's time on by
  ``duration_s`` [s]: it moves a hand-moved emulator clock, or sleeps for real.
* ``contract_spec`` (:class:`ContractSpec`) says how long the device needs to settle after a
  command and how accurately its reading follows the truth and the command.

What the contract decides, for every device:

* ``name`` is a non-empty string equal to ``capability.device_id``; the capability does not change
  while the device is open.
* ``read()`` returns finite numbers: ``0 <= power_w <= max_power_w + tolerance``, a power target
  that is None, 0 or a power the capability allows, optional temperatures, energy and hash rate
  finite, and ``read_ts`` never going backwards.
* ``set_power(p)`` with ``p`` allowed by the capability (a listed level, or within
  ``[min_power_w, max_power_w]``) is taken: after ``settle_s`` the reading is within
  ``power_tolerance_w`` of ``p``, the device runs, and the reading agrees with the truth.
* ``set_power(0)`` and ``safe_state()`` bring the power down to ``off_power_w`` (the draw of a
  paused miner, an idle CPU, a switched-off plug) within ``settle_s``, and the device no longer
  runs.
* A power the capability does not allow (above the maximum, below the floor but not 0, negative,
  NaN, infinite, between two discrete levels) is **refused, not clamped**: ``set_power`` raises
  :class:`~heatgrid.agent.devices.base.DeviceCommandError` whose message names the device, and the
  device keeps what it was doing. The arbiter only ever plans allowed powers, so a refused power
  is a bug upstream, and silently clamping it would hide that bug.
* ``aclose()`` leaves the device in its safe state and may be called twice; after it, ``read()``
  raises :class:`~heatgrid.agent.devices.base.DeviceUnavailableError` and ``set_power()`` and
  ``safe_state()`` raise :class:`~heatgrid.agent.devices.base.DeviceCommandError`.

Each implementation's module adds the tests only it can make (an unreachable miner, a refused
command, RAPL wrap-around, worker processes really gone).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias

import pytest

from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
    HeatDevice,
)
from heatgrid.core.arbiter import DeviceCapability

__all__ = ["Advance", "ContractSpec", "DeviceFactory", "HeatDeviceContract", "TruePower"]

DeviceFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[HeatDevice]]
TruePower: TypeAlias = Callable[[], float] | None
Advance: TypeAlias = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ContractSpec:
    """How a device under test behaves in time and how accurately it reports.

    Attributes
    ----------
    settle_s : float
        Time after a command by which the power has reached its new value [s]; the contract
        calls ``advance(settle_s)`` after each command.
    power_tolerance_w : float
        The device's stated accuracy: largest gap between a reading and the commanded power
        after ``settle_s``, and between a reading and ``true_power_w()`` [W].
    off_power_w : float
        Highest power drawn after ``set_power(0)`` or ``safe_state()`` has settled [W]
        (0 for a switched-off plug, the idle draw of a paused miner or an idle CPU).
    """

    settle_s: float
    power_tolerance_w: float
    off_power_w: float


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def allowed_powers_w(capability: DeviceCapability) -> list[float]:
    """Return the powers the contract commands: the levels, or min, middle and max [W]."""
    if capability.power_levels_w:
        return list(capability.power_levels_w)
    low_w, high_w = capability.min_power_w, capability.max_power_w
    return [low_w, (low_w + high_w) / 2.0, high_w]


def refused_powers_w(capability: DeviceCapability) -> list[float]:
    """Return powers the capability does not allow [W]."""
    refused = [capability.max_power_w * 1.5 + 1.0, -1.0, math.nan, math.inf, -math.inf]
    if capability.min_power_w > 1.0:
        refused.append(capability.min_power_w / 2.0)
    levels = capability.power_levels_w
    if len(levels) >= 2:
        refused.append((levels[0] + levels[1]) / 2.0)
    return refused


def _check_reading(
    reading: DeviceReading, capability: DeviceCapability, spec: ContractSpec
) -> None:
    assert isinstance(reading, DeviceReading)
    assert math.isfinite(reading.read_ts)
    assert math.isfinite(reading.power_w)
    assert 0.0 <= reading.power_w <= capability.max_power_w + spec.power_tolerance_w
    for optional in (reading.energy_j, reading.device_temp_c, reading.hashrate_ths):
        assert optional is None or math.isfinite(optional)
    assert reading.energy_j is None or reading.energy_j >= 0.0
    assert reading.hashrate_ths is None or reading.hashrate_ths >= 0.0
    assert reading.device_temp_c is None or -60.0 < reading.device_temp_c < 150.0
    target_w = reading.power_target_w
    if target_w is not None:
        assert math.isfinite(target_w)
        assert target_w == 0.0 or (
            capability.min_power_w - 1.0 <= target_w <= capability.max_power_w + 1.0
        )


def _assert_near(measured_w: float, expected_w: float, tolerance_w: float, what: str) -> None:
    assert abs(measured_w - expected_w) <= tolerance_w, (
        f"{what}: {measured_w:.3f} W, expected {expected_w:.3f} W ± {tolerance_w:.3f} W"
    )


class HeatDeviceContract:
    """Tests every :class:`HeatDevice` passes; subclass it and provide the four fixtures."""

    def test_it_is_a_heat_device_named_as_its_capability(
        self, device_factory: DeviceFactory
    ) -> None:
        async def body() -> None:
            async with device_factory() as device:
                assert isinstance(device, HeatDevice)
                assert isinstance(device.name, str)
                assert device.name
                capability = device.capability
                assert isinstance(capability, DeviceCapability)
                assert capability.device_id == device.name
                assert 0.0 < capability.min_power_w <= capability.max_power_w
                assert math.isfinite(capability.max_power_w)
                assert capability.min_cycle_s >= 0.0
                await device.read()
                assert device.capability == capability

        _run(body())

    def test_read_returns_finite_numbers_in_range(
        self,
        device_factory: DeviceFactory,
        advance: Advance,
        contract_spec: ContractSpec,
    ) -> None:
        async def body() -> None:
            async with device_factory() as device:
                first = await device.read()
                _check_reading(first, device.capability, contract_spec)
                await advance(contract_spec.settle_s / 4.0)
                second = await device.read()
                _check_reading(second, device.capability, contract_spec)
                assert second.read_ts >= first.read_ts

        _run(body())

    def test_an_allowed_power_is_taken_and_reached(
        self,
        device_factory: DeviceFactory,
        true_power_w: TruePower,
        advance: Advance,
        contract_spec: ContractSpec,
    ) -> None:
        async def body() -> None:
            async with device_factory() as device:
                capability = device.capability
                tolerance_w = contract_spec.power_tolerance_w
                for power_w in allowed_powers_w(capability):
                    await device.set_power(power_w)
                    await advance(contract_spec.settle_s)
                    reading = await device.read()
                    _check_reading(reading, capability, contract_spec)
                    _assert_near(reading.power_w, power_w, tolerance_w, "read after set_power")
                    assert reading.running is True
                    if reading.power_target_w is not None:
                        _assert_near(reading.power_target_w, power_w, 1.0, "power target")
                    if true_power_w is not None:
                        _assert_near(reading.power_w, true_power_w(), tolerance_w, "vs truth")

        _run(body())

    def test_power_zero_and_the_safe_state_stop_the_heat(
        self,
        device_factory: DeviceFactory,
        true_power_w: TruePower,
        advance: Advance,
        contract_spec: ContractSpec,
    ) -> None:
        async def stop_and_check(device: HeatDevice, stop: Callable[[], Awaitable[None]]) -> None:
            await device.set_power(device.capability.max_power_w)
            await advance(contract_spec.settle_s)
            assert (await device.read()).running is True
            await stop()
            await advance(contract_spec.settle_s)
            reading = await device.read()
            _check_reading(reading, device.capability, contract_spec)
            assert reading.power_w <= contract_spec.off_power_w + contract_spec.power_tolerance_w
            assert reading.running is False
            assert reading.power_target_w in (None, 0.0)
            if true_power_w is not None:
                truth_w = true_power_w()
                assert truth_w <= contract_spec.off_power_w + contract_spec.power_tolerance_w

        async def body() -> None:
            async with device_factory() as device:
                await stop_and_check(device, lambda: device.set_power(0.0))
                await stop_and_check(device, device.safe_state)
                await device.safe_state()  # twice in a row is fine

        _run(body())

    def test_a_power_outside_the_capability_is_refused_naming_the_device(
        self,
        device_factory: DeviceFactory,
        advance: Advance,
        contract_spec: ContractSpec,
    ) -> None:
        async def body() -> None:
            async with device_factory() as device:
                capability = device.capability
                kept_w = allowed_powers_w(capability)[0]
                await device.set_power(kept_w)
                for refused_w in refused_powers_w(capability):
                    with pytest.raises(DeviceCommandError, match=device.name):
                        await device.set_power(refused_w)
                await advance(contract_spec.settle_s)
                reading = await device.read()
                _assert_near(reading.power_w, kept_w, contract_spec.power_tolerance_w, "kept power")
                assert reading.running is True

        _run(body())

    def test_aclose_leaves_the_safe_state_and_later_commands_raise(
        self,
        device_factory: DeviceFactory,
        true_power_w: TruePower,
        advance: Advance,
        contract_spec: ContractSpec,
    ) -> None:
        async def body() -> None:
            async with device_factory() as device:
                await device.set_power(device.capability.max_power_w)
                await advance(contract_spec.settle_s)
                await device.aclose()
                await device.aclose()  # idempotent
                with pytest.raises(DeviceUnavailableError, match=device.name):
                    await device.read()
                with pytest.raises(DeviceCommandError, match=device.name):
                    await device.set_power(device.capability.min_power_w)
                with pytest.raises(DeviceCommandError, match=device.name):
                    await device.safe_state()
                if true_power_w is not None:
                    await advance(contract_spec.settle_s)
                    truth_w = true_power_w()
                    limit_w = contract_spec.off_power_w + contract_spec.power_tolerance_w
                    assert truth_w <= limit_w

        _run(body())
