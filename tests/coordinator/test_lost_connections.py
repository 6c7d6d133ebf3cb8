"""PostgreSQL connections lost under the app (a restart, a terminated backend): never a 500.

Pooled connections are not pinged at checkout (``db.engine.make_engine``); a request that
finds its connection dead is answered 503 with ``Retry-After`` (the pool is invalidated, so the
retry gets a new connection), a read is tried again at once, and the heartbeat writer writes
a batch again on a new connection when its held one was lost before the commit.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from heatgrid.coordinator.db import make_engine

from .conftest import Coordinator, PostgresServer

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

_GONE_WITHIN_S = 10.0


def _backends(server: PostgresServer, database: str) -> int:
    with psycopg.connect(server.url("postgres").replace("+psycopg", "")) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def _terminate_backends(server: PostgresServer, database_url: str) -> None:
    """End every server process of the database (as a restart does), and wait until gone."""
    database = database_url.rsplit("/", 1)[1]
    assert _backends(server, database) > 0  # the app holds connections to lose
    server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    deadline_s = time.monotonic() + _GONE_WITHIN_S
    while _backends(server, database) > 0:
        assert time.monotonic() < deadline_s, "the backends were not terminated"
        time.sleep(0.05)


def _heartbeat(coordinator: Coordinator, device_id: str, token: str) -> Any:
    body = coordinator.heartbeat_body(coordinator.clock(), [500.0])
    return coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=coordinator.auth(token)
    )


def _claim(coordinator: Coordinator, device_id: str, token: str) -> Any:
    return coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=coordinator.auth(token)
    )


def test_a_heartbeat_after_the_backends_were_terminated_is_stored(
    coordinator: Coordinator, postgres_server: PostgresServer
) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    assert _heartbeat(coordinator, device_id, token).status_code == 200  # the writer connects
    _terminate_backends(postgres_server, coordinator.database_url)
    coordinator.clock.advance(60.0)  # a new sample
    # The writer's held connection is dead; its batch never reached the commit, so it is
    # written again on a new connection (before: 500, the batch's error).
    answer = _heartbeat(coordinator, device_id, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored_samples"] == 1


def test_requests_after_the_backends_were_terminated_are_retryable(
    coordinator: Coordinator, postgres_server: PostgresServer
) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    assert _claim(coordinator, device_id, token).status_code == 200  # pooled connections
    _terminate_backends(postgres_server, coordinator.database_url)
    # A request on a pooled connection that is dead: 503 with Retry-After, never 500; the
    # pool was invalidated with it, so the retry gets a new connection.
    answer = _claim(coordinator, device_id, token)
    assert answer.status_code in (200, 503), answer.text
    if answer.status_code == 503:
        assert int(answer.headers["Retry-After"]) >= 1
        answer = _claim(coordinator, device_id, token)
    assert answer.status_code == 200, answer.text
    _terminate_backends(postgres_server, coordinator.database_url)
    # A device's first request reads its token's row on its own: tried again at once.
    coordinator.app.state.device_cache.forget(device_id)
    answer = _heartbeat(coordinator, device_id, token)
    assert answer.status_code == 200, answer.text


def test_a_pooled_connection_is_not_pinged_at_checkout(database_url: str) -> None:
    engine = make_engine(database_url)
    pings: list[Any] = []
    ping = engine.dialect.do_ping

    def counted(connection: Any) -> bool:
        pings.append(connection)
        return ping(connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        for _ in range(5):
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        assert pings == []  # before: a round trip at every checkout
    finally:
        engine.dispose()


def test_a_retry_after_a_held_connection_was_lost_gets_a_live_connection(
    coordinator: Coordinator, postgres_server: PostgresServer
) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    assert _heartbeat(coordinator, device_id, token).status_code == 200  # the writer connects
    assert _claim(coordinator, device_id, token).status_code == 200  # and one is pooled
    _terminate_backends(postgres_server, coordinator.database_url)
    # The pooled connection found dead: the pool is invalidated, the retry opens a new one.
    assert _claim(coordinator, device_id, token).status_code == 503
    assert _claim(coordinator, device_id, token).status_code == 200
    _terminate_backends(postgres_server, coordinator.database_url)
    coordinator.clock.advance(60.0)
    # The writer's held connection, opened before that invalidation, is found dead; its
    # retry must not take the pooled connection opened since, dead too (before: 503).
    answer = _heartbeat(coordinator, device_id, token)
    assert answer.status_code == 200, answer.text


def test_a_database_that_refuses_connections_is_answered_503_until_it_takes_them_again(
    coordinator: Coordinator, postgres_server: PostgresServer
) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    assert _claim(coordinator, device_id, token).status_code == 200
    database = coordinator.database_url.rsplit("/", 1)[1]
    postgres_server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        _terminate_backends(postgres_server, coordinator.database_url)
        # the pooled connection is found lost first (503); then no connection can be opened,
        # as with the server down: before, the connect's error was a 500
        assert _claim(coordinator, device_id, token).status_code == 503
        for _ in range(2):
            answer = _claim(coordinator, device_id, token)
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert "cannot be reached" in answer.json()["detail"]
    finally:
        postgres_server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert _claim(coordinator, device_id, token).status_code == 200
