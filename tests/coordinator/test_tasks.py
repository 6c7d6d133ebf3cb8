"""The device side of tasks, on SQLite and PostgreSQL: claim, progress, checkpoints, results.

Claims respect hardware and prefer heaters that want heat; completion is idempotent; stale
attempts and other devices' tokens are refused; oversized checkpoints are refused and not
stored; failures are retried with backoff, then dead-lettered; silent devices lose their lease
and are paid only up to their last checkpoint; and the ledger balances after any sequence of
these (a hypothesis test on SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Checkpoint, LedgerTransaction, Task, TaskAttempt
from heatgrid.coordinator.ledger import account_balances, unbalanced_transactions
from heatgrid.protocol import v1

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

TASK_ENERGY_J = 360_000.0  # 0.1 kWh
CHECKPOINT_J = 90_000.0
WEEK_S = 7 * 86_400.0


@dataclass
class Dev:
    """An enrolled device as a test drives it."""

    device_id: str
    headers: dict[str, str]
    leases: dict[str, int] = field(default_factory=dict)  # task_id -> attempt
    energy_j: dict[str, float] = field(default_factory=dict)  # task_id -> attempt energy

    def url(self, path: str) -> str:
        return f"/v1/devices/{self.device_id}{path}"


def _enroll(
    coordinator: Coordinator,
    owner_key: str,
    name: str,
    *,
    kind: str = "gpu",
    vram_gb: float | None = 24.0,
    has_room: bool = True,
    heat_power_w: float = 1000.0,
) -> Dev:
    """Enroll a device and send a heartbeat with a week-long heat window of ``heat_power_w``."""
    body = coordinator.enroll_body(coordinator.enrollment_code(owner_key), name)
    hardware: dict[str, Any] = {"max_power_w": 900.0}
    if vram_gb is not None:
        hardware["vram_gb"] = vram_gb
    if kind == "asic":
        hardware = body["hardware"]
    body.update(device_kind=kind, hardware=hardware, has_room=has_room)
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    dev = Dev(answer.json()["device_id"], coordinator.auth(answer.json()["device_token"]))
    _heartbeat(coordinator, dev, heat_power_w)
    return dev


def _heartbeat(coordinator: Coordinator, dev: Dev, heat_power_w: float = 1000.0) -> dict[str, Any]:
    now_ts = coordinator.clock()
    window = [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": heat_power_w}]
    answer = coordinator.client.post(
        dev.url("/heartbeat"),
        json={"sent_ts": now_ts, "heat_window": window},
        headers=dev.headers,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _submit(coordinator: Coordinator, key: str, tasks: int = 1, **fields: Any) -> str:
    body = {
        "name": "job",
        "checkpoint_every_j": CHECKPOINT_J,
        "tasks": [{"task_input": {"n": n}, "energy_j": TASK_ENERGY_J} for n in range(tasks)],
        **fields,
    }
    answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


def _claim(coordinator: Coordinator, dev: Dev, slots: int = 1) -> list[dict[str, Any]]:
    answer = coordinator.client.post(dev.url("/claim"), json={"slots": slots}, headers=dev.headers)
    assert answer.status_code == 200, answer.text
    leases = list(answer.json()["leases"])
    for lease in leases:
        dev.leases[lease["task_id"]] = lease["attempt"]
        dev.energy_j[lease["task_id"]] = 0.0
    return leases


def _post(coordinator: Coordinator, dev: Dev, task_id: str, verb: str, **body: Any) -> Any:
    return coordinator.client.post(
        dev.url(f"/tasks/{task_id}/{verb}"), json=body, headers=dev.headers
    )


def _checkpoint(
    coordinator: Coordinator, dev: Dev, task_id: str, *, attempt: int, energy_j: float, data: bytes
) -> Any:
    return coordinator.client.put(
        dev.url(f"/tasks/{task_id}/checkpoint"),
        params={"attempt": attempt, "energy_j": energy_j},
        content=data,
        headers={**dev.headers, "Content-Type": "application/octet-stream"},
    )


def _job(coordinator: Coordinator, key: str, job_id: str) -> dict[str, Any]:
    answer = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


class _Db:
    """A session on the coordinator's database, for looking behind the API."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._engine = make_engine(coordinator.database_url)
        self.session = make_session_factory(self._engine)()

    def __enter__(self) -> _Db:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.session.close()
        self._engine.dispose()


# --------------------------------------------------------------------------- claiming


def test_claims_respect_device_kind_and_gpu_memory(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    big = _submit(coordinator, submitter, 2, name="big", min_vram_gb=40.0)
    cpu = _submit(coordinator, submitter, 2, name="cpu", device_kinds=["cpu"])
    small = _submit(coordinator, submitter, 2, name="small", min_vram_gb=8.0)
    gpu24 = _enroll(coordinator, owner, "gpu24", vram_gb=24.0)
    gpu80 = _enroll(coordinator, owner, "gpu80", vram_gb=80.0)
    cpu_dev = _enroll(coordinator, owner, "cpu", kind="cpu", vram_gb=None)
    asic = _enroll(coordinator, owner, "asic", kind="asic", vram_gb=None)

    job_of = {}
    for job_id in (big, cpu, small):
        for task in _job(coordinator, submitter, job_id)["tasks"]:
            job_of[task["task_id"]] = job_id
    assert _claim(coordinator, asic, slots=16) == []
    assert {job_of[lease["task_id"]] for lease in _claim(coordinator, gpu24, 16)} == {small}
    assert {job_of[lease["task_id"]] for lease in _claim(coordinator, cpu_dev, 16)} == {cpu}
    assert {job_of[lease["task_id"]] for lease in _claim(coordinator, gpu80, 16)} == {big}
    for dev in (gpu24, cpu_dev, gpu80):
        assert len(dev.leases) == 2
        assert _claim(coordinator, dev, 16) == []


def test_a_heater_needs_a_heat_window_for_the_work(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    _submit(coordinator, submitter, 1)
    cold = _enroll(coordinator, owner, "summer", heat_power_w=0.0)
    assert _claim(coordinator, cold) == []  # its room wants no heat
    _heartbeat(coordinator, cold, heat_power_w=500.0)
    assert len(_claim(coordinator, cold)) == 1


def test_heaters_get_work_before_a_rack_until_max_wait(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    max_wait_s = coordinator.app.state.settings.max_wait_s
    heater = _enroll(coordinator, owner, "study")
    rack = _enroll(coordinator, owner, "rack", kind="rack", vram_gb=80.0, has_room=False)

    # A heater that wants heat is idle: the rack is refused, and the heater gets the task.
    _submit(coordinator, submitter, 1, name="first")
    assert _claim(coordinator, rack) == []
    [first] = _claim(coordinator, heater)
    # The heater is busy now: nothing holds the next task back from the rack.
    _submit(coordinator, submitter, 1, name="second")
    [second] = _claim(coordinator, rack)
    for dev, lease in ((heater, first), (rack, second)):
        done = _post(
            coordinator, dev, lease["task_id"], "complete",
            attempt=lease["attempt"], energy_j=TASK_ENERGY_J, result={"ok": True},
        )  # fmt: skip
        assert done.status_code == 200, done.text

    # The heater is idle again but does not claim: the rack waits max_wait_s, then takes it.
    _submit(coordinator, submitter, 1, name="third")
    for step_s in (max_wait_s / 2, max_wait_s / 2 - 1.0):
        coordinator.clock.advance(step_s)
        _heartbeat(coordinator, heater)  # still online, still wanting heat
        assert _claim(coordinator, rack) == []
    coordinator.clock.advance(1.0)
    _heartbeat(coordinator, heater)
    assert len(_claim(coordinator, rack)) == 1


# --------------------------------------------------------------------------- results


def test_completion_is_idempotent_and_a_different_result_conflicts(
    coordinator: Coordinator,
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id, attempt = lease["task_id"], lease["attempt"]
    result = {"answer": 42, "list": [1, 2]}
    for _ in range(2):
        done = _post(
            coordinator, dev, task_id, "complete",
            attempt=attempt, energy_j=TASK_ENERGY_J, result=result,
        )  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "completed"
        assert done.json()["stop"] is True
    # The same result with its keys in another order is the same result.
    reordered = _post(
        coordinator, dev, task_id, "complete",
        attempt=attempt, energy_j=TASK_ENERGY_J, result={"list": [1, 2], "answer": 42},
    )  # fmt: skip
    assert reordered.status_code == 200, reordered.text
    other = _post(
        coordinator, dev, task_id, "complete",
        attempt=attempt, energy_j=TASK_ENERGY_J, result={"answer": 41},
    )  # fmt: skip
    assert other.status_code == 409, other.text
    assert "another result" in other.json()["detail"]

    shown = _job(coordinator, submitter, job_id)
    assert shown["state"] == "completed"
    assert shown["tasks"][0]["result"] == result
    assert shown["energy_j"] == TASK_ENERGY_J  # settled once
    with _Db(coordinator) as db:
        settled = db.session.scalar(
            select(func.count()).where(LedgerTransaction.key == f"attempt:{task_id}:{attempt}")
        )
        assert settled == 1
        assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1
        assert unbalanced_transactions(db.session) == []


def test_a_stale_attempt_is_refused_after_its_lease_moved(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1)
    first, second = _enroll(coordinator, owner, "first"), _enroll(coordinator, owner, "second")
    [lease] = _claim(coordinator, first)
    task_id = lease["task_id"]
    lease_s = coordinator.app.state.settings.lease_s

    # Heartbeats keep the lease: after longer than lease_s in all, it is still the first's.
    coordinator.clock.advance(lease_s * 0.75)
    assert _heartbeat(coordinator, first)["leased_task_ids"] == [task_id]
    coordinator.clock.advance(lease_s * 0.75)
    assert _claim(coordinator, second) == []
    # Then the first falls silent, its lease lapses, and the second gets attempt 2.
    coordinator.clock.advance(lease_s + 3600.0)
    assert _claim(coordinator, second) == []  # the lease lapsed; the task backs off
    coordinator.clock.advance(coordinator.app.state.settings.retry_base_s)
    [moved] = _claim(coordinator, second)
    assert (moved["task_id"], moved["attempt"]) == (task_id, 2)

    late = {"attempt": 1, "energy_j": TASK_ENERGY_J}
    told = _post(coordinator, first, task_id, "progress", **late)
    assert (told.status_code, told.json()["stop"]) == (200, True)
    for verb, extra in (("complete", {"result": {"n": 1}}), ("fail", {"error": "late"})):
        refused = _post(coordinator, first, task_id, verb, **late, **extra)
        assert refused.status_code == 409, refused.text
        assert "attempt 1 no longer holds the lease" in refused.json()["detail"]
    refused = _checkpoint(coordinator, first, task_id, attempt=1, energy_j=10.0, data=b"late")
    assert refused.status_code == 409, refused.text
    never = _post(coordinator, second, task_id, "progress", attempt=7, energy_j=1.0)
    assert never.status_code == 404, never.text

    done = _post(
        coordinator, second, task_id, "complete",
        attempt=2, energy_j=TASK_ENERGY_J, result={"n": 2},
    )  # fmt: skip
    assert done.status_code == 200, done.text
    shown = _job(coordinator, submitter, job_id)
    assert shown["tasks"][0]["result"] == {"n": 2}
    again = _post(coordinator, first, task_id, "complete", **late, result={"n": 2})
    assert again.status_code == 409, again.text  # completed, but by attempt 2
    assert shown["energy_j"] == TASK_ENERGY_J  # attempt 1 checkpointed nothing: paid nothing


def test_a_device_cannot_touch_another_devices_task(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1)
    holder, other = _enroll(coordinator, owner, "holder"), _enroll(coordinator, owner, "other")
    [lease] = _claim(coordinator, holder)
    task_id, attempt = lease["task_id"], lease["attempt"]
    stored = _checkpoint(
        coordinator, holder, task_id, attempt=attempt, energy_j=CHECKPOINT_J, data=b"saved"
    )
    assert stored.status_code == 200, stored.text

    client = coordinator.client
    progress = {"attempt": attempt, "energy_j": CHECKPOINT_J}

    def attempts(base: str, headers: dict[str, str]) -> list[Any]:
        task_url = f"{base}/tasks/{task_id}"
        return [
            client.post(f"{task_url}/progress", json=progress, headers=headers),
            client.put(f"{task_url}/checkpoint", params=progress, content=b"evil", headers=headers),
            client.post(f"{task_url}/complete", json={**progress, "result": {}}, headers=headers),
            client.post(f"{task_url}/fail", json={**progress, "error": "no"}, headers=headers),
            client.get(f"{task_url}/checkpoints/1", headers=headers),
        ]

    # Its token on the holder's URLs: 403. On its own URLs, naming the holder's task: 404.
    for answer in attempts(holder.url(""), other.headers):
        assert answer.status_code == 403, answer.text
        assert "another device" in answer.json()["detail"]
    for answer in attempts(other.url(""), other.headers):
        assert answer.status_code == 404, answer.text
        assert task_id in answer.json()["detail"]

    task = _job(coordinator, submitter, job_id)["tasks"][0]
    assert (task["state"], task["lease_device_id"], task["checkpoint_seq"]) == (
        "leased", holder.device_id, 1,
    )  # fmt: skip
    blob = client.get(holder.url(f"/tasks/{task_id}/checkpoints/1"), headers=holder.headers)
    assert blob.content == b"saved"


@pytest.mark.parametrize("settings_overrides", [{"max_checkpoint_bytes": 1024}])
def test_an_oversized_checkpoint_is_refused_and_not_stored(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id, attempt = lease["task_id"], lease["attempt"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b"x" * 512

    for content in (b"x" * 1025, chunks()):
        answer = coordinator.client.put(
            dev.url(f"/tasks/{task_id}/checkpoint"),
            params={"attempt": attempt, "energy_j": CHECKPOINT_J},
            content=content,
            headers={**dev.headers, "Content-Type": "application/octet-stream"},
        )
        assert answer.status_code == 413, answer.text
        assert "1024 bytes" in answer.json()["detail"]
    checkpoints = tmp_path / "checkpoints"
    assert not any(path.is_file() for path in checkpoints.rglob("*"))  # no blob, no .partial
    task = _job(coordinator, submitter, job_id)["tasks"][0]
    assert (task["checkpoint_seq"], task["progress_energy_j"]) == (0, 0.0)
    with _Db(coordinator) as db:
        assert db.session.scalar(select(func.count()).select_from(Checkpoint)) == 0

    fits = _checkpoint(
        coordinator, dev, task_id, attempt=attempt, energy_j=CHECKPOINT_J, data=b"y" * 1024
    )
    assert fits.status_code == 200, fits.text
    assert (fits.json()["seq"], fits.json()["size_bytes"]) == (1, 1024)
    resent = _checkpoint(
        coordinator, dev, task_id, attempt=attempt, energy_j=CHECKPOINT_J, data=b"y" * 1024
    )
    assert resent.json()["seq"] == 1  # the same upload twice is stored once
    assert len([path for path in checkpoints.rglob("*") if path.is_file()]) == 1


def test_bad_reports_are_refused_naming_the_field(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id = lease["task_id"]
    saved = _checkpoint(coordinator, dev, task_id, attempt=1, energy_j=CHECKPOINT_J, data=b"c")
    assert saved.status_code == 200, saved.text
    client = coordinator.client
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("progress", {"attempt": 1, "energy_j": CHECKPOINT_J / 2}, "energy_j"),  # decreasing
        ("progress", {"attempt": 1, "energy_j": -1.0}, "energy_j"),
        ("progress", {"attempt": 0, "energy_j": 1.0}, "attempt"),
        ("progress", {"attempt": "1", "energy_j": 1.0}, "attempt"),
        ("complete", {"attempt": 1, "energy_j": TASK_ENERGY_J}, "result"),
        ("complete", {"attempt": 1, "energy_j": TASK_ENERGY_J, "result": [1]}, "result"),
        ("fail", {"attempt": 1, "energy_j": TASK_ENERGY_J, "error": ""}, "error"),
    ]
    for verb, body, name in bad:
        answer = _post(coordinator, dev, task_id, verb, **body)
        assert answer.status_code == 422, (verb, body, answer.text)
        assert name in answer.json()["detail"], (verb, body, answer.text)
    for params, name in (
        ({"attempt": 1, "energy_j": 1.0}, "energy_j"),  # below the previous checkpoint's
        ({"attempt": 1}, "energy_j"),
        ({"attempt": 1, "energy_j": -2.0}, "energy_j"),
        ({"energy_j": 1.0}, "attempt"),
    ):
        answer = client.put(
            dev.url(f"/tasks/{task_id}/checkpoint"), params=params, content=b"d",
            headers=dev.headers,
        )  # fmt: skip
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["detail"].startswith(name), (params, answer.text)
    too_many = client.post(
        dev.url("/claim"), json={"slots": v1.MAX_CLAIM_SLOTS + 1}, headers=dev.headers
    )
    assert too_many.status_code == 422, too_many.text
    assert "slots" in too_many.json()["detail"]
    task = _job(coordinator, submitter, job_id)["tasks"][0]
    assert (task["state"], task["checkpoint_seq"], task["progress_energy_j"]) == (
        "leased", 1, CHECKPOINT_J,
    )  # fmt: skip


# --------------------------------------------------------------------------- failures


def test_failures_are_retried_with_backoff_then_dead_lettered(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    base_s = coordinator.app.state.settings.retry_base_s
    job_id = _submit(coordinator, submitter, 1, max_attempts=3)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id = lease["task_id"]
    paid_j = 0.0
    for attempt in (1, 2, 3):
        assert lease["attempt"] == attempt
        if attempt == 2:  # a checkpoint: the failed attempt is paid up to it
            saved = _checkpoint(
                coordinator, dev, task_id, attempt=attempt, energy_j=CHECKPOINT_J, data=b"c"
            )
            assert saved.status_code == 200, saved.text
            paid_j += CHECKPOINT_J
        failed = _post(
            coordinator, dev, task_id, "fail",
            attempt=attempt, energy_j=CHECKPOINT_J * 1.5, error=f"CUDA out of memory #{attempt}",
        )  # fmt: skip
        assert failed.status_code == 200, failed.text
        task = _job(coordinator, submitter, job_id)["tasks"][0]
        assert task["last_error"] == f"CUDA out of memory #{attempt}"
        if attempt == 3:
            break
        assert failed.json()["state"] == "queued"
        backoff_s = base_s * 2 ** (attempt - 1)
        coordinator.clock.advance(backoff_s - 1.0)
        assert _claim(coordinator, dev) == []  # still backing off
        coordinator.clock.advance(1.0)
        [lease] = _claim(coordinator, dev)
    assert failed.json()["state"] == "dead"
    shown = _job(coordinator, submitter, job_id)
    assert shown["state"] == "failed"
    assert shown["tasks"][0]["state"] == "dead"
    assert shown["energy_j"] == paid_j
    coordinator.clock.advance(3600.0)
    assert _claim(coordinator, dev) == []  # the dead letter is never handed out again


def test_hand_backs_do_not_spend_attempts_and_are_ready_at_once(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, 1, max_attempts=2)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id = lease["task_id"]
    for attempt in (1, 2, 3):  # more hand-backs than the job has attempts
        assert lease["attempt"] == attempt
        saved = _checkpoint(
            coordinator, dev, task_id, attempt=attempt, energy_j=CHECKPOINT_J, data=b"c"
        )
        assert saved.status_code == 200, saved.text
        handed = _post(
            coordinator, dev, task_id, "hand-back",
            attempt=attempt, energy_j=CHECKPOINT_J, reason="the room is warm",
        )  # fmt: skip
        assert handed.status_code == 200, handed.text
        assert handed.json()["state"] == "queued"
        [lease] = _claim(coordinator, dev)  # no backoff: another heater may take it at once
    with _Db(coordinator) as db:
        outcomes = db.session.scalars(
            select(TaskAttempt.outcome).where(TaskAttempt.task_id == task_id)
        ).all()
        error = db.session.get_one(Task, task_id).last_error
    assert sorted(outcomes) == ["handed_back"] * 3 + ["running"]
    assert error == "handed back: the room is warm"
    # a failure after them is the task's first counted attempt: retried, not dead
    failed = _post(
        coordinator, dev, task_id, "fail", attempt=4, energy_j=CHECKPOINT_J, error="diverged"
    )
    assert failed.json()["state"] == "queued", failed.text
    coordinator.clock.advance(coordinator.app.state.settings.retry_base_s)
    [lease] = _claim(coordinator, dev)
    failed = _post(
        coordinator, dev, task_id, "fail", attempt=5, energy_j=CHECKPOINT_J, error="diverged"
    )
    assert failed.json()["state"] == "dead", failed.text  # the second counted one: spent
    # each hand-back is paid to its checkpoint; the failures checkpointed nothing
    assert _job(coordinator, submitter, job_id)["energy_j"] == 3 * CHECKPOINT_J


def test_a_hand_back_of_a_lease_not_held_is_refused(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    _submit(coordinator, submitter, 1)
    dev = _enroll(coordinator, owner, "study")
    [lease] = _claim(coordinator, dev)
    task_id = lease["task_id"]
    never = _post(coordinator, dev, task_id, "hand-back", attempt=2, energy_j=1.0, reason="warm")
    assert never.status_code == 404, never.text
    empty = _post(coordinator, dev, task_id, "hand-back", attempt=1, energy_j=1.0, reason="")
    assert empty.status_code == 422, empty.text
    assert "reason" in empty.text
    first = _post(coordinator, dev, task_id, "hand-back", attempt=1, energy_j=1.0, reason="warm")
    assert first.status_code == 200, first.text
    again = _post(coordinator, dev, task_id, "hand-back", attempt=1, energy_j=1.0, reason="warm")
    assert again.status_code == 409, again.text
    assert "no longer holds the lease" in again.text


def test_a_silent_device_loses_its_lease_and_is_paid_to_its_checkpoint(
    coordinator: Coordinator,
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    settings_ = coordinator.app.state.settings
    job_id = _submit(coordinator, submitter, 1)
    lost, rescuer = _enroll(coordinator, owner, "lost"), _enroll(coordinator, owner, "rescuer")
    [lease] = _claim(coordinator, lost)
    task_id = lease["task_id"]
    saved = _checkpoint(
        coordinator, lost, task_id, attempt=1, energy_j=CHECKPOINT_J, data=b"progress=1"
    )
    assert saved.json()["progress_energy_j"] == CHECKPOINT_J
    more = _post(coordinator, lost, task_id, "progress", attempt=1, energy_j=1.8 * CHECKPOINT_J)
    assert more.json()["stop"] is False

    coordinator.clock.advance(settings_.lease_s - 1.0)
    assert _claim(coordinator, rescuer) == []  # the lease holds
    coordinator.clock.advance(2.0)
    assert _claim(coordinator, rescuer) == []  # it lapsed, and the task backs off
    task = _job(coordinator, submitter, job_id)["tasks"][0]
    assert (task["state"], task["last_error"]) == ("queued", "lease expired")
    coordinator.clock.advance(settings_.retry_base_s)
    _heartbeat(coordinator, rescuer)
    [resumed] = _claim(coordinator, rescuer)
    assert (resumed["attempt"], resumed["checkpoint_seq"]) == (2, 1)
    assert resumed["progress_energy_j"] == CHECKPOINT_J
    blob = coordinator.client.get(
        rescuer.url(f"/tasks/{task_id}/checkpoints/1"), headers=rescuer.headers
    )
    assert blob.content == b"progress=1"
    shown = _job(coordinator, submitter, job_id)
    assert shown["energy_j"] == CHECKPOINT_J  # not the 1.8 checkpoints' worth it reported

    rest_j = TASK_ENERGY_J - CHECKPOINT_J
    done = _post(
        coordinator, rescuer, task_id, "complete", attempt=2, energy_j=rest_j, result={"n": 0}
    )
    assert done.status_code == 200, done.text
    shown = _job(coordinator, submitter, job_id)
    assert shown["energy_j"] == TASK_ENERGY_J
    with _Db(coordinator) as db:
        outcomes = db.session.execute(
            select(TaskAttempt.attempt, TaskAttempt.outcome, TaskAttempt.device_id).order_by(
                TaskAttempt.attempt
            )
        ).all()
        assert [tuple(row) for row in outcomes] == [
            (1, "expired", lost.device_id),
            (2, "completed", rescuer.device_id),
        ]
        energy = account_balances(db.session, "device:")
        assert energy[(f"device:{lost.device_id}", "j")] == -CHECKPOINT_J
        assert energy[(f"device:{rescuer.device_id}", "j")] == -rest_j
        assert unbalanced_transactions(db.session) == []


# --------------------------------------------------------------------------- the ledger

_DEVICE = st.integers(0, 1)
_ENERGY_J = st.floats(0.0, 2 * CHECKPOINT_J)
_ACTIONS = st.one_of(
    st.tuples(st.just("claim"), _DEVICE, st.integers(1, 3)),
    st.tuples(st.sampled_from(["progress", "checkpoint", "checkpoint"]), _DEVICE, _ENERGY_J),
    st.tuples(st.sampled_from(["complete", "complete", "fail"]), _DEVICE, _ENERGY_J),
    st.tuples(st.just("heartbeat"), _DEVICE, st.just(0.0)),
    st.tuples(st.just("wait"), st.just(0), st.sampled_from([5.0, 60.0, 200.0, 400.0])),
)


def _act(coordinator: Coordinator, dev: Dev, verb: str, amount: float) -> None:
    """Do one action as a device would; a lost lease (409 or ``stop``) is forgotten."""
    if verb == "claim":
        _claim(coordinator, dev, int(amount))
        return
    if verb == "heartbeat":
        _heartbeat(coordinator, dev)
        return
    if not dev.leases:
        return
    task_id, attempt = sorted(dev.leases.items())[0]
    energy_j = dev.energy_j[task_id] + amount
    if verb == "checkpoint":
        answer = _checkpoint(
            coordinator, dev, task_id, attempt=attempt, energy_j=energy_j, data=b"%f" % energy_j
        )
    else:
        extras: dict[str, dict[str, Any]] = {
            "complete": {"result": {"e": 1}},
            "fail": {"error": "boom"},
        }
        extra = extras.get(verb, {})
        answer = _post(coordinator, dev, task_id, verb, attempt=attempt, energy_j=energy_j, **extra)
    assert answer.status_code in (200, 409), answer.text
    if answer.status_code == 200:
        dev.energy_j[task_id] = energy_j
    ended = verb in ("complete", "fail") or answer.status_code == 409
    if ended or (verb == "progress" and answer.json()["stop"]):
        del dev.leases[task_id]
        del dev.energy_j[task_id]


def _check_ledger(coordinator: Coordinator, job_id: str, key: str) -> None:
    """Every ended attempt is settled once, by the rule; no task has two running attempts."""
    with _Db(coordinator) as db:
        session = db.session
        assert unbalanced_transactions(session) == []
        tasks = session.scalars(select(Task).where(Task.job_id == job_id)).all()
        settled = dict(
            session.execute(
                select(LedgerTransaction.key, LedgerTransaction.id).where(
                    LedgerTransaction.job_id == job_id
                )
            ).all()
        )
        paid_j = 0.0
        for task in tasks:
            attempts = session.scalars(
                select(TaskAttempt).where(TaskAttempt.task_id == task.id)
            ).all()
            assert sorted(a.attempt for a in attempts) == list(range(1, task.attempt + 1))
            running = [a.attempt for a in attempts if a.outcome == "running"]
            assert running == ([task.attempt] if task.state == "leased" else [])
            for attempt in attempts:
                is_settled = f"attempt:{task.id}:{attempt.attempt}" in settled
                assert is_settled == (attempt.outcome != "running")
                if attempt.outcome in ("completed", "cancelled"):
                    paid_j += round(attempt.energy_j)
                elif attempt.outcome != "running":
                    paid_j += round(attempt.checkpointed_energy_j)
        money = account_balances(session)
        assert sum(v for (_, unit), v in money.items() if unit == "micro_eur") == 0
    assert _job(coordinator, key, job_id)["energy_j"] == paid_j


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_ledger_balances_after_any_sequence_of_events(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    devs = [_enroll(coordinator, owner, "first"), _enroll(coordinator, owner, "second")]

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(actions=st.lists(_ACTIONS, min_size=1, max_size=25))
    def run(actions: list[tuple[str, int, float]]) -> None:
        # Each example has a job of its own; the previous one was cancelled, leaving no work.
        job_id = _submit(coordinator, submitter, 3, max_attempts=3)
        for dev in devs:
            dev.leases.clear()
            dev.energy_j.clear()
            _heartbeat(coordinator, dev)
        for verb, index, amount in [("claim", 0, 1), ("claim", 1, 2), *actions]:
            if verb == "wait":
                coordinator.clock.advance(amount)
            else:
                _act(coordinator, devs[index], verb, amount)
        _check_ledger(coordinator, job_id, submitter)
        cancelled = coordinator.client.post(
            f"/v1/jobs/{job_id}/cancel", headers=coordinator.auth(submitter)
        )
        assert cancelled.status_code in (200, 409), cancelled.text
        _check_ledger(coordinator, job_id, submitter)
        assert _job(coordinator, submitter, job_id)["state"] != "running"

    run()
