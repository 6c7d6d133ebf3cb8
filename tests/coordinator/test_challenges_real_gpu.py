"""Hardware challenges on a real CUDA GPU, in real time (skipped without one).

The device claims the GPU that is really there (its catalog model and its memory) and plays
both rounds with the agent's own code on that GPU: the throughput round (the chain of float32
products) and the memory round (the working set held in GPU memory). The coordinator's clock
is moved by the time each step really took, so its deadlines judge the real hardware. The
same claim answered by this machine's CPU (numpy) must miss the throughput round's deadline:
a heater that claims this GPU cannot compute on its processor instead.

Each test prints what it measured (``-s`` shows it).
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

from heatgrid.agent import challenge as agent_challenge
from heatgrid.core.catalog import load_catalog
from heatgrid.core.errors import InputError
from heatgrid.protocol.challenge import ChallengeCheck, ChallengeOrder

from .conftest import Coordinator
from .test_challenges import _beat, _claim, _enroll, _order, _post, _submit_cpu_job


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _why_no_cuda() -> str | None:
    torch = _torch()
    if torch is None:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU"
    return None


_NO_CUDA = _why_no_cuda()
pytestmark = pytest.mark.skipif(_NO_CUDA is not None, reason=f"no CUDA GPU: {_NO_CUDA}")

_MEMORY_CAP_BYTES = 256 * 2**20
"""Largest working set asked for here (the defaults' cap takes minutes to fill) [bytes]."""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Challenges on at the default sizes, a smaller working set, no rate limit."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 10**6,
        "hardware_challenges": True,
        "challenge_every_s": 0.0,
        "max_wait_s": 0.0,
        "challenge_max_memory_bytes": _MEMORY_CAP_BYTES,
    }


def _real_gpu() -> dict[str, Any]:
    """The hardware the GPU here claims: its catalog model (if listed) and its memory."""
    torch = _torch()
    name = str(torch.cuda.get_device_name(0)).removeprefix("NVIDIA ").strip()
    try:
        model = load_catalog().find(name).name
    except InputError:
        model = name
    vram_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
    return {"model": model, "max_power_w": 700.0, "vram_gb": round(vram_gb, 1)}


def _throughput_order(coordinator: Coordinator) -> tuple[dict[str, Any], ChallengeOrder]:
    hardware = _real_gpu()
    device = _enroll(coordinator, "gpu", hardware)
    _submit_cpu_job(coordinator)
    order = _order(_beat(coordinator, device))
    assert order.memory_bytes == 0  # the throughput round comes first
    print(f"\n{hardware}: {order.n}x{order.n}, {order.links} links, {order.deadline_s:.3f} s")
    return device, order


def _solve_timed(
    order: ChallengeOrder, *, on_gpu: bool, give_up: bool = True
) -> tuple[agent_challenge.Solution | None, float]:
    """Solve as the agent does (giving up at the deadline, unless not ``give_up``), timed."""
    start = time.monotonic()
    solution = agent_challenge.solve(
        order,
        give_up_monotonic=start + order.deadline_s if give_up else float("inf"),
        on_gpu=on_gpu,
    )
    return solution, time.monotonic() - start


def _commit_and_reveal(
    coordinator: Coordinator,
    device: dict[str, Any],
    order: ChallengeOrder,
    solution: agent_challenge.Solution,
    took_s: float,
) -> dict[str, Any]:
    """Commit ``took_s`` after the order, then seal and reveal in the time they really take."""
    coordinator.clock.advance(took_s)
    verdict = _post(coordinator, device, order, "commit", agent_challenge.commitment(solution))
    if verdict["state"] != "committed":
        return verdict
    check = ChallengeCheck.model_validate(verdict["check"])
    start = time.monotonic()
    reveal = agent_challenge.reveal_rows(solution, check.places, check.blocks)
    sealed = agent_challenge.seal(reveal)
    coordinator.clock.advance(time.monotonic() - start)
    if sealed is not None:
        verdict = _post(coordinator, device, order, "seal", sealed)
        if verdict["state"] != "committed":
            return verdict
    return _post(coordinator, device, order, "reveal", reveal)


def test_the_real_gpu_passes_both_rounds_in_real_time(coordinator: Coordinator) -> None:
    device, order = _throughput_order(coordinator)
    solution, took_s = _solve_timed(order, on_gpu=True)
    print(f"throughput round on the GPU: {took_s:.3f} s of {order.deadline_s:.3f} s")
    assert solution is not None, f"gave up after {took_s:.3f} s"
    verdict = _commit_and_reveal(coordinator, device, order, solution, took_s)
    assert verdict["state"] == "passed", verdict

    order = _order(_beat(coordinator, device))
    assert 0 < order.memory_bytes <= _MEMORY_CAP_BYTES
    solution, took_s = _solve_timed(order, on_gpu=True)
    mib = order.memory_bytes / 2**20
    print(f"memory round on the GPU: {mib:.0f} MiB in {took_s:.3f} s of {order.deadline_s:.3f} s")
    assert solution is not None, f"gave up after {took_s:.3f} s"
    assert solution.memory is not None
    assert solution.memory.is_cuda  # the working set is held in the GPU's own memory
    verdict = _commit_and_reveal(coordinator, device, order, solution, took_s)
    assert verdict["state"] == "passed", verdict
    assert _claim(coordinator, device).status_code == 200


def test_this_machines_cpu_cannot_stand_in_for_its_gpu(coordinator: Coordinator) -> None:
    device, order = _throughput_order(coordinator)
    solution, took_s = _solve_timed(order, on_gpu=False, give_up=False)  # to see how far off
    print(f"the same round on the CPU: {took_s:.3f} s of {order.deadline_s:.3f} s")
    assert solution is not None
    verdict = _commit_and_reveal(coordinator, device, order, solution, took_s)
    assert verdict["state"] == "failed", (
        f"this machine's CPU answered the challenge of a {order.n}x{order.n}, "
        f"{order.links}-link chain in {took_s:.3f} s, inside its {order.deadline_s:.3f} s deadline"
    )
    assert _claim(coordinator, device).status_code == 403
