"""The jobs API for submitters, on SQLite and PostgreSQL.

Bad submissions are refused naming the field; a submitter sees, cancels and is billed for its
own jobs only; owner keys and device tokens cannot submit; cancelling a job stops the devices
that run its tasks and pays them for the energy they reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from heatgrid.coordinator.api.job_schemas import MAX_TASKS_PER_JOB
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.ledger import unbalanced_transactions

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

TASK_ENERGY_J = 360_000.0  # 0.1 kWh


def _job(tasks: int = 2, **fields: Any) -> dict[str, Any]:
    return {
        "name": "squares",
        "device_kinds": ["gpu"],
        "tasks": [{"task_input": {"n": n}, "energy_j": TASK_ENERGY_J} for n in range(tasks)],
        **fields,
    }


def _submit(coordinator: Coordinator, key: str, **fields: Any) -> str:
    answer = coordinator.client.post("/v1/jobs", json=_job(**fields), headers=coordinator.auth(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


def _gpu_heater(coordinator: Coordinator, owner_key: str, name: str) -> tuple[str, dict[str, str]]:
    """Enroll a GPU heater that wants heat now; return its id and headers."""
    body = coordinator.enroll_body(coordinator.enrollment_code(owner_key), name)
    body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    device_id, headers = answer.json()["device_id"], coordinator.auth(answer.json()["device_token"])
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json=coordinator.heartbeat_body(coordinator.clock(), [0.0]),
        headers=headers,
    )
    assert beat.status_code == 200, beat.text
    return device_id, headers


def _claim(coordinator: Coordinator, device_id: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    leases = answer.json()["leases"]
    assert len(leases) == 1, leases
    return dict(leases[0])


def _run_to_completion(
    coordinator: Coordinator, device_id: str, headers: dict[str, str], tasks: int
) -> None:
    for _ in range(tasks):
        lease = _claim(coordinator, device_id, headers)
        done = coordinator.client.post(
            f"/v1/devices/{device_id}/tasks/{lease['task_id']}/complete",
            json={"attempt": lease["attempt"], "energy_j": TASK_ENERGY_J, "result": {"ok": 1}},
            headers=headers,
        )
        assert done.status_code == 200, done.text


_BAD: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda body: body.update(tasks=[]), "tasks"),
    (lambda body: body.pop("tasks"), "tasks"),
    (lambda body: body["tasks"][1].update(energy_j=-1.0), "tasks[1].energy_j"),
    (lambda body: body["tasks"][0].update(energy_j=0.0), "tasks[0].energy_j"),
    (lambda body: body["tasks"][0].update(energy_j="360000"), "tasks[0].energy_j"),
    (lambda body: body["tasks"][0].update(checkpoint_every_j=-5.0), "tasks[0].checkpoint_every_j"),
    (lambda body: body["tasks"][0].update(task_input=[1, 2]), "tasks[0].task_input"),
    (lambda body: body.update(device_kinds=["toaster"]), "device_kinds[0]"),
    (lambda body: body.update(device_kinds=[]), "device_kinds"),
    (lambda body: body.update(device_kinds=["gpu", "gpu"]), "device_kinds"),
    (lambda body: body.update(min_vram_gb=-1.0), "min_vram_gb"),
    (lambda body: body.update(max_attempts=0), "max_attempts"),
    (lambda body: body.update(priority=101), "priority"),
    (lambda body: body.update(name=""), "name"),
    (lambda body: body.update(name="line\nbreak"), "name"),
    (lambda body: body.update(colour="red"), "colour"),
    (
        lambda body: body.update(tasks=[{"energy_j": 1.0}] * (MAX_TASKS_PER_JOB + 1)),
        "tasks",
    ),
]


@pytest.mark.parametrize(("change", "field"), _BAD)
def test_a_bad_submission_is_refused_naming_the_field(
    coordinator: Coordinator, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    submitter = coordinator.submitter_key()
    body = _job()
    change(body)
    answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(submitter))
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    assert "Traceback" not in answer.text
    listed = coordinator.client.get("/v1/jobs", headers=coordinator.auth(submitter))
    assert listed.json() == {"items": [], "next_cursor": None}  # nothing was stored


def test_the_largest_job_is_accepted(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    job_id = _submit(coordinator, submitter, tasks=MAX_TASKS_PER_JOB)
    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter))
    assert shown.json()["tasks_by_state"] == {"queued": MAX_TASKS_PER_JOB}


def test_a_submitter_sees_and_cancels_only_its_own_jobs(coordinator: Coordinator) -> None:
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    carols = _submit(coordinator, carol, name="carol's")
    daves = _submit(coordinator, dave, name="dave's")
    client = coordinator.client

    listed = client.get("/v1/jobs", headers=coordinator.auth(carol))
    assert [job["job_id"] for job in listed.json()["items"]] == [carols]
    assert listed.json()["items"][0]["submitter_name"] == "carol"
    for method, path in (("GET", ""), ("POST", "/cancel")):
        refused = client.request(method, f"/v1/jobs/{daves}{path}", headers=coordinator.auth(carol))
        assert refused.status_code == 404, refused.text
        assert daves in refused.json()["detail"]
    shown = client.get(f"/v1/jobs/{daves}", headers=coordinator.auth(dave))
    assert shown.json()["state"] == "running"  # carol's attempt changed nothing
    everything = client.get("/v1/jobs", headers=coordinator.auth(coordinator.operator_key))
    assert {job["job_id"] for job in everything.json()["items"]} == {carols, daves}

    cancelled = client.post(f"/v1/jobs/{carols}/cancel", headers=coordinator.auth(carol))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["tasks_by_state"] == {"cancelled": 2}
    again = client.post(f"/v1/jobs/{carols}/cancel", headers=coordinator.auth(carol))
    assert again.status_code == 409, again.text
    assert "already cancelled" in again.json()["detail"]
    missing = client.get("/v1/jobs/nosuchjob", headers=coordinator.auth(carol))
    assert missing.status_code == 404, missing.text


def test_only_submitters_submit_jobs(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    _, device_headers = _gpu_heater(coordinator, owner, "study")
    client = coordinator.client
    as_owner = client.post("/v1/jobs", json=_job(), headers=coordinator.auth(owner))
    assert as_owner.status_code == 403, as_owner.text
    assert "jobs:write" in as_owner.json()["detail"]
    as_device = client.post("/v1/jobs", json=_job(), headers=device_headers)
    assert as_device.status_code == 403, as_device.text
    assert "device token" in as_device.json()["detail"]
    anonymous = client.post("/v1/jobs", json=_job())
    assert anonymous.status_code == 401, anonymous.text
    forged = client.post("/v1/jobs", json=_job(), headers=coordinator.auth("hgk_nope_notakey1"))
    assert forged.status_code == 401, forged.text
    for headers in (coordinator.auth(owner), device_headers):
        assert client.get("/v1/jobs", headers=headers).status_code == 403
    listed = client.get("/v1/jobs", headers=coordinator.auth(coordinator.operator_key))
    assert listed.json()["items"] == []


def test_cancel_stops_running_tasks_and_pays_what_they_reported(coordinator: Coordinator) -> None:
    owner, submitter = coordinator.owner_key("alice"), coordinator.submitter_key("carol")
    device_id, headers = _gpu_heater(coordinator, owner, "study")
    job_id = _submit(coordinator, submitter, tasks=3)
    lease = _claim(coordinator, device_id, headers)
    task_url = f"/v1/devices/{device_id}/tasks/{lease['task_id']}"
    client = coordinator.client
    reported_j = TASK_ENERGY_J / 4
    progress = client.post(
        f"{task_url}/progress", json={"attempt": lease["attempt"], "energy_j": reported_j},
        headers=headers,
    )  # fmt: skip
    assert progress.json()["stop"] is False

    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=coordinator.auth(submitter))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["tasks_by_state"] == {"cancelled": 3}
    assert cancelled.json()["energy_j"] == reported_j
    assert cancelled.json()["cost_eur"] == pytest.approx(reported_j / 3.6e6 * 0.20)

    # The device learns at its next report that its lease is gone, and its result is refused.
    told = client.post(
        f"{task_url}/progress", json={"attempt": lease["attempt"], "energy_j": 2 * reported_j},
        headers=headers,
    )  # fmt: skip
    assert told.status_code == 200, told.text
    assert told.json()["stop"] is True
    assert told.json()["state"] == "cancelled"
    result = {"attempt": lease["attempt"], "energy_j": 2 * reported_j, "result": {"ok": 1}}
    refused = client.post(f"{task_url}/complete", json=result, headers=headers)
    assert refused.status_code == 409, refused.text
    assert "cancelled" in refused.json()["detail"]
    beat = client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json=coordinator.heartbeat_body(coordinator.clock(), [0.0]),
        headers=headers,
    )
    assert beat.json()["leased_task_ids"] == []
    assert client.post(f"/v1/devices/{device_id}/claim", json={}, headers=headers).json()[
        "leases"
    ] == []  # fmt: skip

    shown = client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(submitter)).json()
    assert shown["energy_j"] == reported_j  # paid once, for what was reported before cancel
    assert [task["result"] for task in shown["tasks"]] == [None] * 3
    engine = make_engine(coordinator.database_url)
    with make_session_factory(engine)() as session:
        assert unbalanced_transactions(session) == []
    engine.dispose()


def test_balances_show_each_caller_its_own_accounts(coordinator: Coordinator) -> None:
    alice = coordinator.owner_key("alice")
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    device_id, headers = _gpu_heater(coordinator, alice, "study")
    costs = {}
    for key, tasks in ((carol, 1), (dave, 2)):
        job_id = _submit(coordinator, key, tasks=tasks)
        _run_to_completion(coordinator, device_id, headers, tasks)
        shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
        assert shown.json()["state"] == "completed"
        costs[key] = round(shown.json()["cost_eur"] * 1e6)
    assert costs[dave] == 2 * costs[carol] > 0

    def balances(key: str) -> list[dict[str, Any]]:
        answer = coordinator.client.get("/v1/ledger/balances", headers=coordinator.auth(key))
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    for key in (carol, dave):
        [own] = balances(key)
        assert own["account"].startswith("submitter:")
        assert (own["unit"], own["amount"]) == ("micro_eur", -costs[key])
    assert balances(carol)[0]["account"] != balances(dave)[0]["account"]
    [earned] = balances(alice)
    assert earned["account"].startswith("owner:")
    assert earned["amount"] == 3 * round(costs[carol] * 0.85)  # three tasks, 85 % each
    everything = balances(coordinator.operator_key)
    money = [row["amount"] for row in everything if row["unit"] == "micro_eur"]
    assert sum(money) == 0
    assert {row["account"].split(":")[0] for row in everything} == {
        "submitter", "owner", "platform", "device", "job",
    }  # fmt: skip
    refused = coordinator.client.get("/v1/ledger/balances", headers=headers)
    assert refused.status_code == 403, refused.text
