"""A real coordinator and in-process agents that run job tasks, for the workload's tests.

The coordinator is the real app on a migrated SQLite database served by uvicorn on a loopback
port, on the wall clock. Each agent is a real :class:`AgentDaemon` with a real CPU heater
adapter and a :class:`JobWorkload` that runs tasks in the real sandbox; its room is a reading
the test sets (cold: heat wanted; warm: none).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from tests.agent.coordinator_app import free_port

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import AgentConfig, parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.devices.base import HeatDevice
from heatgrid.agent.enroll import enroll_request
from heatgrid.agent.loop import TickResult
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.open_devices import open_devices
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.agent.workload import JobWorkload
from heatgrid.coordinator.accounts import create_api_key, create_enrollment_code
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.settings import Settings
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.protocol.jobs import ArtifactRef

WAIT_S = 120.0  # an upper bound against hanging, not a timing requirement
COLD_C, WARM_C = 17.0, 25.0

AGENT_CONFIG = """
heat_only = false

[coordinator]
heartbeat_interval_s = 0.5
backoff_initial_s = 0.2
backoff_max_s = 1.0

[sensor]
topic = "unused: the room is read in-process"

[thermostat]
setpoint_c = 21.0
min_on_s = 0.0
min_off_s = 0.0
tick_s = 0.1
telemetry_interval_s = 0.5

[jobs]
enabled = true
pause_after_s = {pause_after_s}
hand_back_after_s = {hand_back_after_s}
progress_interval_s = 0.3
pause_grace_s = 10.0
term_grace_s = 2.0

[[devices]]
type = "cpu"
name = "cpu"
idle_power_w = 10.0
max_power_w = 100.0
worker_count = 1
period_s = 0.1
"""


class Coordinator:
    """The real coordinator on loopback, with a submitter's key and an enrollment code maker."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        lease_s: float = 30.0,
        owners: tuple[str, ...] = ("alice",),
        verify_results: bool = False,
    ) -> None:
        self.database_url = f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
        engine = make_engine(self.database_url)
        upgrade(engine)
        self._sessions = make_session_factory(engine)
        with self._sessions() as session:
            for owner in owners:
                create_api_key(session, name=owner, role="owner", scopes=None, now_ts=time.time())
            self.submitter_key = create_api_key(
                session, name="carol", role="submitter", scopes=None, now_ts=time.time()
            ).token
        settings = Settings(
            database_url=self.database_url,
            checkpoint_url=str(tmp_path / "checkpoints"),
            heartbeat_interval_s=0.5,
            online_window_s=60.0,
            lease_s=lease_s,
            retry_base_s=0.5,
            retry_max_s=1.0,
            expiry_interval_s=0.5,
            verify_results=verify_results,
        )
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def enrollment_code(self, owner: str = "alice") -> str:
        with self._sessions() as session:
            return create_enrollment_code(
                session, owner_name=owner, ttl_s=3600.0, actor=None, now_ts=time.time()
            ).token

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        path = self.database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as db:
            return db.execute(sql, args).fetchall()

    def task(self, task_id: str) -> dict[str, Any]:
        row = self.query(
            "SELECT state, attempt, checkpoint_seq, result, last_error FROM tasks WHERE id = ?",
            task_id,
        )[0]
        return dict(
            zip(("state", "attempt", "checkpoint_seq", "result", "last_error"), row, strict=True)
        )

    async def submit(
        self,
        artifact: Path,
        params: list[dict[str, object]],
        *,
        max_attempts: int = 5,
        input_urls: dict[str, str] | None = None,
        verify_rel_l2: float | None = None,
    ) -> list[str]:
        """Upload the packed job ``artifact``, submit one task per ``params``; return task ids."""
        ref = ArtifactRef(sha256=artifact.name.split(".")[0], size_bytes=artifact.stat().st_size)
        body = {
            "name": "test job",
            "device_kinds": ["cpu"],
            "max_attempts": max_attempts,
            "checkpoint_every_j": 10.0,
            "artifact": ref.model_dump(),
            "tasks": [{"task_input": task, "energy_j": 50.0} for task in params],
            "input_urls": input_urls or {},
        }
        if verify_rel_l2 is not None:
            body["verify_rel_l2"] = verify_rel_l2
        headers = {"Authorization": f"Bearer {self.submitter_key}"}
        async with httpx.AsyncClient(base_url=self.url) as http:
            uploaded = await http.put(
                f"/v1/artifacts/{ref.sha256}", content=artifact.read_bytes(), headers=headers
            )
            assert uploaded.status_code in {200, 201}, uploaded.text
            answer = await http.post("/v1/jobs", json=body, headers=headers)
            assert answer.status_code == 201, answer.text
            job = (await http.get(f"/v1/jobs/{answer.json()['job_id']}", headers=headers)).json()
        return [task["task_id"] for task in job["tasks"]]

    async def __aenter__(self) -> Coordinator:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            assert not self._task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await self._task


class CountingDaemon(AgentDaemon):
    """The real daemon; counts its ticks and remembers the workload state at each."""

    ticks: int = 0
    running_ticks: int = 0

    async def tick(self) -> TickResult:
        result = await super().tick()
        self.ticks += 1
        workload = self._workload
        if isinstance(workload, JobWorkload) and any(
            slot.state == "running" for slot in workload.slots.values()
        ):
            self.running_ticks += 1
        return result


@dataclass
class Agent:
    """One heater: daemon, workload, the room temperature the test sets, and how to stop it."""

    daemon: CountingDaemon
    workload: JobWorkload
    client: CoordinatorClient
    store: StateStore
    devices: list[HeatDevice]
    room_temp_c: list[float] = field(default_factory=lambda: [COLD_C])
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    run_task: asyncio.Task[None] | None = None

    async def shutdown(self) -> None:
        """Stop as on SIGTERM: the daemon's run ends with its shutdown (tasks checkpointed)."""
        self.stop.set()
        if self.run_task is not None:
            await self.run_task
        for device in self.devices:
            await device.aclose()
        await self.client.aclose()
        self.store.close()


@contextlib.asynccontextmanager
async def agent(
    coordinator: Coordinator,
    root: Path,
    name: str,
    *,
    pause_after_s: float = 0.5,
    hand_back_after_s: float = 600.0,
    room_temp_c: float = COLD_C,
    owner: str = "alice",
    client_class: type[CoordinatorClient] = CoordinatorClient,
    url: str | None = None,
    checkpoint_chunk_bytes: int | None = None,
    allow_private_inputs: bool = False,
) -> AsyncIterator[Agent]:
    """Enroll and run one agent until the block ends (then shut it down as on SIGTERM).

    It enrolls for ``owner`` and talks to the coordinator through a ``client_class``;
    ``url`` reaches the coordinator another way (a proxy); ``checkpoint_chunk_bytes`` and
    ``allow_private_inputs`` set ``[jobs]``'s.
    """
    home = root / name
    home.mkdir(parents=True)
    text = AGENT_CONFIG.format(pause_after_s=pause_after_s, hand_back_after_s=hand_back_after_s)
    text += f'\n[state]\npath = "{home / "state.sqlite3"}"\n'
    config: AgentConfig = parse_config(text, environ={})
    jobs = config.jobs.model_copy(update={"dir": home / "jobs"})
    jobs = jobs.model_copy(update={"allow_private_inputs": allow_private_inputs})
    if checkpoint_chunk_bytes is not None:
        jobs = jobs.model_copy(update={"checkpoint_chunk_bytes": checkpoint_chunk_bytes})
    config = config.model_copy(update={"jobs": jobs})
    client = client_class(url or coordinator.url, timeout_s=10.0)
    # off the event loop: the coordinator serves on this loop, and a write that waited for
    # SQLite's lock here would block the request holding it ("database is locked" after 30 s)
    code = await asyncio.to_thread(coordinator.enrollment_code, owner)
    answer = await client.enroll(enroll_request(config, code))
    store = StateStore(home / "state.sqlite3")
    store.save_identity(
        Identity(url=client.url, device_id=answer.device_id, device_token=answer.device_token)
    )
    devices = await open_devices(config, time.time)
    holder = Agent(
        daemon=None,  # type: ignore[arg-type]
        workload=None,  # type: ignore[arg-type]
        client=client,
        store=store,
        devices=list(devices),
        room_temp_c=[room_temp_c],
    )

    def identity() -> tuple[str, str]:
        return answer.device_id, answer.device_token

    holder.workload = JobWorkload(
        config.jobs,
        client=client,
        identity=identity,
        devices={device.name: device for device in devices},
        clock=time.time,
    )

    def room() -> TemperatureReading:
        now_ts = time.time()
        return TemperatureReading(
            room_temp_c=holder.room_temp_c[0], reading_ts=now_ts, received_ts=now_ts
        )

    holder.daemon = CountingDaemon(
        config,
        devices=devices,
        room=room,
        store=store,
        client=client,
        clock=time.time,
        workload=holder.workload,
    )
    holder.run_task = asyncio.create_task(holder.daemon.run(holder.stop))
    try:
        yield holder
    finally:
        await holder.shutdown()


def pack(job_dir: Path, artifact_dir: Path) -> Path:
    """Pack ``job_dir`` into ``artifact_dir``; return the artifact's path."""
    return artifact_path(artifact_dir, pack_job(job_dir, artifact_dir).sha256)


async def until(condition: Any, what: str) -> None:
    """Wait until ``condition()`` is true; fail after :data:`WAIT_S` (a hang, not a timing)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)
