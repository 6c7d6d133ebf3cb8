"""Routes for job artifacts, stored by content: upload once, ask whether stored, download.

``PUT /v1/artifacts/{sha256}`` (a submitter's key with ``jobs:write``) stores the body if its
SHA-256 is the one in the path; ``HEAD`` and ``GET`` answer the accounts that uploaded it and
the devices leased a task of a job that runs it, and 404 to anyone else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from heatgrid.coordinator import artifacts
from heatgrid.coordinator.api.deps import (
    NowTs,
    SessionDep,
    reading,
    require_device_or_scope,
    require_scope_reading,
    writing,
)
from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError
from heatgrid.protocol.jobs import ArtifactRef

__all__ = ["SIZE_HEADER", "router"]

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])

SIZE_HEADER = "X-Artifact-Size-Bytes"
"""Header of ``HEAD`` and ``GET`` answers: the artifact's size [bytes]."""

_Sha256 = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the artifact's bytes: 64 lower-case hex digits.",
    ),
]
_Writer = Annotated[AccountPrincipal, Depends(require_scope_reading("jobs:write"))]
_Reader = Annotated[AccountPrincipal | Device, Depends(require_device_or_scope("jobs:read"))]


def _store(request: Request) -> CheckpointStore:
    store: CheckpointStore = request.app.state.checkpoint_store
    return store


@router.put(
    "/{sha256}",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ArtifactRef, "description": "You had uploaded it; nothing written"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_artifact(
    *,
    sha256: _Sha256,
    request: Request,
    actor: _Writer,
    now_ts: NowTs,
    response: Response,
) -> ArtifactRef:
    """Store an artifact (the body) under its SHA-256: 201 stored for you, 200 you had it.

    The body is hashed as it streams in; one whose hash is not the path's is refused (422) and
    leaves nothing behind. Content stored already (by anyone) is only hashed, not written
    again; the status does not tell whether another account had uploaded it.

    The key and the artifact are looked up on read-only sessions; the record is written in one
    short transaction within one worker-thread hop (which copes with a race it lost), so on
    SQLite the request never holds the write lock while the event loop serves others.
    """
    if actor.role not in ("submitter", "operator"):
        raise ForbiddenError(
            f"only submitters upload artifacts; this key's account is an {actor.role}"
        )
    stored = await reading(request, lambda session: artifacts.find(session, sha256))
    store = _store(request)
    if stored is not None:
        size_bytes, received = await artifacts.digest_stream(request.stream())
        artifacts.check_received(sha256, size_bytes, received)
        new_owner = await writing(
            request,
            lambda session: artifacts.record(
                session, store, actor, sha256, size_bytes=size_bytes, staged=None, now_ts=now_ts
            ),
        )
        if not new_owner:
            response.status_code = status.HTTP_200_OK
        return ArtifactRef(sha256=sha256, size_bytes=size_bytes)
    staged = await store.stage(request.stream())
    try:
        artifacts.check_received(sha256, staged.size_bytes, staged.sha256)
        received_ts = float(request.app.state.clock())  # after the upload, which may take long
        created = await writing(
            request,
            lambda session: artifacts.record(
                session,
                store,
                actor,
                sha256,
                size_bytes=staged.size_bytes,
                staged=staged,
                now_ts=received_ts,
            ),
        )
    finally:
        await run_in_threadpool(store.discard, staged)
    if not created:
        response.status_code = status.HTTP_200_OK
    return ArtifactRef(sha256=sha256, size_bytes=staged.size_bytes)


@router.head("/{sha256}", responses={404: {"description": "Not stored, or not the caller's"}})
def head_artifact(sha256: _Sha256, reader: _Reader, session: SessionDep) -> Response:
    """Answer 200 (with the size) if the caller may read the artifact, else 404."""
    artifact = artifacts.readable(session, sha256, reader)
    return Response(status_code=200, headers={SIZE_HEADER: str(artifact.size_bytes)})


@router.get(
    "/{sha256}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_artifact(
    *, sha256: _Sha256, request: Request, reader: _Reader, session: SessionDep
) -> StreamingResponse:
    """Download an artifact the caller may read; the client checks its SHA-256."""
    artifact = artifacts.readable(session, sha256, reader)
    size_bytes, key = artifact.size_bytes, artifact.blob_key
    session.commit()  # the body streams with no transaction open
    return StreamingResponse(
        _store(request).iter_blob(key),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size_bytes),
            SIZE_HEADER: str(size_bytes),
            "X-Artifact-Sha256": sha256,
        },
    )
