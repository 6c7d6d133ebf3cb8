"""Errors the coordinator's services raise; the API answers each with its HTTP status.

They are :class:`~heatgrid.core.errors.InputError` subclasses, so the CLI, which calls the same
services, prints their message and exits with status 2.
"""

from __future__ import annotations

from heatgrid.core.errors import InputError

__all__ = [
    "ConflictError",
    "CoordinatorError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "TooManyRequestsError",
    "UnauthorizedError",
]


class CoordinatorError(InputError):
    """A request the coordinator refuses; ``status_code`` is its HTTP answer."""

    status_code = 400


class UnauthorizedError(CoordinatorError):
    """No credentials, or credentials that are unknown, malformed or revoked."""

    status_code = 401


class ForbiddenError(CoordinatorError):
    """Valid credentials that do not allow this action."""

    status_code = 403


class NotFoundError(CoordinatorError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    status_code = 404


class ConflictError(CoordinatorError):
    """The request contradicts what is stored (a used code, an existing name)."""

    status_code = 409


class GoneError(CoordinatorError):
    """The thing asked for existed but has expired."""

    status_code = 410


class InvalidError(CoordinatorError):
    """Well-formed input that breaks a rule the models alone cannot check."""

    status_code = 422


class TooManyRequestsError(CoordinatorError):
    """Over a rate limit; the answer says after how long to retry."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
