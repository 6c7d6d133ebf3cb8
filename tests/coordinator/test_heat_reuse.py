"""Devices without a room (racks, farms) take work only when heaters cannot; reports tell apart."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Heat-aware scheduling that keeps work for heaters for ten minutes."""
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "max_wait_s": 600.0}


def _enroll(coordinator: Coordinator, owner: str, name: str, *, has_room: bool) -> dict[str, Any]:
    body = {
        "enrollment_code": coordinator.enrollment_code(owner),
        "device_name": name,
        "device_kind": "gpu",
        "hardware": {"max_power_w": 1000.0, "vram_gb": 24.0},
        "has_room": has_room,
    }
    if not has_room:
        body["energy_price_eur_per_kwh"] = 0.07
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    device = answer.json()
    device = {
        "id": answer.json()["device_id"],
        "headers": {"Authorization": f"Bearer {answer.json()['device_token']}"},
    }
    _beat(coordinator, device)
    return device


def _beat(coordinator: Coordinator, device: dict[str, Any]) -> None:
    """Heartbeat with six hours of wanted heat from now."""
    now_ts = coordinator.clock()
    beat = {
        "protocol_version": 1,
        "sent_ts": now_ts,
        "telemetry": [],
        "heat_window": [{"start_ts": now_ts, "duration_s": 6 * 3600.0, "heat_power_w": 800.0}],
    }
    sent = coordinator.client.post(
        f"/v1/devices/{device['id']}/heartbeat", json=beat, headers=device["headers"]
    )
    assert sent.status_code == 200, sent.text


def _claim(coordinator: Coordinator, device: dict[str, Any]) -> list[dict[str, Any]]:
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/claim", json={"slots": 1}, headers=device["headers"]
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["leases"])


def _complete(coordinator: Coordinator, device: dict[str, Any], lease: dict[str, Any]) -> None:
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/tasks/{lease['task_id']}/complete",
        json={"attempt": lease["attempt"], "energy_j": lease["energy_j"], "result": {"ok": True}},
        headers=device["headers"],
    )
    assert answer.status_code == 200, answer.text


def _submit(coordinator: Coordinator, key: str, energies_j: list[float]) -> str:
    job = coordinator.client.post(
        "/v1/jobs",
        json={
            "name": "work",
            "tasks": [{"energy_j": energy_j} for energy_j in energies_j],
            "checkpoint_every_j": 1.0e6,
        },
        headers=coordinator.auth(key),
    )
    assert job.status_code == 201, job.text
    return str(job.json()["job_id"])


def test_racks_leave_heaters_their_share_and_the_report_shows_where_the_heat_went(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    heater = _enroll(coordinator, owner, "study", has_room=True)
    rack = _enroll(coordinator, owner, "rack 7", has_room=False)
    submitter = coordinator.submitter_key("carol")
    job_id = _submit(coordinator, submitter, [2.0e6, 5.0e6])

    [racked] = _claim(coordinator, rack)  # one task is held back for the one idle heater
    [heated] = _claim(coordinator, heater)
    assert {racked["energy_j"], heated["energy_j"]} == {2.0e6, 5.0e6}
    _complete(coordinator, heater, heated)
    _complete(coordinator, rack, racked)

    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter))
    assert shown.json()["state"] == "completed"
    assert shown.json()["energy_j"] == 7.0e6
    assert shown.json()["heat_reused_energy_j"] == heated["energy_j"]
    device = coordinator.client.get(f"/v1/devices/{rack['id']}", headers=coordinator.auth(owner))
    assert device.json()["energy_price_eur_per_kwh"] == 0.07
    assert device.json()["has_room"] is False


def test_a_rack_takes_held_back_work_once_it_has_waited_max_wait_s(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    heater = _enroll(coordinator, owner, "study", has_room=True)  # idle, wanting heat
    rack = _enroll(coordinator, owner, "rack 7", has_room=False)
    _submit(coordinator, coordinator.submitter_key("carol"), [2.0e6])
    assert _claim(coordinator, rack) == []
    for _ in range(5):  # the heater stays online, but does not claim
        coordinator.clock.advance(119.8)
        _beat(coordinator, heater)
    assert _claim(coordinator, rack) == []  # 599 s
    coordinator.clock.advance(2.0)
    assert len(_claim(coordinator, rack)) == 1  # 601 s
