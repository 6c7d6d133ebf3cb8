"""The coordinator's FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from platformdirs import user_data_dir
from sqlalchemy.exc import DBAPIError
from starlette.requests import ClientDisconnect

from heatgrid import __version__
from heatgrid.coordinator import dashboard
from heatgrid.coordinator.api import (
    admin,
    artifacts,
    checkpoint_chunks,
    devices,
    health,
    jobs,
    mining,
    mining_credentials,
    tasks,
)
from heatgrid.coordinator.auth import AccountPrincipal, DeviceIdentity
from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.credentials import CredentialCache
from heatgrid.coordinator.db.engine import (
    POOL_CONNECTIONS,
    lost_connection,
    make_engine,
    make_session_factory,
    normalize_database_url,
    single_statement_reads,
    unreachable_database,
)
from heatgrid.coordinator.errors import CoordinatorError, TooManyRequestsError
from heatgrid.coordinator.heartbeats import HeartbeatWriter
from heatgrid.coordinator.housekeeping import sweep_expired_leases
from heatgrid.coordinator.logs import configure_logging
from heatgrid.coordinator.metrics import AppMetrics
from heatgrid.coordinator.middleware import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    NulRefusalMiddleware,
    RequestMetricsMiddleware,
)
from heatgrid.coordinator.ratelimit import RateLimiter, RateLimitMiddleware
from heatgrid.coordinator.settings import Settings
from heatgrid.core.clock import CLOCK_ENV, parse_clock

__all__ = ["SETTINGS_ENV", "app_from_environment", "create_app"]

SETTINGS_ENV = "HEATGRID_SERVE_SETTINGS"
"""Environment variable holding a worker's settings (JSON), set by ``heatgrid serve --workers``."""

_LOG = logging.getLogger("heatgrid.coordinator")
_LOCATION_KINDS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_path(location: Sequence[Any]) -> str:
    parts = list(location)
    if len(parts) > 1 and parts[0] in _LOCATION_KINDS:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    described = []
    for error in errors:
        if error.get("type") == "json_invalid":
            field = "body"
            message = f"invalid JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})"
        else:
            field = _field_path(error.get("loc", ()))
            message = str(error.get("msg", "is not valid"))
        described.append({"field": field, "message": message, "type": str(error.get("type"))})
    return described


_ERROR_STATUSES = {
    "400": "Malformed request (bad JSON, bad Content-Length)",
    "401": "Missing, unknown or revoked credentials",
    "403": "Credentials that do not allow this",
    "404": "Not found, or not the caller's",
    "409": "Conflicts with what is stored",
    "410": "Expired",
    "413": "Request body over the size limit",
    "429": "Over the credential's rate limit (see Retry-After)",
    "503": "The database connection was lost or cannot be made; retry (see Retry-After)",
}

_LOST_CONNECTION_RETRY_AFTER_S = 1


def _openapi_document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Build ``/openapi.json`` with the error bodies this app really sends.

    FastAPI documents 422 as a list of pydantic errors; this app answers
    ``{"detail": "field: message; ...", "errors": [{"field", "message", "type"}]}``, and every
    refusal (4xx) carries a ``detail`` string.
    """

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["ValidationError"] = {
                "title": "ValidationError",
                "type": "object",
                "required": ["field", "message", "type"],
                "properties": {
                    "field": {"type": "string", "description": "Path of the field at fault"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            }
            schemas["HTTPValidationError"] = {
                "title": "HTTPValidationError",
                "type": "object",
                "required": ["detail"],
                "properties": {
                    "detail": {"type": "string", "description": "Every fault, one per field"},
                    "errors": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ValidationError"},
                    },
                },
            }
            schemas["Error"] = {
                "title": "Error",
                "type": "object",
                "required": ["detail"],
                "properties": {"detail": {"type": "string"}},
            }
            error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    for code, description in _ERROR_STATUSES.items():
                        responses.setdefault(code, {"description": description, "content": error})
            app.openapi_schema = document
        return app.openapi_schema

    return build


async def _on_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    described = _validation_errors(error.errors())
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in described)
    return JSONResponse({"detail": detail, "errors": described}, status_code=422)


async def _on_coordinator_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CoordinatorError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    if isinstance(error, TooManyRequestsError):
        headers = {"Retry-After": str(error.retry_after_s)}
    return JSONResponse({"detail": str(error)}, status_code=error.status_code, headers=headers)


async def _on_client_disconnect(request: Request, error: Exception) -> JSONResponse:
    """Answer a client that went away mid-body (a dropped upload): not a server error."""
    _LOG.info(
        "the client disconnected before its request's body arrived",
        extra={"method": request.method, "path": request.url.path},
    )
    return JSONResponse({"detail": "the request's body was cut short"}, status_code=400)


async def _on_database_error(request: Request, error: Exception) -> JSONResponse:
    """Answer 503 with ``Retry-After`` when the database is out of reach, else 500.

    Connections are not checked before use (``db.engine.make_engine``): after a database
    restart, or with a backend terminated, the request that finds its pooled connection dead
    fails; SQLAlchemy has then invalidated the pool, so the client's retry gets a new one. A
    database that refuses new connections (down, restarting, not accepting them) is out of
    reach the same way: nothing was done, and the client's retry may succeed.
    """
    if lost_connection(error):
        detail = "the database connection was lost; retry"
    elif unreachable_database(error):
        detail = "the database cannot be reached; retry"
    else:
        return await _on_unexpected_error(request, error)
    _LOG.warning(
        f"{detail}; answered 503",
        extra={"method": request.method, "path": request.url.path, "error": str(error)},
    )
    return JSONResponse(
        {"detail": detail},
        status_code=503,
        headers={"Retry-After": str(_LOST_CONNECTION_RETRY_AFTER_S)},
    )


async def _on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex
    request.app.state.metrics.unhandled_errors.inc()
    _LOG.error(
        "unhandled exception",
        exc_info=error,
        extra={"reference": reference, "method": request.method, "path": request.url.path},
    )
    return JSONResponse(
        {"detail": f"internal error; the coordinator's log has it under reference {reference}"},
        status_code=500,
    )


def _add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(CoordinatorError, _on_coordinator_error)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected_error)


def _checkpoint_url(settings: Settings) -> str:
    """Return the checkpoint store URL: configured, beside the SQLite file, or in user data."""
    if settings.checkpoint_url:
        return settings.checkpoint_url
    url = normalize_database_url(settings.database_url)
    if url.drivername == "sqlite" and url.database:
        return str(Path(url.database).resolve().parent / "checkpoints")
    return str(Path(user_data_dir("heatgrid")) / "checkpoints")


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the coordinator app; it connects to the database on the first request.

    Parameters
    ----------
    settings : Settings
        Database URL and limits.
    clock : callable
        Returns the current time [POSIX s, UTC]; tests pass their own to move time.

    Returns
    -------
    FastAPI
        The app, ready for uvicorn or an ``httpx.ASGITransport``.
    """
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    read_session_factory = make_session_factory(engine, read_only=True)
    heartbeat_writer = HeartbeatWriter(engine, settings.lease_s)
    checkpoint_store = CheckpointStore(_checkpoint_url(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(
            sweep_expired_leases(session_factory, checkpoint_store, clock, settings)
        )
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await anyio.to_thread.run_sync(heartbeat_writer.stop)
            engine.dispose()

    app = FastAPI(
        title="heatgrid coordinator",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.read_session_factory = read_session_factory
    app.state.single_statement_engine = single_statement_reads(engine)
    app.state.heartbeat_writer = heartbeat_writer
    app.state.checkpoint_store = checkpoint_store
    app.state.metrics = AppMetrics(
        read_session_factory, clock, settings.online_window_s, settings.metrics_refresh_s
    )
    app.state.key_cache = CredentialCache[AccountPrincipal](settings.credential_cache_s, clock)
    app.state.device_cache = CredentialCache[DeviceIdentity](
        settings.device_credential_cache_s, clock
    )
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.address_limiter = RateLimiter(
        settings.anonymous_rate_limit_per_s, settings.anonymous_rate_limit_burst
    )
    app.include_router(health.router)
    app.include_router(devices.router)
    app.include_router(admin.router)
    app.include_router(jobs.router)
    app.include_router(artifacts.router)
    app.include_router(tasks.router)
    app.include_router(mining.router)
    app.include_router(checkpoint_chunks.router)
    app.include_router(mining_credentials.router)
    dashboard.mount(app)
    app.openapi = _openapi_document(app)  # type: ignore[method-assign]
    _add_exception_handlers(app)
    app.add_middleware(
        ConcurrencyLimitMiddleware, limit=POOL_CONNECTIONS, ready_wait_s=settings.ready_wait_s
    )
    app.add_middleware(  # outside the slots: a slot is taken only once the body is in
        BodyLimitMiddleware,
        limit_bytes=settings.max_body_bytes,
        blob_limit_bytes=settings.max_checkpoint_bytes,
        timeout_s=settings.body_timeout_s,
        artifact_limit_bytes=settings.max_artifact_bytes,
    )
    app.add_middleware(
        RateLimitMiddleware,
        limiter=app.state.address_limiter,
        public_paths=health.PUBLIC_PATHS,
    )
    app.add_middleware(NulRefusalMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app


def app_from_environment() -> FastAPI:
    """Build the app in a uvicorn worker process of ``heatgrid serve --workers N``.

    The parent checked the schema and put the settings, as JSON, in :data:`SETTINGS_ENV`,
    the log level in ``HEATGRID_SERVE_LOG_LEVEL`` and a shared emulated clock, if it runs on
    one, in :data:`~heatgrid.core.clock.CLOCK_ENV`.
    """
    configure_logging(os.environ.get("HEATGRID_SERVE_LOG_LEVEL", "info"))
    settings = Settings(**json.loads(os.environ[SETTINGS_ENV]))
    clock_text = os.environ.get(CLOCK_ENV)
    if clock_text is None:
        return create_app(settings)
    spec = parse_clock(clock_text)
    return create_app(settings, lambda: spec.emulated_ts(time.time()))
