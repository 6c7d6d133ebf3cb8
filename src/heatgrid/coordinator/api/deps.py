"""Dependencies of the API routes: database session, clock, and the caller's credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import AccountPrincipal, authenticate_account, authenticate_device
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError, TooManyRequestsError, UnauthorizedError
from heatgrid.coordinator.pages import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from heatgrid.coordinator.ratelimit import RateLimiter, client_address, refusal
from heatgrid.coordinator.settings import Settings

__all__ = [
    "Cursor",
    "Limit",
    "NowTs",
    "SessionDep",
    "SettingsDep",
    "require_device",
    "require_device_or_scope",
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
_T = TypeVar("_T")


def _charge(limiter: RateLimiter, key: str, who: str) -> None:
    wait_s = limiter.wait_s(key)
    if wait_s > 0.0:
        raise TooManyRequestsError(*refusal(limiter, wait_s, who))


def _refused(request: Request) -> None:
    address = client_address(request.scope)
    _charge(request.app.state.address_limiter, address, "a client without a valid credential")


def _verified(request: Request, authenticate: Callable[[], _T], key: Callable[[_T], str]) -> _T:
    """Authenticate, then count the request against what it proved.

    A valid credential is charged to its own bucket; a refused one to the client's address
    (429 instead of 401 once that address is over its rate), never to the id it names.
    """
    try:
        found = authenticate()
    except UnauthorizedError:
        _refused(request)
        raise
    _charge(request.app.state.rate_limiter, key(found), "a credential")
    return found


def require_scope(scope: str | None) -> Callable[[Request, Session, str], AccountPrincipal]:
    """Return a dependency that admits an API key holding ``scope`` and gives its account.

    ``scope`` None admits any valid API key (for acting on one's own account).
    """

    def dependency(request: Request, session: SessionDep, token: _Token) -> AccountPrincipal:
        if token.startswith("hgd_"):
            _refused(request)
            raise ForbiddenError("Authorization: a device token cannot act here; use an API key")
        principal = _verified(
            request,
            lambda: authenticate_account(session, token),
            lambda found: f"hgk:{found.key_id}",
        )
        if scope is not None and scope not in principal.scopes:
            raise ForbiddenError(f"Authorization: the API key lacks the scope {scope!r}")
        return principal

    return dependency


def require_device(device_id: str, request: Request, session: SessionDep, token: _Token) -> Device:
    """Admit the device token of the device ``device_id`` in the path, and only that one."""
    device = _verified(
        request, lambda: authenticate_device(session, token), lambda found: f"hgd:{found.id}"
    )
    if device.id != device_id:
        raise ForbiddenError("Authorization: this device token belongs to another device")
    return device


def require_device_or_scope(
    scope: str,
) -> Callable[[Request, Session, str], AccountPrincipal | Device]:
    """Return a dependency that admits a device token, or an API key holding ``scope``.

    It gives the device, or the account behind the key; the route decides what each may see.
    """

    def dependency(
        request: Request, session: SessionDep, token: _Token
    ) -> AccountPrincipal | Device:
        if token.startswith("hgd_"):
            return _verified(
                request,
                lambda: authenticate_device(session, token),
                lambda found: f"hgd:{found.id}",
            )
        return require_scope(scope)(request, session, token)

    return dependency
