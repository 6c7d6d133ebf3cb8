"""A CPU that claims to be a GPU misses its challenge's deadline and is quarantined.

Default challenge sizes (the coordinator's own): the commitment is sent after the time a
16-core server CPU needs for the chain, on the coordinator's clock; the plan's margin against
real CPUs is checked in ``tests/core/test_challenge.py``. A big GPU's challenge is stepped
(several products per link), so it goes only to an agent that declares ``challenge_steps``;
an older agent's claim stays unproven, without quarantine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from heatgrid.cli.main import main
from heatgrid.core import challenge as rule
from heatgrid.protocol import features
from heatgrid.protocol.challenge import ChallengeCommit, ChallengeOrder

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Challenges on at their default sizes; no rate limit."""
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "hardware_challenges": True}


def _enroll_4090(coordinator: Coordinator, owner: str) -> tuple[str, dict[str, str]]:
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
    return enrolled["device_id"], {"Authorization": f"Bearer {enrolled['device_token']}"}


def _beat(
    coordinator: Coordinator, device_id: str, headers: dict[str, str], **extra: Any
) -> dict[str, Any]:
    now_ts = coordinator.clock()
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={
            "protocol_version": 1,
            "sent_ts": now_ts,
            "telemetry": [],
            "heat_window": [{"start_ts": now_ts, "duration_s": 6 * 3600.0, "heat_power_w": 450.0}],
            **extra,
        },
        headers=headers,
    )
    assert beat.status_code == 200, beat.text
    return dict(beat.json())


def test_a_cpu_posing_as_a_gpu_is_too_slow_and_quarantined(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    device_id, headers = _enroll_4090(coordinator, owner)
    beat = _beat(coordinator, device_id, headers, features=[features.CHALLENGE_STEPS])
    order = ChallengeOrder.model_validate(beat["challenge"])
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


def _submit_gpu_job(coordinator: Coordinator) -> str:
    job = coordinator.client.post(
        "/v1/jobs",
        json={"name": "render", "device_kinds": ["gpu"], "tasks": [{"energy_j": 1.0e5}]},
        headers=coordinator.auth(coordinator.submitter_key("carol")),
    )
    assert job.status_code == 201, job.text
    return str(job.json()["job_id"])


def test_an_agent_without_challenge_steps_stays_unproven_not_quarantined(
    coordinator: Coordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older agent is never sent the stepped challenge it would fail, nor an easy one."""
    owner = coordinator.owner_key("alice")
    device_id, headers = _enroll_4090(coordinator, owner)
    _submit_gpu_job(coordinator)
    for _ in range(3):  # it keeps owing the challenge, heartbeat after heartbeat
        beat = _beat(coordinator, device_id, headers)  # an older agent declares nothing
        assert beat["challenge"] is None
        claimed = coordinator.client.post(
            f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
        )
        assert claimed.status_code == 200, claimed.text  # not quarantined ...
        assert claimed.json()["leases"] == []  # ... but no GPU work on an unproven claim
        coordinator.clock.advance(30.0)
    shown = coordinator.client.get(
        f"/v1/devices/{device_id}", headers=coordinator.auth(owner)
    ).json()
    assert shown["quarantined_ts"] is None
    assert shown["agent_features"] == []
    reason = shown["claim_unproven_reason"]
    assert "unproven" in reason
    assert features.CHALLENGE_STEPS in reason
    assert "82.6 TFLOPS" in reason
    # the operator's command line shows it too
    shown_args = [
        "devices",
        "show",
        device_id,
        "--json",
        "--database-url",
        coordinator.database_url,
    ]
    assert main(shown_args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["claim_unproven_reason"] == reason
    assert record["agent_features"] == []
    assert record["quarantined_ts"] is None


def test_the_agent_updated_to_declare_challenge_steps_gets_the_stepped_challenge(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    device_id, headers = _enroll_4090(coordinator, owner)
    assert _beat(coordinator, device_id, headers)["challenge"] is None
    beat = _beat(coordinator, device_id, headers, features=["challenge_steps", "from_the_future"])
    order = ChallengeOrder.model_validate(beat["challenge"])
    assert order.steps > 1
    assert order.n == rule.MAX_CHALLENGE_N
    shown = coordinator.client.get(
        f"/v1/devices/{device_id}", headers=coordinator.auth(owner)
    ).json()
    assert shown["claim_unproven_reason"] is None
    assert shown["agent_features"] == ["challenge_steps", "from_the_future"]


def test_an_agent_rolled_back_loses_its_declaration(coordinator: Coordinator) -> None:
    """Every heartbeat declares all its features: one that declares none replaces the list."""
    owner = coordinator.owner_key("alice")
    device_id, headers = _enroll_4090(coordinator, owner)
    _beat(coordinator, device_id, headers, features=[features.CHALLENGE_STEPS])
    _beat(coordinator, device_id, headers)
    shown = coordinator.client.get(
        f"/v1/devices/{device_id}", headers=coordinator.auth(owner)
    ).json()
    assert shown["agent_features"] == []


@pytest.mark.parametrize(
    "declared",
    [["challenge_steps", "challenge_steps"], ["Challenge-Steps"], ["x" * 49], [""]],
)
def test_malformed_feature_declarations_are_422(
    coordinator: Coordinator, declared: list[str]
) -> None:
    owner = coordinator.owner_key("alice")
    device_id, headers = _enroll_4090(coordinator, owner)
    now_ts = coordinator.clock()
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={"protocol_version": 1, "sent_ts": now_ts, "features": declared},
        headers=headers,
    )
    assert beat.status_code == 422, beat.text
    assert "features" in beat.text
