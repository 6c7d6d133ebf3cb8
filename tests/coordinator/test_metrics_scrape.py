"""``/metrics`` counts in memory and reads the fleet from the database at most once per refresh."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from .conftest import Coordinator


def _values(text: str) -> dict[tuple[str, str | None], float]:
    return {
        (sample.name, sample.labels.get("state")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_scrapes_within_the_refresh_time_query_nothing(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    for _ in range(3):
        answer = coordinator.client.post(
            f"/v1/devices/{device_id}/heartbeat",
            json=coordinator.heartbeat_body(coordinator.clock(), [900.0]),
            headers=coordinator.auth(token),
        )
        assert answer.status_code == 200, answer.text
    first = _values(coordinator.client.get("/metrics").text)
    assert first["heatgrid_heartbeats_total", None] == 3.0
    assert first["heatgrid_devices_online", None] == 1.0

    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(coordinator.app.state.engine, "before_cursor_execute", record)
    for _ in range(5):
        assert coordinator.client.get("/metrics").status_code == 200
    assert seen == []

    coordinator.clock.advance(coordinator.app.state.settings.metrics_refresh_s)
    later = _values(coordinator.client.get("/metrics").text)
    assert seen, "read again once the refresh time passed"
    assert later["heatgrid_heartbeats_total", None] == 3.0
