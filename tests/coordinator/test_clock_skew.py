"""Clock skew: times a device with a sane clock could not send are refused, naming the field.

Issue 12, fault 9: ``sent_ts`` and a heat window starting in 2099 were accepted. The tolerance is
``Settings.max_clock_skew_s`` (``heatgrid serve --max-clock-skew-s``), 300 s by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

_YEAR_2099_TS = 4_070_908_800.0
_DAY_S = 86_400.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 1_000_000, "max_clock_skew_s": 120.0}


def _shift(field: str, offset_s: float) -> Callable[[dict[str, Any], float], None]:
    def change(body: dict[str, Any], now_ts: float) -> None:
        if field == "sent_ts":
            body["sent_ts"] = now_ts + offset_s
        elif field == "window":
            for segment in body["heat_window"]:
                segment["start_ts"] += offset_s
        elif field == "second segment":
            body["heat_window"][1]["start_ts"] = now_ts + offset_s
        else:
            body["telemetry"][-1]["sample_ts"] = now_ts + offset_s

    return change


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda body, _now: body.update(sent_ts=_YEAR_2099_TS), "sent_ts", "ahead of"),
        (_shift("sent_ts", 121.0), "sent_ts", "121 s ahead of"),
        (_shift("sent_ts", -3600.0), "sent_ts", "3600 s behind"),
        (_shift("window", _YEAR_2099_TS - 1_767_225_600.0), "heat_window[0].start_ts", "ahead"),
        (_shift("window", 600.0), "heat_window[0].start_ts", "600 s ahead of"),
        (_shift("window", -600.0), "heat_window[0].start_ts", "600 s behind"),
        (_shift("second segment", 30 * _DAY_S), "heat_window[1].start_ts", "7 days"),
        (_shift("sample", 600.0), "telemetry[1].sample_ts", "600 s ahead of"),
    ],
)
def test_times_off_the_coordinators_clock_are_refused(
    coordinator: Coordinator, change: Any, field: str, words: str
) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    now_ts = coordinator.clock()
    body = coordinator.heartbeat_body(now_ts, [1000.0, 1100.0])
    change(body, now_ts)
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}: ")
    assert words in answer.json()["detail"]
    assert "120 s of clock skew" in answer.json()["detail"] or "7 days" in words
    shown = coordinator.client.get(
        f"/v1/devices/{device_id}", headers=coordinator.auth(coordinator.operator_key)
    )
    assert shown.json()["latest_sample"] is None  # nothing of it was stored
    assert shown.json()["heat_window"] == []


def test_times_within_the_tolerance_and_old_samples_are_accepted(coordinator: Coordinator) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    now_ts = coordinator.clock()
    body = coordinator.heartbeat_body(now_ts, [1000.0, 1100.0])
    body["sent_ts"] = now_ts + 119.0
    body["telemetry"][0]["sample_ts"] = now_ts - 3 * _DAY_S  # kept while offline
    for segment in body["heat_window"]:
        segment["start_ts"] -= 119.0
    body["heat_window"].append(
        {"start_ts": now_ts + 6 * _DAY_S, "duration_s": 3600.0, "heat_power_w": 500.0}
    )
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored_samples"] == 2
