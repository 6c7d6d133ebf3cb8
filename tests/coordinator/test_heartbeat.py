"""Heartbeats: telemetry stored once, heat windows replaced, only by the device itself."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import HeatWindowSegmentRow, TelemetrySampleRow

pytestmark = pytest.mark.usefixtures("backend")


def _count(database_url: str, model: type) -> int:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def test_heartbeats_are_stored_once_even_when_sent_again(coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    url = f"/v1/devices/{device_id}/heartbeat"
    first = coordinator.heartbeat_body(coordinator.clock(), [1000.0, 1100.0, 1200.0])

    answer = coordinator.client.post(url, json=first, headers=coordinator.auth(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored_samples"] == 3
    assert answer.json()["duplicate_samples"] == 0
    assert answer.json()["server_ts"] == coordinator.clock()
    assert answer.json()["next_heartbeat_s"] == 60.0

    resent = coordinator.client.post(url, json=first, headers=coordinator.auth(token))
    assert resent.json()["stored_samples"] == 0
    assert resent.json()["duplicate_samples"] == 3
    assert _count(coordinator.database_url, TelemetrySampleRow) == 3

    coordinator.clock.advance(120.0)
    overlapping = coordinator.heartbeat_body(coordinator.clock(), [1300.0, 1400.0, 1350.0, 900.0])
    overlapping["heat_window"] = overlapping["heat_window"][:1]
    later = coordinator.client.post(url, json=overlapping, headers=coordinator.auth(token))
    assert later.json()["stored_samples"] == 2  # two of the four were sent before
    assert later.json()["duplicate_samples"] == 2
    assert _count(coordinator.database_url, TelemetrySampleRow) == 5
    assert _count(coordinator.database_url, HeatWindowSegmentRow) == 1  # replaced, not added

    shown = coordinator.client.get(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert shown.status_code == 200
    detail = shown.json()
    assert detail["online"] is True
    assert detail["last_seen_ts"] == coordinator.clock()
    assert detail["latest_sample"]["sample_ts"] == coordinator.clock()
    assert detail["latest_sample"]["power_w"] == 900.0
    assert detail["heat_window"] == [
        {"start_ts": coordinator.clock(), "duration_s": 3600.0, "heat_power_w": 1200.0}
    ]


def test_a_device_token_cannot_act_for_another_device(coordinator) -> None:
    owner = coordinator.owner_key()
    first_id, first_token = coordinator.enroll(coordinator.enrollment_code(owner), "one")
    second_id, _ = coordinator.enroll(coordinator.enrollment_code(owner), "two")
    body = coordinator.heartbeat_body(coordinator.clock(), [1000.0])
    answer = coordinator.client.post(
        f"/v1/devices/{second_id}/heartbeat", json=body, headers=coordinator.auth(first_token)
    )
    assert answer.status_code == 403
    assert "another device" in answer.json()["detail"]
    assert _count(coordinator.database_url, TelemetrySampleRow) == 0
    # nor read the owner's API, nor enroll on the owner's behalf
    for method, path in (("GET", "/v1/devices"), ("GET", f"/v1/devices/{first_id}")):
        denied = coordinator.client.request(method, path, headers=coordinator.auth(first_token))
        assert denied.status_code == 403


def test_samples_far_in_the_future_are_refused_and_nothing_is_stored(coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    body = coordinator.heartbeat_body(coordinator.clock() + 3600.0, [1000.0, 1000.0])
    body.update(sent_ts=coordinator.clock(), heat_window=[])  # only the samples are ahead
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
    )
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("telemetry[0].sample_ts")
    assert _count(coordinator.database_url, TelemetrySampleRow) == 0


def test_metrics_report_devices_online_and_fleet_heat(coordinator) -> None:
    owner = coordinator.owner_key()
    for name, power_w in (("one", 1000.0), ("two", 450.0)):
        device_id, token = coordinator.enroll(coordinator.enrollment_code(owner), name)
        answer = coordinator.client.post(
            f"/v1/devices/{device_id}/heartbeat",
            json=coordinator.heartbeat_body(coordinator.clock(), [300.0, power_w]),
            headers=coordinator.auth(token),
        )
        assert answer.status_code == 200

    def metric(text: str, name: str) -> float:
        [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
        return float(line.split()[1])

    metrics = coordinator.client.get("/metrics")
    assert metrics.status_code == 200
    assert metric(metrics.text, "heatgrid_devices_online") == 2.0
    assert metric(metrics.text, "heatgrid_fleet_heat_power_w") == 1450.0
    assert (
        'heatgrid_http_request_duration_s_count{method="POST",'
        'route="/v1/devices/{device_id}/heartbeat",status="200"} 2.0'
    ) in metrics.text
    assert metric(metrics.text, "heatgrid_http_unhandled_errors_total") == 0.0

    coordinator.clock.advance(3600.0)  # nobody heard from for an hour
    later = coordinator.client.get("/metrics").text
    assert metric(later, "heatgrid_devices_online") == 0.0
    assert metric(later, "heatgrid_fleet_heat_power_w") == 0.0
