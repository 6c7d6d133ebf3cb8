"""NvmlGpu: error paths without a GPU; readings, limits and the contract on a real one.

The tests marked ``gpu`` run against a real NVIDIA GPU through the NVIDIA driver and skip with
the reason when NVML cannot start. The contract also needs a load on the GPU: a PyTorch CUDA
matrix-multiply loop in a child process (skipped without torch built with CUDA).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pynvml  # type: ignore[import-untyped]
import pytest
from pydantic import ValidationError
from tests.agent.devices.contract import (
    Advance,
    ContractSpec,
    DeviceFactory,
    HeatDeviceContract,
    TruePower,
)

from heatgrid.agent.devices.base import DeviceCommandError, DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.nvml_gpu import (
    NvmlGpu,
    limit_fallback_reason,
    nvml_unavailable_reason,
    open_nvml_gpu,
)
from heatgrid.agent.devices.settings import NvmlDeviceSpec


def _nvml_error() -> str | None:
    """Why NVML cannot start here, or None when it can (and a GPU 0 exists)."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return str(error)
    try:
        pynvml.nvmlDeviceGetHandleByIndex(0)
    except pynvml.NVMLError as error:
        return f"no GPU 0: {error}"
    finally:
        pynvml.nvmlShutdown()
    return None


def _board_max_w() -> float:
    """GPU 0's highest power limit [W]."""
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        _, high_mw = pynvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
        return float(high_mw) / 1000.0
    finally:
        pynvml.nvmlShutdown()


NVML_ERROR = _nvml_error()
needs_gpu = pytest.mark.skipif(NVML_ERROR is not None, reason=f"no usable NVML: {NVML_ERROR}")


@pytest.mark.skipif(NVML_ERROR is None, reason="NVML works on this machine")
def test_without_nvml_opening_is_unavailable_naming_the_device_and_the_cause() -> None:
    with pytest.raises(DeviceUnavailableError, match=r"^desk-gpu: .*NVML") as raised:
        open_nvml_gpu(NvmlDeviceSpec(name="desk-gpu", max_power_w=350.0))
    assert str(NVML_ERROR) in str(raised.value)


@pytest.mark.parametrize("index", [-1, 1.5, True, "0"])
def test_a_bad_index_is_refused_before_nvml_starts(index: object) -> None:
    with pytest.raises(ValidationError, match="gpu_index"):
        NvmlDeviceSpec.model_validate({"gpu_index": index, "max_power_w": 350.0})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"max_power_w": 350.0, "min_power_w": 400.0},
            r"min_power_w\n  Value error, must not exceed max_power_w",
        ),
        (
            {"max_power_w": 350.0, "min_power_w": 100.0, "idle_power_w": 100.0},
            r"idle_power_w\n  Value error, must be below min_power_w",
        ),
        ({"min_power_w": 100.0}, r"max_power_w\n  Field required"),
    ],
)
def test_bad_powers_are_refused_naming_them(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NvmlDeviceSpec.model_validate(settings)


def test_the_idle_draw_is_the_setting_or_a_tenth_of_the_maximum() -> None:
    assert NvmlDeviceSpec(max_power_w=350.0).idle_w(300.0) == pytest.approx(30.0)
    assert NvmlDeviceSpec(max_power_w=350.0, idle_power_w=40.0).idle_w(300.0) == 40.0


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to set the power limit"),
        (pynvml.NVML_ERROR_NOT_SUPPORTED, "does not support setting its power limit"),
    ],
)
def test_no_permission_or_no_support_falls_back_to_duty_cycling(code: int, reason: str) -> None:
    error = pynvml.NVMLError(code)  # the exception NVML's binding raises for that code
    assert isinstance(error, pynvml.NVMLError)
    fallback = limit_fallback_reason(error)
    assert fallback is not None
    assert reason in fallback


@pytest.mark.parametrize(
    "code",
    [pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_INVALID_ARGUMENT, pynvml.NVML_ERROR_UNKNOWN],
)
def test_other_limit_errors_are_failures_not_fallbacks(code: int) -> None:
    assert limit_fallback_reason(pynvml.NVMLError(code)) is None


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library is not usable"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVML library is not usable"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to use the NVIDIA driver"),
        (pynvml.NVML_ERROR_UNKNOWN, "NVML failed"),
    ],
)
def test_why_nvml_is_unavailable_is_said_plainly(code: int, words: str) -> None:
    assert words in nvml_unavailable_reason(pynvml.NVMLError(code))


class _Board:
    """The power-limit calls of NVML's binding, answered for one board (no GPU here)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, limit_mw: int) -> None:
        self.limit_mw = limit_mw
        self.sets: list[int] = []
        monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerManagementLimit", lambda _: self.limit_mw)
        monkeypatch.setattr(pynvml, "nvmlDeviceSetPowerManagementLimit", self._set)
        monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)

    def _set(self, _handle: object, limit_mw: int) -> None:
        self.sets.append(limit_mw)
        self.limit_mw = limit_mw

    def adapter(self) -> NvmlGpu:
        spec = NvmlDeviceSpec(name="gpu0", max_power_w=450.0, min_cycle_s=0.0)
        return NvmlGpu(
            spec, object(), min_power_w=150.0, max_power_w=450.0, idle_power_w=30.0, vram_gb=24.0
        )


def test_closing_puts_back_the_power_limit_the_board_had(monkeypatch: pytest.MonkeyPatch) -> None:
    board = _Board(monkeypatch, limit_mw=400_000)  # the owner's own limit, below the maximum

    async def main() -> None:
        gpu = board.adapter()
        await gpu.set_power(150.0)
        assert board.limit_mw == 150_000
        await gpu.aclose()

    asyncio.run(main())
    assert board.sets == [150_000, 400_000]
    assert board.limit_mw == 400_000


def test_a_limit_never_set_is_not_touched_at_close(monkeypatch: pytest.MonkeyPatch) -> None:
    board = _Board(monkeypatch, limit_mw=400_000)
    asyncio.run(board.adapter().aclose())
    assert board.sets == []


@contextlib.asynccontextmanager
async def _gpu() -> AsyncIterator[NvmlGpu]:
    gpu = open_nvml_gpu(
        NvmlDeviceSpec(name="gpu0", max_power_w=_board_max_w(), min_cycle_s=0.0, period_s=0.5)
    )
    try:
        yield gpu
    finally:
        await gpu.aclose()


@pytest.mark.gpu
@needs_gpu
def test_a_real_gpu_reads_finite_power_energy_and_temperature() -> None:
    async def main() -> None:
        async with _gpu() as gpu:
            assert isinstance(gpu, HeatDevice)
            cap = gpu.capability
            assert cap.kind == "gpu"
            assert 0.0 < cap.min_power_w <= cap.max_power_w
            assert cap.vram_gb > 0.0
            first = await gpu.read()
            await asyncio.sleep(0.2)
            second = await gpu.read()
            for reading in (first, second):
                assert math.isfinite(reading.power_w)
                assert 0.0 < reading.power_w <= cap.max_power_w * 1.1
                assert reading.power_measured is True
                assert reading.device_temp_c is not None
                assert 0.0 < reading.device_temp_c < 110.0
                assert reading.utilisation is None or 0.0 <= reading.utilisation <= 1.0
            if first.energy_j is not None and second.energy_j is not None:
                assert second.energy_j >= first.energy_j

    asyncio.run(main())


@pytest.mark.gpu
@needs_gpu
def test_a_real_gpu_takes_a_power_limit_or_says_why_it_duty_cycles() -> None:
    pynvml.nvmlInit()
    try:
        before_mw = pynvml.nvmlDeviceGetPowerManagementLimit(pynvml.nvmlDeviceGetHandleByIndex(0))
    finally:
        pynvml.nvmlShutdown()

    async def main() -> None:
        async with _gpu() as gpu:
            cap = gpu.capability
            await gpu.set_power(cap.min_power_w)
            if gpu.limit_control:
                handle = pynvml.nvmlDeviceGetHandleByIndex(0)
                held_w = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0
                assert abs(held_w - cap.min_power_w) <= 1.0
            await gpu.set_power(cap.max_power_w)
            reading = await gpu.read()
            assert reading.power_target_w == cap.max_power_w
            assert reading.running is True
            with pytest.raises(DeviceCommandError, match="gpu0"):
                await gpu.set_power(cap.max_power_w + 100.0)
            await gpu.set_power(cap.min_power_w)

    asyncio.run(main())
    pynvml.nvmlInit()
    try:
        after_mw = pynvml.nvmlDeviceGetPowerManagementLimit(pynvml.nvmlDeviceGetHandleByIndex(0))
    finally:
        pynvml.nvmlShutdown()
    assert after_mw == before_mw  # closing put back the limit the board had


def _torch_cuda_error() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; assert torch.cuda.is_available()"],
        capture_output=True,
        check=False,
    )
    return None if probe.returncode == 0 else "torch has no CUDA device"


_LOAD = """
import torch
x = torch.randn(8192, 8192, device="cuda")
while True:
    y = x @ x
    torch.cuda.synchronize()
"""


@pytest.fixture(scope="module")
def gpu_load() -> Iterator[subprocess.Popen[bytes]]:
    if NVML_ERROR is not None:
        pytest.skip(f"no usable NVML: {NVML_ERROR}")
    reason = _torch_cuda_error()
    if reason is not None:
        pytest.skip(f"the GPU contract needs a CUDA load: {reason}")
    process = subprocess.Popen([sys.executable, "-c", _LOAD])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.gpu
class TestNvmlGpuContract(HeatDeviceContract):
    """The HeatDevice contract on a real GPU loaded by a matrix-multiply loop."""

    @pytest.fixture
    def device_factory(self, gpu_load: subprocess.Popen[bytes]) -> DeviceFactory:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[HeatDevice]:
            try:
                async with _gpu() as gpu:
                    gpu.set_task_pids([gpu_load.pid])
                    yield gpu
            finally:  # closing left the load stopped; the next test starts it again
                with contextlib.suppress(ProcessLookupError):
                    gpu_load.send_signal(signal.SIGCONT)

        return factory

    @pytest.fixture
    def true_power_w(self) -> TruePower:
        return None  # nothing truer than the board's own sensor

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep

    @pytest.fixture
    def contract_spec(self) -> ContractSpec:
        # board power settles within seconds; a loaded board holds its limit within a few %
        return ContractSpec(settle_s=5.0, power_tolerance_w=40.0, off_power_w=150.0)
