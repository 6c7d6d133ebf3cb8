"""Segment replay of training tasks (issue 17), on SQLite and PostgreSQL.

A checked training task (its job declares ``verify_rel_l2``, its checkpoints carry a step and a
tensor fingerprint) is not replicated whole: a device of another owner is leased a *replay* of
one segment, from the original attempt's checkpoint to the step of the next, and its tensors
there are compared with the original's checkpoint by their fingerprints. The tests drive real
HTTP requests (checkpoints uploaded in chunks with their marks, downloaded by the replayer with
their hash checked) and fix the segment's draw, which the coordinator makes with a secure
generator. Training is simulated: the weights after ``s`` steps are a fixed function of ``s``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from heatgrid.agent.client import CoordinatorClient
from heatgrid.coordinator import verification
from heatgrid.coordinator.db.models import Checkpoint, Device, LedgerTransaction, Task, TaskAttempt
from heatgrid.jobs.sdk import tensor_fingerprint
from heatgrid.protocol.jobs import CheckpointMark

from .conftest import Coordinator
from .test_verification import TASK_ENERGY_J, Heater, _balances, _rows

pytestmark = pytest.mark.usefixtures("backend")

STEPS = (100, 200, 300)
"""The original attempt's checkpoints [steps]; the task trains 300 steps."""
_BASE = np.random.default_rng(5).standard_normal(4000).astype(np.float32)


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """Verify results (a new device is always checked); no rate limit for chunked uploads."""
    return {
        **settings_overrides,
        "verify_results": True,
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
    }


@pytest.fixture
def draw(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Fix the segment's draw: segments (start->100, 100->200, 200->300, 300->end) by quarter."""
    fixed = {"value": 0.3}  # the second segment: from step 100 to step 200
    monkeypatch.setattr(verification, "_replay_draw", lambda: fixed["value"])
    return fixed


def _weights(step: int, *, skipped_after: int | None = None) -> dict[str, np.ndarray]:
    """The weights after ``step`` steps; a cheat that skipped a step past ``skipped_after``."""
    w = _BASE * np.float32(1.0 + step / 1000.0)
    if skipped_after is not None and step > skipped_after:
        w = w + np.float32(8e-4) * np.random.default_rng(9).standard_normal(w.size).astype(
            np.float32
        )
    return {"w": w.astype(np.float32)}


def _result(step: int, **cheat: int) -> dict[str, Any]:
    weights = _weights(step, **cheat)
    fp = tensor_fingerprint(weights)
    return {"steps": step, "weights_sha256": fp["values_sha256"], "tensor_fingerprint": fp}


def _device_client(coordinator: Coordinator, heater: Heater) -> CoordinatorClient:
    token = heater.headers["Authorization"].removeprefix("Bearer ")
    return CoordinatorClient(
        "http://coordinator.test",
        transport=httpx.ASGITransport(app=coordinator.app),
        token=token,
        device_id=heater.device_id,
    )


def _blob(step: int, holds: int | None = None) -> bytes:
    """The checkpoint blob at ``step``; one that ``holds`` the weights of another step."""
    held = "" if holds is None else f" holding {holds}"
    return f"state at step {step}{held}".encode()


def _restore(blob: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """What a replayer's job restores from a blob of :func:`_blob`: its step and weights."""
    words = blob.decode().split()
    return int(words[3]), _weights(int(words[-1]))


def _checkpoint(
    coordinator: Coordinator,
    heater: Heater,
    lease: dict[str, Any],
    step: int,
    *,
    holds: int | None = None,
    **cheat: int,
) -> int:
    """Upload a checkpoint of the weights at ``step`` with its mark; return its number.

    ``holds``: the blob holds the weights of that step instead (the mark still claims
    ``step``'s): a swapped state.
    """
    mark = CheckpointMark.model_validate(
        {"step": step, "fingerprint": tensor_fingerprint(_weights(step, **cheat))}
    )

    async def upload() -> int:
        async with _device_client(coordinator, heater) as client:
            receipt = await client.upload_checkpoint(
                lease["task_id"],
                _blob(step, holds),
                attempt=lease["attempt"],
                energy_j=float(step),
                chunk_bytes=1024,
                mark=mark,
            )
            return receipt.seq

    return int(coordinator.client.portal.call(upload))


def _download(coordinator: Coordinator, heater: Heater, task_id: str, seq: int) -> bytes:
    async def get() -> bytes:
        async with _device_client(coordinator, heater) as client:
            token = heater.headers["Authorization"].removeprefix("Bearer ")
            return await client.get_checkpoint(heater.device_id, token, task_id, seq)

    return bytes(coordinator.client.portal.call(get))


def _complete(
    coordinator: Coordinator,
    heater: Heater,
    lease: dict[str, Any],
    result: dict[str, Any],
    start_mark: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = {"attempt": lease["attempt"], "energy_j": TASK_ENERGY_J, "result": result}
    if start_mark is not None:
        body["start_mark"] = start_mark
    answer = coordinator.client.post(
        f"/v1/devices/{heater.device_id}/tasks/{lease['task_id']}/complete",
        json=body,
        headers=heater.headers,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _train(
    coordinator: Coordinator, heater: Heater, *, swapped: int | None = None, **cheat: int
) -> dict[str, Any]:
    """Claim the task, checkpoint at every step of :data:`STEPS`, report; return the lease.

    ``swapped``: the blob of the checkpoint at that step holds the next checkpoint's weights
    (a cheat that skipped the segment: a replay from it reaches the next mark at once).
    """
    lease = heater.claim()
    assert lease is not None
    assert lease["stop_step"] is None
    for number, step in enumerate(STEPS):
        holds = None
        if step == swapped:
            holds = STEPS[number + 1] if number + 1 < len(STEPS) else STEPS[-1]
        _checkpoint(coordinator, heater, lease, step, holds=holds, **cheat)
    assert _complete(coordinator, heater, lease, _result(STEPS[-1], **cheat))["state"] == (
        "reported"
    )
    return lease


def _replay(
    coordinator: Coordinator,
    heater: Heater,
    *,
    lie: bool = False,
    lie_at_start: bool = False,
    say_start: bool = True,
    upload: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Claim the replay, restore its start checkpoint, report the tensors at its stop step.

    The start's step and fingerprint, as restored, go with the result (``start_mark``, as
    ``ctx.restored`` has a job say them), unless ``say_start`` is False (an older agent).
    The tensors reached are those the start's mark claims at the stop step: a swapped start
    continues self-consistently to the next mark; only the start mark can tell. ``lie``:
    other tensors at the end; ``lie_at_start``: a made-up start mark; ``upload``: it
    uploads its checkpoint at the stop step first, as an agent does.
    """
    lease = heater.claim()
    assert lease is not None
    assert lease["checkpoint_seq"] is not None
    start = _download(coordinator, heater, lease["task_id"], lease["checkpoint_seq"])
    assert start.startswith(b"state at step 100")  # the original attempt's checkpoint 1
    step, restored = _restore(start)
    if lie_at_start:
        restored = _weights(step, skipped_after=0)
    stop = lease["stop_step"]
    if upload:
        _checkpoint(coordinator, heater, lease, stop)
    weights = _weights(stop, skipped_after=0) if lie else _weights(stop)
    result = {"replay_step": stop, "tensor_fingerprint": tensor_fingerprint(weights)}
    mark = {"step": step, "fingerprint": tensor_fingerprint(restored)} if say_start else None
    return lease, _complete(coordinator, heater, lease, result, mark)


def _submit(coordinator: Coordinator, key: str, *, verify_rel_l2: float | None = 1e-5) -> str:
    """Submit a one-task training job; without ``verify_rel_l2`` it is never replayed."""
    body: dict[str, Any] = {
        "name": "training",
        "device_kinds": ["gpu"],
        "tasks": [{"task_input": {"steps": STEPS[-1]}, "energy_j": TASK_ENERGY_J}],
    }
    if verify_rel_l2 is not None:
        body["verify_rel_l2"] = verify_rel_l2
    answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


def _task(coordinator: Coordinator, job_id: str) -> Any:
    [(task,)] = _rows(coordinator, select(Task).where(Task.job_id == job_id))
    return task


def _verdicts(coordinator: Coordinator, job_id: str) -> dict[str, str]:
    rows = _rows(
        coordinator,
        select(TaskAttempt.device_id, TaskAttempt.verdict)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.job_id == job_id, TaskAttempt.verdict.is_not(None)),
    )
    return dict(rows)


def _quarantined(coordinator: Coordinator, heater: Heater) -> bool:
    [(reason,)] = _rows(
        coordinator, select(Device.quarantine_reason).where(Device.id == heater.device_id)
    )
    return reason is not None


def test_a_checked_training_task_is_verified_by_replaying_one_segment(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    job_id = _submit(coordinator, submitter)
    original = _train(coordinator, alice)

    task = _task(coordinator, job_id)
    assert task.state == "reported"
    assert task.replay_of_attempt == original["attempt"]
    assert (task.replay_start_seq, task.replay_end_seq, task.replay_stop_step) == (1, 2, 200)
    assert alice.claim() is None  # never the original's own owner
    lease, status = _replay(coordinator, bob)
    assert (lease["checkpoint_seq"], lease["stop_step"]) == (1, 200)
    assert lease["progress_energy_j"] == 0.0
    assert status["state"] == "verified"

    task = _task(coordinator, job_id)
    assert task.result == _result(STEPS[-1])  # the original's whole result, checked by a segment
    assert _verdicts(coordinator, job_id) == {
        alice.device_id: "verified",
        bob.device_id: "verified",
    }
    assert not _quarantined(coordinator, alice)
    _balances(coordinator)


def _leased_replay(coordinator: Coordinator) -> tuple[Heater, dict[str, Any]]:
    """Alice trains the task and reports; bob, of another owner, is leased its replay."""
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    _submit(coordinator, coordinator.submitter_key())
    _train(coordinator, alice)
    lease = bob.claim()
    assert lease is not None
    return bob, lease


def test_the_replay_cannot_read_the_originals_other_checkpoints(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    bob, lease = _leased_replay(coordinator)
    answer = coordinator.client.get(
        f"/v1/devices/{bob.device_id}/tasks/{lease['task_id']}/checkpoints/3",
        headers=bob.headers,
    )
    assert answer.status_code == 404, answer.text  # the end it must reach is not handed out


def test_a_device_that_skipped_steps_in_the_replayed_segment_is_caught_and_its_task_reruns(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    submitter = coordinator.submitter_key()
    mallory = Heater(coordinator, coordinator.owner_key("mallory"), "mallory", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    job_id = _submit(coordinator, submitter)
    _train(coordinator, mallory, skipped_after=150)  # honest to step 100, skips one after it

    _, status = _replay(coordinator, bob)
    assert status["state"] == "reported"  # two owners disagree: one more replay decides
    lease, status = _replay(coordinator, dave)
    assert lease["stop_step"] == 200  # the same segment
    assert status["state"] == "queued"  # refuted: the task runs again from the start

    task = _task(coordinator, job_id)
    assert "refuted" in (task.last_error or "")
    assert task.progress_energy_j == 0.0
    assert (task.quorum, task.replay_of_attempt) == (None, None)
    assert _verdicts(coordinator, job_id) == {
        mallory.device_id: "caught",
        bob.device_id: "verified",
        dave.device_id: "verified",
    }
    assert _quarantined(coordinator, mallory)
    kinds = _rows(
        coordinator,
        select(LedgerTransaction.kind, LedgerTransaction.device_id).where(
            LedgerTransaction.kind.like("result_%")
        ),
    )
    assert sorted(kinds) == sorted(
        [
            ("result_caught", mallory.device_id),
            ("result_verified", bob.device_id),
            ("result_verified", dave.device_id),
        ]
    )
    _balances(coordinator)

    coordinator.clock.advance(3600.0)  # past the retry's backoff (the heater's window holds)
    rerun = bob.claim()  # from scratch: the cheat's checkpoints serve no one
    assert rerun is not None
    assert (rerun["checkpoint_seq"], rerun["stop_step"]) == (None, None)


@pytest.mark.parametrize("lie", ["lie", "lie_at_start"])
def test_a_replayer_that_lies_is_caught_by_another_owners_replay_and_the_original_is_paid(
    coordinator: Coordinator, draw: dict[str, float], lie: str
) -> None:
    """Eve reports other tensors at the segment's end, or a start that does not match the
    original's mark (a made-up mismatch, to have an honest original refuted)."""
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    eve = Heater(coordinator, coordinator.owner_key("eve"), "eve", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    job_id = _submit(coordinator, submitter)
    _train(coordinator, alice)

    _, status = _replay(coordinator, eve, **{lie: True})
    assert status["state"] == "reported"
    _, status = _replay(coordinator, dave)
    assert status["state"] == "verified"
    assert _task(coordinator, job_id).result == _result(STEPS[-1])
    assert _verdicts(coordinator, job_id) == {
        alice.device_id: "verified",
        eve.device_id: "caught",
        dave.device_id: "verified",
    }
    assert _quarantined(coordinator, eve)
    assert not _quarantined(coordinator, alice)
    _balances(coordinator)


def test_a_checkpoint_blob_that_does_not_hold_its_marked_state_is_refuted_at_the_start(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    """Mallory skipped the segment from step 100 to 200: its checkpoint 1 holds the weights of
    step 200 while its mark claims step 100's. A replay from that blob reaches the next mark
    at once, so the end alone agrees; the state the replayers restored does not."""
    submitter = coordinator.submitter_key()
    mallory = Heater(coordinator, coordinator.owner_key("mallory"), "mallory", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    job_id = _submit(coordinator, submitter)
    _train(coordinator, mallory, swapped=100)

    _, status = _replay(coordinator, bob)
    assert status["state"] == "reported"  # bob's start disagrees: one more replay decides
    _, status = _replay(coordinator, dave)
    assert status["state"] == "queued"  # refuted: the task runs again from the start

    assert _verdicts(coordinator, job_id) == {
        mallory.device_id: "caught",
        bob.device_id: "verified",
        dave.device_id: "verified",
    }
    [(reason,)] = _rows(
        coordinator, select(Device.quarantine_reason).where(Device.id == mallory.device_id)
    )
    assert "found another state than its mark claims" in reason
    assert "refuted" in (_task(coordinator, job_id).last_error or "")
    _balances(coordinator)


def test_without_a_start_mark_a_swapped_blob_replays_consistently(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    """What the start mark closes: a replayer that does not say what it restored (an agent
    or a job from before ``ctx.restored``) is judged by the segment's end alone, which a
    swapped blob passes; such a result is still accepted (the wire stays tolerant)."""
    mallory = Heater(coordinator, coordinator.owner_key("mallory"), "mallory", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    _train(coordinator, mallory, swapped=100)
    _, status = _replay(coordinator, bob, say_start=False)
    assert status["state"] == "verified"
    assert _verdicts(coordinator, job_id)[mallory.device_id] == "verified"


@pytest.mark.parametrize(
    ("start_mark", "named"),
    [
        ({"step": 100}, "start_mark"),
        ({"fingerprint": tensor_fingerprint(_weights(100))}, "start_mark"),
        (
            {"step": -1, "fingerprint": tensor_fingerprint(_weights(100))},
            "start_mark.step",
        ),
        (
            {"step": 100, "fingerprint": {**tensor_fingerprint(_weights(100)), "sketch": [1.0]}},
            "start_mark.fingerprint.sketch",
        ),
        ({"step": 100, "fingerprint": tensor_fingerprint(_weights(100)), "x": 1}, "start_mark.x"),
    ],
)
def test_a_malformed_start_mark_is_refused_at_the_door(
    coordinator: Coordinator, draw: dict[str, float], start_mark: dict[str, Any], named: str
) -> None:
    bob, lease = _leased_replay(coordinator)
    result = {"replay_step": 200, "tensor_fingerprint": tensor_fingerprint(_weights(200))}
    answer = coordinator.client.post(
        f"/v1/devices/{bob.device_id}/tasks/{lease['task_id']}/complete",
        json={
            "attempt": lease["attempt"],
            "energy_j": TASK_ENERGY_J,
            "result": result,
            "start_mark": start_mark,
        },
        headers=bob.headers,
    )
    assert answer.status_code == 422, answer.text
    assert named in answer.text


def test_the_tail_replays_from_the_last_checkpoint_to_the_end(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    draw["value"] = 0.99  # the tail: from the last checkpoint to the task's end
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    _train(coordinator, alice)
    task = _task(coordinator, job_id)
    assert (task.replay_start_seq, task.replay_end_seq, task.replay_stop_step) == (3, None, None)
    lease = bob.claim()
    assert lease is not None
    assert (lease["checkpoint_seq"], lease["stop_step"]) == (3, None)
    assert _complete(coordinator, bob, lease, _result(STEPS[-1]))["state"] == "verified"
    _balances(coordinator)


def _replay_keep(coordinator: Coordinator, replay_keep: int) -> None:
    """Set ``Settings.replay_keep`` of the running coordinator (read per request)."""
    state = coordinator.app.state
    state.settings = dataclasses.replace(state.settings, replay_keep=replay_keep)


def test_a_pruned_start_is_never_drawn(coordinator: Coordinator, draw: dict[str, float]) -> None:
    _replay_keep(coordinator, 0)  # no older checkpoint kept for replay
    draw["value"] = 0.3  # the second of four eligible segments (of five, were none pruned)
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    lease = alice.claim()
    assert lease is not None
    for step in (50, *STEPS):  # four checkpoints: the default keeps three blobs
        _checkpoint(coordinator, alice, lease, step)
    _complete(coordinator, alice, lease, _result(STEPS[-1]))
    pruned = _rows(
        coordinator,
        select(Checkpoint.seq).where(
            Checkpoint.task_id == lease["task_id"], Checkpoint.pruned_ts.is_not(None)
        ),
    )
    assert pruned == [(1,)]
    task = _task(coordinator, job_id)
    # (50 -> 100) would start from the pruned checkpoint 1: the second eligible is (100 -> 200)
    assert (task.replay_start_seq, task.replay_stop_step) == (2, 200)


def test_a_failed_replay_is_leased_again_with_the_same_segment(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    _train(coordinator, alice)
    lost = bob.claim()
    assert lost is not None
    failed = coordinator.client.post(
        f"/v1/devices/{bob.device_id}/tasks/{lost['task_id']}/fail",
        json={"attempt": lost["attempt"], "energy_j": 10.0, "error": "the heater broke"},
        headers=bob.headers,
    )
    assert failed.status_code == 200, failed.text
    assert failed.json()["state"] == "reported"  # waiting for another replayer
    draw["value"] = 0.99  # a new draw would pick the tail: the stored segment holds instead
    lease, status = _replay(coordinator, dave)
    assert (lease["checkpoint_seq"], lease["stop_step"]) == (1, 200)
    assert status["state"] == "verified"
    assert _verdicts(coordinator, job_id) == {
        alice.device_id: "verified",
        dave.device_id: "verified",
    }
    _balances(coordinator)


def test_a_training_task_without_checkpoint_marks_is_replicated_whole(
    coordinator: Coordinator, draw: dict[str, float]
) -> None:
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", lambda _: {})
    job_id = _submit(coordinator, coordinator.submitter_key())
    lease = alice.claim()
    assert lease is not None

    async def upload() -> None:  # a checkpoint with no step and no fingerprint
        async with _device_client(coordinator, alice) as client:
            await client.upload_checkpoint(
                lease["task_id"], b"opaque", attempt=lease["attempt"], energy_j=1.0
            )

    coordinator.client.portal.call(upload)
    assert _complete(coordinator, alice, lease, _result(STEPS[-1]))["state"] == "reported"
    assert _task(coordinator, job_id).replay_of_attempt is None
    replica = bob.claim()
    assert replica is not None
    assert (replica["checkpoint_seq"], replica["stop_step"]) == (None, None)  # from scratch
    assert _complete(coordinator, bob, replica, _result(STEPS[-1]))["state"] == "verified"


def test_a_random_sample_of_older_checkpoints_is_kept_for_replay(
    coordinator: Coordinator,
) -> None:
    """Besides the newest three, ``replay_keep`` older checkpoints keep their blob: those of
    lowest secret rank, so a segment early in a long task can still be replayed."""
    _replay_keep(coordinator, 4)
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    _submit(coordinator, coordinator.submitter_key())
    lease = alice.claim()
    assert lease is not None
    for step in range(10, 210, 10):  # twenty checkpoints
        _checkpoint(coordinator, alice, lease, step)
    rows = _rows(
        coordinator,
        select(Checkpoint.seq, Checkpoint.replay_rank, Checkpoint.pruned_ts).where(
            Checkpoint.task_id == lease["task_id"]
        ),
    )
    kept = {seq for seq, _, pruned_ts in rows if pruned_ts is None}
    older = sorted((rank, seq) for seq, rank, _ in rows if seq <= 17)
    assert kept == {18, 19, 20} | {seq for _, seq in older[:4]}
    assert len({rank for _, rank, _ in rows}) == 20  # drawn independently


def test_a_job_without_a_tolerance_keeps_only_the_newest_checkpoints(
    coordinator: Coordinator,
) -> None:
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", lambda _: {})
    _submit(coordinator, coordinator.submitter_key(), verify_rel_l2=None)
    lease = alice.claim()
    assert lease is not None
    for step in range(10, 110, 10):
        _checkpoint(coordinator, alice, lease, step)
    kept = _rows(
        coordinator,
        select(Checkpoint.seq).where(
            Checkpoint.task_id == lease["task_id"], Checkpoint.pruned_ts.is_(None)
        ),
    )
    assert sorted(kept) == [(8,), (9,), (10,)]
