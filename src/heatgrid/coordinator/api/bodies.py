"""A JSON request body read and validated from its bytes, for the busiest routes.

FastAPI validates a body declared as a route parameter in steps: ``json.loads`` into Python
objects, then pydantic's validation of those objects, inside its per-request dependency
solving. :func:`json_body` makes one call into pydantic-core instead
(:meth:`pydantic.BaseModel.model_validate_json`: parse and validate in one pass), for a route
whose handler reads its own body (``api.devices``: the heartbeat).

The answers stay FastAPI's: a body that is missing, not declared as JSON, not JSON, or not
valid raises :class:`fastapi.exceptions.RequestValidationError` with each error's location
under ``body``, which the app's handler turns into its 422 naming the field.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["json_body"]

_Model = TypeVar("_Model", bound=BaseModel)


def _is_json(content_type: str) -> bool:
    """Return True for ``application/json`` and ``application/*+json`` (parameters ignored)."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


async def json_body(request: Request, model: type[_Model]) -> _Model:
    """Return the request's JSON body validated as ``model``.

    Raises
    ------
    RequestValidationError
        The body is missing, is not declared as JSON (``Content-Type``), is not JSON, or is
        not a valid ``model``; each error's location starts with ``body``.
    """
    body = await request.body()
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(request.headers.get("content-type", "")):
        raise RequestValidationError(
            [
                {
                    "type": "content_type",
                    "loc": ("body",),
                    "msg": "must be JSON, sent with Content-Type: application/json",
                    "input": None,
                }
            ]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**found, "loc": ("body", *found["loc"])}
                for found in error.errors(include_url=False, include_input=False)
            ]
        ) from None
