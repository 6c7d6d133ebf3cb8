"""Per-credential rate limits: a token bucket for each API key, device token or client address.

Each credential (the id part of a ``Bearer`` token; the client address for requests without
one) has a bucket of ``burst`` requests that refills at ``rate_per_s``. A request that finds the
bucket empty is answered 429 with ``Retry-After``, before any database work. Buckets live in the
process: behind N coordinator processes a credential may send N times the rate. The table of
buckets is bounded; the least recently seen credentials are forgotten first (a forgotten
credential starts again with a full bucket).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RateLimiter"]

_MAX_KEYS = 100_000


class RateLimiter:
    """Token buckets keyed by credential.

    Parameters
    ----------
    rate_per_s : float
        Sustained requests per second per credential [1/s]; > 0.
    burst : int
        Requests a credential may send at once (the bucket's size); >= 1.
    clock : callable
        Monotonic time [s]; tests pass their own.
    max_keys : int
        Most credentials remembered at once.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = _MAX_KEYS,
    ) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_limit_per_s must be a positive number, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"rate_limit_burst must be at least 1, got {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_s(self, key: str) -> float:
        """Take one request from ``key``'s bucket.

        Returns
        -------
        float
            0 when the request may go ahead; otherwise how long until it could [s] (nothing
            is taken then).
        """
        now_s = self._clock()
        tokens, seen_s = self._buckets.pop(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + (now_s - seen_s) * self.rate_per_s)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self.rate_per_s
        self._buckets[key] = (tokens, now_s)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait_s


def _credential(scope: Scope) -> str:
    """Return the key a request is limited under: its token's kind and id, else its address."""
    authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        parts = token.strip().split("_", 2)
        if len(parts) == 3 and parts[0] and parts[1]:
            return f"{parts[0]}:{parts[1]}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Answer 429 to a credential that has used up its bucket; health routes are exempt."""

    _EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app unless the request's credential is over its rate."""
        if scope["type"] != "http" or scope["path"] in self._EXEMPT:
            await self.app(scope, receive, send)
            return
        wait_s = self.limiter.wait_s(_credential(scope))
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after_s = max(1, math.ceil(wait_s))
        body = json.dumps(
            {
                "detail": (
                    f"rate limit: a credential may send {self.limiter.rate_per_s:g} requests/s "
                    f"(bursts of {self.limiter.burst}); retry after {retry_after_s} s"
                )
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
