"""Malformed requests get a 4xx answer that names the field; nothing is stored from them."""

from __future__ import annotations

import math

import pytest

from heatgrid.protocol.v1 import MAX_SAMPLES_PER_HEARTBEAT

pytestmark = pytest.mark.usefixtures("backend")

_JSON = {"content-type": "application/json"}


@pytest.fixture
def device(coordinator) -> tuple[str, dict[str, str]]:
    """A device's heartbeat URL and headers."""
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    return f"/v1/devices/{device_id}/heartbeat", coordinator.auth(token)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: body.update(sent_ts="1767225600"), "sent_ts"),
        (lambda body: body.pop("sent_ts"), "sent_ts"),
        (lambda body: body.update(protocol_version=2), "protocol_version"),
        (lambda body: body.update(surprise=1), "surprise"),
        (lambda body: body["telemetry"][1].update(power_w=-5.0), "telemetry[1].power_w"),
        (lambda body: body["telemetry"][0].update(workload="baking"), "telemetry[0].workload"),
        (lambda body: body["telemetry"][0].pop("power_w"), "telemetry[0].power_w"),
        (lambda body: body["telemetry"][0].update(room_temp_c=True), "telemetry[0].room_temp_c"),
        (lambda body: body["heat_window"][0].update(duration_s=0.0), "heat_window[0].duration_s"),
        (lambda body: body["heat_window"][1].update(start_ts=body["sent_ts"]), "heat_window[1]"),
        (lambda body: body["telemetry"].append(body["telemetry"][0]), "telemetry[2].sample_ts"),
        (
            lambda body: body.update(telemetry=body["telemetry"] * (MAX_SAMPLES_PER_HEARTBEAT)),
            "telemetry",
        ),
        (lambda body: body.update(telemetry={"not": "a list"}), "telemetry"),
    ],
)
def test_a_malformed_heartbeat_is_refused_naming_the_field(coordinator, device, change, field):
    url, headers = device
    body = coordinator.heartbeat_body(coordinator.clock(), [1000.0, 1100.0])
    change(body)
    answer = coordinator.client.post(url, json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(coordinator, device, literal: str) -> None:
    url, headers = device
    raw = (
        '{"sent_ts": 1767225600, "telemetry": [{"sample_ts": 1767225600, '
        f'"power_w": {literal}, "workload": "idle"}}]}}'
    )
    assert math.isinf(float("1e999"))  # Python's JSON reads it as infinity
    answer = coordinator.client.post(url, content=raw.encode(), headers={**headers, **_JSON})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "telemetry[0].power_w"


def test_bad_json_and_missing_bodies_are_refused(coordinator, device) -> None:
    url, headers = device
    broken = coordinator.client.post(url, content=b'{"sent_ts": ', headers={**headers, **_JSON})
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("body: invalid JSON")
    missing = coordinator.client.post(url, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["detail"].startswith("body:")


def test_oversize_bodies_are_refused_with_413(coordinator, device) -> None:
    url, headers = device
    limit = coordinator.app.state.settings.max_body_bytes
    declared = coordinator.client.post(
        url, content=b" " * (limit + 1), headers={**headers, **_JSON}
    )
    assert declared.status_code == 413
    assert f"{limit} bytes" in declared.json()["detail"]

    async def chunks():
        for _ in range(5):
            yield b" " * (limit // 4)

    streamed = coordinator.client.post(url, content=chunks(), headers={**headers, **_JSON})
    assert streamed.status_code == 413
    assert "content-length" not in streamed.request.headers  # counted as it streamed
    assert streamed.json()["detail"].startswith("body:")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: body.pop("enrollment_code"), "enrollment_code"),
        (lambda body: body.update(device_kind="toaster"), "device_kind"),
        (lambda body: body.update(device_name=""), "device_name"),
        (lambda body: body.update(device_name="a\nb"), "device_name"),
        (lambda body: body.update(has_room="yes"), "has_room"),
        (lambda body: body["hardware"].update(max_power_w=0.0), "hardware.max_power_w"),
        (lambda body: body["hardware"].update(min_power_w=2000.0), "min_power_w"),
        (lambda body: body["hardware"].update(vram_gb="24"), "hardware.vram_gb"),
    ],
)
def test_a_malformed_enrollment_is_refused_naming_the_field(coordinator, change, field) -> None:
    code = coordinator.enrollment_code(coordinator.owner_key())
    body = coordinator.enroll_body(code)
    change(body)
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    # the code was not spent by the refused request
    coordinator.enroll(code)
