"""Dependencies of the API routes: database session, clock, and the caller's credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import AccountPrincipal, authenticate_account, authenticate_device
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError, UnauthorizedError
from heatgrid.coordinator.pages import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from heatgrid.coordinator.settings import Settings

__all__ = [
    "Cursor",
    "Limit",
    "NowTs",
    "SessionDep",
    "SettingsDep",
    "require_device",
    "require_scope",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="An account's API key (hgk_…) or a device token (hgd_…).",
)


_READ_METHODS = frozenset({"GET", "HEAD"})


def _session(request: Request) -> Iterator[Session]:
    # GET and HEAD only read: their sessions never take SQLite's write lock.
    state = request.app.state
    factory = (
        state.read_session_factory if request.method in _READ_METHODS else state.session_factory
    )
    with factory() as session:
        yield session


def _now_ts(request: Request) -> float:
    return float(request.app.state.clock())


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(_session)]
"""A database session for the request: read-only for GET and HEAD."""

NowTs = Annotated[float, Depends(_now_ts)]
"""The coordinator's clock when the request is handled [POSIX s, UTC]."""

SettingsDep = Annotated[Settings, Depends(_settings)]
"""The process settings."""

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_LIMIT,
        description=f"Rows in the page, at most {MAX_PAGE_LIMIT} (default {DEFAULT_PAGE_LIMIT}).",
    ),
]
"""``?limit=``: rows in a page of a listing."""

Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="The previous page's next_cursor; none for the first page.",
    ),
]
"""``?cursor=``: where a page of a listing starts."""


def _token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials:
        raise UnauthorizedError("Authorization: a bearer token is required (Bearer <token>)")
    return credentials.credentials


_Token = Annotated[str, Depends(_token)]


def require_scope(scope: str | None) -> Callable[[Session, str], AccountPrincipal]:
    """Return a dependency that admits an API key holding ``scope`` and gives its account.

    ``scope`` None admits any valid API key (for acting on one's own account).
    """

    def dependency(session: SessionDep, token: _Token) -> AccountPrincipal:
        if token.startswith("hgd_"):
            raise ForbiddenError("Authorization: a device token cannot act here; use an API key")
        principal = authenticate_account(session, token)
        if scope is not None and scope not in principal.scopes:
            raise ForbiddenError(f"Authorization: the API key lacks the scope {scope!r}")
        return principal

    return dependency


def require_device(device_id: str, session: SessionDep, token: _Token) -> Device:
    """Admit the device token of the device ``device_id`` in the path, and only that one."""
    device = authenticate_device(session, token)
    if device.id != device_id:
        raise ForbiddenError("Authorization: this device token belongs to another device")
    return device
