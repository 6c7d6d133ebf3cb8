"""The CPU heater: the contract, real worker processes, and RAPL counters in a sysfs-like tree."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.agent.devices.contract import (
    Advance,
    ContractSpec,
    DeviceFactory,
    HeatDeviceContract,
    TruePower,
)

from heatgrid.agent.devices.base import DeviceCommandError
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.duty_cycle import duty_for_power
from heatgrid.agent.devices.rapl import RaplMeter, energy_delta_uj
from heatgrid.agent.devices.settings import CpuDeviceSpec

IDLE_W = 10.0
MAX_W = 60.0
PERIOD_S = 0.05
MAX_RANGE_UJ = 262_143_328_850


_RUNTIME = ("powercap_root", "clock", "monotonic")


def _settings(**overrides: object) -> CpuDeviceSpec:
    options: dict[str, object] = {
        "idle_power_w": IDLE_W,
        "max_power_w": MAX_W,
        "worker_count": 1,
        "period_s": PERIOD_S,
    }
    options.update(overrides)
    return CpuDeviceSpec.model_validate(options)


def _heater(tmp_path: Path, **overrides: object) -> CpuHeater:
    runtime: dict[str, object] = {"powercap_root": tmp_path / "no-powercap"}
    runtime.update({key: overrides.pop(key) for key in _RUNTIME if key in overrides})
    return CpuHeater(_settings(**overrides), **runtime)  # type: ignore[arg-type]


class TestCpuHeater(HeatDeviceContract):
    @pytest.fixture
    def device_factory(self, tmp_path: Path) -> DeviceFactory:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[CpuHeater]:
            heater = _heater(tmp_path)
            try:
                yield heater
            finally:
                await heater.aclose()
                _assert_gone(heater.worker_pids)

        return factory

    @pytest.fixture
    def true_power_w(self) -> TruePower:
        return None  # no meter truer than the adapter's own reading

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep

    @pytest.fixture
    def contract_spec(self) -> ContractSpec:
        return ContractSpec(settle_s=0.1, power_tolerance_w=0.01, off_power_w=IDLE_W)


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T, Z, ...), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _assert_gone(pids: tuple[int, ...]) -> None:
    for pid in pids:
        assert _state(pid) in (None, "Z"), f"worker {pid} is still there"


def _wait_gone(pids: list[int], deadline_s: float = 30.0) -> list[int]:
    end_s = time.monotonic() + deadline_s
    left = pids
    while left and time.monotonic() < end_s:
        left = [pid for pid in left if _state(pid) not in (None, "Z")]
        time.sleep(0.02)
    return left


def test_workers_run_while_on_and_are_reaped_by_power_zero_safe_state_and_aclose(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        heater = _heater(tmp_path, worker_count=2)
        try:
            for stop in ("zero", "safe", "close"):
                await heater.set_power(MAX_W)
                pids = heater.worker_pids
                assert len(pids) == 2
                assert all(_state(pid) not in (None, "Z", "T") for pid in pids)
                if stop == "zero":
                    await heater.set_power(0.0)
                elif stop == "safe":
                    await heater.safe_state()
                else:
                    await heater.aclose()
                assert heater.worker_pids == ()
                for pid in pids:
                    assert _state(pid) is None
                    with pytest.raises(ProcessLookupError):
                        os.kill(pid, 0)
        finally:
            await heater.aclose()

    asyncio.run(main())


def test_a_partial_power_stops_and_continues_the_workers(tmp_path: Path) -> None:
    async def main() -> None:
        heater = _heater(tmp_path, period_s=0.04)
        try:
            await heater.set_power((IDLE_W + MAX_W) / 2.0)
            (pid,) = heater.worker_pids
            seen: set[str | None] = set()
            for _ in range(100):
                await asyncio.sleep(0.007)
                seen.add(_state(pid))
            assert "T" in seen  # stopped for part of a period
            assert seen & {"R", "S"}  # and running for the rest
            reading = await heater.read()
            assert reading.power_w == pytest.approx((IDLE_W + MAX_W) / 2.0)
            assert reading.power_measured is False

            await heater.set_power(MAX_W)  # duty 1: continued for good
            await asyncio.sleep(0.01)
            states = set()
            for _ in range(30):
                await asyncio.sleep(0.005)
                states.add(_state(pid))
            assert "T" not in states
        finally:
            await heater.aclose()

    asyncio.run(main())


_ORPHAN_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.settings import CpuDeviceSpec

async def main():
    settings = CpuDeviceSpec(idle_power_w=10.0, max_power_w=60.0, worker_count=2, period_s=0.05)
    heater = CpuHeater(settings, powercap_root=Path(sys.argv[1]))
    await heater.set_power(35.0)
    print(" ".join(map(str, heater.worker_pids)), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_workers_end_when_the_agent_dies_even_while_stopped(tmp_path: Path) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path / "no-powercap")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        pids = [int(pid) for pid in agent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(_state(pid) not in (None, "Z") for pid in pids)
    finally:
        agent.send_signal(signal.SIGKILL)  # no clean-up runs in the agent
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
    assert _wait_gone(pids) == []


def _zone(root: Path, name: str, energy_uj: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    return zone


class _Monotonic:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_rapl_power_sums_packages_skips_subzones_and_survives_a_wrap(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    package0 = _zone(root, "intel-rapl:0", MAX_RANGE_UJ - 5_000_000)
    package1 = _zone(root, "intel-rapl:1", 1_000_000)
    subzone = _zone(root, "intel-rapl:0:0", 0)  # cores: already counted in package 0
    _zone(root, "intel-rapl-mmio:0", 0)  # the same package through MMIO
    clock = _Monotonic()

    async def main() -> None:
        heater = _heater(tmp_path, powercap_root=root, monotonic=clock)
        try:
            assert heater.power_measured is True
            clock.now_s += 2.0
            # package 0 wraps: 5 J up to the wrap, 15 J after it; package 1 counts 20 J
            (package0 / "energy_uj").write_text("15000000\n")
            (package1 / "energy_uj").write_text("21000000\n")
            (subzone / "energy_uj").write_text("999000000\n")
            reading = await heater.read()
            assert reading.power_measured is True
            assert reading.power_w == pytest.approx((20.0 + 20.0) / 2.0)
            assert reading.energy_j == pytest.approx(40.0)

            clock.now_s += 4.0
            (package0 / "energy_uj").write_text("35000000\n")
            reading = await heater.read()
            assert reading.power_w == pytest.approx(20.0 / 4.0)
            assert reading.energy_j == pytest.approx(60.0)

            (package1 / "energy_uj").unlink()  # the counters vanish: the model, and it says so
            (package1 / "energy_uj").mkdir()
            clock.now_s += 1.0
            reading = await heater.read()
            assert reading.power_measured is False
            assert reading.power_w == pytest.approx(IDLE_W)
            assert heater.power_measured is False
        finally:
            await heater.aclose()

    asyncio.run(main())


def test_unreadable_or_absent_rapl_zones_fall_back_to_the_model(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", 0)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # present but not readable as a counter
    assert RaplMeter.discover(root) is None
    assert RaplMeter.discover(tmp_path / "absent") is None
    assert _heater(tmp_path, powercap_root=root).power_measured is False


@given(
    start_uj=st.integers(min_value=0, max_value=MAX_RANGE_UJ - 1),
    counted_uj=st.integers(min_value=0, max_value=MAX_RANGE_UJ - 1),
)
def test_the_energy_delta_is_the_energy_counted_across_a_wrap(
    start_uj: int, counted_uj: int
) -> None:
    end_uj = (start_uj + counted_uj) % MAX_RANGE_UJ
    assert energy_delta_uj(start_uj, end_uj, MAX_RANGE_UJ) == counted_uj


@given(
    power_w=st.floats(min_value=-1e4, max_value=1e4),
    idle_w=st.floats(min_value=0.0, max_value=500.0),
    span_w=st.floats(min_value=1.0, max_value=2000.0),
)
def test_the_duty_is_a_clipped_linear_map_of_power(
    power_w: float, idle_w: float, span_w: float
) -> None:
    max_w = idle_w + span_w
    duty = duty_for_power(power_w, idle_w, max_w)
    assert 0.0 <= duty <= 1.0
    if idle_w <= power_w <= max_w:
        assert idle_w + duty * (max_w - idle_w) == pytest.approx(power_w, abs=1e-6)
    elif power_w < idle_w:
        assert duty == 0.0
    else:
        assert duty == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_power_w": 5.0}, "max_power_w"),
        ({"idle_power_w": -1.0}, "idle_power_w"),
        ({"worker_count": 0}, "worker_count"),
        ({"min_power_w": 100.0}, "min_power_w"),
        ({"period_s": 0.0}, "period_s"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(**options)


def test_commands_name_the_device_when_refused(tmp_path: Path) -> None:
    async def main() -> None:
        heater = _heater(tmp_path, name="attic-cpu")
        try:
            with pytest.raises(DeviceCommandError, match=r"attic-cpu: set_power\(5\.0 W\)"):
                await heater.set_power(5.0)
            assert heater.worker_pids == ()
        finally:
            await heater.aclose()

    asyncio.run(main())
