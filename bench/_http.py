"""A small HTTP/1.1 keep-alive client on asyncio streams, for the load generator.

A general client (httpx) spends more CPU per request than the server under test, so one load
generator process could not saturate the server, and the echo baseline would measure the
client. This client does only what the benchmark needs: one request at a time per connection,
a JSON body, and an answer with ``Content-Length`` (what uvicorn sends for FastAPI's JSON
answers). Anything else is an error, not a guess.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Connection", "HttpError"]

_HEADER_END = b"\r\n\r\n"


class HttpError(RuntimeError):
    """The server's answer is not one this client reads (or the connection broke)."""


class Connection:
    """One keep-alive connection to ``host:port``; reopened after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def post(self, path: str, body: bytes, token: str | None = None) -> tuple[int, bytes]:
        """Send ``POST path`` with a JSON ``body``; return the status code and answer body."""
        reader, writer = await self._open()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            header = await reader.readuntil(_HEADER_END)
            status, length, close = _parse_header(header)
            answer = await reader.readexactly(length)
        except HttpError:
            await self.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            await self.close()
            raise HttpError(f"POST {path}: connection failed: {error!r}") from None
        if close:
            await self.close()
        return status, answer


def _parse_header(header: bytes) -> tuple[int, int, bool]:
    """Return (status, content length, server closes) of an answer's header block."""
    lines = header.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {lines[0]!r}")
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding":
            raise HttpError(f"transfer-encoding {value.strip()!r} is not supported here")
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length is None:
        raise HttpError("the answer has no Content-Length")
    return int(parts[1]), length, close
