"""The per-job energy report: what each device drew, the heat it gave homes, and the CO2.

Reads the ledger (each device's settled energy for the job: the ``j`` entries of its
attempts, which sum to the job's total) and the telemetry samples the agents tagged with the
job's tasks (whether the room wanted the heat), then applies
:func:`heatgrid.core.job_report.job_energy_report`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from heatgrid.coordinator.api.job_schemas import DeviceEnergy, JobReport
from heatgrid.coordinator.db.models import (
    Device,
    Job,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
    TelemetrySampleRow,
)
from heatgrid.coordinator.ledger import (
    CLAWBACK_KIND,
    CLAWBACK_REVERSED_KIND,
    MICRO_EUR_PER_EUR,
)
from heatgrid.core import job_report
from heatgrid.core.carbon import GRID_CARBON_G_PER_KWH, GRID_CARBON_SOURCE
from heatgrid.core.defaults import DEFAULT_HOT_TOLERANCE_K
from heatgrid.core.heat_value import displaced_co2_kg

__all__ = ["DEFAULT_COUNTRY_CODE", "ReportAlternative", "build_job_report"]

DEFAULT_COUNTRY_CODE = "EU"
"""Grid assumed for a device that did not say where it draws its power."""

ReportAlternative = Literal["gas", "resistive"]
"""The heating the homes would otherwise have used (a heat pump needs the outdoor weather)."""

_LONGEST_SAMPLE_S = 600.0  # a gap longer than this is the agent away, not heat delivered
_LONE_SAMPLE_S = 60.0


def _sample_durations(sample_ts: np.ndarray) -> np.ndarray:
    """Return the time each sample stands for [s]: to the next one, capped; the last, the median."""
    if sample_ts.size == 1:
        return np.array([_LONE_SAMPLE_S])
    gaps = np.minimum(np.diff(sample_ts), _LONGEST_SAMPLE_S)
    return np.append(gaps, float(np.median(gaps)))


def _energy_by_device(session: Session, job: Job) -> dict[str, float]:
    account = LedgerEntry.account
    rows = session.execute(
        select(account, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerTransaction.job_id == job.id,
            LedgerEntry.unit == "j",
            account.like("device:%"),
        )
        .group_by(account)
    )
    return {str(name).removeprefix("device:"): -float(total or 0) for name, total in rows}


def _clawed_back(session: Session, job: Job) -> tuple[int, float, int]:
    """Return the job's clawed-back results, the refund kept [EUR], and the reversed results.

    The first counts results taken back by clawback and not reversed; the refund is what the
    submitter keeps of clawbacks' refunds after any reversal took some back.
    """
    clawed, reversed_count = session.execute(
        select(
            func.count().filter(TaskAttempt.clawback_reversed_ts.is_(None)),
            func.count().filter(TaskAttempt.clawback_reversed_ts.is_not(None)),
        )
        .select_from(TaskAttempt)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.job_id == job.id, TaskAttempt.clawed_back.is_(True))
    ).one()
    refunded = session.scalar(
        select(func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerTransaction.job_id == job.id,
            LedgerTransaction.kind.in_((CLAWBACK_KIND, CLAWBACK_REVERSED_KIND)),
            LedgerEntry.account == f"submitter:{job.submitter_id}",
            LedgerEntry.unit == "micro_eur",
        )
    )
    return int(clawed or 0), int(refunded or 0) / MICRO_EUR_PER_EUR, int(reversed_count or 0)


def _useful_fractions(session: Session, job: Job, device_ids: list[str]) -> dict[str, float]:
    """Return the useful share of each device's heat for the job, from its task-tagged samples.

    Devices without any room reading among those samples are left out.
    """
    columns: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    task_ids = select(Task.id).where(Task.job_id == job.id)
    rows = session.execute(
        select(
            TelemetrySampleRow.device_id,
            TelemetrySampleRow.sample_ts,
            TelemetrySampleRow.power_w,
            TelemetrySampleRow.room_temp_c,
            TelemetrySampleRow.setpoint_c,
        )
        .where(
            TelemetrySampleRow.device_id.in_(device_ids),
            TelemetrySampleRow.task_id.in_(task_ids),
        )
        .order_by(TelemetrySampleRow.device_id, TelemetrySampleRow.sample_ts)
    )
    for device_id, sample_ts, power_w, room_temp_c, setpoint_c in rows:
        columns[str(device_id)].append(
            (
                sample_ts,
                power_w,
                np.nan if room_temp_c is None else room_temp_c,
                np.nan if setpoint_c is None else setpoint_c,
            )
        )
    fractions = {}
    for device_id, samples in columns.items():
        table = np.array(samples, dtype=np.float64)
        if np.all(np.isnan(table[:, 2])):
            continue  # no room reading: the heat cannot be shown to be wanted
        fraction = job_report.useful_heat_fraction(
            table[:, 1],
            _sample_durations(table[:, 0]),
            table[:, 2],
            table[:, 3],
            DEFAULT_HOT_TOLERANCE_K,
        )
        if fraction is not None:
            fractions[device_id] = fraction
    return fractions


def build_job_report(
    session: Session,
    job: Job,
    *,
    alternative: ReportAlternative = "gas",
    pue: float = job_report.DATA_CENTRE_PUE,
) -> JobReport:
    """Return where the job's energy went, per device and in total, with the CO2 comparison.

    A device in a home whose samples for the job show no room temperature counts its heat as
    unwanted (it cannot be shown to be wanted); a device that did not say its country counts
    at :data:`DEFAULT_COUNTRY_CODE`'s grid. Both are flagged per device.
    """
    energy = _energy_by_device(session, job)
    device_ids = sorted(energy)
    devices = {
        device.id: device
        for device in session.scalars(select(Device).where(Device.id.in_(device_ids)))
    }
    fractions = _useful_fractions(session, job, device_ids)
    clawed = _clawed_back(session, job)
    countries = [devices[d].country_code or DEFAULT_COUNTRY_CODE for d in device_ids]
    grid = np.array([GRID_CARBON_G_PER_KWH[country] for country in countries])
    displaced = np.array(
        [
            displaced_co2_kg(1.0, alternative, grid_carbon_g_per_kwh=float(intensity))
            for intensity in grid
        ]
    )
    report = job_report.job_energy_report(
        energy_j=np.array([energy[d] for d in device_ids]),
        in_home=np.array([devices[d].has_room for d in device_ids], dtype=bool),
        useful_fraction=np.array([fractions.get(d, 0.0) for d in device_ids]),
        grid_carbon_g_per_kwh=grid,
        displaced_co2_kg_per_kwh_heat=displaced,
        pue=pue,
    )
    return JobReport(
        job_id=job.id,
        state=job.state,
        devices=[
            DeviceEnergy(
                device_id=device_id,
                in_home=devices[device_id].has_room,
                country_code=countries[i],
                country_assumed=devices[device_id].country_code is None,
                grid_carbon_g_per_kwh=float(grid[i]),
                energy_j=float(report.energy_j[i]),
                useful_heat_j=float(report.useful_heat_j[i]),
                unwanted_heat_j=float(report.unwanted_heat_j[i]),
                heat_outside_homes_j=float(report.heat_outside_homes_j[i]),
                room_telemetry=device_id in fractions,
                co2_kg=float(report.co2_kg[i]),
            )
            for i, device_id in enumerate(device_ids)
        ],
        energy_j=report.total_energy_j,
        heat_into_homes_j=report.heat_into_homes_j,
        useful_heat_j=report.total_useful_heat_j,
        unwanted_heat_j=report.total_unwanted_heat_j,
        heat_outside_homes_j=report.total_heat_outside_homes_j,
        co2_kg=report.total_co2_kg,
        pue=report.pue,
        pue_source=job_report.DATA_CENTRE_PUE_SOURCE,
        data_centre_carbon_g_per_kwh=report.data_centre_carbon_g_per_kwh,
        data_centre_energy_j=report.data_centre_energy_j,
        data_centre_co2_kg=report.data_centre_co2_kg,
        alternative=alternative,
        displaced_heating_co2_kg=report.displaced_heating_co2_kg,
        co2_saved_kg=report.co2_saved_kg,
        hot_tolerance_k=DEFAULT_HOT_TOLERANCE_K,
        carbon_source=GRID_CARBON_SOURCE,
        clawed_back_results=clawed[0],
        clawed_back_refund_eur=clawed[1],
        clawback_reversed_results=clawed[2],
    )
