"""The runner's host side against the real coordinator: tasks run on the heat the room wants.

Real parts only: the coordinator app over SQLite on a loopback port, the daemon's control loop
on the wall clock, the CPU heater adapter, and each task in the bubblewrap sandbox with its
cgroup. The room is a reading the test sets: cold (heat wanted) or warm (none).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import textwrap
from pathlib import Path

import pytest
from tests.agent.cutting_proxy import CuttingProxy
from tests.agent.jobs_fleet import COLD_C, WARM_C, Coordinator, agent, pack, until

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import JobsSettings
from heatgrid.agent.workload import JobWorkload
from heatgrid.jobs.sdk import encode_checkpoint

_SANDBOX = pytest.mark.usefixtures("sandbox_ready")
_SLOW = pytest.mark.slow

STEPS_JOB = """
import time

def main(ctx):
    state = ctx.restore() or {"step": 0, "executed": 0, "runs": 0}
    state["runs"] += 1
    steps = int(ctx.params.get("steps", 40))
    while state["step"] < steps:
        if ctx.should_pause():
            ctx.checkpoint(state)
            return None
        time.sleep(float(ctx.params.get("step_s", 0.05)))
        state["step"] += 1
        state["executed"] += 1
        if state["step"] % 10 == 0:
            ctx.checkpoint(state)
        ctx.progress(state["step"] / steps, {"step": state["step"]})
    return {"steps": state["step"], "executed": state["executed"], "runs": state["runs"]}
"""

FAILING_JOB = """
import time

def main(ctx):
    for _ in range(20):
        time.sleep(0.05)
        ctx.progress(0.1, {})
    raise ValueError("the model diverged")
"""


def _job(root: Path, name: str, source: str) -> Path:
    job_dir = root / name
    job_dir.mkdir()
    (job_dir / "job.py").write_text(textwrap.dedent(source))
    (job_dir / "job.toml").write_text("[resources]\nmemory_mb = 256\ndisk_mb = 16\n")
    return job_dir


def _run(tmp_path: Path, scenario: object) -> None:
    asyncio.run(asyncio.wait_for(scenario(tmp_path), 300.0))  # type: ignore[operator]


@_SLOW
@_SANDBOX
def test_a_task_runs_to_completion_while_the_room_is_controlled_every_tick(
    tmp_path: Path,
) -> None:
    async def scenario(root: Path) -> None:
        artifacts = root / "artifacts"
        artifact = pack(_job(root, "steps", STEPS_JOB), artifacts)
        async with Coordinator(root) as coordinator:
            (task_id,) = await coordinator.submit(artifact, [{}])
            async with agent(coordinator, root, "a") as heater:
                await until(lambda: heater.workload.finished, "the task ended")
                running_ticks = heater.daemon.running_ticks

                def task_power_w() -> float:
                    query = "SELECT MAX(power_w) FROM telemetry WHERE task_id = ?"
                    return float(coordinator.query(query, task_id)[0][0] or 0.0)

                # the CPU idles at 10 W; its heat while the task ran is the task's CPU time
                await until(lambda: task_power_w() > 10.0, "the task's heat in the telemetry")
            task = coordinator.task(task_id)
            energy = coordinator.query(
                "SELECT energy_j FROM task_attempts WHERE task_id = ?", task_id
            )
            checkpoints = coordinator.query(
                "SELECT COUNT(*) FROM checkpoints WHERE task_id = ?", task_id
            )
        assert task["state"] == "completed", task
        assert json.loads(task["result"]) == {"steps": 40, "executed": 40, "runs": 1}
        assert running_ticks >= 5, "the control loop ticked on while the task ran"
        (outcome,) = heater.workload.finished[0].outcomes
        assert energy[0][0] > 0.0, "the attempt's energy was reported"
        assert energy[0][0] == pytest.approx(outcome.energy_j), "all of the run's CPU time"
        assert checkpoints[0][0] >= 1, "checkpoints were uploaded"
        assert heater.workload.finished[0].reported == "completed"

    _run(tmp_path, scenario)


@_SLOW
@_SANDBOX
def test_a_failing_task_is_reported_and_the_loop_never_stops(tmp_path: Path) -> None:
    async def scenario(root: Path) -> None:
        artifacts = root / "artifacts"
        artifact = pack(_job(root, "failing", FAILING_JOB), artifacts)
        async with Coordinator(root) as coordinator:
            (task_id,) = await coordinator.submit(artifact, [{}], max_attempts=1)
            async with agent(coordinator, root, "a") as heater:
                await until(lambda: heater.workload.finished, "the task ended")
                ticks_at_failure = heater.daemon.ticks
                running_ticks = heater.daemon.running_ticks
                await until(lambda: heater.daemon.ticks >= ticks_at_failure + 5, "more ticks")
                assert heater.workload.free_slots() == 1, "the heater moves on"
            task = coordinator.task(task_id)
        assert running_ticks >= 3, "the control loop ticked on while the task ran"
        assert task["state"] == "dead", task
        assert "ValueError: the model diverged" in task["last_error"]
        assert heater.workload.finished[0].reported == "failed"

    _run(tmp_path, scenario)


@_SLOW
@_SANDBOX
def test_a_warm_room_pauses_the_task_and_it_resumes_without_losing_a_step(
    tmp_path: Path,
) -> None:
    async def scenario(root: Path) -> None:
        artifacts = root / "artifacts"
        artifact = pack(_job(root, "steps", STEPS_JOB), artifacts)
        async with Coordinator(root) as coordinator:
            (task_id,) = await coordinator.submit(artifact, [{"steps": 60, "step_s": 0.1}])
            async with agent(coordinator, root, "a") as heater:
                await until(
                    lambda: (
                        any(s.runner is not None for s in heater.workload.slots.values())
                        and heater.workload.slots[task_id].outcomes == []
                        and heater.daemon.running_ticks > 5
                    ),
                    "the task runs",
                )
                heater.room_temp_c[0] = WARM_C
                await until(
                    lambda: heater.workload.slots[task_id].state == "paused", "the task paused"
                )
                slot = heater.workload.slots[task_id]
                assert slot.outcomes[-1].state == "paused"
                assert slot.uploaded_seq == slot.outcomes[-1].checkpoint_seq
                assert heater.daemon.last_result is not None
                assert all(p.power_w == 0.0 for p in heater.daemon.last_result.plans)
                heater.room_temp_c[0] = COLD_C
                await until(lambda: heater.workload.finished, "the task ended")
            task = coordinator.task(task_id)
        result = json.loads(task["result"])
        assert task["state"] == "completed", task
        assert result["steps"] == 60
        assert result["executed"] == 60, "no step was lost or done twice"
        assert result["runs"] == 2, "it stopped once and resumed from its checkpoint"

    _run(tmp_path, scenario)


@_SLOW
@_SANDBOX
def test_sigterm_checkpoints_the_task_and_another_heater_finishes_it(tmp_path: Path) -> None:
    async def scenario(root: Path) -> None:
        artifacts = root / "artifacts"
        artifact = pack(_job(root, "steps", STEPS_JOB), artifacts)
        async with Coordinator(root) as coordinator:
            # one attempt: the hand-back must not spend it (it would go to the dead letter)
            (task_id,) = await coordinator.submit(
                artifact, [{"steps": 60, "step_s": 0.1}], max_attempts=1
            )
            async with agent(coordinator, root, "a") as first:
                await until(
                    lambda: (
                        task_id in first.workload.slots
                        and first.workload.slots[task_id].runner is not None
                        and first.daemon.running_ticks > 5
                    ),
                    "the task runs on the first heater",
                )
            # leaving the block shut the first agent down as SIGTERM does
            (ended,) = first.workload.finished
            assert ended.reported == "handed back"
            handed = coordinator.task(task_id)
            assert handed["state"] == "queued", handed
            ((outcome,),) = coordinator.query(
                "SELECT outcome FROM task_attempts WHERE task_id = ?", task_id
            )
            assert outcome == "handed_back"
            assert handed["checkpoint_seq"] >= 1, handed
            async with agent(coordinator, root, "b") as second:
                await until(lambda: second.workload.finished, "the task ended on the second")
            task = coordinator.task(task_id)
        result = json.loads(task["result"])
        assert task["state"] == "completed", task
        assert result["executed"] == 60, "no step was lost or done twice"
        assert result["runs"] == 2

    _run(tmp_path, scenario)


@_SLOW
@_SANDBOX
def test_a_tampered_artifact_is_refused_and_the_heater_moves_on(tmp_path: Path) -> None:
    async def scenario(root: Path) -> None:
        artifact = pack(_job(root, "steps", STEPS_JOB), root / "artifacts")
        async with Coordinator(root) as coordinator:
            (task_id,) = await coordinator.submit(artifact, [{}], max_attempts=1)
            sha256 = artifact.name.split(".")[0]
            stored = root / "checkpoints" / "artifacts" / sha256[:2] / f"{sha256}.tar.gz"
            stored.write_bytes(b"\0" * stored.stat().st_size)  # the store's copy is damaged
            async with agent(coordinator, root, "a") as heater:
                await until(lambda: heater.workload.finished, "the task ended")
                ticks = heater.daemon.ticks
                await until(lambda: heater.daemon.ticks >= ticks + 5, "more ticks")
                assert heater.workload.free_slots() == 1, "the heater moves on"
            task = coordinator.task(task_id)
        assert task["state"] == "dead", task
        assert "corrupt or was tampered with" in task["last_error"], task
        assert heater.workload.finished[0].outcomes == [], "nothing ran"

    _run(tmp_path, scenario)


def test_a_new_agent_forgets_what_a_killed_one_left(tmp_path: Path) -> None:
    jobs = JobsSettings(enabled=True, dir=tmp_path / "jobs")
    leftover = jobs.dir / "work" / "task-0123456789ab" / "job"
    leftover.mkdir(parents=True)
    (jobs.dir / "tasks" / "t1" / "checkpoints").mkdir(parents=True)
    (jobs.dir / "artifacts").mkdir()
    workload = JobWorkload(
        jobs,
        client=CoordinatorClient("http://127.0.0.1:9"),
        identity=lambda: None,
        devices={},
        clock=lambda: 0.0,
    )
    assert not (jobs.dir / "work").exists()
    assert not (jobs.dir / "tasks").exists()
    assert (jobs.dir / "artifacts").is_dir(), "artifacts are kept"
    assert workload.free_slots() == 0, "no compute device: no task"


CHUNK_BYTES = 64 * 1024
BIG_CHECKPOINT_JOB = """
import random
import time

def main(ctx):
    if ctx.restore() is None:
        ctx.checkpoint(random.Random(7).randbytes(5 * 65536 - 100))  # five chunks
    for _ in range(2400):
        if ctx.should_pause():
            return None
        time.sleep(0.05)
    return {"done": True}
"""


def _uploaded_seq(workload: JobWorkload, task_id: str) -> int:
    slot = workload.slots.get(task_id)
    return 0 if slot is None else slot.uploaded_seq


@_SLOW
@_SANDBOX
def test_a_checkpoint_upload_cut_short_resumes_with_the_missing_chunks(tmp_path: Path) -> None:
    async def scenario(root: Path) -> None:
        artifact = pack(_job(root, "big", BIG_CHECKPOINT_JOB), root / "artifacts")
        async with (
            Coordinator(root) as coordinator,
            CuttingProxy(coordinator.port, b"PUT /v1/devices/", cut_at=3) as proxy,
        ):
            (task_id,) = await coordinator.submit(artifact, [{}])
            async with agent(
                coordinator, root, "a", url=proxy.url, checkpoint_chunk_bytes=CHUNK_BYTES
            ) as heater:
                await until(
                    lambda: _uploaded_seq(heater.workload, task_id) == 1,
                    "the checkpoint is uploaded after the dropped connection",
                )
                assert coordinator.task(task_id)["checkpoint_seq"] == 1
            ((sha256, size_bytes),) = coordinator.query(
                "SELECT sha256, size_bytes FROM checkpoints WHERE task_id = ?", task_id
            )
        blob = encode_checkpoint(random.Random(7).randbytes(5 * 65536 - 100))
        assert (sha256, size_bytes) == (hashlib.sha256(blob).hexdigest(), len(blob))
        assert proxy.cuts == 1, "the connection dropped in the third chunk's upload"
        # chunks 1 and 2 arrived before the drop and were not sent again: 3 (cut), 3, 4, 5
        assert proxy.seen == 6, proxy.seen

    _run(tmp_path, scenario)
