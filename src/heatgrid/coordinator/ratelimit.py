"""Rate limits: a token bucket for each verified credential, and one for each client address.

A request is counted against what it proved, never against what it merely claims: a valid API
key or device token (verified against the database) is limited by that credential; a request
without one (no token, a malformed, unknown, wrong or revoked token, or a public route such as
enrollment) is limited by its client address, with its own, lower rate. So a forged
``hgd_<victim id>_…`` is charged to the forger's address, not to the victim, and rotating
made-up ids does not escape the limit.

Each key has a bucket of ``burst`` requests that refills at ``rate_per_s``. A request that finds
the bucket empty is answered 429 with ``Retry-After``. Buckets live in the process: behind N
coordinator processes a credential may send N times the rate. The table of buckets is bounded;
the least recently seen keys are forgotten first (a forgotten key starts with a full bucket).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RateLimiter", "client_address", "refusal"]

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
        self._lock = threading.Lock()  # the event loop and worker threads both take tokens

    def wait_s(self, key: str) -> float:
        """Take one request from ``key``'s bucket.

        Returns
        -------
        float
            0 when the request may go ahead; otherwise how long until it could [s] (nothing
            is taken then).
        """
        with self._lock:
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


def client_address(scope: Scope) -> str:
    """Return the key of a request limited by where it comes from: ``address:<client IP>``.

    Behind a proxy, ``heatgrid serve --proxy-headers`` makes the client the forwarded address.
    """
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def refusal(limiter: RateLimiter, wait_s: float, who: str) -> tuple[str, int]:
    """Return the 429 answer's detail and its ``Retry-After`` [s] for ``who`` over its rate."""
    retry_after_s = max(1, math.ceil(wait_s))
    detail = (
        f"rate limit: {who} may send {limiter.rate_per_s:g} requests/s "
        f"(bursts of {limiter.burst}); retry after {retry_after_s} s"
    )
    return detail, retry_after_s


def _bearer(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value[:7]).lower() == b"bearer "
    return False


class RateLimitMiddleware:
    """Answer 429 to a client address over its rate, for requests without a bearer token.

    A request with a bearer token is limited after its token is verified (see
    ``api.deps``): by its credential when the token is valid, by its address when it is not.
    Public routes (enrollment) are limited by address whatever they carry; health routes never.
    """

    _EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, limiter: RateLimiter, public_paths: frozenset[str]) -> None:
        self.app = app
        self.limiter = limiter
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app unless the request's address is over its rate."""
        if (
            scope["type"] != "http"
            or scope["path"] in self._EXEMPT
            or (_bearer(scope) and scope["path"] not in self.public_paths)
        ):
            await self.app(scope, receive, send)
            return
        wait_s = self.limiter.wait_s(client_address(scope))
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        detail, retry_after_s = refusal(
            self.limiter, wait_s, "a client address without a valid credential"
        )
        body = json.dumps({"detail": detail}).encode()
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
