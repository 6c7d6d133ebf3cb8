"""GET /v1/jobs/{id}/report: a job's energy per device, heat into homes and CO2 add up."""

from __future__ import annotations

from typing import Any

import pytest

from heatgrid.core.carbon import GAS_CARBON_G_PER_KWH, GRID_CARBON_G_PER_KWH
from heatgrid.core.defaults import DEFAULT_BOILER_EFFICIENCY
from heatgrid.core.job_report import DATA_CENTRE_PUE

from .conftest import Coordinator

_KWH = 3.6e6


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No rate limit; racks take work at once."""
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "max_wait_s": 0.0}


def _enroll(
    coordinator: Coordinator, owner: str, *, has_room: bool, country_code: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "enrollment_code": coordinator.enrollment_code(owner),
        "device_name": "heater",
        "device_kind": "gpu",
        "hardware": {"max_power_w": 1000.0, "vram_gb": 24.0},
        "has_room": has_room,
    }
    if country_code is not None:
        body["country_code"] = country_code
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    return {
        "id": answer.json()["device_id"],
        "headers": {"Authorization": f"Bearer {answer.json()['device_token']}"},
    }


def _beat(
    coordinator: Coordinator, device: dict[str, Any], samples: list[tuple[float, float | None]]
) -> None:
    """Heartbeat with one sample a minute: (power, room temperature) with setpoint 21 °C."""
    now_ts = coordinator.clock()
    task_id = device.get("task_id")
    beat = {
        "protocol_version": 1,
        "sent_ts": now_ts,
        "telemetry": [
            {
                "sample_ts": now_ts - 60.0 * (len(samples) - 1 - index),
                "room_temp_c": room_temp_c,
                "setpoint_c": 21.0,
                "power_w": power_w,
                "workload": "task" if task_id else "idle",
                "task_id": task_id,
            }
            for index, (power_w, room_temp_c) in enumerate(samples)
        ],
        "heat_window": [{"start_ts": now_ts, "duration_s": 6 * 3600.0, "heat_power_w": 800.0}],
    }
    sent = coordinator.client.post(
        f"/v1/devices/{device['id']}/heartbeat", json=beat, headers=device["headers"]
    )
    assert sent.status_code == 200, sent.text


def _run_one_task(coordinator: Coordinator, device: dict[str, Any]) -> None:
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/claim", json={"slots": 1}, headers=device["headers"]
    )
    assert answer.status_code == 200, answer.text
    [lease] = answer.json()["leases"]
    device["task_id"] = lease["task_id"]
    device["lease"] = lease


def _complete(coordinator: Coordinator, device: dict[str, Any]) -> None:
    lease = device["lease"]
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/tasks/{lease['task_id']}/complete",
        json={"attempt": lease["attempt"], "energy_j": lease["energy_j"], "result": {"ok": True}},
        headers=device["headers"],
    )
    assert answer.status_code == 200, answer.text


def test_the_report_splits_each_devices_energy_and_compares_with_a_data_centre(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    german = _enroll(coordinator, owner, has_room=True, country_code="DE")
    somewhere = _enroll(coordinator, owner, has_room=True, country_code=None)
    rack = _enroll(coordinator, owner, has_room=False, country_code="FR")
    for device in (german, somewhere, rack):
        _beat(coordinator, device, [(0.0, 20.0)])
    submitter = coordinator.submitter_key("carol")
    job = coordinator.client.post(
        "/v1/jobs",
        json={"name": "work", "tasks": [{"energy_j": 2 * _KWH}] * 3},
        headers=coordinator.auth(submitter),
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    for device in (german, somewhere, rack):
        _run_one_task(coordinator, device)
    coordinator.clock.advance(240.0)
    # the German room wanted heat for 3 of 4 minutes at equal power: 3/4 of its heat is useful
    _beat(coordinator, german, [(1000.0, 20.0), (1000.0, 21.2), (1000.0, 21.3), (1000.0, 21.9)])
    _beat(coordinator, somewhere, [(1000.0, None)] * 4)  # no room sensor reading
    _beat(coordinator, rack, [(1000.0, None)] * 4)
    for device in (german, somewhere, rack):
        _complete(coordinator, device)

    answer = coordinator.client.get(
        f"/v1/jobs/{job_id}/report", headers=coordinator.auth(submitter)
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    by_id = {device["device_id"]: device for device in report["devices"]}
    assert report["energy_j"] == pytest.approx(6 * _KWH)
    assert sum(d["energy_j"] for d in report["devices"]) == pytest.approx(report["energy_j"])
    assert report["heat_into_homes_j"] + report["heat_outside_homes_j"] == pytest.approx(
        report["energy_j"]
    )
    assert report["useful_heat_j"] + report["unwanted_heat_j"] == pytest.approx(
        report["heat_into_homes_j"]
    )
    assert by_id[german["id"]]["useful_heat_j"] == pytest.approx(1.5 * _KWH)
    assert by_id[german["id"]]["unwanted_heat_j"] == pytest.approx(0.5 * _KWH)
    assert by_id[somewhere["id"]]["room_telemetry"] is False
    assert by_id[somewhere["id"]]["unwanted_heat_j"] == pytest.approx(2 * _KWH)
    assert by_id[somewhere["id"]]["country_code"] == "EU"
    assert by_id[somewhere["id"]]["country_assumed"] is True
    assert by_id[rack["id"]]["heat_outside_homes_j"] == pytest.approx(2 * _KWH)
    grids = [GRID_CARBON_G_PER_KWH[c] for c in ("DE", "EU", "FR")]
    assert report["co2_kg"] == pytest.approx(sum(2 * g / 1000 for g in grids))
    assert report["pue"] == DATA_CENTRE_PUE
    assert report["data_centre_co2_kg"] == pytest.approx(
        DATA_CENTRE_PUE * 6 * (sum(grids) / 3) / 1000
    )
    gas_kg_per_kwh_heat = GAS_CARBON_G_PER_KWH / DEFAULT_BOILER_EFFICIENCY / 1000
    assert report["displaced_heating_co2_kg"] == pytest.approx(1.5 * gas_kg_per_kwh_heat)
    assert report["co2_saved_kg"] == pytest.approx(
        report["data_centre_co2_kg"] + report["displaced_heating_co2_kg"] - report["co2_kg"]
    )


def test_only_the_submitter_reads_the_report_and_bad_options_are_named(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key("carol")
    job = coordinator.client.post(
        "/v1/jobs",
        json={"name": "work", "tasks": [{"energy_j": _KWH}]},
        headers=coordinator.auth(submitter),
    )
    job_id = job.json()["job_id"]
    empty = coordinator.client.get(f"/v1/jobs/{job_id}/report", headers=coordinator.auth(submitter))
    assert empty.status_code == 200
    assert empty.json()["energy_j"] == 0.0
    assert empty.json()["devices"] == []
    other = coordinator.submitter_key("dave")
    hidden = coordinator.client.get(f"/v1/jobs/{job_id}/report", headers=coordinator.auth(other))
    assert hidden.status_code == 404
    for query in ("pue=0.5", "pue=nan", "alternative=coal"):
        bad = coordinator.client.get(
            f"/v1/jobs/{job_id}/report?{query}", headers=coordinator.auth(submitter)
        )
        assert bad.status_code == 422, query
        assert query.split("=")[0] in bad.text


def test_a_device_from_a_country_without_a_grid_figure_is_refused_at_enrollment(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    for country in ("ZZ", "de", "DEU"):
        body = coordinator.enroll_body(coordinator.enrollment_code(owner))
        body["country_code"] = country
        answer = coordinator.client.post("/v1/devices/enroll", json=body)
        assert answer.status_code == 422, country
        assert "country_code" in answer.text
