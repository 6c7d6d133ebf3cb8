"""Protocol v1 messages: strict, finite, bounded, and stable on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from heatgrid.protocol import v1

T_TS = 1_767_225_600.0


def _heartbeat(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol_version": 1,
        "sent_ts": T_TS,
        "telemetry": [
            {"sample_ts": T_TS - 60.0, "power_w": 1200, "workload": "mining", "room_temp_c": 20.1},
            {"sample_ts": T_TS, "power_w": 0.0, "workload": "idle", "room_temp_c": None},
        ],
        "heat_window": [
            {"start_ts": T_TS, "duration_s": 1800.0, "heat_power_w": 900.0},
            {"start_ts": T_TS + 1800.0, "duration_s": 1800.0, "heat_power_w": 0.0},
        ],
    }
    body.update(changes)
    return body


def _fields(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in item["loc"]) for item in error.errors()]


def test_a_heartbeat_round_trips_through_json() -> None:
    message = v1.Heartbeat.model_validate(_heartbeat())
    assert message.telemetry[0].power_w == 1200.0  # a JSON integer is a number too
    again = v1.Heartbeat.model_validate_json(message.model_dump_json())
    assert again == message
    assert json.loads(message.model_dump_json())["protocol_version"] == v1.PROTOCOL_VERSION


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    body = _heartbeat()
    body["telemetry"][0]["power_w"] = value
    with pytest.raises(ValidationError) as raised:
        v1.Heartbeat.model_validate(body)
    assert _fields(raised.value) == ["telemetry.0.power_w"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sent_ts", "1767225600"),  # no coercion of strings into numbers
        ("sent_ts", 12.0),  # 1970 is not a plausible clock
        ("sent_ts", None),
        ("protocol_version", 2),
        ("telemetry", "[]"),
        ("unknown_field", 1),
    ],
)
def test_wrong_types_ranges_and_unknown_fields_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        v1.Heartbeat.model_validate(_heartbeat(**{field: value}))
    assert _fields(raised.value)[0].startswith(field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("room_temp_c", 95.0),
        ("setpoint_c", -1.0),
        ("power_w", -0.1),
        ("device_temp_c", 200.0),
        ("workload", "heating"),
        ("hashrate_ths", -1.0),
    ],
)
def test_sample_ranges(field: str, value: Any) -> None:
    body = _heartbeat()
    body["telemetry"][1][field] = value
    with pytest.raises(ValidationError) as raised:
        v1.Heartbeat.model_validate(body)
    assert _fields(raised.value) == [f"telemetry.1.{field}"]


def test_lists_are_bounded_and_consistent() -> None:
    sample = {"sample_ts": T_TS, "power_w": 1.0, "workload": "idle"}
    too_many = [
        {**sample, "sample_ts": T_TS - index} for index in range(v1.MAX_SAMPLES_PER_HEARTBEAT + 1)
    ]
    with pytest.raises(ValidationError, match="telemetry"):
        v1.Heartbeat.model_validate(_heartbeat(telemetry=too_many))
    with pytest.raises(ValidationError, match=r"telemetry\[1\]\.sample_ts .* repeats"):
        v1.Heartbeat.model_validate(_heartbeat(telemetry=[sample, sample]))
    overlapping = _heartbeat()
    overlapping["heat_window"][1]["start_ts"] = T_TS + 900.0
    with pytest.raises(ValidationError, match=r"heat_window\[1\]\.start_ts .* overlaps"):
        v1.Heartbeat.model_validate(overlapping)
    assert v1.Heartbeat.model_validate(_heartbeat(telemetry=[], heat_window=[])).telemetry == []


def test_enrollment_requests() -> None:
    body = {
        "enrollment_code": "hge_0123456789abcdef_secret-part",
        "device_name": "  attic  ",
        "device_kind": "rack",
        "hardware": {"max_power_w": 3000.0, "min_power_w": 1000.0, "cpu_cores": 64},
        "has_room": False,
    }
    request = v1.EnrollRequest.model_validate(body)
    assert request.device_name == "attic"
    assert request.protocol_version == 1
    for change, field in (
        ({"device_kind": "toaster"}, "device_kind"),
        ({"device_name": "x" * 101}, "device_name"),
        ({"has_room": 1}, "has_room"),
        ({"enrollment_code": "short"}, "enrollment_code"),
        ({"hardware": {"max_power_w": 100.0, "min_power_w": 200.0}}, "hardware"),
        ({"hardware": {"max_power_w": 100.0, "cpu_cores": 1.5}}, "hardware.cpu_cores"),
    ):
        with pytest.raises(ValidationError) as raised:
            v1.EnrollRequest.model_validate({**body, **change})
        assert _fields(raised.value)[0].startswith(field), raised.value


def test_answers_validate_too() -> None:
    answer = v1.HeartbeatResponse(
        server_ts=T_TS, next_heartbeat_s=60.0, stored_samples=2, duplicate_samples=0
    )
    assert v1.HeartbeatResponse.model_validate_json(answer.model_dump_json()) == answer
    with pytest.raises(ValidationError):
        v1.EnrollResponse(device_id="d", device_token="t", heartbeat_interval_s=0.0)
