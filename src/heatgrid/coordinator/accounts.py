"""Accounts, their API keys, and enrollment codes: the services behind the admin API and CLI."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import ROLE_SCOPES, AccountPrincipal, issue_secret
from heatgrid.coordinator.db.models import ROLES, Account, ApiKey, EnrollmentCode
from heatgrid.coordinator.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from heatgrid.protocol.values import text_problem

__all__ = [
    "MAX_ENROLLMENT_TTL_S",
    "IssuedCode",
    "IssuedKey",
    "create_api_key",
    "create_enrollment_code",
    "find_account",
    "revoke_api_key",
]

MAX_ENROLLMENT_TTL_S = 30 * 86_400.0
"""Longest life of an enrollment code [s]."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _checked_name(field: str, name: str) -> str:
    """Return ``name`` stripped; InvalidError unless it is 1 to 100 printable characters."""
    name = name.strip()
    problem = text_problem(name)
    if problem is None and _CONTROL.search(name):
        problem = "holds a control character"
    if problem is not None:
        raise InvalidError(f"{field}: {problem}")
    if not 1 <= len(name) <= 100:
        raise InvalidError(f"{field}: must be 1 to 100 characters")
    return name


@dataclass(frozen=True)
class IssuedKey:
    """A new API key; ``token`` is its only copy and is shown once."""

    key: ApiKey
    account: Account
    token: str


@dataclass(frozen=True)
class IssuedCode:
    """A new enrollment code; ``token`` is its only copy and is shown once."""

    code: EnrollmentCode
    owner: Account
    token: str


def find_account(session: Session, name: str) -> Account | None:
    """Return the account called ``name``, or None."""
    return session.scalars(select(Account).where(Account.name == name)).one_or_none()


def _account_for_key(session: Session, name: str, role: str, now_ts: float) -> Account:
    account = find_account(session, name)
    if account is None:
        account = Account(name=name, role=role, created_ts=now_ts)
        session.add(account)
        try:
            session.flush()
        except IntegrityError:  # created by a concurrent request
            session.rollback()
            account = find_account(session, name)
            if account is None:  # pragma: no cover - the conflict was on this name
                raise
    if account.role != role:
        raise ConflictError(
            f"name: account {name!r} exists with role {account.role!r}, not {role!r}"
        )
    return account


def create_api_key(
    session: Session, *, name: str, role: str, scopes: Sequence[str] | None, now_ts: float
) -> IssuedKey:
    """Create an API key for the account ``name`` (created with ``role`` if new) and commit.

    Parameters
    ----------
    session : Session
        Open database session.
    name : str
        Account name, 1 to 100 characters.
    role : str
        ``"operator"``, ``"owner"`` or ``"submitter"``; an existing account must have it.
    scopes : sequence of str or None
        Scopes of the key, a subset of the role's; None gives all of the role's.
    now_ts : float
        Current time [POSIX s, UTC].
    """
    name = _checked_name("name", name)
    if role not in ROLES:
        raise InvalidError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    allowed = ROLE_SCOPES[role]
    chosen = list(allowed) if scopes is None else sorted(set(scopes))
    beyond = [scope for scope in chosen if scope not in allowed]
    if beyond:
        raise InvalidError(
            f"scopes: {', '.join(beyond)} not allowed for role {role!r} "
            f"(allowed: {', '.join(allowed) or 'none yet'})"
        )
    account = _account_for_key(session, name, role, now_ts)
    issued = issue_secret("hgk")
    key = ApiKey(
        id=issued.id,
        account_id=account.id,
        secret_hash=issued.secret_hash,
        scopes=chosen,
        created_ts=now_ts,
        revoked_ts=None,
    )
    session.add(key)
    session.commit()
    return IssuedKey(key=key, account=account, token=issued.token)


def revoke_api_key(
    session: Session, key_id: str, *, actor: AccountPrincipal | None, now_ts: float
) -> ApiKey:
    """Revoke an API key and commit; revoking a revoked key changes nothing.

    ``actor`` None means the operator at the database (the CLI). Through the API an operator
    with ``keys:admin`` may revoke any key, anyone else only the keys of their own account.
    """
    key = None if "\x00" in key_id else session.get(ApiKey, key_id)
    if key is None or (
        actor is not None
        and not (actor.is_operator and "keys:admin" in actor.scopes)
        and key.account_id != actor.account_id
    ):
        raise NotFoundError(f"key_id: no API key {key_id!r}")
    if key.revoked_ts is None:
        key.revoked_ts = now_ts
        session.commit()
    return key


def create_enrollment_code(
    session: Session,
    *,
    owner_name: str,
    ttl_s: float,
    actor: AccountPrincipal | None,
    now_ts: float,
) -> IssuedCode:
    """Create a one-time enrollment code for a heater of ``owner_name`` and commit.

    ``actor`` None means the operator at the database (the CLI). Through the API an operator may
    create codes for any owner, an owner only for themselves.

    Parameters
    ----------
    ttl_s : float
        How long the code stays valid [s], more than 0 and at most 30 days.
    """
    if not (math.isfinite(ttl_s) and 0.0 < ttl_s <= MAX_ENROLLMENT_TTL_S):
        raise InvalidError(f"ttl_s: must be more than 0 and at most {MAX_ENROLLMENT_TTL_S:.0f}")
    owner_name = _checked_name("owner_name", owner_name)
    if actor is not None and not actor.is_operator and owner_name != actor.account_name:
        raise ForbiddenError("owner_name: an owner may create enrollment codes only for themselves")
    owner = find_account(session, owner_name)
    if owner is None:
        raise NotFoundError(
            f"owner_name: no account {owner_name!r}; create it with "
            "`heatgrid admin create-key --role owner --name NAME`"
        )
    if owner.role not in ("owner", "operator"):
        raise InvalidError(f"owner_name: account {owner_name!r} has role {owner.role!r}, not owner")
    issued = issue_secret("hge")
    code = EnrollmentCode(
        id=issued.id,
        owner_id=owner.id,
        code_hash=issued.secret_hash,
        created_ts=now_ts,
        expires_ts=now_ts + ttl_s,
        used_ts=None,
        device_id=None,
    )
    session.add(code)
    session.commit()
    return IssuedCode(code=code, owner=owner, token=issued.token)
