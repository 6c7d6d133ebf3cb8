"""A CPU that claims to be a GPU misses its challenge's deadline and is quarantined.

Default challenge sizes (the coordinator's own): the commitment is sent after the time a
16-core server CPU needs for the chain, on the coordinator's clock; the plan's margin against
real CPUs is checked in ``tests/core/test_challenge.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from heatgrid.core import challenge as rule
from heatgrid.protocol.challenge import ChallengeCommit, ChallengeOrder

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Challenges on at their default sizes; no rate limit."""
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "hardware_challenges": True}


def test_a_cpu_posing_as_a_gpu_is_too_slow_and_quarantined(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    enrolled = coordinator.client.post(
        "/v1/devices/enroll",
        json={
            "enrollment_code": coordinator.enrollment_code(owner),
            "device_name": "gaming rig",
            "device_kind": "gpu",
            "hardware": {"model": "GeForce RTX 4090", "max_power_w": 450.0, "vram_gb": 24.0},
            "has_room": True,
        },
    ).json()
    device_id = enrolled["device_id"]
    headers = {"Authorization": f"Bearer {enrolled['device_token']}"}
    now_ts = coordinator.clock()
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={"protocol_version": 1, "sent_ts": now_ts, "telemetry": [], "heat_window": []},
        headers=headers,
    )
    order = ChallengeOrder.model_validate(beat.json()["challenge"])
    plan = rule.ChallengePlan(order.seed, order.n, order.links, order.deadline_s, 0, order.steps)
    assert plan.n == rule.MAX_CHALLENGE_N
    assert plan.steps > 1  # the host-byte cap would leave a 4090's chain short
    strong_cpu_flops = 4.0e12  # a 16-core server's float32 BLAS (measured, tests/core)
    coordinator.clock.advance(plan.work_flop / strong_cpu_flops)
    verdict = coordinator.client.post(
        f"/v1/devices/{device_id}/challenges/{order.challenge_id}/commit",
        content=ChallengeCommit(root_hex="ab" * 32).model_dump_json(),
        headers={**headers, "Content-Type": "application/json"},
    ).json()
    assert verdict["state"] == "failed"
    assert "slower than the 82.6 TFLOPS" in verdict["reason"]
    refused = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    )
    assert refused.status_code == 403
    assert "quarantined" in refused.json()["detail"]
    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert "hardware challenge" in shown.json()["quarantine_reason"]
