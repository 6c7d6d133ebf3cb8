"""An emulated Auradine FluxOS miner on TCP: the GCMiner RPC and the FluxOS web API.

Why FluxOS. Of the firmwares pyasic 0.79 drives, this is the one whose pyasic backend
(``pyasic.miners.backends.auradine.Auradine``) both reads hashrate, power, power limit,
board temperatures and fans *and* writes a power target in watts (``set_power_limit`` →
``POST /mode {"mode": "custom", "tune": "power", "power": W}``), pauses and resumes
(``stop_mining``/``resume_mining`` → ``POST /mode {"sleep": "on"|"off"}``) and sets pools
(``send_config`` → ``POST /updatepools``), all over plain TCP and HTTP with stdlib-level
authentication (a login token). The others fall short in pyasic 0.79: LuxOS's hashrate reader
returns before parsing; Marathon's wattage reader likewise; ePIC has no ``set_power_limit``;
Avalon maps watts to three work levels; VNish and LuxOS set power only through tuned presets;
Braiins OS writes through gRPC (BOSer) or SSH (BOSMiner); Whatsminer's API v2 encrypts writes
with AES, and its API v3 needs AES for ``set.miner.pools`` while pyasic's v3 ``send_config``
cannot send it. FluxOS has no public API reference; the answers here follow the shapes
pyasic's Auradine backend and factory parse, with cgminer's conventions for the RPC.

How pyasic reaches it. Build the backend class directly and set its two ports, leaving
pyasic's global settings alone::

    from pyasic.miners.auradine import AuradineFluxAT1500

    miner = AuradineFluxAT1500("127.0.0.1")
    miner.rpc.port = emulator.rpc_port
    miner.web.port = emulator.web_port

The server is a thin adapter: each request moves the pure model
(:mod:`heatgrid.emulators.miner_model`) to the injected clock's present and answers from it.
Pool connections are not emulated: configured pools are reported alive, and hashing does not
wait for a pool. Fans set to a percentage all turn at that speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from heatgrid.core.errors import InputError, require_positive
from heatgrid.emulators import miner_model as model
from heatgrid.emulators._fluxos_device import FluxDevice, Identity
from heatgrid.emulators._fluxos_rpc import answer_rpc
from heatgrid.emulators._fluxos_web import answer_web
from heatgrid.emulators._http import HttpRequest, HttpResponse, serve_http_connection
from heatgrid.emulators._service import AsyncService

__all__ = ["DEFAULT_RPC_PORT", "DEFAULT_WEB_PORT", "MinerEmulator", "scaled_clock"]

DEFAULT_RPC_PORT = 4028
DEFAULT_WEB_PORT = 8080
_MAX_RPC_REQUEST_BYTES = 64 * 1024
_RPC_READ_TIMEOUT_S = 10.0
_RPC_IDLE_TIMEOUT_S = 0.5


def scaled_clock(speed: float, clock: Callable[[], float] = time.time) -> Callable[[], float]:
    """Return a clock that starts at ``clock()`` and runs ``speed`` times faster.

    Parameters
    ----------
    speed : float
        Emulated seconds per real second [-], > 0.
    clock : callable
        The underlying clock [POSIX s].

    Returns
    -------
    callable
        A function returning the emulated present [POSIX s].
    """
    speed = require_positive("speed", speed)
    start_ts = clock()
    start_mono_s = time.monotonic()
    return lambda: start_ts + speed * (time.monotonic() - start_mono_s)


class MinerEmulator(AsyncService):
    """An emulated FluxOS miner serving the GCMiner RPC and the web API.

    Parameters
    ----------
    params : MinerParams, optional
        The miner's physics (1.2 kW maximum, 300 W minimum by default).
    host : str
        Address both servers listen on; loopback by default.
    rpc_port : int
        TCP port of the GCMiner RPC (FluxOS uses 4028); 0 lets the OS choose.
    web_port : int
        TCP port of the web API (FluxOS uses 8080); 0 lets the OS choose.
    clock : callable
        Returns the present time [POSIX s]; use :func:`scaled_clock` to accelerate.
    web_user, web_password : str
        Web API credentials (pyasic's defaults for Auradine are admin/admin).
    identity : Identity, optional
        Model and firmware names reported.
    """

    def __init__(
        self,
        params: model.MinerParams | None = None,
        *,
        host: str = "127.0.0.1",
        rpc_port: int = DEFAULT_RPC_PORT,
        web_port: int = DEFAULT_WEB_PORT,
        clock: Callable[[], float] = time.time,
        web_user: str = "admin",
        web_password: str = "admin",
        identity: Identity | None = None,
    ) -> None:
        for name, port in (("rpc_port", rpc_port), ("web_port", web_port)):
            if not 0 <= port <= 65535:
                raise InputError(f"{name} must be between 0 and 65535, got {port!r}")
        self.params = params or model.MinerParams()
        self.device = FluxDevice(
            self.params,
            clock,
            identity=identity,
            web_user=web_user,
            web_password=web_password,
            host=host,
        )
        self._host = host
        self._ports = (rpc_port, web_port)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> model.MinerState:
        """The model's state at the clock's present (the emulator's truth)."""
        return self.device.view().state

    @property
    def rpc_port(self) -> int:
        """The RPC's bound TCP port (after :meth:`start`)."""
        return self._bound_port(0)

    @property
    def web_port(self) -> int:
        """The web API's bound TCP port (after :meth:`start`)."""
        return self._bound_port(1)

    async def start(self) -> None:
        """Bind both servers and start answering."""
        rpc = await asyncio.start_server(self._on_rpc, self._host, self._ports[0])
        try:
            web = await asyncio.start_server(self._on_web, self._host, self._ports[1])
        except OSError:
            rpc.close()
            await rpc.wait_closed()
            raise
        self._servers = [rpc, web]

    async def stop(self) -> None:
        """Stop listening, end open connections, and wait until both servers are closed."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled, then stop."""
        if not self._servers:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def _bound_port(self, index: int) -> int:
        if not self._servers:
            raise RuntimeError("the emulator is not started")
        port: int = self._servers[index].sockets[0].getsockname()[1]
        return port

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _on_rpc(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        try:
            request = await _read_rpc_request(reader)
            if request:
                writer.write(answer_rpc(request, self.device.view()))
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _on_web(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        await serve_http_connection(reader, writer, self._answer_web)

    async def _answer_web(self, request: HttpRequest) -> HttpResponse:
        return await answer_web(request, self.device)


async def _read_rpc_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request as cgminer does: one read, continued only while JSON is incomplete."""
    async with asyncio.timeout(_RPC_READ_TIMEOUT_S):
        data = await reader.read(4096)
    while (
        data.strip().startswith(b"{")
        and not _complete_json(data.strip())
        and len(data) < _MAX_RPC_REQUEST_BYTES
    ):
        try:
            async with asyncio.timeout(_RPC_IDLE_TIMEOUT_S):
                chunk = await reader.read(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _complete_json(data: bytes) -> bool:
    try:
        json.loads(data.rstrip(b"\x00"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True
