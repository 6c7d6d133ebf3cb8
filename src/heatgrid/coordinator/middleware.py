"""ASGI middleware: body size limit, cap on requests in flight, metrics and access logs."""

from __future__ import annotations

import json
import logging
import time

import anyio
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatgrid.coordinator.metrics import AppMetrics

__all__ = [
    "BodyLimitMiddleware",
    "ConcurrencyLimitMiddleware",
    "NulRefusalMiddleware",
    "RequestMetricsMiddleware",
]

_ACCESS_LOG = logging.getLogger("heatgrid.coordinator.access")


def _too_large(limit_bytes: int) -> str:
    return f"body: the request body exceeds the limit of {limit_bytes} bytes"


async def _answer(
    send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class NulRefusalMiddleware:
    """Answer 404 to a path, 422 to a query string, holding a NUL character (``%00``).

    No identifier holds one, and PostgreSQL cannot even compare text with one: without this a
    lookup of ``/v1/jobs/a%00b`` would fail in the database instead of finding nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app unless the path or the query string holds a NUL."""
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                await _answer(send, 404, "path: holds a NUL character (%00); nothing is there")
                return
            query = bytes(scope.get("query_string", b""))
            if b"\x00" in query or b"%00" in query:
                await _answer(send, 422, "query: holds a NUL character (%00)")
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 to a request whose body is larger than ``limit_bytes``.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    sent in chunks is counted as it arrives and refused when it passes the limit. Uploads of
    checkpoint blobs (``PUT …/checkpoint``) have their own, larger limit ``blob_limit_bytes``.
    """

    def __init__(self, app: ASGIApp, limit_bytes: int, blob_limit_bytes: int | None = None) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.blob_limit_bytes = limit_bytes if blob_limit_bytes is None else blob_limit_bytes

    def _limit(self, scope: Scope) -> int:
        is_blob = scope["method"] == "PUT" and str(scope["path"]).endswith("/checkpoint")
        return self.blob_limit_bytes if is_blob else self.limit_bytes

    async def _answer(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with the limit on its request body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_bytes = self._limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._answer(send, 400, "Content-Length: not a number of bytes")
                return
            if int(declared) > limit_bytes:
                await self._answer(send, 413, _too_large(limit_bytes))
                return
        received_bytes = 0

        async def limited_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit_bytes:
                    raise HTTPException(413, _too_large(limit_bytes))
            return message

        await self.app(scope, limited_receive, send)


class ConcurrencyLimitMiddleware:
    """Admit at most ``limit`` requests at once; the others wait, without a thread, in order.

    A request may hold a database connection across several worker-thread calls (its
    dependencies, then its handler). Unbounded, more requests than connections would fill
    every worker thread with requests waiting for a connection while the requests holding the
    connections wait for a thread. With ``limit`` no larger than the pool and the thread pool,
    an admitted request always gets both. ``/healthz`` (no database) is not counted.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self._slots = anyio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app once a slot is free."""
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        async with self._slots:
            await self.app(scope, receive, send)


class RequestMetricsMiddleware:
    """Time each request, label it by route template, and write one access log line."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, then record the request's duration and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            duration_s = time.perf_counter() - started_s
            route = scope.get("route")
            template = route.path if isinstance(route, APIRoute) else "<unmatched>"
            self.metrics.request_duration_s.labels(scope["method"], template, str(status)).observe(
                duration_s
            )
            _ACCESS_LOG.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_s": round(duration_s, 6),
                },
            )
