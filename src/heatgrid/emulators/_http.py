"""Just enough HTTP/1.1 on asyncio streams for an emulated device's web API.

One request per connection (the answer says ``Connection: close``), bodies by
``Content-Length`` only, and bounded sizes: a malformed or oversized request gets a 400 and
the connection is closed; the server keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["HttpRequest", "HttpResponse", "serve_http_connection"]

_MAX_HEAD_BYTES = 16 * 1024
_MAX_BODY_BYTES = 256 * 1024
_READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request: method, path (query removed), lower-cased headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    """A JSON answer: HTTP status code and the JSON document."""

    status: int
    document: dict[str, Any]


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _BadRequestError(Exception):
    pass


async def serve_http_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Read one request from ``reader``, answer it with ``handler``, and close the connection."""
    try:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request = await _read_request(reader)
        except (_BadRequestError, asyncio.LimitOverrunError, ValueError, UnicodeDecodeError):
            response = HttpResponse(HTTPStatus.BAD_REQUEST, {"error": "bad request"})
        else:
            if request is None:
                return
            response = await handler(request)
        writer.write(_encode(response))
        await writer.drain()
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    if len(head) > _MAX_HEAD_BYTES:
        raise _BadRequestError
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequestError
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequestError
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _BadRequestError
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= _MAX_BODY_BYTES:
        raise _BadRequestError
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(method.upper(), target.split("?", 1)[0], headers, body)


def _encode(response: HttpResponse) -> bytes:
    body = json.dumps(response.document).encode("utf-8")
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
