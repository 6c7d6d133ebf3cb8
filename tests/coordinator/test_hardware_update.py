"""A heater's changed hardware reaches the coordinator through its heartbeats (issue 13).

On SQLite and PostgreSQL: a heartbeat that reports the device's kind and hardware replaces
what the coordinator knew from enrollment; the device views show it and the scheduler uses it
at the next claim. A heartbeat without them (an older agent) changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

WEEK_S = 7 * 86_400.0


def _beat(coordinator: Coordinator, device_id: str, token: str, **extra: Any) -> None:
    now_ts = coordinator.clock()
    body = {
        "sent_ts": now_ts,
        "heat_window": [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": 1000.0}],
        **extra,
    }
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
    )
    assert answer.status_code == 200, answer.text


def _claim(coordinator: Coordinator, device_id: str, token: str) -> list[dict[str, Any]]:
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=coordinator.auth(token)
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["leases"])


def test_a_heartbeat_brings_new_hardware_that_the_scheduler_uses(
    coordinator: Coordinator,
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    body = coordinator.enroll_body(coordinator.enrollment_code(owner), "study")
    body["hardware"] = {"model": "RTX 3060 heater", "max_power_w": 1200.0, "vram_gb": 12.0}
    body["device_kind"] = "gpu"
    enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
    device_id, token = enrolled["device_id"], enrolled["device_token"]
    job = {"name": "llm", "min_vram_gb": 24.0, "tasks": [{"energy_j": 3.6e6}]}
    submitted = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert submitted.status_code == 201, submitted.text

    _beat(coordinator, device_id, token)  # an older agent: says nothing of its hardware
    assert _claim(coordinator, device_id, token) == []  # 12 GB is too little
    new = {"model": "RTX 4090 heater", "max_power_w": 3000.0, "min_power_w": 100.0, "vram_gb": 24.0}
    _beat(coordinator, device_id, token, device_kind="gpu", hardware=new)

    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert shown.json()["hardware"]["max_power_w"] == 3000.0
    assert shown.json()["hardware"]["vram_gb"] == 24.0
    listed = coordinator.client.get("/v1/devices", headers=coordinator.auth(owner)).json()
    assert [device["hardware"]["model"] for device in listed["items"]] == ["RTX 4090 heater"]
    [lease] = _claim(coordinator, device_id, token)
    assert lease["job_id"] == submitted.json()["job_id"]

    _beat(coordinator, device_id, token)  # nothing said: nothing changes
    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert shown.json()["hardware"]["max_power_w"] == 3000.0


def test_a_heartbeat_can_change_the_kind_and_bad_hardware_is_refused(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))  # an ASIC
    _beat(
        coordinator,
        device_id,
        token,
        device_kind="cpu",
        hardware={"max_power_w": 300.0, "cpu_cores": 16},
    )
    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert (shown.json()["kind"], shown.json()["hardware"]["cpu_cores"]) == ("cpu", 16)
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={
            "sent_ts": coordinator.clock(),
            "hardware": {"max_power_w": 100.0, "min_power_w": 500.0},
        },
        headers=coordinator.auth(token),
    )
    assert answer.status_code == 422, answer.text
    assert "hardware" in answer.json()["detail"]
    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert shown.json()["hardware"]["max_power_w"] == 300.0
