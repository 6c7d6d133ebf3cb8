"""End to end on SQLite and PostgreSQL: devices claim, checkpoint and complete a job's tasks.

Three GPU heaters enroll; a submitter sends a job of 10 tasks. The heaters heartbeat (telemetry
tagged with the task they run, and a heat window), claim, report progress, upload checkpoints
whose bytes encode their progress, and complete. One heater vanishes mid-task: its lease
expires, and another heater resumes that task from the checkpoint it left. At the end every
task is completed with the right result, the ledger balances to the micro-euro, and the energy
it settled equals the energy in the telemetry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import LedgerEntry, TaskAttempt, TelemetrySampleRow
from heatgrid.coordinator.ledger import unbalanced_transactions

from .conftest import Coordinator

STEP_S = 60.0
POWER_W = 800.0
TASK_ENERGY_J = POWER_W * 1800.0  # 30 minutes at 800 W
CHECKPOINT_J = POWER_W * 600.0  # a checkpoint every 10 minutes


def _gpu_body(code: str, name: str) -> dict[str, object]:
    return {
        "protocol_version": 1,
        "enrollment_code": code,
        "device_name": name,
        "device_kind": "gpu",
        "hardware": {"model": "RTX 4090", "max_power_w": 900.0, "vram_gb": 24.0},
        "has_room": True,
    }


@dataclass
class Heater:
    """A heater's agent, reduced to what the coordinator sees of it."""

    device_id: str
    token: str
    alive: bool = True
    lease: dict[str, object] | None = None
    attempt_energy_j: float = 0.0
    start_progress_j: float = 0.0
    resumed_from: list[float] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"/v1/devices/{self.device_id}{path}"


def _step(coordinator: Coordinator, heater: Heater) -> None:
    client, now_ts = coordinator.client, coordinator.clock.now_ts
    if heater.lease is None:
        answer = client.post(heater.url("/claim"), json={"slots": 1}, headers=heater.headers)
        assert answer.status_code == 200, answer.text
        leases = answer.json()["leases"]
        if leases:
            heater.lease = leases[0]
            heater.attempt_energy_j = 0.0
            heater.start_progress_j = float(leases[0]["progress_energy_j"])
            if leases[0]["checkpoint_seq"] is not None:
                blob = client.get(
                    heater.url(
                        f"/tasks/{leases[0]['task_id']}/checkpoints/{leases[0]['checkpoint_seq']}"
                    ),
                    headers=heater.headers,
                )
                assert blob.status_code == 200, blob.text
                saved = json.loads(blob.content)
                assert saved["progress_j"] == heater.start_progress_j
                heater.resumed_from.append(saved["progress_j"])
    lease = heater.lease
    power_w = POWER_W if lease is not None else 0.0
    sample = {
        "sample_ts": now_ts,
        "room_temp_c": 20.8,
        "setpoint_c": 21.0,
        "power_w": power_w,
        "workload": "task" if lease is not None else "idle",
        "task_id": lease["task_id"] if lease is not None else None,
    }
    window = [{"start_ts": now_ts, "duration_s": 4 * 3600.0, "heat_power_w": POWER_W}]
    beat = client.post(
        heater.url("/heartbeat"),
        json={
            "protocol_version": 1,
            "sent_ts": now_ts,
            "telemetry": [sample],
            "heat_window": window,
        },
        headers=heater.headers,
    )
    assert beat.status_code == 200, beat.text
    if lease is None:
        return
    task_id, attempt = lease["task_id"], lease["attempt"]
    heater.attempt_energy_j += power_w * STEP_S
    progress_j = heater.start_progress_j + heater.attempt_energy_j
    if progress_j >= TASK_ENERGY_J:
        result = {"square": int(lease["task_input"]["n"]) ** 2}  # type: ignore[index]
        body = {"attempt": attempt, "energy_j": heater.attempt_energy_j, "result": result}
        done = client.post(
            heater.url(f"/tasks/{task_id}/complete"), json=body, headers=heater.headers
        )
        assert done.status_code == 200, done.text
        again = client.post(
            heater.url(f"/tasks/{task_id}/complete"), json=body, headers=heater.headers
        )
        assert again.status_code == 200, again.text  # the same result twice: accepted once
        heater.lease = None
    elif progress_j % CHECKPOINT_J == 0.0:
        saved = json.dumps({"progress_j": progress_j}).encode()
        stored = client.put(
            heater.url(f"/tasks/{task_id}/checkpoint"),
            params={"attempt": attempt, "energy_j": heater.attempt_energy_j},
            content=saved,
            headers={**heater.headers, "Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["progress_energy_j"] == progress_j
    else:
        report = {"attempt": attempt, "energy_j": heater.attempt_energy_j}
        answer = client.post(
            heater.url(f"/tasks/{task_id}/progress"), json=report, headers=heater.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["stop"] is False


def test_three_heaters_complete_a_job_despite_one_vanishing(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    heaters = []
    for name in ("kitchen", "attic", "study"):
        answer = coordinator.client.post(
            "/v1/devices/enroll", json=_gpu_body(coordinator.enrollment_code(owner), name)
        )
        assert answer.status_code == 201, answer.text
        heaters.append(Heater(answer.json()["device_id"], answer.json()["device_token"]))
    submitter = coordinator.submitter_key("carol")
    job = coordinator.client.post(
        "/v1/jobs",
        json={
            "name": "squares",
            "device_kinds": ["gpu"],
            "min_vram_gb": 16.0,
            "checkpoint_every_j": CHECKPOINT_J,
            "tasks": [{"task_input": {"n": n}, "energy_j": TASK_ENERGY_J} for n in range(10)],
        },
        headers=coordinator.auth(submitter),
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]

    vanished = heaters[2]
    for minute in range(400):
        if minute == 25:  # mid-task, after its checkpoints at 10 and 20 minutes
            assert vanished.lease is not None
            vanished.alive = False
        for heater in heaters:
            if heater.alive:
                _step(coordinator, heater)
        coordinator.clock.advance(STEP_S)
        shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter))
        if shown.json()["state"] != "running":
            break
    detail = shown.json()
    assert detail["state"] == "completed", detail["tasks_by_state"]
    assert [task["result"] for task in detail["tasks"]] == [{"square": n * n} for n in range(10)]
    assert sorted(task["attempt"] for task in detail["tasks"]) == [1] * 9 + [2]
    resumed = [progress for heater in heaters for progress in heater.resumed_from]
    assert resumed == [2 * CHECKPOINT_J]  # the lost task resumed from its second checkpoint

    engine = make_engine(coordinator.database_url)
    with make_session_factory(engine)() as session:
        assert unbalanced_transactions(session) == []
        entries = session.execute(
            select(LedgerEntry.account, LedgerEntry.unit, LedgerEntry.amount)
        ).all()
        attempts = session.scalars(select(TaskAttempt)).all()
        samples = session.scalars(
            select(TelemetrySampleRow).where(TelemetrySampleRow.task_id.is_not(None))
        ).all()
    engine.dispose()
    money = [amount for _, unit, amount in entries if unit == "micro_eur"]
    assert sum(money) == 0
    charged_micro = -sum(
        a
        for account, unit, a in entries
        if unit == "micro_eur" and account.startswith("submitter:")
    )
    settled_j = sum(a for account, unit, a in entries if unit == "j" and account == f"job:{job_id}")
    # Energy: settled per attempt equals the telemetry of that attempt's device and task,
    # except the vanished heater's work after its last checkpoint, which was lost and not paid.
    telemetry_j: dict[tuple[str, str], float] = {}
    for sample in samples:
        key = (sample.device_id, str(sample.task_id))
        telemetry_j[key] = telemetry_j.get(key, 0.0) + sample.power_w * STEP_S
    expired = [a for a in attempts if a.outcome == "expired"]
    assert len(expired) == 1
    assert expired[0].device_id == vanished.device_id
    lost_j = telemetry_j[(vanished.device_id, expired[0].task_id)] - 2 * CHECKPOINT_J
    assert lost_j > 0
    assert settled_j == round(sum(telemetry_j.values()) - lost_j)
    assert settled_j == 10 * TASK_ENERGY_J  # every joule of work paid once, none twice
    expected_eur = settled_j / 3.6e6 * 0.20
    assert abs(charged_micro / 1e6 - expected_eur) < 0.005  # to the cent
    assert detail["cost_eur"] == charged_micro / 1e6
    owners = sum(
        a for account, unit, a in entries if unit == "micro_eur" and account.startswith("owner:")
    )
    platform = sum(
        a for account, unit, a in entries if unit == "micro_eur" and account == "platform"
    )
    assert owners + platform == charged_micro

    scraped = coordinator.client.get("/metrics").text
    values = {
        (sample.name, sample.labels.get("state")): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert values[("heatgrid_tasks", "completed")] == 10.0
    assert values[("heatgrid_tasks", "queued")] == 0.0
    assert values[("heatgrid_lease_expiries_total", None)] == 1.0
