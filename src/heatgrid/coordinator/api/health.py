"""Public routes for probes and monitoring: /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from heatgrid.coordinator.db.schema import SchemaError, check_schema

__all__ = ["PUBLIC_PATHS", "router"]

router = APIRouter(tags=["health"])

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/devices/enroll"})
"""Paths answered without credentials; every other path needs a bearer token."""


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer 200 while the process is up (liveness)."""
    return {"status": "ok"}


_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"description": "database unreachable, or schema not at head"}
}


@router.get("/readyz", responses=_NOT_READY)
def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database is reachable and its schema is this heatgrid's head."""
    try:
        revision = check_schema(request.app.state.engine)
    except SchemaError as error:
        return JSONResponse({"status": "not ready", "detail": str(error)}, status_code=503)
    except SQLAlchemyError as error:
        detail = f"database unreachable: {type(error).__name__}"
        return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ready", "schema_revision": revision})


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
