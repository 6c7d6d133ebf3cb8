"""Routes for accounts' API keys and for enrollment codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from heatgrid.coordinator import accounts
from heatgrid.coordinator.api.deps import NowTs, SessionDep, require_scope
from heatgrid.coordinator.api.schemas import (
    CreatedEnrollmentCode,
    CreatedKey,
    CreateEnrollmentCodeRequest,
    CreateKeyRequest,
    KeyInfo,
)
from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.errors import ForbiddenError

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_KeyAdmin = Annotated[AccountPrincipal, Depends(require_scope("keys:admin"))]
_Enroller = Annotated[AccountPrincipal, Depends(require_scope("enrollment:create"))]


@router.post("/keys", status_code=status.HTTP_201_CREATED)
def create_key(
    body: CreateKeyRequest, actor: _KeyAdmin, session: SessionDep, now_ts: NowTs
) -> CreatedKey:
    """Create an API key (operators only); the secret is in the answer and nowhere else."""
    if not actor.is_operator:
        raise ForbiddenError("Authorization: only an operator may create API keys")
    issued = accounts.create_api_key(
        session, name=body.name, role=body.role, scopes=body.scopes, now_ts=now_ts
    )
    return CreatedKey(
        key_id=issued.key.id,
        account_name=issued.account.name,
        role=issued.account.role,
        scopes=list(issued.key.scopes),
        created_ts=issued.key.created_ts,
        api_key=issued.token,
    )


@router.delete("/keys/{key_id}")
def revoke_key(
    key_id: str,
    request: Request,
    actor: Annotated[AccountPrincipal, Depends(require_scope(None))],
    session: SessionDep,
    now_ts: NowTs,
) -> KeyInfo:
    """Revoke an API key: an operator any key, an owner the keys of their own account."""
    key = accounts.revoke_api_key(session, key_id, actor=actor, now_ts=now_ts)
    request.app.state.key_cache.forget(key.id)  # at once in this process
    return KeyInfo(
        key_id=key.id, scopes=list(key.scopes), created_ts=key.created_ts, revoked_ts=key.revoked_ts
    )


@router.post("/enrollment-codes", status_code=status.HTTP_201_CREATED)
def create_enrollment_code(
    body: CreateEnrollmentCodeRequest, actor: _Enroller, session: SessionDep, now_ts: NowTs
) -> CreatedEnrollmentCode:
    """Create a one-time enrollment code: an operator for any owner, an owner for themselves."""
    issued = accounts.create_enrollment_code(
        session,
        owner_name=body.owner_name or actor.account_name,
        ttl_s=body.ttl_s,
        actor=actor,
        now_ts=now_ts,
    )
    return CreatedEnrollmentCode(
        code_id=issued.code.id,
        owner_name=issued.owner.name,
        created_ts=issued.code.created_ts,
        expires_ts=issued.code.expires_ts,
        enrollment_code=issued.token,
    )
