"""Input that cannot be stored and served is refused at the door, alike on both databases.

A task input or a result nested 300 deep, holding a lone surrogate, a NUL or a non-finite
number is answered 422 naming the field; nothing of it is stored, so later claims and reads
keep working (issue 12, faults 2, 6 and 7). NUL characters in path ids and account names are
refused with 404/422 (exit status 2 at the command line), never a 500 from PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from heatgrid.cli.main import main
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Account, Job, Task, TaskAttempt
from heatgrid.protocol.values import MAX_JSON_BYTES, MAX_JSON_DEPTH

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

_JSON = {"content-type": "application/json"}
_ENERGY_J = 360_000.0


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _raw(value: Any) -> bytes:
    """JSON as Python writes it: lone surrogates escaped, NaN and Infinity as literals."""
    return json.dumps(value).encode()


_POISON: dict[str, tuple[Any, str]] = {
    "nested 300 deep": (_nested(300), f"nested deeper than {MAX_JSON_DEPTH} levels"),
    "lone surrogate": ({"text": "\udc00"}, "lone surrogate"),
    "surrogate in a key": ({"\ud800": 1}, "lone surrogate"),
    "NUL": ({"list": ["ok", "a\x00b"]}, "NUL"),
    "NaN": ({"x": float("nan")}, "finite"),
    "Infinity": ({"x": [1.0, float("-inf")]}, "finite"),
    "too large": ({"blob": "x" * (MAX_JSON_BYTES + 1)}, "over the limit"),
}


def _gpu(coordinator: Coordinator, owner_key: str, name: str) -> tuple[str, dict[str, str]]:
    body = coordinator.enroll_body(coordinator.enrollment_code(owner_key), name)
    body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    device_id, headers = answer.json()["device_id"], coordinator.auth(answer.json()["device_token"])
    now_ts = coordinator.clock()
    window = [{"start_ts": now_ts, "duration_s": 86_400.0, "heat_power_w": 800.0}]
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={"sent_ts": now_ts, "heat_window": window},
        headers=headers,
    )
    assert beat.status_code == 200, beat.text
    return device_id, headers


def _submit(coordinator: Coordinator, key: str, task_input: Any) -> Any:
    body = {"name": "job", "tasks": [{"task_input": task_input, "energy_j": _ENERGY_J}]}
    return coordinator.client.post(
        "/v1/jobs", content=_raw(body), headers={**coordinator.auth(key), **_JSON}
    )


def _count(coordinator: Coordinator, model: Any) -> int:
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", list(_POISON))
def test_a_task_input_that_cannot_be_served_is_refused_and_claims_keep_working(
    coordinator: Coordinator, case: str
) -> None:
    poison, reason = _POISON[case]
    mallory, carol = coordinator.submitter_key("mallory"), coordinator.submitter_key("carol")
    refused = _submit(coordinator, mallory, poison)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "tasks[0].task_input"
    assert reason in refused.json()["detail"]
    assert _count(coordinator, Job) == 0
    honest = _submit(coordinator, carol, {"n": 1})
    assert honest.status_code == 201, honest.text
    device_id, headers = _gpu(coordinator, coordinator.owner_key(), "den")
    claim = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 4}, headers=headers
    )
    assert claim.status_code == 200, claim.text
    assert [lease["task_input"] for lease in claim.json()["leases"]] == [{"n": 1}]


def test_the_limits_themselves_are_accepted(coordinator: Coordinator) -> None:
    key = coordinator.submitter_key()
    deepest = _submit(coordinator, key, _nested(MAX_JSON_DEPTH))
    assert deepest.status_code == 201, deepest.text
    unicode = _submit(coordinator, key, {"text": "h\u00e9at \U0001f525", "n": [1, 2.5, None, True]})
    assert unicode.status_code == 201, unicode.text


def test_a_stored_input_that_cannot_be_served_is_dead_lettered_not_leased(
    coordinator: Coordinator,
) -> None:
    """A task stored before the door checked it (an older coordinator) never breaks a claim."""
    key = coordinator.submitter_key()
    poisoned = _submit(coordinator, key, {"n": 0}).json()["job_id"]
    honest = _submit(coordinator, key, {"n": 1}).json()["job_id"]
    engine = make_engine(coordinator.database_url)
    with make_session_factory(engine)() as session:
        task = session.scalars(select(Task).where(Task.job_id == poisoned)).one()
        task.task_input = _nested(300)
        session.commit()
    device_id, headers = _gpu(coordinator, coordinator.owner_key(), "den")
    claim = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 4}, headers=headers
    )
    assert claim.status_code == 200, claim.text
    assert [lease["job_id"] for lease in claim.json()["leases"]] == [honest]
    with make_session_factory(engine)() as session:
        task = session.scalars(select(Task).where(Task.job_id == poisoned)).one()
        assert (task.state, task.attempt, task.lease_device_id) == ("dead", 0, None)
        assert "task_input" in (task.last_error or "")
        # no attempt of it is left behind (PostgreSQL leases and inserts attempts as one)
        assert (
            session.scalars(select(TaskAttempt).where(TaskAttempt.task_id == task.id)).all() == []
        )
    engine.dispose()
    shown = coordinator.client.get(f"/v1/jobs/{poisoned}", headers=coordinator.auth(key))
    assert shown.status_code == 200, shown.text
    assert shown.json()["state"] == "failed"


@pytest.mark.parametrize("case", ["nested 300 deep", "lone surrogate", "NUL", "NaN", "too large"])
def test_a_result_that_cannot_be_served_is_refused_and_the_job_stays_readable(
    coordinator: Coordinator, case: str
) -> None:
    poison, reason = _POISON[case]
    key = coordinator.submitter_key()
    job_id = _submit(coordinator, key, {"n": 1}).json()["job_id"]
    device_id, headers = _gpu(coordinator, coordinator.owner_key(), "den")
    lease = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    ).json()["leases"][0]
    url = f"/v1/devices/{device_id}/tasks/{lease['task_id']}/complete"
    report = {"attempt": lease["attempt"], "energy_j": 1000.0, "result": poison}
    refused = coordinator.client.post(url, content=_raw(report), headers={**headers, **_JSON})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "result"
    assert reason in refused.json()["detail"]
    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert shown.status_code == 200, shown.text
    assert shown.json()["tasks"][0]["state"] == "leased"
    report["result"] = {"ok": True}
    accepted = coordinator.client.post(url, json=report, headers=headers)
    assert accepted.status_code == 200, accepted.text
    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert shown.json()["tasks"][0]["result"] == {"ok": True}


@pytest.mark.parametrize("error", ["disk \udc00 full", "disk \x00 full"])
def test_a_failure_message_that_cannot_be_stored_is_refused(
    coordinator: Coordinator, error: str
) -> None:
    key = coordinator.submitter_key()
    job_id = _submit(coordinator, key, {"n": 1}).json()["job_id"]
    device_id, headers = _gpu(coordinator, coordinator.owner_key(), "den")
    lease = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    ).json()["leases"][0]
    report = {"attempt": lease["attempt"], "energy_j": 10.0, "error": error}
    refused = coordinator.client.post(
        f"/v1/devices/{device_id}/tasks/{lease['task_id']}/fail",
        content=_raw(report),
        headers={**headers, **_JSON},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "error"
    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert shown.status_code == 200, shown.text


def test_nul_in_path_ids_is_not_found_not_an_error(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key()
    submitter = coordinator.submitter_key()
    device_id, headers = _gpu(coordinator, owner, "den")
    requests = [
        ("GET", "/v1/jobs/a%00b", coordinator.auth(submitter), None),
        ("POST", "/v1/jobs/a%00b/cancel", coordinator.auth(submitter), None),
        ("GET", "/v1/devices/a%00b", coordinator.auth(owner), None),
        ("DELETE", "/v1/devices/a%00b", coordinator.auth(owner), None),
        ("DELETE", "/v1/admin/keys/a%00b", coordinator.auth(coordinator.operator_key), None),
        ("POST", "/v1/devices/a%00b/heartbeat", headers, {"sent_ts": coordinator.clock()}),
        (
            "POST",
            f"/v1/devices/{device_id}/tasks/a%00b/progress",
            headers,
            {"attempt": 1, "energy_j": 1.0},
        ),
        (
            "POST",
            f"/v1/devices/{device_id}/tasks/a%00b/complete",
            headers,
            {"attempt": 1, "energy_j": 1.0, "result": {}},
        ),
        ("GET", f"/v1/devices/{device_id}/tasks/a%00b/checkpoints/1", headers, None),
    ]
    for method, url, auth, body in requests:
        answer = coordinator.client.request(method, url, headers=auth, json=body)
        assert answer.status_code in (404, 422), (method, url, answer.status_code, answer.text)
        assert "NUL" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "eve\x00", "role": "owner"}, "name"),
        ({"name": "eve\udc00", "role": "owner"}, "name"),
        ({"name": "eve", "role": "owner", "scopes": ["devices:read\x00"]}, "scopes[0]"),
    ],
)
def test_an_account_name_that_cannot_be_stored_is_refused(
    coordinator: Coordinator, body: dict[str, Any], field: str
) -> None:
    answer = coordinator.client.post(
        "/v1/admin/keys",
        content=_raw(body),
        headers={**coordinator.auth(coordinator.operator_key), **_JSON},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    enrollment = coordinator.client.post(
        "/v1/admin/enrollment-codes",
        json={"owner_name": "eve\x00"},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert enrollment.status_code == 422, enrollment.text
    assert _count(coordinator, Account) == 1  # the operator's only


@pytest.mark.parametrize("name", ["eve\x00", "eve\udc00", "eve\nadmin"])
def test_the_admin_command_refuses_such_a_name_with_status_2(
    database_url: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    url = ["--database-url", database_url]
    assert main(["admin", "create-key", "--name", name, "--role", "owner", *url]) == 2
    assert "name:" in capsys.readouterr().err
    assert main(["admin", "enroll-code", "--owner", name, *url]) == 2
    assert "owner_name:" in capsys.readouterr().err
    assert main(["admin", "revoke-key", "a\x00b", *url]) == 2
    assert main(["devices", "show", "a\x00b", *url]) == 2
    assert main(["devices", "revoke", "a\x00b", *url]) == 2
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0
    engine.dispose()


def test_an_unknown_energy_method_is_refused_and_a_metered_one_accepted(
    coordinator: Coordinator,
) -> None:
    key = coordinator.submitter_key()
    job_id = _submit(coordinator, key, {"n": 1}).json()["job_id"]
    device_id, headers = _gpu(coordinator, coordinator.owner_key(), "den")
    lease = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    ).json()["leases"][0]
    url = f"/v1/devices/{device_id}/tasks/{lease['task_id']}/complete"
    report = {"attempt": lease["attempt"], "energy_j": 500.0, "result": {"ok": True}}
    refused = coordinator.client.post(
        url, json=report | {"energy_method": "guessed"}, headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "energy_method"
    accepted = coordinator.client.post(
        url, json=report | {"energy_method": "rapl"}, headers=headers
    )
    assert accepted.status_code == 200, accepted.text
    shown = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert shown.json()["tasks"][0]["state"] == "completed"


def test_made_up_http_methods_do_not_grow_the_request_metric(coordinator: Coordinator) -> None:
    # HTTP takes any token as a method; each made up one would be a new series in /metrics
    for n in range(3):
        answer = coordinator.client.request(f"BREW{n}", "/v1/devices")
        assert 400 <= answer.status_code < 500, answer.text
    scraped = coordinator.client.get("/metrics").text
    assert "BREW" not in scraped
    assert 'method="OTHER"' in scraped
