"""Checkpoints uploaded in chunks, resumably: a heater that dies mid-upload sends only the rest.

A device splits a checkpoint into chunks named by their SHA-256, asks which the coordinator
lacks (``POST …/checkpoint-chunks/missing``), uploads those (``PUT …/checkpoint-chunks/{sha256}``,
checked against the hash while they stream in), then commits the checkpoint as the list of its
chunks (``POST …/checkpoints``). The coordinator joins the chunks into one blob, checks the
whole checkpoint's SHA-256 and size, records it as :func:`leases.save_checkpoint` does, removes
the chunks and prunes the task's old checkpoints. No transaction is open while bytes move.

The lease is checked on read-only sessions; the one write (recording the checkpoint, which
checks the lease again under a lock) and the pruning each run in one short transaction within
one worker-thread hop (:func:`~heatgrid.coordinator.api.deps.writing`), so on SQLite no
request holds the write lock while the event loop serves others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from heatgrid.coordinator import artifacts, leases
from heatgrid.coordinator.api.deps import SettingsDep, reading, require_device_reading
from heatgrid.coordinator.api.tasks import record_checkpoint
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import InvalidError
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import CheckpointMark

__all__ = ["router"]

router = APIRouter(prefix="/v1/devices/{device_id}/tasks/{task_id}", tags=["tasks"])

_Device = Annotated[Device, Depends(require_device_reading)]
_Attempt = Annotated[int, Query(ge=1, le=1_000_000, description="The attempt, as leased.")]
_Sha256 = Annotated[
    str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the chunk, 64 hex digits.")
]


def _store(request: Request) -> CheckpointStore:
    store: CheckpointStore = request.app.state.checkpoint_store
    return store


async def _check_holder(request: Request, device: Device, task_id: str, attempt: int) -> None:
    await reading(request, lambda session: leases.check_holder(session, device, task_id, attempt))


@router.post("/checkpoint-chunks/missing")
async def missing_chunks(
    task_id: str,
    body: v1.CheckpointChunkQuery,
    request: Request,
    device: _Device,
) -> v1.CheckpointChunksMissing:
    """Answer which of the chunks named the coordinator lacks, in the order asked."""
    await _check_holder(request, device, task_id, body.attempt)
    held = await run_in_threadpool(_store(request).chunk_names, task_id)
    return v1.CheckpointChunksMissing(
        missing=list(dict.fromkeys(sha for sha in body.chunks if sha not in held))
    )


@router.put(
    "/checkpoint-chunks/{sha256}",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": v1.CheckpointChunkReceipt, "description": "Held already"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_chunk(
    *,
    task_id: str,
    sha256: _Sha256,
    attempt: _Attempt,
    request: Request,
    device: _Device,
    response: Response,
) -> v1.CheckpointChunkReceipt:
    """Store a chunk (the body) whose SHA-256 is the path's: 201 stored, 200 held already."""
    await _check_holder(request, device, task_id, attempt)  # no session open after it
    store = _store(request)
    key = store.chunk_key(task_id, sha256)
    if await run_in_threadpool(store.exists, key):
        size_bytes, received = await artifacts.digest_stream(request.stream())
        artifacts.check_received(sha256, size_bytes, received)
        response.status_code = status.HTTP_200_OK
        return v1.CheckpointChunkReceipt(sha256=sha256, size_bytes=size_bytes)
    staged = await store.stage(request.stream())
    try:
        artifacts.check_received(sha256, staged.size_bytes, staged.sha256)
        await run_in_threadpool(store.place, staged, key)
    finally:
        await run_in_threadpool(store.discard, staged)
    return v1.CheckpointChunkReceipt(sha256=sha256, size_bytes=staged.size_bytes)


async def _joined(store: CheckpointStore, task_id: str, chunks: list[str]) -> AsyncIterator[bytes]:
    for sha256 in chunks:
        yield await anyio.to_thread.run_sync(store.get, store.chunk_key(task_id, sha256))


@router.post("/checkpoints")
async def commit_checkpoint(
    *,
    task_id: str,
    body: v1.CheckpointCommit,
    request: Request,
    device: _Device,
    settings: SettingsDep,
) -> v1.CheckpointReceipt:
    """Join uploaded chunks into a checkpoint, check it, record it; prune old checkpoints.

    422 names the chunks the coordinator lacks, or the whole checkpoint's hash or size when
    the joined chunks do not match them; nothing is recorded then.
    """
    await _check_holder(request, device, task_id, body.attempt)
    if body.size_bytes > settings.max_checkpoint_bytes:
        raise InvalidError(
            f"size_bytes: {body.size_bytes} is over the limit of {settings.max_checkpoint_bytes}"
        )
    store = _store(request)
    held = await run_in_threadpool(store.chunk_names, task_id)
    lacking = [sha for sha in dict.fromkeys(body.chunks) if sha not in held]
    if lacking:
        raise InvalidError(
            f"chunks: the coordinator lacks {len(lacking)} of them ({', '.join(lacking[:3])}"
            f"{', …' if len(lacking) > 3 else ''}); upload them first"
        )
    mark = CheckpointMark(step=body.step, fingerprint=body.fingerprint)
    staged = await store.stage(_joined(store, task_id, body.chunks))
    if (staged.sha256, staged.size_bytes) != (body.sha256, body.size_bytes):
        await run_in_threadpool(store.discard, staged)
        raise InvalidError(
            f"sha256, size_bytes: the chunks joined have SHA-256 {staged.sha256} and "
            f"{staged.size_bytes} bytes, not {body.sha256} and {body.size_bytes}; "
            "nothing was recorded"
        )
    receipt = await record_checkpoint(
        request,
        store,
        device,
        task_id,
        staged,
        attempt=body.attempt,
        energy_j=body.energy_j,
        mark=mark,
    )
    await run_in_threadpool(store.remove_chunks, task_id)
    return receipt
