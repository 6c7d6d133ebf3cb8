"""Job submission is idempotent with an ``Idempotency-Key``, on SQLite and PostgreSQL.

The same key and body give back the job created first (200, same id), however often and
however concurrently they are sent, and after a restart; the same key with another body is
409; keys are each submitter's own; a key that is not visible ASCII is refused, naming it.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Job, Task
from heatgrid.coordinator.settings import Settings

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")


def _body(name: str = "sweep", tasks: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "tasks": [{"task_input": {"lr": 10.0**-n}, "energy_j": 3.6e6} for n in range(tasks)],
    }


def _submit(
    coordinator: Coordinator, key: str, idempotency_key: str | None, body: dict[str, Any]
) -> httpx.Response:
    headers = coordinator.auth(key)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return coordinator.client.post("/v1/jobs", json=body, headers=headers)


def _counts(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            jobs = session.scalar(select(func.count()).select_from(Job))
            tasks = session.scalar(select(func.count()).select_from(Task))
    finally:
        engine.dispose()
    return int(jobs or 0), int(tasks or 0)


def test_the_same_key_and_body_give_back_the_first_job(coordinator: Coordinator) -> None:
    carol = coordinator.submitter_key()
    first = _submit(coordinator, carol, "b7e2-order-1", _body())
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    coordinator.clock.advance(60.0)
    again = _submit(coordinator, carol, "b7e2-order-1", _body())
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.json()["created_ts"] == first.json()["created_ts"]
    assert _counts(coordinator.database_url) == (1, 2)


def test_the_same_key_with_another_body_is_refused(coordinator: Coordinator) -> None:
    carol = coordinator.submitter_key()
    first = _submit(coordinator, carol, "k1", _body())
    refused = _submit(coordinator, carol, "k1", _body(tasks=3))
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"].startswith("Idempotency-Key:")
    assert first.json()["job_id"] in refused.json()["detail"]
    assert _counts(coordinator.database_url) == (1, 2)


def test_keys_are_each_submitters_own_and_no_key_means_a_new_job(
    coordinator: Coordinator,
) -> None:
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    carols = _submit(coordinator, carol, "shared", _body())
    daves = _submit(coordinator, dave, "shared", _body())
    assert (carols.status_code, daves.status_code) == (201, 201)
    assert carols.json()["job_id"] != daves.json()["job_id"]
    assert daves.json()["submitter_name"] == "dave"
    plain = [_submit(coordinator, carol, None, _body()) for _ in range(2)]
    assert [answer.status_code for answer in plain] == [201, 201]
    assert _counts(coordinator.database_url) == (4, 8)


@pytest.mark.parametrize("bad", ["", "has space", "x" * 201, "caf\u00e9"])
def test_a_key_that_is_not_visible_ascii_is_refused_naming_it(
    coordinator: Coordinator, bad: str
) -> None:
    carol = coordinator.submitter_key()
    headers = [
        (b"Authorization", f"Bearer {carol}".encode()),
        (b"Idempotency-Key", bad.encode()),
    ]
    answer = coordinator.client.post("/v1/jobs", json=_body(), headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("Idempotency-Key:")
    assert _counts(coordinator.database_url) == (0, 0)


def test_concurrent_submissions_with_one_key_make_one_job(coordinator: Coordinator) -> None:
    carol = coordinator.submitter_key()
    headers = {**coordinator.auth(carol), "Idempotency-Key": "retry-storm"}
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=coordinator.app), base_url="http://coordinator.test"
    )

    async def storm() -> list[httpx.Response]:
        answers: list[httpx.Response] = []

        async def one() -> None:
            answers.append(await client.post("/v1/jobs", json=_body(), headers=headers))

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one)
        return answers

    try:
        answers = coordinator.client.portal.call(storm)
    finally:
        coordinator.client.portal.call(client.aclose)
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201], [
        answer.text for answer in answers
    ]
    assert len({answer.json()["job_id"] for answer in answers}) == 1
    assert _counts(coordinator.database_url) == (1, 2)


def test_a_key_outlives_a_restart(coordinator: Coordinator) -> None:
    carol = coordinator.submitter_key()
    first = _submit(coordinator, carol, "durable", _body())
    assert first.status_code == 201, first.text
    restarted = create_app(
        Settings(database_url=coordinator.database_url, checkpoint_url=None),
        clock=coordinator.clock,
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=restarted), base_url="http://coordinator.test"
    )
    call = functools.partial(
        client.post,
        "/v1/jobs",
        json=_body(),
        headers={**coordinator.auth(carol), "Idempotency-Key": "durable"},
    )
    try:
        again = coordinator.client.portal.call(call)
    finally:
        coordinator.client.portal.call(client.aclose)
        restarted.state.engine.dispose()
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
