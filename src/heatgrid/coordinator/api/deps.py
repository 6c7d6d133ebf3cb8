"""Dependencies of the API routes: database session, clock, and the caller's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from heatgrid.coordinator.auth import (
    AccountPrincipal,
    DeviceIdentity,
    authenticate_account,
    authenticate_device,
    verify_device_token,
)
from heatgrid.coordinator.credentials import CredentialCache
from heatgrid.coordinator.db.engine import lost_connection
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError, TooManyRequestsError, UnauthorizedError
from heatgrid.coordinator.pages import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from heatgrid.coordinator.ratelimit import RateLimiter, client_address, refusal
from heatgrid.coordinator.settings import Settings

__all__ = [
    "BearerToken",
    "Cursor",
    "DeviceIdentityDep",
    "Limit",
    "NowTs",
    "SessionDep",
    "SettingsDep",
    "device_identity",
    "reading",
    "require_device",
    "require_device_identity",
    "require_device_or_scope",
    "require_device_reading",
    "require_scope",
    "require_scope_reading",
    "writing",
    "writing_as_device",
]


class _BearerToken(HTTPBearer):
    """The ``Authorization: Bearer <token>`` header's token; 401 when there is none.

    The OpenAPI document still names the scheme (``HTTPBearer``), but the token is read
    straight from the header: :class:`~fastapi.security.HTTPBearer` builds a pydantic
    ``HTTPAuthorizationCredentials`` for every request and needs a second dependency to turn
    it into the string, which costs more than reading the header on the busiest routes.
    The rule is HTTPBearer's: the scheme is ``bearer`` in any case, the token is what follows
    the first space, stripped.
    """

    async def __call__(self, request: HTTPConnection) -> str:  # type: ignore[override]
        """Return the bearer token of ``request``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if not token or scheme.lower() != "bearer":
            raise UnauthorizedError("Authorization: a bearer token is required (Bearer <token>)")
        return token


_bearer = _BearerToken(
    auto_error=False,
    scheme_name="HTTPBearer",
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


# Dependencies that do no I/O are coroutines: FastAPI runs a plain function in the thread
# pool, a hop that costs more than the function.
async def _now_ts(request: Request) -> float:
    return float(request.app.state.clock())


async def _settings(request: Request) -> Settings:
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


_Token = Annotated[str, Depends(_bearer)]
BearerToken = _Token
"""The request's bearer token (401 when there is none)."""
_T = TypeVar("_T")


def _run_in(factory: sessionmaker[Session], work: Callable[[Session], _T]) -> _T:
    with factory() as session:  # closing it rolls back what ``work`` left uncommitted
        return work(session)


def _read_retrying(read: Callable[[], _T]) -> _T:
    """Run ``read`` (which writes nothing); once more if its connection was found lost.

    Connections are not checked before use (``db.engine.make_engine``): a read that finds its
    connection dead (the database restarted) is tried again on a new one, which the pool,
    invalidated by the failure, then opens. A second failure is raised (answered 503).
    """
    try:
        return read()
    except Exception as error:
        if not lost_connection(error):
            raise
    return read()


async def reading(request: Request, work: Callable[[Session], _T]) -> _T:
    """Run ``work`` on a read-only session, opened and closed within one worker-thread hop.

    The session holds its connection only for the hop; on SQLite it never takes the write lock.
    Objects it returns are detached, with the columns they had loaded. A read whose connection
    was lost is tried once more (:func:`_read_retrying`).
    """
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return await anyio.to_thread.run_sync(_read_retrying, lambda: _run_in(factory, work))


async def writing(request: Request, work: Callable[[Session], _T]) -> _T:
    """Run ``work`` on a session that may write, opened and closed within one worker-thread hop.

    ``work`` commits what it writes; what it leaves uncommitted is rolled back in the same hop.
    So on SQLite the write lock (taken when the transaction begins) is released before the
    event loop runs anything else: an async route that awaits between its checks and its
    write holds no lock while it waits. Checks made before, on :func:`reading`, are made again
    inside ``work`` where they must hold at the moment of the write.
    """
    factory: sessionmaker[Session] = request.app.state.session_factory
    return await anyio.to_thread.run_sync(_run_in, factory, work)


def _charge(limiter: RateLimiter, key: str, who: str) -> None:
    wait_s = limiter.wait_s(key)
    if wait_s > 0.0:
        raise TooManyRequestsError(*refusal(limiter, wait_s, who))


def _refused(request: Request) -> None:
    address = client_address(request.scope)
    _charge(request.app.state.address_limiter, address, "a client without a valid credential")


def _verified(
    request: Request,
    token: str,
    cache: CredentialCache[_T],
    authenticate: Callable[[], _T],
    key: Callable[[_T], tuple[str, str]],
) -> _T:
    """Authenticate, then count the request against what it proved.

    The credential comes from the cache of verified credentials, else the database. A
    valid credential is charged to its own bucket; a refused one to the client's address
    (429 instead of 401 once that address is over its rate), never to the id it names.
    ``key`` gives a credential's rate-limit key and its row id (which the cache forgets it by).
    """
    found = cache.get(token)
    if found is None:
        try:
            found = authenticate()
        except UnauthorizedError:
            _refused(request)
            raise
        cache.put(token, key(found)[1], found)
    _charge(request.app.state.rate_limiter, key(found)[0], "a credential")
    return found


def _principal(
    request: Request, session: Session, token: str, scope: str | None
) -> AccountPrincipal:
    if token.startswith("hgd_"):
        _refused(request)
        raise ForbiddenError("Authorization: a device token cannot act here; use an API key")
    cache: CredentialCache[AccountPrincipal] = request.app.state.key_cache
    principal = _verified(
        request,
        token,
        cache,
        lambda: authenticate_account(session, token),
        lambda found: (f"hgk:{found.key_id}", found.key_id),
    )
    if scope is not None and scope not in principal.scopes:
        raise ForbiddenError(f"Authorization: the API key lacks the scope {scope!r}")
    return principal


def require_scope(scope: str | None) -> Callable[[Request, Session, str], AccountPrincipal]:
    """Return a dependency that admits an API key holding ``scope`` and gives its account.

    ``scope`` None admits any valid API key (for acting on one's own account). The key is
    checked on the request's session (:data:`SessionDep`).
    """

    def dependency(request: Request, session: SessionDep, token: _Token) -> AccountPrincipal:
        return _principal(request, session, token, scope)

    return dependency


def require_scope_reading(
    scope: str | None,
) -> Callable[[Request, str], Awaitable[AccountPrincipal]]:
    """As :func:`require_scope`, but the key is checked on a read-only session of its own.

    For async routes that write later in a short transaction of their own (:func:`writing`):
    the request holds no session, and on SQLite never the write lock, while it waits.
    """

    async def dependency(request: Request, token: _Token) -> AccountPrincipal:
        return await reading(request, lambda session: _principal(request, session, token, scope))

    return dependency


async def require_device_identity(
    device_id: str, request: Request, token: _Token
) -> DeviceIdentity:
    """Admit the device token of the device ``device_id`` in the path, and only that one.

    A token verified within the credential cache's time is admitted without the database (and
    without leaving the event loop); the caller checks that the device is still not revoked
    (a heartbeat's device ``UPDATE`` does, and :func:`require_device` reads the row).
    """
    cache: CredentialCache[DeviceIdentity] = request.app.state.device_cache
    identity = cache.get(token)
    if identity is None:
        engine: Engine = request.app.state.single_statement_engine

        def verify() -> DeviceIdentity:
            with engine.connect() as connection:
                return verify_device_token(connection, token)

        try:
            identity = await anyio.to_thread.run_sync(_read_retrying, verify)
        except UnauthorizedError:
            _refused(request)
            raise
        cache.put(token, identity.device_id, identity)
    _charge(request.app.state.rate_limiter, f"hgd:{identity.device_id}", "a credential")
    if identity.device_id != device_id:
        raise ForbiddenError("Authorization: this device token belongs to another device")
    return identity


async def device_identity(request: Request) -> DeviceIdentity:
    """Do what the dependency :func:`require_device_identity` does, for a route that solves none.

    The device id is the path's ``device_id``, the token the ``Authorization`` header's, read
    by the same code as the dependencies'.
    """
    token = await _bearer(request)
    return await require_device_identity(request.path_params["device_id"], request, token)


def _live_device(request: Request, session: Session, identity: DeviceIdentity) -> Device:
    device = session.get(Device, identity.device_id)
    if device is None or device.revoked_ts is not None:
        request.app.state.device_cache.forget(identity.device_id)
        _refused(request)
        raise UnauthorizedError("Authorization: the device was revoked")
    return device


DeviceIdentityDep = Annotated[DeviceIdentity, Depends(require_device_identity)]
"""The device named in the path, admitted by its own token (:func:`require_device_identity`)."""


async def writing_as_device(
    request: Request, identity: DeviceIdentity, work: Callable[[Session, Device], _T]
) -> _T:
    """Read the device's row and run ``work`` with it, in one session within one worker-thread hop.

    For the device routes that write (claim, task reports, challenge steps): the row is read
    (a revoked device refused, as :func:`require_device`), ``work`` checks and writes, and the
    session commits or rolls back, all in the same hop (:func:`writing`). So on SQLite the
    write lock, which the row's read takes, is never held while the event loop serves others,
    and a request makes one hop, where the dependencies :data:`SessionDep` and
    :func:`require_device` made four (open the session, read the row, run the route, close).
    """
    return await writing(
        request, lambda session: work(session, _live_device(request, session, identity))
    )


def require_device(identity: DeviceIdentityDep, request: Request, session: SessionDep) -> Device:
    """Admit the device's own token, as :func:`require_device_identity`, and read its row.

    The row is read in any case (a cached token saves only the check of its secret), so a
    device revoked through any coordinator process is refused here at once. It is read on the
    request's session (:data:`SessionDep`), for routes that write through that session.
    """
    return _live_device(request, session, identity)


async def require_device_reading(identity: DeviceIdentityDep, request: Request) -> Device:
    """As :func:`require_device`, but the row is read on a read-only session of its own.

    For async routes that write later in a short transaction of their own (:func:`writing`):
    the request holds no session, and on SQLite never the write lock, while it waits. The row
    comes detached; those routes use its columns only.
    """
    return await reading(request, lambda session: _live_device(request, session, identity))


def _cached_device(request: Request, session: Session, token: str) -> Device:
    """Admit any device's token through the credential cache, and read its row.

    A token verified within the cache's time skips the check of its secret; the row is read in
    any case, so a revoked device is refused at once (and forgotten by this process's cache).
    """
    cache: CredentialCache[DeviceIdentity] = request.app.state.device_cache
    identity = cache.get(token)
    device = None
    if identity is None:
        try:
            device = authenticate_device(session, token)
        except UnauthorizedError:
            _refused(request)
            raise
        identity = DeviceIdentity.of(device)
        cache.put(token, identity.device_id, identity)
    _charge(request.app.state.rate_limiter, f"hgd:{identity.device_id}", "a credential")
    if device is None:
        device = session.get(Device, identity.device_id)
        if device is None or device.revoked_ts is not None:
            cache.forget(identity.device_id)
            _refused(request)
            raise UnauthorizedError("Authorization: the device was revoked")
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
            return _cached_device(request, session, token)
        return require_scope(scope)(request, session, token)

    return dependency
