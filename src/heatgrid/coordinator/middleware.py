"""ASGI middleware: body size limit, cap on requests in flight, metrics and access logs."""

from __future__ import annotations

import json
import logging
import time

import anyio
from fastapi.routing import APIRoute
from prometheus_client import Histogram
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
    await _answer_json(send, status, {"detail": detail}, headers)


async def _answer_json(
    send: Send,
    status: int,
    content: dict[str, str],
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = json.dumps(content).encode()
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


def _is_checkpoint(scope: Scope) -> bool:
    path = str(scope["path"])
    return scope["method"] == "PUT" and (
        path.endswith("/checkpoint") or "/checkpoint-chunks/" in path
    )


def _is_artifact(scope: Scope) -> bool:
    return scope["method"] == "PUT" and str(scope["path"]).startswith("/v1/artifacts/")


def _too_slow(timeout_s: float) -> str:
    return f"body: the request body did not arrive within {timeout_s:g} s"


_CLOSE = ((b"connection", b"close"),)


class BodyLimitMiddleware:
    """Read each request body in full, within a size limit and a time limit, before the app.

    A declared ``Content-Length`` over ``limit_bytes`` is refused (413) before anything is read;
    a body sent in chunks is counted as it arrives and refused when it passes the limit. A body
    that takes longer than ``timeout_s`` to arrive is answered 408 and its connection closed, so
    a client that sends headers and then trickles (or withholds) its body holds nothing but its
    own socket: the app, and the :class:`ConcurrencyLimitMiddleware` slot inside it, only see
    requests whose body is complete.

    Uploads of checkpoint blobs (``PUT …/checkpoint``, ``PUT …/checkpoint-chunks/…``, up to
    ``blob_limit_bytes``) and of job artifacts (``PUT /v1/artifacts/…``, up to
    ``artifact_limit_bytes``) are streamed to the app instead of held in memory; there
    ``timeout_s`` bounds each pause between two chunks.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_bytes: int,
        blob_limit_bytes: int | None = None,
        timeout_s: float = 30.0,
        artifact_limit_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.blob_limit_bytes = limit_bytes if blob_limit_bytes is None else blob_limit_bytes
        self.artifact_limit_bytes = (
            self.blob_limit_bytes if artifact_limit_bytes is None else artifact_limit_bytes
        )
        self.timeout_s = timeout_s

    def _stream_limit(self, scope: Scope) -> int | None:
        """Return the size limit of a body streamed to the app [bytes]; None: read it here."""
        if _is_checkpoint(scope):
            return self.blob_limit_bytes
        if _is_artifact(scope):
            return self.artifact_limit_bytes
        return None

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit_bytes: int) -> None:
        received_bytes = 0

        async def limited_receive() -> Message:
            nonlocal received_bytes
            with anyio.move_on_after(self.timeout_s) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise HTTPException(408, _too_slow(self.timeout_s), headers={"Connection": "close"})
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit_bytes:
                    raise HTTPException(413, _too_large(limit_bytes))
            return message

        await self.app(scope, limited_receive, send)

    async def _read(self, receive: Receive) -> tuple[bytes | None, int | None]:
        """Read the body: (body, None), (None, 408 or 413), or (None, None): the client left."""
        chunks: list[bytes] = []
        received_bytes = 0
        with anyio.move_on_after(self.timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None, None
                chunk = bytes(message.get("body", b""))
                received_bytes += len(chunk)
                if received_bytes > self.limit_bytes:
                    return None, 413
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks), None
        return None, 408

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app once the request body is in, within the limits."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream_limit = self._stream_limit(scope)
        limit_bytes = self.limit_bytes if stream_limit is None else stream_limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length: not a number of bytes")
                return
            if int(declared) > limit_bytes:
                await _answer(send, 413, _too_large(limit_bytes))
                return
        if stream_limit is not None:
            await self._stream(scope, receive, send, stream_limit)
            return
        body, status = await self._read(receive)
        if body is None:
            if status == 408:
                await _answer(send, 408, _too_slow(self.timeout_s), _CLOSE)
            elif status == 413:
                await _answer(send, 413, _too_large(self.limit_bytes), _CLOSE)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_stream(scope: Scope) -> bool:
    """Return True for the dashboard's event streams: open for minutes, polling now and then."""
    return str(scope["path"]).startswith("/events/")


class ConcurrencyLimitMiddleware:
    """Admit at most ``limit`` requests at once; the others wait, without a thread, in order.

    A request may hold a database connection across several worker-thread calls (its
    dependencies, then its handler). Unbounded, more requests than connections would fill
    every worker thread with requests waiting for a connection while the requests holding the
    connections wait for a thread. With ``limit`` no larger than the pool and the thread pool,
    an admitted request always gets both. ``/healthz`` (no database) is not counted, nor are the
    dashboard's event streams (``/events/…``), which hold a connection only while they poll.

    ``/readyz`` waits at most ``ready_wait_s`` for a slot: when none frees up in that time the
    service is stalled, and it answers 503 saying so, so that a readiness probe takes the
    process out of rotation instead of waiting with everyone else.
    """

    def __init__(self, app: ASGIApp, limit: int, ready_wait_s: float = 5.0) -> None:
        self.app = app
        self.limit = limit
        self.ready_wait_s = ready_wait_s
        self._slots = anyio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app once a slot is free."""
        if scope["type"] != "http" or scope["path"] == "/healthz" or _is_stream(scope):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/readyz":
            acquired = False
            with anyio.move_on_after(self.ready_wait_s):
                await self._slots.acquire()
                acquired = True
            if not acquired:
                detail = (
                    f"stalled: none of the {self.limit} request slots came free within "
                    f"{self.ready_wait_s:g} s"
                )
                await _answer_json(send, 503, {"status": "not ready", "detail": detail})
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self._slots.release()
            return
        async with self._slots:
            await self.app(scope, receive, send)


_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


class RequestMetricsMiddleware:
    """Time each request, label it by route template, and write one access log line.

    The histogram's child for each (method, route, status) is looked up once and kept: a
    ``labels()`` call checks and joins its labels and takes the metric's lock, on every
    request. There are few such triples (routes × methods × statuses answered): a method
    other than HTTP's own is labelled ``OTHER``, so that made-up methods (any token is a
    method to HTTP) cannot grow the metric, and this table, without bound.
    """

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def _observe(self, method: str, template: str, status: int, duration_s: float) -> None:
        key = (method if method in _METHODS else "OTHER", template, status)
        child = self._children.get(key)
        if child is None:
            child = self.metrics.request_duration_s.labels(key[0], template, str(status))
            self._children[key] = child
        child.observe(duration_s)

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
            self._observe(scope["method"], template, status, duration_s)
            _ACCESS_LOG.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_s": round(duration_s, 6),
                },
            )
