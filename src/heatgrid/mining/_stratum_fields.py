"""Strict readers of Stratum v1 fields; a bad field raises :class:`_BadError` naming it."""

from __future__ import annotations

import math
import re
from typing import Any

__all__: list[str] = []  # private to heatgrid.mining's Stratum modules

_HASH_BYTES = 32
_UINT32_HEX = 8
_MAX_ID_ABS = 2**53
_MAX_TEXT = 256
_VERSION_ROLLING = "version-rolling"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class _BadError(Exception):
    """A parse failure inside the Stratum decoder; never leaves :mod:`heatgrid.mining`."""


def _hex(value: object, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise _BadError(f"{field} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise _BadError(f"{field} is not hex: {value[:80]!r}") from None
    if len(value) != 2 * len(data):
        raise _BadError(f"{field} is not hex: {value[:80]!r}")
    if size is not None and len(data) != size:
        raise _BadError(f"{field} must be {size} bytes ({2 * size} hex digits), got {len(data)}")
    return data


def _uint32(value: object, field: str) -> int:
    if not isinstance(value, str) or _HEX8.fullmatch(value) is None:
        if isinstance(value, str) and len(value) == _UINT32_HEX:
            raise _BadError(f"{field} is not hex: {value!r}")
        raise _BadError(f"{field} must be 8 hex digits")
    return int(value, 16)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _BadError(f"{field} must be a string")
    if len(value) > _MAX_TEXT:
        raise _BadError(f"{field} is longer than {_MAX_TEXT} characters")
    return value


def _difficulty(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadError(f"{field} must be a number")
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise _BadError(f"{field} must be a finite number > 0")
    return number


def _count(params: list[Any], low: int, high: int, method: str) -> None:
    if not low <= len(params) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise _BadError(f"{method} takes {wanted} parameters, got {len(params)}")
