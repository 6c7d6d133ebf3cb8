"""A TCP proxy on a loopback port that drops one connection in the middle of a request.

It forwards every connection to the target port and counts the requests whose bytes contain
``marker`` (client to server). At the ``cut_at``-th such request it forwards half of what it
has of it and then resets both sides: the client sees its connection drop mid-upload, the
server a request cut short. Later requests pass untouched.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target_port``; cut one request (see module)."""

    def __init__(self, target_port: int, marker: bytes, cut_at: int) -> None:
        self.target_port = target_port
        self.marker = marker
        self.cut_at = cut_at
        self.seen = 0
        """Requests with the marker seen so far, the one cut included."""
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        down = asyncio.create_task(self._copy(server_reader, client_writer))
        up = asyncio.create_task(self._upstream(client_reader, server_writer, client_writer))
        self._pipes.update((down, up))
        try:
            await asyncio.wait((down, up), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in (down, up):
                pipe.cancel()
            await asyncio.gather(down, up, return_exceptions=True)
            self._pipes.difference_update((down, up))
            for writer in (client_writer, server_writer):
                writer.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _upstream(
        self,
        reader: asyncio.StreamReader,
        server: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        tail = b""
        while data := await reader.read(65536):
            found = (tail + data).count(self.marker)  # the tail is too short to hold one
            tail = (tail + data)[-(len(self.marker) - 1) :]
            if self.seen < self.cut_at <= self.seen + found:
                self.seen += found
                self.cuts += 1
                server.write(data[: len(data) // 2])
                with contextlib.suppress(ConnectionError):
                    await server.drain()
                for writer in (server, client):
                    writer.transport.abort()  # a reset, not a clean close
                return
            self.seen += found
            server.write(data)
            await server.drain()
