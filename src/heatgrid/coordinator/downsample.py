"""Fold old telemetry samples into hourly aggregates, and drop the samples.

Raw samples (one a minute per heater) grow without bound; after a retention period only hourly
figures are kept: sample count, mean and max power, and mean, min and max room temperature.
A sample that arrives late for an hour already folded is merged into that hour's row. Run it
from one place (``heatgrid db downsample``, e.g. daily from cron or a systemd timer); on
PostgreSQL the rows being folded are locked with ``FOR UPDATE SKIP LOCKED``, so two runs at
once do not fold a sample twice.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.models import TelemetryHourly, TelemetrySampleRow

__all__ = ["HOUR_S", "DownsampleResult", "downsample_telemetry"]

HOUR_S = 3600.0
"""Length of an aggregate [s]; hours start at multiples of it (UTC)."""


@dataclass(frozen=True)
class DownsampleResult:
    """What one run did: samples folded and dropped, hourly rows written."""

    samples_folded: int
    hours_written: int


def _merge(row: TelemetryHourly, samples: list[TelemetrySampleRow]) -> None:
    powers_w = [sample.power_w for sample in samples]
    temps_c = [sample.room_temp_c for sample in samples if sample.room_temp_c is not None]
    count = row.sample_count + len(powers_w)
    row.mean_power_w = (row.mean_power_w * row.sample_count + math.fsum(powers_w)) / count
    row.max_power_w = max([row.max_power_w, *powers_w]) if row.sample_count else max(powers_w)
    row.sample_count = count
    if temps_c:
        temp_count = row.room_temp_count + len(temps_c)
        before_c = (row.mean_room_temp_c or 0.0) * row.room_temp_count
        row.mean_room_temp_c = (before_c + math.fsum(temps_c)) / temp_count
        row.min_room_temp_c = min([t for t in (row.min_room_temp_c, *temps_c) if t is not None])
        row.max_room_temp_c = max([t for t in (row.max_room_temp_c, *temps_c) if t is not None])
        row.room_temp_count = temp_count


def downsample_telemetry(
    session: Session, *, older_than_ts: float, batch_size: int = 5000
) -> DownsampleResult:
    """Fold samples of the whole hours before ``older_than_ts`` into hourly rows; commit each batch.

    Parameters
    ----------
    session : Session
        Open database session.
    older_than_ts : float
        Samples of hours that end at or before this time are folded [POSIX s, UTC]; it is
        rounded down to a whole hour so that an hour is never split.
    batch_size : int
        Samples read per transaction.

    Returns
    -------
    DownsampleResult
        Counts of samples folded and hourly rows written.
    """
    cutoff_ts = math.floor(older_than_ts / HOUR_S) * HOUR_S
    folded = written = 0
    while True:
        batch = list(
            session.scalars(
                select(TelemetrySampleRow)
                .where(TelemetrySampleRow.sample_ts < cutoff_ts)
                .order_by(TelemetrySampleRow.device_id, TelemetrySampleRow.sample_ts)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            session.commit()
            return DownsampleResult(samples_folded=folded, hours_written=written)
        groups: dict[tuple[str, float], list[TelemetrySampleRow]] = defaultdict(list)
        for sample in batch:
            hour_start_ts = math.floor(sample.sample_ts / HOUR_S) * HOUR_S
            groups[sample.device_id, hour_start_ts].append(sample)
        for (device_id, hour_start_ts), samples in groups.items():
            row = session.get(TelemetryHourly, (device_id, hour_start_ts))
            if row is None:
                row = TelemetryHourly(
                    device_id=device_id,
                    hour_start_ts=hour_start_ts,
                    sample_count=0,
                    mean_power_w=0.0,
                    max_power_w=0.0,
                    room_temp_count=0,
                    mean_room_temp_c=None,
                    min_room_temp_c=None,
                    max_room_temp_c=None,
                )
                session.add(row)
            _merge(row, samples)
            session.execute(
                delete(TelemetrySampleRow)
                .where(
                    TelemetrySampleRow.device_id == device_id,
                    TelemetrySampleRow.sample_ts.in_([sample.sample_ts for sample in samples]),
                )
                .execution_options(synchronize_session=False)
            )
            written += 1
        folded += len(batch)
        session.commit()
        session.expunge_all()  # keep memory flat over many batches
