"""The one exception type for bad input, shared by every layer.

Adapters and the CLI turn :class:`InputError` into a clear message and exit status 2 (CLI) or a
4xx answer (HTTP). Its message names what is wrong: the parameter, or the file, line and field.
"""

from __future__ import annotations

import math

__all__ = ["InputError", "require_finite", "require_non_negative", "require_positive"]


class InputError(ValueError):
    """Bad input from a user or a file; the message says what is wrong and where."""


def require_finite(name: str, value: float) -> float:
    """Return ``value`` as a float if finite, else raise :class:`InputError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return number


def require_positive(name: str, value: float) -> float:
    """Return ``value`` if it is finite and > 0, else raise :class:`InputError` naming ``name``."""
    number = require_finite(name, value)
    if number <= 0.0:
        raise InputError(f"{name} must be greater than 0, got {value!r}")
    return number


def require_non_negative(name: str, value: float) -> float:
    """Return ``value`` if it is finite and >= 0, else raise :class:`InputError` naming ``name``."""
    number = require_finite(name, value)
    if number < 0.0:
        raise InputError(f"{name} must not be negative, got {value!r}")
    return number
