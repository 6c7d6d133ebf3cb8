"""Routes for devices running tasks: claim, progress, checkpoints, completion and failure.

Every route admits only the device token of the device named in the path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from heatgrid.coordinator import leases
from heatgrid.coordinator.api.deps import NowTs, SessionDep, SettingsDep, require_device
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError
from heatgrid.protocol import v1

__all__ = ["router"]

router = APIRouter(prefix="/v1/devices/{device_id}", tags=["tasks"])

_Device = Annotated[Device, Depends(require_device)]
_ENERGY_LIMIT_J = 1.0e15


def _store(request: Request) -> CheckpointStore:
    store: CheckpointStore = request.app.state.checkpoint_store
    return store


@router.post("/claim")
def claim(
    body: v1.ClaimRequest,
    device: _Device,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> v1.ClaimResponse:
    """Lease tasks to this device where its heat window can carry them (maybe none).

    A quarantined device is refused (403); one that owes a hardware challenge gets none yet.
    """
    if device.quarantined_ts is not None:
        raise ForbiddenError(
            f"device {device.id} is quarantined: {device.quarantine_reason}; "
            "only the operator can release it"
        )
    if settings.hardware_challenges and device.challenge_due_ts is not None:
        return v1.ClaimResponse(server_ts=now_ts, leases=[])
    granted = leases.claim(session, device, body, now_ts=now_ts, settings=settings)
    return v1.ClaimResponse(server_ts=now_ts, leases=granted)


@router.post("/tasks/{task_id}/progress")
def progress(
    *,
    task_id: str,
    body: v1.TaskProgress,
    device: _Device,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> v1.TaskStatus:
    """Report an attempt's energy; renews its lease. ``stop`` true: the lease is gone."""
    return leases.report_progress(session, device, task_id, body, now_ts=now_ts, settings=settings)


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
    device: _Device,
    session: SessionDep,
    settings: SettingsDep,
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
    device's token was checked in one that ends first); then a short transaction checks the
    lease, moves the blob to its key and records it. Other heaters never wait on an upload.
    """
    await run_in_threadpool(session.commit)  # end the token check's transaction: hold nothing
    store = _store(request)
    staged = await store.stage(request.stream())
    try:
        return await run_in_threadpool(
            leases.save_checkpoint,
            session,
            store,
            device,
            task_id,
            attempt=attempt,
            energy_j=energy_j,
            blob=staged,
            now_ts=float(request.app.state.clock()),  # after the upload, which may take long
            settings=settings,
        )
    finally:
        await run_in_threadpool(store.discard, staged)


@router.get(
    "/tasks/{task_id}/checkpoints/{seq}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_checkpoint(
    task_id: str,
    seq: Annotated[int, Path(ge=1, le=1_000_000_000)],
    request: Request,
    device: _Device,
    session: SessionDep,
) -> Response:
    """Download checkpoint ``seq`` of a task whose lease this device holds."""
    row, data = leases.read_checkpoint(session, _store(request), device, task_id, seq)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "X-Checkpoint-Sha256": row.sha256,
            "X-Progress-Energy-J": repr(row.progress_energy_j),
        },
    )


@router.post("/tasks/{task_id}/complete")
def complete(
    *,
    task_id: str,
    body: v1.TaskCompletion,
    device: _Device,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> v1.TaskStatus:
    """Hand in an attempt's result; the same result twice is accepted once, another is 409."""
    return leases.complete(session, device, task_id, body, now_ts=now_ts, settings=settings)


@router.post("/tasks/{task_id}/fail")
def fail(
    *,
    task_id: str,
    body: v1.TaskFailure,
    device: _Device,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> v1.TaskStatus:
    """Report a failed attempt; the task is retried with backoff or goes to the dead letter."""
    return leases.fail(session, device, task_id, body, now_ts=now_ts, settings=settings)
