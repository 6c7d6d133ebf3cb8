"""Mining passwords: a per-device Stratum password for the coordinator's proxy.

A miner authorizes with its device's id as user name (``DEVICE_ID`` or ``DEVICE_ID.worker``)
and a random password the coordinator issued for that device. It is not the device's API
token: Stratum is plaintext and miners show their pool settings on their web pages, so a leaked
mining password lets someone mine for the owner, nothing more. Like a device token, only the
SHA-256 of the password is stored; it is shown once when issued, and issuing again (rotating)
replaces it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import hash_secret, secret_matches
from heatgrid.coordinator.db.models import Device, MiningCredential
from heatgrid.coordinator.errors import ConflictError

__all__ = [
    "MAX_WORKER_CHARS",
    "IssuedPassword",
    "check_credentials",
    "device_of_user",
    "get_credential",
    "issue_password",
]

MAX_WORKER_CHARS = 100
"""Longest Stratum user name (``DEVICE_ID.worker``) accepted [characters]."""

_PASSWORD_BYTES = 24


@dataclass(frozen=True)
class IssuedPassword:
    """A freshly issued mining password (shown once) and when it was issued [POSIX s]."""

    device_id: str
    password: str
    created_ts: float


def get_credential(session: Session, device_id: str) -> MiningCredential | None:
    """Return the device's mining credential row, None if none was issued."""
    return session.get(MiningCredential, device_id)


def issue_password(session: Session, device: Device, *, now_ts: float) -> IssuedPassword:
    """Issue a new mining password for ``device`` (the old one stops working) and commit.

    Raises
    ------
    ConflictError
        When the device was revoked.
    """
    if device.revoked_ts is not None:
        raise ConflictError(f"device_id: device {device.id!r} was revoked; it cannot mine")
    password = secrets.token_urlsafe(_PASSWORD_BYTES)
    row = session.get(MiningCredential, device.id)
    if row is None:
        session.add(
            MiningCredential(
                device_id=device.id, password_hash=hash_secret(password), created_ts=now_ts
            )
        )
    else:
        row.password_hash = hash_secret(password)
        row.created_ts = now_ts
    session.commit()
    return IssuedPassword(device.id, password, now_ts)


def device_of_user(username: str) -> str | None:
    """Return the device id of a Stratum user name ``DEVICE_ID[.worker]``, None if malformed."""
    if not username or len(username) > MAX_WORKER_CHARS or "\x00" in username:
        return None
    device_id = username.split(".", 1)[0]
    return device_id or None


def check_credentials(session: Session, username: str, password: str) -> str | None:
    """Return the device id when ``username`` and ``password`` may mine, else None.

    The device must exist, not be revoked, and hold a mining password equal to ``password``
    (compared in constant time).
    """
    device_id = device_of_user(username)
    if device_id is None:
        return None
    device = session.get(Device, device_id)
    credential = session.get(MiningCredential, device_id)
    if device is None or credential is None or device.revoked_ts is not None:
        return None
    if not secret_matches(password, credential.password_hash):
        return None
    return device_id
