"""A process's cache of verified credentials, checked against the database once per ``ttl_s``.

A valid token is not read from the database on every request. A token is looked up by a
keyed digest (BLAKE2b in its keyed mode, 256 bits, under a random key of this process: a MAC
by design and one call into C, where HMAC-SHA256 builds two hash objects in Python), so the
cache never holds a token itself, and a digest seen in a memory dump is worth nothing
elsewhere. Only credentials that were valid are cached; a refused token is checked again at
every request (and charged to its client address, see ``ratelimit``).

Revocation takes effect:

* at once through the process that revoked (``forget`` drops every entry of the row);
* at once for heartbeats everywhere: a heartbeat's device ``UPDATE`` also checks that the
  device is not revoked, and a refusal drops the entry;
* at once for claims and task reports everywhere: they read the device row anyway;
* within ``ttl_s`` for API keys used through another coordinator process (or revoked with
  ``heatgrid admin`` directly on the database).

So device tokens may be cached for long (an hour: longer than heartbeat intervals, else the
cache would never hit), API keys for seconds.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CredentialCache"]

_MAX_ENTRIES = 100_000
_T = TypeVar("_T")


@dataclass
class _Entry(Generic[_T]):
    row_id: str
    value: _T
    expires_ts: float


class CredentialCache(Generic[_T]):
    """Verified credentials of one kind (API keys or device tokens), each for ``ttl_s``.

    Parameters
    ----------
    ttl_s : float
        How long a verified credential is trusted without asking the database [s]; 0 turns
        the cache off.
    clock : callable
        Returns the current time [s]; the app passes its own clock.
    max_entries : int
        Most credentials kept; the least recently verified are dropped first.
    """

    def __init__(
        self, ttl_s: float, clock: Callable[[], float], max_entries: int = _MAX_ENTRIES
    ) -> None:
        if not ttl_s >= 0.0:
            raise ValueError(f"credential cache ttl_s must be >= 0, got {ttl_s!r}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, _Entry[_T]] = OrderedDict()
        self._by_row: dict[str, set[bytes]] = {}
        self._lock = threading.Lock()  # worker threads share the cache

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(
            token.encode("utf-8", "surrogatepass"), digest_size=32, key=self._key
        ).digest()

    def get(self, token: str) -> _T | None:
        """Return what ``token`` proved when it was verified, if that was within ``ttl_s``."""
        if self.ttl_s == 0.0:
            return None
        digest = self._digest(token)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if float(self._clock()) >= entry.expires_ts:
                self._drop(digest)
                return None
            return entry.value

    def put(self, token: str, row_id: str, value: _T) -> None:
        """Remember that ``token`` (the credential in row ``row_id``) proved ``value``."""
        if self.ttl_s == 0.0:
            return
        digest = self._digest(token)
        with self._lock:
            self._drop(digest)
            self._entries[digest] = _Entry(row_id, value, float(self._clock()) + self.ttl_s)
            self._by_row.setdefault(row_id, set()).add(digest)
            while len(self._entries) > self._max_entries:
                self._drop(next(iter(self._entries)))

    def forget(self, row_id: str) -> None:
        """Drop every cached token of the credential in row ``row_id`` (revoked, changed)."""
        with self._lock:
            for digest in list(self._by_row.get(row_id, ())):
                self._drop(digest)

    def __len__(self) -> int:
        """Return the number of cached credentials."""
        with self._lock:
            return len(self._entries)

    def _drop(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        digests = self._by_row.get(entry.row_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_row[entry.row_id]
