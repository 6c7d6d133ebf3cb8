"""The job SDK's context over real pipes, as the runner's host side sees it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from heatgrid.jobs import sdk
from heatgrid.jobs.sdk import JobContext, decode_checkpoint, encode_checkpoint


def _job_root(tmp_path: Path, **task: object) -> Path:
    control = tmp_path / ".heatgrid"
    control.mkdir()
    base = {"task_index": 3, "params": {"x": 1.5}, "device": "cpu", "inputs": ["data.csv"]}
    (control / "task.json").write_text(json.dumps(base | task))
    return tmp_path


@pytest.fixture
def pipes() -> tuple[int, int, int, int]:
    control_read, control_write = os.pipe()
    report_read, report_write = os.pipe()
    yield control_read, control_write, report_read, report_write
    for fd in (control_read, control_write, report_read, report_write):
        os.close(fd)


def _reports(fd: int) -> list[dict[str, object]]:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_context_gives_the_task_and_reports_progress(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    assert (ctx.task_index, ctx.params, ctx.device) == (3, {"x": 1.5}, "cpu")
    assert ctx.inputs == {"data.csv": tmp_path / "inputs" / "data.csv"}
    assert ctx.output_dir == tmp_path / "outputs"
    assert ctx.output_dir.is_dir()
    assert ctx.restore() is None
    ctx.progress(0.25, {"loss": 0.5})
    assert _reports(report_read) == [
        {"type": "progress", "fraction": 0.25, "metrics": {"loss": 0.5}}
    ]


def test_checkpoints_are_files_the_runner_is_told_of(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    assert ctx.checkpoint({"step": 1}) == 1
    assert ctx.checkpoint(b"raw") == 2
    assert ctx.checkpoint({"step": 3}) == 3
    reports = _reports(report_read)
    assert [report["seq"] for report in reports] == [1, 2, 3]
    kept = sorted(path.name for path in (tmp_path / ".heatgrid" / "checkpoints").iterdir())
    assert kept == ["2.ckpt", "3.ckpt"]  # older ones are pruned
    assert ctx.restore() == {"step": 3}
    assert decode_checkpoint((tmp_path / ".heatgrid/checkpoints/2.ckpt").read_bytes()) == b"raw"


def test_restore_reads_the_checkpoint_the_runner_placed(tmp_path, pipes) -> None:
    control_read, _, _, report_write = pipes
    root = _job_root(tmp_path, checkpoint_seq=7)
    (root / ".heatgrid" / "restore.ckpt").write_bytes(encode_checkpoint({"step": 70}))
    ctx = JobContext(root, control_read, report_write)
    assert ctx.restore() == {"step": 70}
    assert ctx.checkpoint({"step": 80}) == 8


def test_should_pause_follows_the_runner(tmp_path, pipes) -> None:
    control_read, control_write, _, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    assert not ctx.should_pause()
    os.write(control_write, b'{"type":"pause"}\n')
    deadline = time.monotonic() + 10.0
    while not ctx.should_pause():  # the context's thread sets the flag when the line arrives
        assert time.monotonic() < deadline, "the pause request was never seen"
        time.sleep(0.001)
    assert ctx.pause_seen


def test_a_closed_contexts_thread_never_takes_a_later_pipes_pause(tmp_path) -> None:
    # A caller that closes a context's pipe frees its descriptor number for the next pipe;
    # the context's thread must not read that number (it read the caller's descriptor once,
    # and took the next test's pause request: a flaky test_should_pause_follows_the_runner)
    root = _job_root(tmp_path)
    for round_ in range(30):
        control_read, control_write = os.pipe()
        report_read, report_write = os.pipe()
        JobContext(root, control_read, report_write)
        for fd in (control_read, report_read, report_write):
            os.close(fd)
        os.write(control_write, b'{"type":"progress"}\n')  # wakes the thread, then EOF
        os.close(control_write)
        control_read, control_write = os.pipe()
        report_read, report_write = os.pipe()
        try:
            ctx = JobContext(root, control_read, report_write)
            os.write(control_write, b'{"type":"pause"}\n')
            deadline = time.monotonic() + 10.0
            while not ctx.should_pause():
                assert time.monotonic() < deadline, f"round {round_}: pause taken by another"
                time.sleep(0.001)
        finally:
            for fd in (control_read, control_write, report_read, report_write):
                os.close(fd)


def test_should_pause_reads_the_clock_about_once_per_progress_report(
    tmp_path, pipes, monkeypatch
) -> None:
    # a job calls should_pause every step; a clock read there was 0.5 % of a short step
    control_read, _, _, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    reads: list[float] = []

    def monotonic() -> float:
        reads.append(1000.0 + len(reads) * 1e-6)  # a fast job: no report is due again
        return reads[-1]

    monkeypatch.setattr(sdk, "time", SimpleNamespace(monotonic=monotonic))
    for step in range(1, 1001):
        assert not ctx.should_pause()
        if step % 10 == 0:
            ctx.progress(step / 1000, {"step": step})
    # progress reads it once, and the next should_pause once (a held report may be due)
    assert len(reads) <= 2 * 100


def test_progress_reaches_the_runner_at_most_ten_times_a_second(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    started = time.monotonic()
    for step in range(1, 2001):
        ctx.progress(step / 4000, {"step": step})
    elapsed_s = time.monotonic() - started
    ctx.flush()
    ctx.progress(1.0, {"step": 4000})  # the last one goes at once
    steps = [report["metrics"]["step"] for report in _reports(report_read)]
    assert steps[0] == 1  # the first goes at once
    assert steps[-2:] == [2000, 4000]  # the held one is flushed, then the final one
    assert steps == sorted(steps)
    assert len(steps) <= 3 + elapsed_s / 0.1  # not one report per call


@pytest.mark.parametrize(
    ("fraction", "metrics", "message"),
    [
        (1.5, None, "fraction must be between 0 and 1"),
        (float("nan"), None, "fraction must be between 0 and 1"),
        (0.5, {"loss": float("inf")}, "metric 'loss' is not finite"),
    ],
)
def test_bad_progress_is_refused(tmp_path, pipes, fraction, metrics, message) -> None:
    control_read, _, _, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    with pytest.raises(ValueError, match=message):
        ctx.progress(fraction, metrics)


def test_checkpoint_decoding_refuses_foreign_bytes() -> None:
    with pytest.raises(ValueError, match="not a heatgrid checkpoint"):
        decode_checkpoint(b"\x80\x04junk")


def test_a_held_progress_report_goes_out_while_the_job_polls_should_pause(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    ctx.progress(0.1, {"step": 1})
    ctx.progress(0.2, {"step": 2})  # held: the first went out just now
    time.sleep(0.11)  # past the 0.1 s between reports (and the 20 ms between pipe reads)
    assert not ctx.should_pause()
    assert [report["metrics"]["step"] for report in _reports(report_read)] == [1, 2]


def test_a_replay_stops_once_it_checkpointed_its_stop_step(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    root = _job_root(tmp_path, checkpoint_seq=2, stop_step=200)
    (root / ".heatgrid" / "restore.ckpt").write_bytes(encode_checkpoint({"step": 100}))
    ctx = JobContext(root, control_read, report_write)
    assert (ctx.stop_step, ctx.restore()) == (200, {"step": 100})
    ctx.checkpoint({"step": 150}, step=150)
    assert not ctx.should_pause()
    ctx.checkpoint({"step": 200}, step=200)
    assert ctx.should_pause()  # no pause request: the segment is done
    assert [report["step"] for report in _reports(report_read)] == [150, 200]


def test_without_a_stop_step_a_run_goes_to_its_end(tmp_path, pipes) -> None:
    control_read, _, _, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    assert ctx.stop_step is None
    ctx.checkpoint({"step": 10**6}, step=10**6)
    assert not ctx.should_pause()


def test_restored_says_what_the_restored_state_holds(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    root = _job_root(tmp_path, checkpoint_seq=2, stop_step=200)
    (root / ".heatgrid" / "restore.ckpt").write_bytes(encode_checkpoint({"step": 100}))
    ctx = JobContext(root, control_read, report_write)
    assert ctx.restore() == {"step": 100}
    ctx.restored(step=100, fingerprint={"values_sha256": "a" * 64})
    assert _reports(report_read) == [
        {"type": "restored", "step": 100, "fingerprint": {"values_sha256": "a" * 64}}
    ]


def test_restored_without_a_restored_checkpoint_is_refused(tmp_path, pipes) -> None:
    control_read, _, report_read, report_write = pipes
    ctx = JobContext(_job_root(tmp_path), control_read, report_write)
    with pytest.raises(ValueError, match="no checkpoint was restored"):
        ctx.restored(step=0, fingerprint={})
    assert _reports(report_read) == []
