"""A device that claims twice the memory it has cannot hold its challenge's working set.

The devices here run the agent's own challenge code in a child process whose address space is
limited (``RLIMIT_AS``) to the memory the device really has: the honest one has what it claims,
the cheat half of it. Claims are tens of MB so that the test stays cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heatgrid.agent import challenge as agent_challenge
from heatgrid.core import challenge as rule
from heatgrid.protocol.challenge import ChallengeCheck, ChallengeCommit, ChallengeOrder

from .conftest import Coordinator
from .test_challenges import _beat, _claim, _enroll, _order, _play, _submit_cpu_job

_CLAIMED_VRAM_GB = 0.064
_HEADROOM_BYTES = 8 * 2**20
"""Room the agent's own work (the chain, the digests) needs besides the working set."""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Challenges on, small matrices, no random re-checks, no rate limit."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 10**6,
        "hardware_challenges": True,
        "challenge_max_n": 128,
        "challenge_every_s": 0.0,
        "max_wait_s": 0.0,
    }


def _post(
    coordinator: Coordinator, device: dict[str, Any], order: ChallengeOrder, step: str, body: str
) -> dict[str, Any]:
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/challenges/{order.challenge_id}/{step}",
        content=body,
        headers={**device["headers"], "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _play_limited(
    coordinator: Coordinator, device: dict[str, Any], order: ChallengeOrder, memory_bytes: float
) -> dict[str, Any]:
    """Play the order with the agent's code in a child that has ``memory_bytes`` to use."""
    room = int(memory_bytes) + _HEADROOM_BYTES
    with subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("limited_agent.py")), str(room)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(order.model_dump_json() + "\n")
        child.stdin.flush()
        verdict = _post(coordinator, device, order, "commit", child.stdout.readline())
        if verdict["state"] == "committed":
            child.stdin.write(json.dumps(verdict["check"]) + "\n")
            child.stdin.flush()
            verdict = _post(coordinator, device, order, "reveal", child.stdout.readline())
        child.stdin.close()
        assert child.wait(timeout=60) == 0
    return verdict


def _gpu(coordinator: Coordinator) -> tuple[dict[str, Any], ChallengeOrder]:
    device = _enroll(
        coordinator,
        "gpu",
        {"model": "Homebrew accelerator", "max_power_w": 300.0, "vram_gb": _CLAIMED_VRAM_GB},
    )
    _submit_cpu_job(coordinator)
    throughput = _order(_beat(coordinator, device))
    assert throughput.memory_bytes == 0  # the throughput round comes first, its deadline tight
    solution = agent_challenge.solve(throughput, give_up_monotonic=float("inf"))
    assert solution is not None
    assert _play(coordinator, device, throughput, solution, took_s=0.1)["state"] == "passed"
    assert _claim(coordinator, device).json()["leases"] == []  # the memory round is owed
    order = _order(_beat(coordinator, device))
    assert order.n == 16
    return device, order


def test_the_working_set_is_three_quarters_of_the_claimed_memory(coordinator: Coordinator) -> None:
    _, order = _gpu(coordinator)
    claimed = _CLAIMED_VRAM_GB * 1e9
    assert claimed / 2 < order.memory_bytes <= rule.DEFAULT_MEMORY_FRACTION * claimed
    assert order.memory_bytes % rule.memory_block_bytes(order.memory_bytes) == 0


def test_an_honest_device_holds_its_working_set_and_passes(coordinator: Coordinator) -> None:
    device, order = _gpu(coordinator)
    verdict = _play_limited(coordinator, device, order, _CLAIMED_VRAM_GB * 1e9)
    assert verdict["state"] == "passed", verdict
    assert len(_claim(coordinator, device).json()["leases"]) == 1


def test_a_device_claiming_twice_its_memory_fails_and_is_quarantined(
    coordinator: Coordinator,
) -> None:
    device, order = _gpu(coordinator)
    verdict = _play_limited(coordinator, device, order, _CLAIMED_VRAM_GB * 1e9 / 2)
    assert verdict["state"] == "failed"
    assert "gave up" in verdict["reason"]
    assert "MiB" in verdict["reason"]
    refused = _claim(coordinator, device)
    assert refused.status_code == 403
    assert "quarantined" in refused.json()["detail"]


def test_blocks_not_held_or_not_committed_to_fail(coordinator: Coordinator) -> None:
    device, order = _gpu(coordinator)
    solution = agent_challenge.solve(order, give_up_monotonic=float("inf"))
    assert solution is not None
    assert solution.memory is not None
    solution.memory[:] = 0  # dropped what it held (kept only the digests)
    commit = agent_challenge.commitment(solution)
    verdict = _post(coordinator, device, order, "commit", commit.model_dump_json())
    assert verdict["state"] == "committed"
    assert verdict["check"]["blocks"]
    check = ChallengeCheck.model_validate(verdict["check"])
    reveal = agent_challenge.reveal_rows(solution, check.places, check.blocks)
    verdict = _post(coordinator, device, order, "reveal", reveal.model_dump_json())
    assert verdict["state"] == "failed"
    assert "not the seeded block: it was not held" in verdict["reason"]

    other, order = _gpu(coordinator)
    solution = agent_challenge.solve(order, give_up_monotonic=float("inf"))
    assert solution is not None
    unproven = ChallengeCommit(root_hex=solution.root.hex())
    verdict = _post(coordinator, other, order, "commit", unproven.model_dump_json())
    assert verdict["state"] == "failed"
    assert "no commitment to the working set" in verdict["reason"]
