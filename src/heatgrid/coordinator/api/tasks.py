"""Routes for devices running tasks: claim, progress, checkpoints, completion and failure.

Every route admits only the device token of the device named in the path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from heatgrid.coordinator import completions, leases
from heatgrid.coordinator.api.deps import (
    DeviceIdentityDep,
    NowTs,
    SessionDep,
    SettingsDep,
    require_device,
    require_device_reading,
    writing,
    writing_as_device,
)
from heatgrid.coordinator.auth import DeviceIdentity
from heatgrid.coordinator.checkpoints import CheckpointStore, StagedBlob
from heatgrid.coordinator.db.models import Checkpoint, Device
from heatgrid.coordinator.errors import ForbiddenError
from heatgrid.coordinator.settings import Settings
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import CheckpointMark

__all__ = ["prune", "record_checkpoint", "router"]

router = APIRouter(prefix="/v1/devices/{device_id}", tags=["tasks"])

_Device = Annotated[Device, Depends(require_device)]
_ENERGY_LIMIT_J = 1.0e15


def _answer(model: BaseModel) -> Response:
    """Return ``model`` as JSON as it is: built here, so not validated again on the way out.

    The route names its model (``response_model``) for the API schema; a returned
    :class:`Response` skips FastAPI's validation and serialization of the value.
    """
    return Response(model.model_dump_json(), media_type="application/json")


def _store(request: Request) -> CheckpointStore:
    store: CheckpointStore = request.app.state.checkpoint_store
    return store


@router.post("/claim", response_model=v1.ClaimResponse)
async def claim(
    body: v1.ClaimRequest,
    request: Request,
    *,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Lease tasks to this device where its heat window can carry them (maybe none).

    A quarantined device is refused (403); one that owes a hardware challenge gets none yet.
    """

    def work(session: Session, device: Device) -> list[v1.TaskLease]:
        if device.quarantined_ts is not None:
            raise ForbiddenError(
                f"device {device.id} is quarantined: {device.quarantine_reason}; "
                "only the operator can release it"
            )
        if settings.hardware_challenges and device.challenge_due_ts is not None:
            return []
        return leases.claim(session, device, body, now_ts=now_ts, settings=settings)

    granted = await writing_as_device(request, identity, work)
    request.app.state.metrics.leases_granted.inc(len(granted))
    return _answer(v1.ClaimResponse(server_ts=now_ts, leases=granted))


@router.post("/tasks/{task_id}/progress", response_model=v1.TaskStatus)
async def progress(
    *,
    task_id: str,
    body: v1.TaskProgress,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Report an attempt's energy; renews its lease. ``stop`` true: the lease is gone."""
    return _answer(
        await writing_as_device(
            request,
            identity,
            lambda session, device: leases.report_progress(
                session, device, task_id, body, now_ts=now_ts, settings=settings
            ),
        )
    )


@router.put(
    "/tasks/{task_id}/checkpoint",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_checkpoint(
    *,
    task_id: str,
    request: Request,
    device: Annotated[Device, Depends(require_device_reading)],
    attempt: Annotated[int, Query(ge=1, le=1_000_000, description="The attempt, as leased.")],
    energy_j: Annotated[
        float,
        Query(
            ge=0.0,
            le=_ENERGY_LIMIT_J,
            allow_inf_nan=False,
            description="Energy the attempt burned when the checkpoint was taken [J].",
        ),
    ],
) -> v1.CheckpointReceipt:
    """Store a checkpoint blob (the request body) for a task whose lease this device holds.

    The body is streamed to the store and flushed to disk with no transaction open (the
    device's token was checked on a read-only session closed before); then one short
    transaction, within one worker-thread hop, checks the lease, moves the blob to its key and
    records it. Other heaters never wait on an upload.
    """
    store = _store(request)
    staged = await store.stage(request.stream())
    return await record_checkpoint(
        request, store, device, task_id, staged, attempt=attempt, energy_j=energy_j
    )


async def record_checkpoint(
    request: Request,
    store: CheckpointStore,
    device: Device,
    task_id: str,
    staged: StagedBlob,
    *,
    attempt: int,
    energy_j: float,
    mark: CheckpointMark | None = None,
) -> v1.CheckpointReceipt:
    """Record a received checkpoint blob, discard it if it was not placed, prune old ones.

    :func:`leases.save_checkpoint` (which checks the lease under its lock) and the pruning each
    run in one short transaction within one worker-thread hop (:func:`writing`).
    """
    settings: Settings = request.app.state.settings
    try:
        now_ts = float(request.app.state.clock())  # after the upload, which may take long
        receipt = await writing(
            request,
            lambda session: leases.save_checkpoint(
                session,
                store,
                device,
                task_id,
                attempt=attempt,
                energy_j=energy_j,
                blob=staged,
                mark=mark,
                now_ts=now_ts,
                settings=settings,
            ),
        )
    finally:
        await run_in_threadpool(store.discard, staged)
    pruned_ts = float(request.app.state.clock())
    await writing(request, lambda session: prune(session, store, task_id, settings, pruned_ts))
    return receipt


def prune(
    session: Session, store: CheckpointStore, task_id: str, settings: Settings, now_ts: float
) -> None:
    """Prune all but the task's newest ``settings.checkpoint_keep`` checkpoints, rows then blobs.

    With ``verify_results``, a replayable task keeps a random sample of ``replay_keep`` older
    ones too (:func:`heatgrid.coordinator.leases.prune_checkpoints`).
    """
    replay_keep = settings.replay_keep if settings.verify_results else 0
    for key in leases.prune_checkpoints(
        session, task_id, keep=settings.checkpoint_keep, replay_keep=replay_keep, now_ts=now_ts
    ):
        store.remove(key)


@router.get(
    "/tasks/{task_id}/checkpoints/{seq}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_checkpoint(
    task_id: str,
    seq: Annotated[int, Path(ge=1, le=1_000_000_000)],
    *,
    request: Request,
    device: _Device,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Download checkpoint ``seq`` of a task whose lease this device holds (410: pruned)."""
    found = leases.read_checkpoint(
        session, _store(request), device, task_id, seq, own_only=settings.verify_results
    )
    assert found is not None  # a numbered checkpoint is found, or refused
    return _checkpoint_answer(*found)


@router.get(
    "/tasks/{task_id}/checkpoint",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        204: {"description": "The task has no checkpoint: start from the beginning"},
    },
)
def get_newest_checkpoint(
    task_id: str, request: Request, device: _Device, session: SessionDep, settings: SettingsDep
) -> Response:
    """Download the newest checkpoint of a task whose lease this device holds (204: none)."""
    found = leases.read_checkpoint(
        session, _store(request), device, task_id, None, own_only=settings.verify_results
    )
    if found is None:
        return Response(status_code=204)
    return _checkpoint_answer(*found)


def _checkpoint_answer(row: Checkpoint, data: bytes) -> Response:
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "X-Checkpoint-Seq": str(row.seq),
            "X-Checkpoint-Sha256": row.sha256,
            "X-Progress-Energy-J": repr(row.progress_energy_j),
        },
    )


@router.post("/tasks/{task_id}/complete", response_model=v1.TaskStatus)
async def complete(
    *,
    task_id: str,
    body: v1.TaskCompletion,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Hand in an attempt's result; the same result twice is accepted once, another is 409."""
    return _answer(
        await writing_as_device(
            request,
            identity,
            lambda session, device: completions.complete_one(
                session, device, task_id, body, now_ts=now_ts, settings=settings
            ),
        )
    )


@router.post("/completions", response_model=v1.CompletionBatchResponse)
async def complete_batch(
    *,
    body: v1.CompletionBatch,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Hand in several results at once, each exactly once; one refused leaves the others.

    Each outcome carries the status a single completion (``…/tasks/{task_id}/complete``)
    would have had; the batch itself is answered 200.
    """
    outcomes = await writing_as_device(
        request,
        identity,
        lambda session, device: completions.complete_batch(
            session, device, body, now_ts=now_ts, settings=settings
        ),
    )
    return _answer(v1.CompletionBatchResponse(outcomes=outcomes))


@router.post("/tasks/{task_id}/fail", response_model=v1.TaskStatus)
async def fail(
    *,
    task_id: str,
    body: v1.TaskFailure,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Report a failed attempt; the task is retried with backoff or goes to the dead letter."""
    return await _end_held(request, identity, task_id, body, now_ts=now_ts, settings=settings)


@router.post("/tasks/{task_id}/hand-back", response_model=v1.TaskStatus)
async def hand_back(
    *,
    task_id: str,
    body: v1.TaskHandBack,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """Give a task back on purpose (warm room, heater stopping) after its last checkpoint.

    It is queued again at once to resume elsewhere, and the attempt does not count against
    the job's attempts.
    """
    return await _end_held(request, identity, task_id, body, now_ts=now_ts, settings=settings)


async def _end_held(
    request: Request,
    identity: DeviceIdentity,
    task_id: str,
    body: v1.TaskFailure | v1.TaskHandBack,
    *,
    now_ts: float,
    settings: Settings,
) -> Response:
    return _answer(
        await writing_as_device(
            request,
            identity,
            lambda session, device: completions.end_held(
                session, device, task_id, body, now_ts=now_ts, settings=settings
            ),
        )
    )
