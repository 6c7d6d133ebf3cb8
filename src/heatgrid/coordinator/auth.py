"""Bearer tokens: issuing them, storing only their hash, and checking them in constant time.

A token reads ``<kind>_<id>_<secret>``: ``hgk`` for an account's API key, ``hgd`` for a device,
``hge`` for an enrollment code. The id is the row's primary key, so checking a token is one
indexed read; the secret is 256 random bits, stored as its SHA-256 and compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.models import Account, ApiKey, Device
from heatgrid.coordinator.errors import UnauthorizedError

__all__ = [
    "ROLE_SCOPES",
    "SCOPES",
    "AccountPrincipal",
    "DeviceIdentity",
    "IssuedSecret",
    "authenticate_account",
    "authenticate_device",
    "hash_secret",
    "issue_secret",
    "new_id",
    "parse_token",
    "secret_matches",
    "verify_device_token",
]

TokenKind = Literal["hgk", "hgd", "hge"]

SCOPES = (
    "devices:read",
    "devices:write",
    "enrollment:create",
    "keys:admin",
    "jobs:read",
    "jobs:write",
    "ledger:read",
)
"""Every scope an API key may hold."""

ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "operator": SCOPES,
    "owner": ("devices:read", "devices:write", "enrollment:create", "ledger:read"),
    "submitter": ("jobs:read", "jobs:write", "ledger:read"),
}
"""The scopes each role may hold; a new key gets all of them unless fewer are asked for."""

_ID_BYTES = 8
_SECRET_BYTES = 32


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly made token: ``token`` is shown once, only ``secret_hash`` is stored."""

    id: str
    token: str
    secret_hash: str


@dataclass(frozen=True)
class AccountPrincipal:
    """The account behind an API key, and what the key allows."""

    account_id: int
    account_name: str
    role: str
    key_id: str
    scopes: frozenset[str]

    @classmethod
    def of(cls, account: Account, key: ApiKey) -> AccountPrincipal:
        """Return the principal of ``account`` acting through ``key`` (already checked)."""
        return cls(
            account_id=account.id,
            account_name=account.name,
            role=account.role,
            key_id=key.id,
            scopes=frozenset(key.scopes),
        )

    @property
    def is_operator(self) -> bool:
        """True for an operator, who sees and manages every account's things."""
        return self.role == "operator"


@dataclass(frozen=True)
class DeviceIdentity:
    """What a verified device token proves, and what a heartbeat compares with its device.

    Attributes
    ----------
    device_id : str
        The device.
    owner_id : int
        Its owner's account.
    kind : str
        ``gpu``, ``cpu`` or ``asic``, as stored when the token was verified.
    hardware : dict
        Its hardware description, as stored when the token was verified.
    """

    device_id: str
    owner_id: int
    kind: str
    hardware: dict[str, Any]

    @classmethod
    def of(cls, device: Device) -> DeviceIdentity:
        """Return the identity of ``device`` (already checked)."""
        return cls(
            device_id=device.id,
            owner_id=device.owner_id,
            kind=device.kind,
            hardware=dict(device.hardware),
        )


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a token's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def issue_secret(kind: TokenKind, row_id: str | None = None) -> IssuedSecret:
    """Make a new random token of ``kind``, for the row ``row_id`` (a new random id if None)."""
    token_id = row_id if row_id is not None else secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return IssuedSecret(
        id=token_id, token=f"{kind}_{token_id}_{secret}", secret_hash=hash_secret(secret)
    )


def new_id() -> str:
    """Return a new random identifier (16 hex digits)."""
    return secrets.token_hex(_ID_BYTES)


def parse_token(token: str, kind: TokenKind) -> tuple[str, str] | None:
    """Split a token of ``kind`` into (id, secret); None when it is not one."""
    parts = token.split("_", 2)
    if "\x00" in token or len(parts) != 3 or parts[0] != kind or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def authenticate_account(session: Session, token: str) -> AccountPrincipal:
    """Return the account behind an API key token.

    Raises
    ------
    UnauthorizedError
        When the token is malformed, unknown, wrong or revoked.
    """
    parsed = parse_token(token, "hgk")
    if parsed is None:
        raise UnauthorizedError("Authorization: the bearer token is not an API key (hgk_…)")
    key = session.get(ApiKey, parsed[0])
    if key is None or not secret_matches(parsed[1], key.secret_hash):
        raise UnauthorizedError("Authorization: the API key is not valid")
    if key.revoked_ts is not None:
        raise UnauthorizedError("Authorization: the API key was revoked")
    account = session.get(Account, key.account_id)
    if account is None:  # pragma: no cover - a foreign key forbids it
        raise UnauthorizedError("Authorization: the API key has no account")
    return AccountPrincipal.of(account, key)


def _device_secret(token: str) -> tuple[str, str]:
    """Split a device token into (device id, secret); 401 when it is not one."""
    parsed = parse_token(token, "hgd")
    if parsed is None:
        raise UnauthorizedError("Authorization: the bearer token is not a device token (hgd_…)")
    return parsed


_INVALID_DEVICE_TOKEN = "Authorization: the device token is not valid"


def _check_device(secret: str, token_hash: str, revoked_ts: float | None) -> None:
    """Refuse a device token whose secret is wrong, or whose device was revoked."""
    if not secret_matches(secret, token_hash):
        raise UnauthorizedError(_INVALID_DEVICE_TOKEN)
    if revoked_ts is not None:
        raise UnauthorizedError("Authorization: the device was revoked")


def authenticate_device(session: Session, token: str) -> Device:
    """Return the device behind a device token.

    Raises
    ------
    UnauthorizedError
        When the token is malformed, unknown, wrong or revoked.
    """
    device_id, secret = _device_secret(token)
    device = session.get(Device, device_id)
    if device is None:
        raise UnauthorizedError(_INVALID_DEVICE_TOKEN)
    _check_device(secret, device.token_hash, device.revoked_ts)
    return device


_DEVICE_CREDENTIAL = select(
    Device.id, Device.owner_id, Device.kind, Device.hardware, Device.token_hash, Device.revoked_ts
).where(Device.id == bindparam("device_id"))


def verify_device_token(connection: Connection, token: str) -> DeviceIdentity:
    """Return the identity a device token proves, read in one statement on ``connection``.

    The same rule as :func:`authenticate_device`, for the credential cache's misses: one
    ``SELECT`` of the columns the identity and the check need, on a connection rather than
    an ORM session (no identity map, no transaction needed: on PostgreSQL the caller may
    pass a connection in autocommit, one round trip instead of three).

    Raises
    ------
    UnauthorizedError
        When the token is malformed, unknown, wrong or revoked.
    """
    device_id, secret = _device_secret(token)
    row = connection.execute(_DEVICE_CREDENTIAL, {"device_id": device_id}).first()
    if row is None:
        raise UnauthorizedError(_INVALID_DEVICE_TOKEN)
    _check_device(secret, row.token_hash, row.revoked_ts)
    return DeviceIdentity(
        device_id=row.id, owner_id=row.owner_id, kind=row.kind, hardware=dict(row.hardware)
    )
