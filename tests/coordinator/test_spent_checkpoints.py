"""A decided task's checkpoints leave the store (issue 17), on SQLite and PostgreSQL.

Once a task's result is verified, refuted or voided no replay and no resume can read the
checkpoints it was trained through: the judgement marks them spent
(``Task.spent_checkpoint_seq``), reads of them are refused (410) before the store is asked,
and the coordinator's sweep (:func:`heatgrid.coordinator.housekeeping.sweep`) removes their
blobs, then their rows. Checked with the local directory store and an fsspec one (memory).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from heatgrid.coordinator import housekeeping
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Checkpoint
from heatgrid.coordinator.settings import Settings

from .conftest import Coordinator
from .test_verification import Heater, _rows
from .test_verification_replay import (
    STEPS,
    _checkpoint,
    _replay,
    _submit,
    _task,
    _train,
    draw,
    settings_overrides,
)

__all__ = ["draw", "settings_overrides"]  # fixtures shared with the replay tests

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(params=["local", "fsspec"])
def store(request: pytest.FixtureRequest, coordinator: Coordinator) -> CheckpointStore:
    """The coordinator's checkpoint store: its local directory, or an fsspec memory store."""
    if request.param == "fsspec":
        coordinator.app.state.checkpoint_store = CheckpointStore(
            f"memory://heatgrid-test-{uuid.uuid4().hex}/checkpoints"
        )
    found: CheckpointStore = coordinator.app.state.checkpoint_store
    return found


def _sweep(coordinator: Coordinator, store: CheckpointStore) -> None:
    settings = Settings(database_url=coordinator.database_url, verify_results=True)
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            housekeeping.sweep(session, store, now_ts=coordinator.clock(), settings=settings)
    finally:
        engine.dispose()


def _kept(coordinator: Coordinator, task_id: str) -> list[tuple[int, str]]:
    rows = _rows(
        coordinator,
        select(Checkpoint.seq, Checkpoint.blob_key)
        .where(Checkpoint.task_id == task_id)
        .order_by(Checkpoint.seq),
    )
    return [(int(seq), str(key)) for seq, key in rows]


def test_a_verified_tasks_checkpoints_are_removed_by_the_sweep(
    coordinator: Coordinator, draw: dict[str, float], store: CheckpointStore
) -> None:
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    lease = _train(coordinator, alice)
    task_id = lease["task_id"]
    blobs = [key for _, key in _kept(coordinator, task_id)]
    assert len(blobs) == len(STEPS)
    assert all(store.exists(key) for key in blobs)
    _sweep(coordinator, store)
    assert len(_kept(coordinator, task_id)) == len(STEPS)  # a replay may still need them

    _, status = _replay(coordinator, bob)
    assert status["state"] == "verified"
    assert _task(coordinator, job_id).spent_checkpoint_seq == len(STEPS)
    other_id = _submit(coordinator, coordinator.submitter_key())  # running: kept
    other = alice.claim()
    assert other is not None
    _checkpoint(coordinator, alice, other, 50)
    [(_, other_key)] = _kept(coordinator, other["task_id"])
    _sweep(coordinator, store)

    assert _kept(coordinator, task_id) == []
    assert not any(store.exists(key) for key in blobs)
    assert store.exists(other_key)  # another task's, still running
    assert _task(coordinator, other_id).spent_checkpoint_seq is None
    _sweep(coordinator, store)  # nothing left: a no-op


def test_a_refuted_chain_is_removed_and_the_rerun_keeps_its_own(
    coordinator: Coordinator, draw: dict[str, float], store: CheckpointStore
) -> None:
    mallory = Heater(coordinator, coordinator.owner_key("mallory"), "mallory", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    _submit(coordinator, coordinator.submitter_key())
    task_id = _train(coordinator, mallory, skipped_after=150)["task_id"]
    _replay(coordinator, bob)
    _, status = _replay(coordinator, dave)
    assert status["state"] == "queued"  # refuted: runs again from the start
    refuted = [key for _, key in _kept(coordinator, task_id)]
    assert refuted

    coordinator.clock.advance(3600.0)  # past the retry's backoff
    rerun = bob.claim()
    assert rerun is not None
    assert rerun["checkpoint_seq"] is None
    seq = _checkpoint(coordinator, bob, rerun, 100)
    _sweep(coordinator, store)
    kept = _kept(coordinator, task_id)
    assert [number for number, _ in kept] == [seq]
    assert not any(store.exists(key) for key in refuted)
    assert store.exists(kept[0][1])


def test_a_spent_checkpoint_is_refused_before_the_sweep_removes_it(
    coordinator: Coordinator, draw: dict[str, float], store: CheckpointStore
) -> None:
    """Bob's replay uploaded its checkpoint; once the round refuted the original, bob's rerun
    from the start must not read it (410), and the newest is none (204), even while its row
    and blob are still there for the sweep."""
    mallory = Heater(coordinator, coordinator.owner_key("mallory"), "mallory", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    _submit(coordinator, coordinator.submitter_key())
    task_id = _train(coordinator, mallory, skipped_after=150)["task_id"]
    _replay(coordinator, bob, upload=True)
    _, status = _replay(coordinator, dave)
    assert status["state"] == "queued"
    [(bobs, key)] = [row for row in _kept(coordinator, task_id) if row[0] > len(STEPS)]
    assert store.exists(key)
    coordinator.clock.advance(3600.0)
    rerun = bob.claim()
    assert rerun is not None
    answer = coordinator.client.get(
        f"/v1/devices/{bob.device_id}/tasks/{task_id}/checkpoints/{bobs}", headers=bob.headers
    )
    assert answer.status_code == 410, answer.text
    newest = coordinator.client.get(
        f"/v1/devices/{bob.device_id}/tasks/{task_id}/checkpoint", headers=bob.headers
    )
    assert newest.status_code == 204, newest.text


def test_a_blob_the_store_cannot_remove_keeps_its_row_for_the_next_sweep(
    coordinator: Coordinator,
    draw: dict[str, float],
    store: CheckpointStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    _submit(coordinator, coordinator.submitter_key())
    task_id = _train(coordinator, alice)["task_id"]
    _replay(coordinator, bob)
    [(first, stuck), *_] = _kept(coordinator, task_id)
    remove = store.remove

    def unreachable_for_one(key: str) -> None:
        if key == stuck:
            raise ConnectionError("the store is unreachable")  # an OSError, as s3fs raises
        remove(key)

    monkeypatch.setattr(store, "remove", unreachable_for_one)
    _sweep(coordinator, store)
    assert _kept(coordinator, task_id) == [(first, stuck)]
    assert store.exists(stuck)
    monkeypatch.setattr(store, "remove", remove)
    _sweep(coordinator, store)
    assert _kept(coordinator, task_id) == []
    assert not store.exists(stuck)
