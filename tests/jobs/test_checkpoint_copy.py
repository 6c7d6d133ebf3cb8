"""Copying a checkpoint out of the sandbox never holds up the runner's supervision.

The runner copies, hashes and fsyncs every checkpoint a task saves; a large one takes seconds.
While a copy runs, a pause request and the heat command (duty-cycling with the freezer) must
still be acted on. The copy is held open here by a seam (``runner._copy_fd`` waits for the
test), so that the order of events, not a wall-clock threshold, shows what waited on what.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from heatgrid.jobs import runner as runner_module
from heatgrid.jobs.runner import MARK_SUFFIX
from heatgrid.jobs.sdk import CHECKPOINT_DIR, CONTROL_DIR, decode_checkpoint
from heatgrid.protocol.jobs import CheckpointMark, TaskRunOutcome, TaskRunProgress

_WAIT_S = 30.0
"""How long the test waits for an event before it gives up and lets the copy end [s]: a
bound on a hang, not a measurement (the order of the events is what is asserted)."""

_PAUSING = """
    import time

    def main(ctx):
        ctx.checkpoint(b"first" * 1000)
        while not ctx.should_pause():
            time.sleep(0.01)
        ctx.progress(0.5, {"saw_pause": 1.0})  # sent with the checkpoint's report
        ctx.checkpoint(b"last")
        return None
"""


@dataclass
class _HeldCopy:
    """Holds the runner's first checkpoint copy until :meth:`release`; records the events."""

    events: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()

    def copy(self, real: Callable[..., tuple[int, str]]) -> Callable[..., tuple[int, str]]:
        def held(source_fd: int, target: Path, max_bytes: int, *, durable: bool = False):
            if not durable or self.started.is_set():  # outputs, and later checkpoints
                return real(source_fd, target, max_bytes, durable=durable)
            self.events.append("copy started")
            self.started.set()
            self.released.wait(timeout=4 * _WAIT_S)
            copied = real(source_fd, target, max_bytes, durable=durable)
            self.events.append("copy ended")
            return copied

        return held


@pytest.fixture
def held_copy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_HeldCopy]:
    held = _HeldCopy()
    monkeypatch.setattr(runner_module, "_copy_fd", held.copy(runner_module._copy_fd))
    yield held
    held.release()  # never leave the runner's thread waiting


def _wait_for(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def _start(runner: runner_module.TaskRunner) -> tuple[threading.Thread, list[TaskRunOutcome]]:
    outcomes: list[TaskRunOutcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(runner.run()), daemon=True)
    thread.start()
    return thread, outcomes


def test_a_pause_is_acted_on_while_a_checkpoint_is_being_copied(jobs, held_copy) -> None:
    def on_progress(progress: TaskRunProgress) -> None:
        if progress.metrics.get("saw_pause"):
            held_copy.events.append("task saw pause")

    runner = jobs.runner(jobs.write(_PAUSING), on_progress=on_progress)
    thread, outcomes = _start(runner)
    assert held_copy.started.wait(timeout=4 * _WAIT_S), "the task saved no checkpoint"
    runner.request_pause()
    _wait_for(lambda: "task saw pause" in held_copy.events)
    held_copy.release()
    thread.join(timeout=4 * _WAIT_S)
    assert held_copy.events == ["copy started", "task saw pause", "copy ended"]
    (outcome,) = outcomes
    assert outcome.state == "paused", outcome.message
    assert outcome.checkpoint_seq == 2
    assert outcome.checkpoint_count == 2  # the held copy is kept too, once complete
    kept = {path.name: path.read_bytes() for path in runner.checkpoint_dir.glob("*.ckpt")}
    assert sorted(kept) == ["1.ckpt", "2.ckpt"]
    assert decode_checkpoint(kept["1.ckpt"]) == b"first" * 1000
    assert decode_checkpoint(kept["2.ckpt"]) == b"last"
    assert not list(runner.checkpoint_dir.glob("*.partial"))


def test_the_heat_command_freezes_the_task_while_a_checkpoint_is_being_copied(
    jobs, held_copy
) -> None:
    runner = jobs.runner(jobs.write(_PAUSING))
    thread, outcomes = _start(runner)
    assert held_copy.started.wait(timeout=4 * _WAIT_S), "the task saved no checkpoint"
    runner.set_duty(0.0)  # the room is warm: no heat
    assert runner.cgroup is not None
    cgroup = runner.cgroup
    if _wait_for(cgroup.frozen):
        held_copy.events.append("task frozen")
    held_copy.release()
    _wait_for(lambda: "copy ended" in held_copy.events)
    runner.request_pause()  # thaws it, and it pauses
    thread.join(timeout=4 * _WAIT_S)
    assert held_copy.events == ["copy started", "task frozen", "copy ended"]
    (outcome,) = outcomes
    assert outcome.state == "paused", outcome.message
    assert outcome.checkpoint_seq == 2


def _keeper(
    job_dir: Path, checkpoint_dir: Path, kept: list[int]
) -> runner_module._CheckpointKeeper:
    return runner_module._CheckpointKeeper(
        job_dir=job_dir,
        checkpoint_dir=checkpoint_dir,
        max_bytes=1 << 20,
        on_kept=kept.append,
        on_mismatch=lambda message: kept.append(-1),
    )


def _save(job_dir: Path, seq: int, blob: bytes) -> runner_module._Reported:
    """Save checkpoint ``seq`` as the SDK does (the two newest files kept)."""
    import hashlib  # noqa: PLC0415 - one use

    directory = job_dir / CONTROL_DIR / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{seq}.ckpt").write_bytes(blob)
    (directory / f"{seq - 2}.ckpt").unlink(missing_ok=True)
    mark = CheckpointMark(step=seq * 100)
    return runner_module._Reported(seq, hashlib.sha256(blob).hexdigest(), mark)


def test_checkpoints_reported_during_a_long_copy_wait_in_a_bounded_queue(
    tmp_path: Path, held_copy: _HeldCopy
) -> None:
    """While checkpoint 1 is copied, 2, 3 and 4 are reported: 2 is dropped (its file is gone
    in the sandbox once 4 is saved), 3 and 4 are kept; no mark of a dropped or pruned one
    stays, and the queue never waits the one who submits."""
    job_dir, checkpoint_dir, kept = tmp_path / "job", tmp_path / "checkpoints", []
    keeper = _keeper(job_dir, checkpoint_dir, kept)
    keeper.submit(_save(job_dir, 1, b"one"))
    assert held_copy.started.wait(timeout=_WAIT_S)
    for seq in (2, 3, 4):
        keeper.submit(_save(job_dir, seq, bytes([seq]) * 10))
    held_copy.release()
    keeper.close()
    keeper.check()
    assert kept == [1, 3, 4]
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == [
        "3.ckpt",
        f"3{MARK_SUFFIX}",
        "4.ckpt",
        f"4{MARK_SUFFIX}",
    ]
    assert (checkpoint_dir / "4.ckpt").read_bytes() == bytes([4]) * 10


def test_a_checkpoint_that_does_not_match_its_hash_is_not_kept(tmp_path: Path) -> None:
    job_dir, checkpoint_dir, kept = tmp_path / "job", tmp_path / "checkpoints", []
    keeper = _keeper(job_dir, checkpoint_dir, kept)
    reported = _save(job_dir, 1, b"one")
    keeper.submit(runner_module._Reported(1, "0" * 64, reported.mark))
    keeper.close()
    assert kept == [-1]
    assert list(checkpoint_dir.iterdir()) == []


def _sleeping_runner(tmp_path: Path, **limits: object) -> runner_module.TaskRunner:
    from heatgrid.protocol.jobs import ArtifactRef, TaskRun  # noqa: PLC0415 - these tests only

    ref = ArtifactRef(sha256="0" * 64, size_bytes=1)
    return runner_module.TaskRunner(
        tmp_path / "artifact",
        TaskRun(artifact=ref),
        checkpoint_dir=tmp_path / "checkpoints",
        output_dir=tmp_path / "outputs",
        limits=runner_module.RunLimits(**limits),  # type: ignore[arg-type]
        work_root=tmp_path / "work",
    )


def test_the_loop_sleeps_until_the_next_thing_due(tmp_path: Path) -> None:
    """The supervision loop sleeps until what is due first (never past the next disk
    measure): a duty cycle's edge, the time limit, a grace time's end; while it kills, or
    once something is overdue, it looks again soon."""
    runner = _sleeping_runner(tmp_path, time_s=100.0, pause_grace_s=5.0, term_grace_s=2.0)
    loop = runner_module._Loop(started=1000.0, last_disk=1000.0)
    wait = runner._wait_s
    assert wait(loop, 1000.05, pause=False, duty=1.0) == pytest.approx(0.2)  # the disk
    assert wait(loop, 1000.05, pause=False, duty=0.1) == pytest.approx(0.05)  # the edge at .1
    assert wait(loop, 1000.15, pause=False, duty=0.1) == pytest.approx(0.1)  # the disk at .25
    loop = runner_module._Loop(started=1000.0, last_disk=1099.9)
    assert wait(loop, 1099.95, pause=False, duty=1.0) == pytest.approx(0.05)  # the time limit
    loop.frozen_since = 1099.0  # frozen time does not count: the limit is not near
    assert wait(loop, 1099.95, pause=False, duty=1.0) == pytest.approx(0.2)
    loop = runner_module._Loop(started=1000.0, last_disk=1010.0, pause_sent=1005.1)
    assert wait(loop, 1010.0, pause=True, duty=0.1) == pytest.approx(0.1)  # SIGTERM due
    loop.term_sent, loop.last_disk = 1010.1, 1011.9
    assert wait(loop, 1012.0, pause=True, duty=1.0) == pytest.approx(0.1)  # the kill due
    assert wait(loop, 1012.2, pause=True, duty=1.0) == runner_module._TICK_S  # killing
    runner._stop_with("killed", "a test")
    loop = runner_module._Loop(started=1000.0, last_disk=1000.0)
    assert wait(loop, 1000.05, pause=False, duty=1.0) == runner_module._TICK_S
