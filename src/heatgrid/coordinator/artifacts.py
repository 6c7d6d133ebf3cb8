"""Job artifacts: packed jobs stored once by the SHA-256 of their bytes, and who may read them.

An upload is checked against the hash it names while it streams in; the blob is written to
the store with no transaction open (:meth:`CheckpointStore.stage`), then a short transaction
moves it to its key and records it. Content already stored is not written again: its bytes
are only hashed, to prove the uploader holds them, and the uploader is recorded as an owner.
The answer is 201 for an uploader new to the artifact, 200 for one who had uploaded it: it
never tells whether another account holds the same content.

An artifact is visible (``HEAD``, ``GET``, and named by a job) to the accounts that uploaded
it, and readable by the devices that hold a lease on a task of a job that runs it; to anyone
else it does not exist (404), so its hash tells nothing about who else uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.checkpoints import CheckpointStore, StagedBlob
from heatgrid.coordinator.db.models import (
    HOLDING_TASK_STATES,
    Artifact,
    ArtifactOwner,
    Device,
    Job,
    Task,
)
from heatgrid.coordinator.errors import InvalidError, NotFoundError

__all__ = [
    "artifact_key",
    "check_received",
    "digest_stream",
    "find",
    "readable",
    "record",
    "submittable",
]


def artifact_key(sha256: str) -> str:
    """Return the store key of the artifact ``sha256`` (64 hex digits, checked by the caller)."""
    return f"artifacts/{sha256[:2]}/{sha256}.tar.gz"


def find(session: Session, sha256: str) -> Artifact | None:
    """Return the stored artifact ``sha256``, or None."""
    return session.get(Artifact, sha256)


async def digest_stream(chunks: AsyncIterable[bytes]) -> tuple[int, str]:
    """Read ``chunks`` to the end, keeping nothing; return (size [bytes], SHA-256 hex)."""
    digest = hashlib.sha256()
    size_bytes = 0
    async for chunk in chunks:
        digest.update(chunk)
        size_bytes += len(chunk)
    return size_bytes, digest.hexdigest()


def check_received(sha256: str, size_bytes: int, received_sha256: str) -> None:
    """Refuse (422) a body that is empty or whose SHA-256 is not the one its path names."""
    if size_bytes == 0:
        raise InvalidError("body: empty; an artifact is the bytes of a packed job")
    if received_sha256 != sha256:
        raise InvalidError(
            f"body: its SHA-256 is {received_sha256}, not {sha256} as the path says; "
            "nothing was stored (the upload was corrupted, or names the wrong artifact)"
        )


def _own(session: Session, sha256: str, account_id: int, now_ts: float) -> bool:
    """Record ``account_id`` as an uploader of ``sha256``; return True if it was not one."""
    if session.get(ArtifactOwner, (sha256, account_id)) is not None:
        return False
    session.add(ArtifactOwner(sha256=sha256, account_id=account_id, created_ts=now_ts))
    return True


def record(
    session: Session,
    store: CheckpointStore,
    actor: AccountPrincipal,
    sha256: str,
    *,
    size_bytes: int,
    staged: StagedBlob | None,
    now_ts: float,
) -> bool:
    """Record that ``actor`` uploaded the artifact ``sha256``, and commit.

    Parameters
    ----------
    staged : StagedBlob or None
        The received blob, checked, when the artifact was not stored yet; None when it was
        (its bytes were only hashed). The caller discards a staged blob that was not placed.

    Returns
    -------
    bool
        True when the artifact is new to ``actor`` (stored now, or stored before for another
        account: the answer does not tell them apart); False when ``actor`` had uploaded it.
    """
    try:
        if find(session, sha256) is None and staged is not None:
            key = artifact_key(sha256)
            store.place(staged, key)  # same content under the same key, whoever wins a race
            session.add(
                Artifact(sha256=sha256, size_bytes=size_bytes, blob_key=key, created_ts=now_ts)
            )
            session.flush()
        new_owner = _own(session, sha256, actor.account_id, now_ts)
        session.commit()
    except IntegrityError:
        # Another upload of the same content (or by the same account) committed first.
        session.rollback()
        new_owner = _own(session, sha256, actor.account_id, now_ts)
        session.commit()
    return new_owner


def _owns(session: Session, sha256: str, account_id: int) -> bool:
    return session.get(ArtifactOwner, (sha256, account_id)) is not None


def _leased_to(session: Session, sha256: str, device: Device) -> bool:
    found = session.scalars(
        select(Task.id)
        .join(Job, Job.id == Task.job_id)
        .where(
            Job.artifact_sha256 == sha256,
            Task.state.in_(HOLDING_TASK_STATES),
            Task.lease_device_id == device.id,
        )
        .limit(1)
    ).first()
    return found is not None


def readable(session: Session, sha256: str, reader: AccountPrincipal | Device) -> Artifact:
    """Return the artifact ``sha256`` if ``reader`` may read it, else raise 404.

    An account may read what it uploaded; a device, an artifact of a job one of whose tasks it
    holds a lease on.
    """
    artifact = find(session, sha256)
    if artifact is not None:
        if isinstance(reader, Device):
            allowed = _leased_to(session, sha256, reader)
        else:
            allowed = _owns(session, sha256, reader.account_id)
        if allowed:
            return artifact
    raise NotFoundError(f"artifact {sha256}: not found (or not yours to read)")


def submittable(session: Session, sha256: str, actor: AccountPrincipal) -> Artifact:
    """Return the artifact ``sha256`` if ``actor`` uploaded it (a job may name it), else 422."""
    artifact = find(session, sha256)
    if artifact is None or not _owns(session, sha256, actor.account_id):
        raise InvalidError(
            f"artifact.sha256: {sha256} was not uploaded by this account; "
            "PUT it to /v1/artifacts/{sha256} first"
        )
    return artifact
