"""Slow clients hold only their own sockets (issue 12, fault 1), on SQLite and PostgreSQL.

Sixty unauthenticated loopback connections send the headers of a ``POST`` with
``Content-Length: 1000`` and one byte of body, then wait. A real ``heatgrid serve`` must keep
answering the routes that use the database (``/readyz``, listings) meanwhile, because a
request takes one of the 40 request slots only once its body is in, and must answer each slow
request 408 (or close it) once ``--body-timeout-s`` has passed. ``/readyz`` answers 503 when
no slot frees up for ``ready_wait_s``: checked on the app with one slot held.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.engine import POOL_CONNECTIONS
from heatgrid.coordinator.middleware import BodyLimitMiddleware, ConcurrencyLimitMiddleware

from .serve_process import ServeProcess

_SLOW_CLIENTS = POOL_CONNECTIONS + 20
_BODY_TIMEOUT_S = 3.0
_PROBE_TIMEOUT_S = 20.0


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServeProcess, str]]:
    """``heatgrid serve`` with a short body timeout, and the operator's API key."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        key = create_api_key(
            session, name="operator", role="operator", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    process = ServeProcess(
        database_url,
        tmp_path / "serve.log",
        ("--body-timeout-s", str(_BODY_TIMEOUT_S), "--log-level", "warning"),
    )
    process.start()
    try:
        process.wait_ready()
        yield process, key
    finally:
        process.stop()


def _slow_request(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=_PROBE_TIMEOUT_S)
    connection.sendall(
        b"POST /v1/devices/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return connection


def _answer_of(connection: socket.socket) -> bytes:
    """What the server sent before closing (empty when it closed without an answer)."""
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def test_slow_bodies_do_not_stall_the_service_and_time_out(
    server: tuple[ServeProcess, str],
) -> None:
    process, key = server
    slow = [_slow_request(process.port) for _ in range(_SLOW_CLIENTS)]
    try:
        with httpx.Client(base_url=process.url, timeout=_PROBE_TIMEOUT_S) as client:
            started_s = time.monotonic()
            ready = client.get("/readyz")
            listed = client.get("/v1/devices", headers={"Authorization": f"Bearer {key}"})
            answered_s = time.monotonic() - started_s
        assert ready.status_code == 200, ready.text
        assert listed.status_code == 200, listed.text
        # (not a timed assertion: a stalled server would have hit _PROBE_TIMEOUT_S above)
        assert answered_s < _PROBE_TIMEOUT_S
        answers = [_answer_of(connection) for connection in slow]
    finally:
        for connection in slow:
            connection.close()
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    timed_out = [answer for answer in answers if answer]
    assert timed_out, "no slow request was answered 408"
    assert b"did not arrive within 3 s" in timed_out[0]


# --------------------------------------------------------------------------- on the app


async def _held(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose ``/hold`` requests wait until the test lets them go."""
    if scope["path"] == "/hold":
        scope["state"]["entered"].set()
        await scope["state"]["release"].wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_readyz_answers_503_while_no_slot_frees_up() -> None:
    async def scenario() -> tuple[int, bytes, int]:
        release, entered = anyio.Event(), anyio.Event()
        app = BodyLimitMiddleware(
            ConcurrencyLimitMiddleware(_held, limit=1, ready_wait_s=0.2), limit_bytes=1000
        )

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = {"release": release, "entered": entered}
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
            anyio.create_task_group() as group,
        ):
            group.start_soon(client.get, "/hold")
            await entered.wait()  # the only slot is taken
            stalled = await client.get("/readyz")
            release.set()
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/readyz")
        return stalled.status_code, stalled.content, ready.status_code

    stalled_status, stalled_body, ready_status = anyio.run(scenario)
    assert stalled_status == 503
    assert b"stalled: none of the 1 request slots came free within 0.2 s" in stalled_body
    assert ready_status == 200
