"""End to end: one real coordinator, three ``heatgrid agent`` processes in rooms, the sweep example.

The coordinator is the real app over SQLite on a loopback port (short leases, so that a lost
heater's task comes back within seconds). Each agent is a real ``heatgrid agent`` process with a
CPU heater and ``[jobs] enabled``; its room is a temperature sensor on a real mosquitto broker that
the test publishes for (cold: heat wanted, warm: none). The job is ``examples/sweep`` with three
tasks large enough to be caught running, uploaded once; the heaters fetch it by hash. One agent is
killed with SIGKILL while its task runs: the task completes on another heater, resumed from its
last uploaded checkpoint, with the very ``hits`` of an uninterrupted run. Another room turns warm:
its task is paused, checkpointed and handed back, and completes elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from tests.agent.jobs_fleet import COLD_C, WARM_C, Coordinator, pack, until

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.jobs.runner import forget_leftover_tasks
from heatgrid.protocol import v1

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sandbox_ready")]

EXAMPLE = Path(__file__).parents[2] / "examples" / "sweep"
SAMPLES, CHUNK = 40_000_000, 1_000_000
SEEDS = (11, 12, 13)

AGENT_TOML = """
heat_only = false

[coordinator]
url = "{url}"
heartbeat_interval_s = 1.0
backoff_initial_s = 0.2
backoff_max_s = 1.0

[state]
path = "{home}/state.sqlite3"

[sensor]
host = "{host}"
port = {port}
topic = "home/{name}/temperature"
key = "room_temp_c"

[thermostat]
setpoint_c = 21.0
min_on_s = 0.0
min_off_s = 0.0
tick_s = 0.2
grace_s = 30.0

[jobs]
enabled = true
dir = "{home}/jobs"
pause_after_s = 0.5
hand_back_after_s = 2.0
progress_interval_s = 0.5
pause_grace_s = 10.0
term_grace_s = 2.0

[[devices]]
type = "cpu"
name = "cpu"
idle_power_w = 10.0
max_power_w = 100.0
worker_count = 1
"""


def _expected_hits(seed: int) -> int:
    generator = np.random.Generator(np.random.PCG64(seed))
    hits = 0
    for _ in range(SAMPLES // CHUNK):
        points = generator.random((CHUNK, 2))
        hits += int(np.count_nonzero((points**2).sum(axis=1) <= 1.0))
    return hits


@asynccontextmanager
async def _agents(
    root: Path, names: list[str], url: str, broker: tuple[str, int]
) -> AsyncIterator[dict[str, subprocess.Popen[bytes]]]:
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in names:
            home = root / name
            config = home / "agent.toml"
            config.write_text(
                AGENT_TOML.format(
                    url=url,
                    home=home,
                    host=broker[0],
                    port=broker[1],
                    name=name,
                )
            )
            with (home / "agent.log").open("wb") as log:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        yield processes
    finally:
        # the agents hand their tasks back to the coordinator served on this event loop as they
        # stop, and the rooms' sensor publishes on it: wait for them in a thread, never on it
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.to_thread(process.wait, 60.0)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


async def _enroll(coordinator: Coordinator, home: Path) -> str:
    home.mkdir(parents=True)
    async with CoordinatorClient(coordinator.url) as client:
        answer = await client.enroll(
            v1.EnrollRequest(
                enrollment_code=coordinator.enrollment_code(),
                device_name=home.name,
                device_kind="cpu",
                hardware=v1.Hardware(max_power_w=100.0, min_power_w=14.5),
                has_room=True,
            )
        )
    with StateStore(home / "state.sqlite3") as store:
        store.save_identity(
            Identity(
                url=coordinator.url, device_id=answer.device_id, device_token=answer.device_token
            )
        )
    return answer.device_id


async def _rooms(broker: tuple[str, int], temps_c: dict[str, float], stop: asyncio.Event) -> None:
    """Publish each room's temperature, fresh, twice a second (the rooms' sensors).

    At QoS 0, as room sensors publish (Tasmota's and zigbee2mqtt's default): a reading lost or
    late is replaced half a second later, and a busy moment of the machine that delays the
    broker's acknowledgement cannot fail the sensor (it did with QoS 1, after 10 s).
    """
    async with aiomqtt.Client(broker[0], broker[1]) as client:
        while not stop.is_set():
            for name, temp_c in temps_c.items():
                payload = json.dumps({"room_temp_c": temp_c, "sample_ts": time.time()})
                await client.publish(f"home/{name}/temperature", payload, qos=0, retain=True)
            await asyncio.sleep(0.5)


def _logs(root: Path, names: list[str]) -> str:
    return "\n".join(
        f"--- {name}\n{(root / name / 'agent.log').read_text()[-4000:]}" for name in names
    )


async def _scenario(root: Path, broker: tuple[str, int]) -> None:
    artifact = pack(EXAMPLE, root / "artifacts")
    params: list[dict[str, object]] = [
        {"seed": seed, "samples": SAMPLES, "chunk": CHUNK} for seed in SEEDS
    ]
    names = ["kitchen", "study", "attic"]
    temps_c = dict.fromkeys(names, COLD_C)
    stop = asyncio.Event()
    async with Coordinator(root, lease_s=10.0) as coordinator:
        devices = {name: await _enroll(coordinator, root / name) for name in names}
        task_ids = await coordinator.submit(artifact, params)
        rooms = asyncio.create_task(_rooms(broker, temps_c, stop))
        try:
            async with _agents(root, names, coordinator.url, broker) as processes:
                by_device = {device: name for name, device in devices.items()}

                def running_with_checkpoint() -> list[tuple[str, str]]:
                    rows = coordinator.query(
                        "SELECT id, lease_device_id FROM tasks WHERE state = 'leased' "
                        "AND checkpoint_seq >= 1"
                    )
                    return [(task_id, by_device[device]) for task_id, device in rows]

                await until(lambda: len(running_with_checkpoint()) >= 2, "two tasks checkpointed")
                (killed_task, victim), (warm_task, warm_room) = running_with_checkpoint()[:2]
                processes[victim].send_signal(signal.SIGKILL)
                await asyncio.to_thread(processes[victim].wait)
                # the killed agent left its task's work directory and cgroup; what its next
                # start does removes them (the cgroup stayed behind here before). It freezes and
                # kills the task's processes and waits for them: in a thread, off this loop
                work = root / victim / "jobs" / "work"
                assert await asyncio.to_thread(forget_leftover_tasks, work) == 1
                temps_c[warm_room] = WARM_C
                try:
                    await until(
                        lambda: all(coordinator.task(t)["state"] == "completed" for t in task_ids),
                        "every task completed",
                    )
                except AssertionError:
                    raise AssertionError(_logs(root, names)) from None
                temps_c[warm_room] = COLD_C
        finally:
            stop.set()
            await rooms
        attempts = {
            task_id: coordinator.query(
                "SELECT attempt, device_id, outcome, error, start_progress_energy_j "
                "FROM task_attempts WHERE task_id = ? ORDER BY attempt",
                task_id,
            )
            for task_id in task_ids
        }
        results = {t: json.loads(coordinator.task(t)["result"]) for t in task_ids}
    for task_id, seed in zip(task_ids, SEEDS, strict=True):
        assert results[task_id]["hits"] == _expected_hits(seed), f"seed {seed}"
    killed = attempts[killed_task]
    assert killed[0][1] == devices[victim]
    assert killed[0][2] == "expired", killed
    assert killed[-1][1] != devices[victim], "it completed on another heater"
    assert killed[-1][4] > 0.0, "it resumed from a checkpoint, not from the start"
    warm = attempts[warm_task]
    assert warm[0][1] == devices[warm_room]
    assert warm[0][2] == "handed_back", warm
    assert warm[0][3].startswith("handed back: the room wanted no heat"), warm
    assert "another heater resumes it from the task's checkpoint" in warm[0][3], warm
    assert warm[-1][4] > 0.0, "it resumed from the checkpoint taken when the room got warm"
    assert processes[victim].returncode == -signal.SIGKILL


def test_the_sweep_completes_across_heaters_that_die_or_get_warm(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(asyncio.wait_for(_scenario(tmp_path, mosquitto_broker), 500.0))


async def _sigterm_scenario(
    root: Path, broker: tuple[str, int]
) -> tuple[int, list[tuple[str, str]]]:
    artifact = pack(EXAMPLE, root / "artifacts")
    stop = asyncio.Event()
    async with Coordinator(root, lease_s=60.0) as coordinator:
        await _enroll(coordinator, root / "den")
        (task_id,) = await coordinator.submit(
            artifact, [{"seed": 5, "samples": SAMPLES * 4, "chunk": CHUNK}]
        )
        rooms = asyncio.create_task(_rooms(broker, {"den": COLD_C}, stop))
        try:
            async with _agents(root, ["den"], coordinator.url, broker) as processes:
                await until(lambda: coordinator.task(task_id)["checkpoint_seq"] >= 2, "checkpoints")
                processes["den"].send_signal(signal.SIGTERM)
                status = await asyncio.to_thread(processes["den"].wait, 120.0)
        finally:
            stop.set()
            await rooms
        task = coordinator.task(task_id)
        attempts = coordinator.query(
            "SELECT outcome, error FROM task_attempts WHERE task_id = ?", task_id
        )
    assert task["state"] == "queued", task
    return status, attempts


def test_sigterm_checkpoints_the_running_task_and_hands_it_back(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    status, attempts = asyncio.run(
        asyncio.wait_for(_sigterm_scenario(tmp_path, mosquitto_broker), 300.0)
    )
    assert status == 0, _logs(tmp_path, ["den"])
    ((outcome, error),) = attempts
    assert outcome == "handed_back"
    assert error.startswith(
        "handed back: the heater stopped; another heater resumes it from the task's checkpoint"
    ), error
