"""The coordinator ends silent devices' leases on its own, even when nobody claims."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from heatgrid.coordinator import housekeeping
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Task, TaskAttempt

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Sweep every 50 ms of real time."""
    return {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "expiry_interval_s": 0.05}


def _states(database_url: str) -> tuple[list[str], list[str]]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            tasks = list(session.scalars(select(Task.state)))
            outcomes = list(session.scalars(select(TaskAttempt.outcome)))
    finally:
        engine.dispose()
    return tasks, outcomes


def test_a_silent_devices_lease_expires_without_any_claim(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    job = coordinator.client.post(
        "/v1/jobs",
        json={"name": "one", "device_kinds": ["cpu"], "tasks": [{"energy_j": 1.0e6}]},
        headers=coordinator.auth(coordinator.submitter_key("carol")),
    )
    assert job.status_code == 201, job.text
    body = coordinator.enroll_body(coordinator.enrollment_code(owner), "study")
    body["device_kind"] = "cpu"
    body["hardware"] = {"max_power_w": 300.0, "cpu_cores": 8}
    enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
    cpu_headers = {"Authorization": f"Bearer {enrolled['device_token']}"}
    beat = coordinator.heartbeat_body(coordinator.clock(), [250.0])
    coordinator.client.post(
        f"/v1/devices/{enrolled['device_id']}/heartbeat", json=beat, headers=cpu_headers
    )
    claimed = coordinator.client.post(
        f"/v1/devices/{enrolled['device_id']}/claim", json={"slots": 1}, headers=cpu_headers
    )
    assert len(claimed.json()["leases"]) == 1

    lifespan = coordinator.app.router.lifespan_context(coordinator.app)
    with coordinator.client.portal.wrap_async_context_manager(lifespan):
        time.sleep(0.3)  # sweeps run; the lease is still young
        assert _states(coordinator.database_url) == (["leased"], ["running"])
        coordinator.clock.advance(301.0)  # past lease_s: the device said nothing since
        deadline = time.monotonic() + 30.0
        while _states(coordinator.database_url) != (["queued"], ["expired"]):
            assert time.monotonic() < deadline, _states(coordinator.database_url)
            time.sleep(0.05)


def test_the_apps_shutdown_waits_for_a_sweep_running_in_its_thread(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine is disposed of after the sweep returned its connection, not while it runs.

    Before, cancelling the sweeper ended its task at once while the sweep's thread went on;
    the app then disposed of the engine, and the connection the sweep returned afterwards was
    left open (a ResourceWarning in a later test, a connection not closed at shutdown).
    """
    started, finished = threading.Event(), threading.Event()
    real_sweep = housekeeping.sweep

    def slow_sweep(session: Session, store: CheckpointStore, **kwargs: Any) -> int:
        started.set()
        finished.wait(timeout=0.5)  # still running when the app is asked to stop
        expired = real_sweep(session, store, **kwargs)
        finished.set()
        return expired

    monkeypatch.setattr(housekeeping, "sweep", slow_sweep)
    lifespan = coordinator.app.router.lifespan_context(coordinator.app)
    with coordinator.client.portal.wrap_async_context_manager(lifespan):
        assert started.wait(timeout=30)
    assert finished.is_set()
