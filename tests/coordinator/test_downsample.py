"""Old telemetry folds into hourly rows; late samples merge; recent samples stay."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import TelemetryHourly, TelemetrySampleRow
from heatgrid.coordinator.downsample import HOUR_S, downsample_telemetry

pytestmark = pytest.mark.usefixtures("backend")


def test_old_samples_fold_into_hours_and_late_ones_merge(coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    start_ts = coordinator.clock()  # a whole hour

    def send(samples: list[tuple[float, float, float | None]]) -> None:
        body = {
            "sent_ts": coordinator.clock(),
            "telemetry": [
                {"sample_ts": ts, "power_w": power_w, "room_temp_c": temp_c, "workload": "mining"}
                for ts, power_w, temp_c in samples
            ],
        }
        answer = coordinator.client.post(
            f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
        )
        assert answer.status_code == 200, answer.text

    coordinator.clock.advance(3 * HOUR_S)
    send(
        [
            (start_ts + 0.0, 1000.0, 20.0),
            (start_ts + 1800.0, 500.0, None),
            (start_ts + 3599.0, 600.0, 22.0),
            (start_ts + HOUR_S + 10.0, 1400.0, 19.0),
            (start_ts + 2 * HOUR_S + 10.0, 800.0, 21.0),  # in the hour not yet over at the cutoff
        ]
    )
    engine = make_engine(coordinator.database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            cutoff_ts = start_ts + 2 * HOUR_S + 1200.0  # rounded down to start + 2 h
            result = downsample_telemetry(session, older_than_ts=cutoff_ts, batch_size=2)
            assert (result.samples_folded, result.hours_written) == (4, 3)  # hour 0 in 2 batches
            again = downsample_telemetry(session, older_than_ts=cutoff_ts)
            assert again.samples_folded == 0

        send([(start_ts + 900.0, 300.0, 18.0)])  # late for a folded hour
        with sessions() as session:
            assert downsample_telemetry(session, older_than_ts=cutoff_ts).samples_folded == 1
            hours = session.scalars(select(TelemetryHourly).order_by(TelemetryHourly.hour_start_ts))
            first, second = hours.all()
            remaining = session.scalars(select(TelemetrySampleRow.sample_ts)).all()
    finally:
        engine.dispose()
    assert first.hour_start_ts == start_ts
    assert first.sample_count == 4
    assert first.mean_power_w == pytest.approx((1000.0 + 500.0 + 600.0 + 300.0) / 4)
    assert first.max_power_w == 1000.0
    assert first.room_temp_count == 3
    assert first.mean_room_temp_c == pytest.approx((20.0 + 22.0 + 18.0) / 3)
    assert (first.min_room_temp_c, first.max_room_temp_c) == (18.0, 22.0)
    assert (second.hour_start_ts, second.sample_count, second.max_power_w) == (
        start_ts + HOUR_S,
        1,
        1400.0,
    )
    assert remaining == [start_ts + 2 * HOUR_S + 10.0]
