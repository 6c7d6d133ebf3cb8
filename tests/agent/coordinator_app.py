"""The real coordinator app for agent tests: a migrated SQLite database, served by uvicorn.

The server can be stopped and started again on the same port (a coordinator outage). Its
clock is the test's (:class:`SimClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from tests.ports import free_port

from heatgrid.coordinator.accounts import create_api_key, create_enrollment_code
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.settings import Settings


class SimClock:
    """Simulated time shared by the coordinator, the room and the agent [POSIX s]."""

    def __init__(self, now_ts: float) -> None:
        self.now_ts = now_ts

    def __call__(self) -> float:
        return self.now_ts


class ServedCoordinator:
    """The real coordinator app, served by uvicorn on a loopback port that can be stopped."""

    def __init__(
        self,
        database_url: str,
        checkpoints: Path,
        clock: SimClock,
        *,
        stratum_url: str | None = None,
        **overrides: Any,
    ) -> None:
        settings = Settings(
            database_url=database_url,
            checkpoint_url=str(checkpoints),
            heartbeat_interval_s=300.0,
            online_window_s=900.0,
            stratum_url=stratum_url,
            **overrides,
        )
        self.app = create_app(settings, clock=clock)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            assert not self._task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await self._task


@contextlib.asynccontextmanager
async def running(coordinator: ServedCoordinator) -> AsyncIterator[ServedCoordinator]:
    await coordinator.start()
    try:
        yield coordinator
    finally:
        await coordinator.stop()


def migrated_database(tmp_path: Path, clock: SimClock) -> tuple[str, str]:
    """Migrate a SQLite coordinator database; return its URL and a fresh enrollment code."""
    url = f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        create_api_key(session, name="alice", role="owner", scopes=None, now_ts=clock())
        code = create_enrollment_code(
            session, owner_name="alice", ttl_s=3600.0, actor=None, now_ts=clock()
        ).token
    engine.dispose()
    return url, code


@contextlib.contextmanager
def running_in_thread(coordinator: ServedCoordinator) -> Iterator[ServedCoordinator]:
    """Serve ``coordinator`` from a thread of its own (for code that runs its own event loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="coordinator")
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(coordinator.start(), loop).result()
        try:
            yield coordinator
        finally:
            asyncio.run_coroutine_threadsafe(coordinator.stop(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
