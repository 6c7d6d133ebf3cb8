"""Result verification within a job's numeric tolerance (issue 17), on SQLite and PostgreSQL.

A job that declares ``verify_rel_l2`` has its replicas compared by the tensor fingerprint each
result carries (:mod:`heatgrid.core.fingerprint`), not by the result's exact digest: an honest
device of another CPU kind, whose weights differ in the last bits, agrees and is paid; a device
that skipped work (weights off by about 8e-4) is caught. A tolerance out of range, and a
malformed fingerprint, are refused at the door with a message naming the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from heatgrid.coordinator.db.models import Task, TaskAttempt
from heatgrid.jobs.sdk import tensor_fingerprint

from .conftest import Coordinator
from .test_verification import TASK_ENERGY_J, Heater, _balances, _rows

pytestmark = pytest.mark.usefixtures("backend")

_WEIGHTS = np.random.default_rng(11).standard_normal(5000).astype(np.float32)


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """Verify results, every one replicated on another owner's device (a floor of 1).

    With the default floor a device's second result goes unchecked with a chance of about
    9 % (its verdict then ``held`` until a later spot check), which these tests do not ask about.
    """
    return {**settings_overrides, "verify_results": True, "spot_check_floor": 1.0}


def _trained(weights: np.ndarray) -> dict[str, Any]:
    return {
        "weights_sha256": tensor_fingerprint({"w": weights})["values_sha256"],
        "tensor_fingerprint": tensor_fingerprint({"w": weights}),
    }


def _honest(task_input: dict[str, Any]) -> dict[str, Any]:
    return _trained(_WEIGHTS * task_input["n"])


def _other_cpu_kind(task_input: dict[str, Any]) -> dict[str, Any]:
    drift = 1 + 5e-7 * np.random.default_rng(3).standard_normal(_WEIGHTS.size)
    return _trained((_WEIGHTS * task_input["n"] * drift).astype(np.float32))


def _skipped_steps(task_input: dict[str, Any]) -> dict[str, Any]:
    noise = 8e-4 * np.random.default_rng(4).standard_normal(_WEIGHTS.size)
    return _trained((_WEIGHTS * task_input["n"] + noise).astype(np.float32))


def _submit(coordinator: Coordinator, key: str, **extra: object) -> Any:
    return coordinator.client.post(
        "/v1/jobs",
        json={
            "name": "training",
            "device_kinds": ["gpu"],
            "tasks": [{"task_input": {"n": n}, "energy_j": TASK_ENERGY_J} for n in (1, 2)],
            **extra,
        },
        headers=coordinator.auth(key),
    )


def test_replicas_agree_within_the_jobs_tolerance_and_a_skipping_device_is_caught(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    cheat = Heater(coordinator, coordinator.owner_key("alice"), "cheat", _skipped_steps)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _other_cpu_kind)
    answer = _submit(coordinator, submitter, verify_rel_l2=1e-5)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    assert answer.json()["verify_rel_l2"] == 1e-5

    for _ in range(10):
        for heater in (cheat, bob, dave):
            heater.work()
            _balances(coordinator)  # balanced after every step
        job = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter))
        if job.json()["state"] != "running":
            break

    job = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter)).json()
    assert job["state"] == "completed"
    assert job["tasks_by_state"] == {"verified": 2}
    verdicts = _rows(
        coordinator,
        select(TaskAttempt.device_id, TaskAttempt.verdict, TaskAttempt.result_sha256)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.job_id == job_id, TaskAttempt.verdict.is_not(None)),
    )
    by_device: dict[str, set[str]] = {}
    for device_id, verdict, _ in verdicts:
        by_device.setdefault(device_id, set()).add(verdict)
    assert by_device[cheat.device_id] == {"caught"}
    assert by_device[bob.device_id] == {"verified"}
    assert by_device[dave.device_id] == {"verified"}  # another digest, within the tolerance
    digests = {device_id: digest for device_id, _, digest in verdicts}
    assert digests[bob.device_id] != digests[dave.device_id]
    device = coordinator.client.get(
        f"/v1/devices/{cheat.device_id}", headers=coordinator.auth(coordinator.operator_key)
    ).json()
    assert device["quarantined_ts"] is not None


def test_without_a_tolerance_devices_of_other_cpu_kinds_do_not_agree(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _other_cpu_kind)
    answer = _submit(coordinator, submitter)
    assert answer.status_code == 201, answer.text
    lease = bob.claim()
    assert lease is not None
    assert bob.complete(lease)["state"] == "reported"
    replica = dave.claim()
    assert replica is not None
    assert replica["task_id"] == lease["task_id"]
    assert dave.complete(replica)["state"] == "reported"  # exact digests differ: no quorum


@pytest.mark.parametrize(
    ("value", "message"),
    [(0.2, "less than or equal to 0.1"), (-1e-6, "greater than or equal to 0"), ("1e-5", "")],
)
def test_a_tolerance_out_of_range_is_refused_at_the_door(
    coordinator: Coordinator, value: object, message: str
) -> None:
    answer = _submit(coordinator, coordinator.submitter_key(), verify_rel_l2=value)
    assert answer.status_code == 422, answer.text
    assert "verify_rel_l2" in answer.text
    assert message in answer.text


def test_a_non_finite_tolerance_is_refused_at_the_door(coordinator: Coordinator) -> None:
    body = (
        '{"name": "t", "device_kinds": ["gpu"], "verify_rel_l2": NaN,'
        ' "tasks": [{"task_input": {}, "energy_j": 1.0}]}'
    )
    answer = coordinator.client.post(
        "/v1/jobs",
        content=body,
        headers={
            **coordinator.auth(coordinator.submitter_key()),
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 422, answer.text
    assert "verify_rel_l2" in answer.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sketch": [0.0] * 3}, "sketch"),
        ({"sketch": [0.0] * 5000}, "sketch"),
        ({"norm": -1.0}, "norm"),
        ({"count": -1}, "count"),
        ({"count": 1.5}, "count"),
        ({"values_sha256": "not hex"}, "values_sha256"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_malformed_fingerprint_is_refused_at_the_door(
    coordinator: Coordinator, change: dict[str, object], field: str
) -> None:
    submitter = coordinator.submitter_key()
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    assert _submit(coordinator, submitter, verify_rel_l2=1e-5).status_code == 201
    lease = bob.claim()
    assert lease is not None
    result = _honest(lease["task_input"])
    result["tensor_fingerprint"] = {**result["tensor_fingerprint"], **change}
    answer = coordinator.client.post(
        f"/v1/devices/{bob.device_id}/tasks/{lease['task_id']}/complete",
        json={"attempt": lease["attempt"], "energy_j": 1.0, "result": result},
        headers=bob.headers,
    )
    assert answer.status_code == 422, answer.text
    assert f"tensor_fingerprint.{field}" in answer.text
    assert bob.complete(lease)["state"] == "reported"  # a well-formed one is then accepted
