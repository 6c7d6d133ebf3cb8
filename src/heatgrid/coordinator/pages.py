"""Keyset pagination for every list the coordinator serves.

A page is read with ``WHERE (sort key) after (the cursor's key) ORDER BY (sort key)
LIMIT limit + 1``: the extra row says whether another page follows, and the last row's key,
encoded, is the next cursor. The cost of a page does not grow with the rows before it (an
``OFFSET`` would read and skip them), and a row inserted meanwhile never shifts a page.

Cursors are opaque to clients: URL-safe base64 of a JSON array of the sort key's values. A
float in a key round-trips exactly (JSON keeps ``repr`` precision).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from heatgrid.coordinator.errors import InvalidError

__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "MAX_PAGE_LIMIT",
    "PageRequest",
    "decode_cursor",
    "encode_cursor",
]

DEFAULT_PAGE_LIMIT = 100
"""Rows in a page when the request does not say (``?limit=``)."""

MAX_PAGE_LIMIT = 1000
"""Most rows in one page; a larger ``?limit=`` is refused (422)."""

_MAX_CURSOR_CHARS = 512

KeyValue = str | int | float


@dataclass(frozen=True)
class PageRequest:
    """Where a page starts and how many rows it holds.

    Attributes
    ----------
    limit : int
        Rows wanted, 1 to :data:`MAX_PAGE_LIMIT`.
    after : tuple or None
        Sort key of the last row of the previous page; None for the first page.
    """

    limit: int = DEFAULT_PAGE_LIMIT
    after: tuple[KeyValue, ...] | None = None

    @classmethod
    def from_query(cls, limit: int, cursor: str | None, kinds: Sequence[type]) -> PageRequest:
        """Return the page a request asks for: ``?limit=`` and ``?cursor=`` (None: the first).

        Raises
        ------
        InvalidError
            (422) When ``cursor`` is not a cursor of the listing whose key types are ``kinds``.
        """
        return cls(limit, None if cursor is None else decode_cursor(cursor, kinds))


def encode_cursor(key: Sequence[KeyValue]) -> str:
    """Return the cursor that resumes a listing after the row whose sort key is ``key``."""
    text = json.dumps(list(key), separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> tuple[KeyValue, ...]:
    """Return the sort key a cursor holds, checked against the listing's key types.

    Parameters
    ----------
    cursor : str
        As returned in ``next_cursor``.
    kinds : sequence of type
        The Python type of each value of the listing's sort key (``float``, ``str``, ``int``).

    Raises
    ------
    InvalidError
        (422) When the text is not a cursor of this listing.
    """
    wrong = InvalidError("cursor: not a cursor of this listing (pass next_cursor as it came)")
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise wrong
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (UnicodeError, ValueError, binascii.Error):
        raise wrong from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise wrong
    key: list[KeyValue] = []
    for value, kind in zip(values, kinds, strict=True):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is float and number:
            key.append(float(value))
        elif (kind is int and number and isinstance(value, int)) or (
            kind is str and isinstance(value, str) and "\x00" not in value
        ):
            key.append(value)
        else:
            raise wrong
    return tuple(key)
