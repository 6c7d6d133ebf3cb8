"""Jobs that fail, overrun a limit or misbehave each end with a clear state and message."""

from __future__ import annotations

import pytest

from heatgrid.jobs.artifact import ArtifactError

CASES = {
    "raises": (
        """
        def main(ctx):
            return 1 / 0
        """,
        {},
        "failed",
        ["job:main raised", "ZeroDivisionError: division by zero", "job.py"],
    ),
    "syntax_error": (
        """
        def main(ctx)
            pass
        """,
        {},
        "failed",
        ["syntax error in job.py, line 2"],
    ),
    "no_main": (
        """
        def run(ctx):
            pass
        """,
        {},
        "failed",
        ["job.py defines no function main(ctx)"],
    ),
    "bad_result": (
        """
        def main(ctx):
            return [1, 2]
        """,
        {},
        "failed",
        ["returned a list; return a dict or None"],
    ),
    "exits": (
        """
        import os

        def main(ctx):
            print("bye")
            os._exit(3)
        """,
        {},
        "failed",
        ["exited with status 3 without a result", "bye"],
    ),
    "memory": (
        """
        def main(ctx):
            hog = []
            while True:
                hog.append(bytearray(16 << 20))
        """,
        {"memory_bytes": 128 << 20},
        "out_of_memory",
        ["went over its memory limit of 128 MiB and was killed"],
    ),
    "time": (
        """
        def main(ctx):
            while True:
                pass
        """,
        {"time_s": 1.0},
        "out_of_time",
        ["ran longer than its limit of 1 s", "saved no checkpoint, so it will start over"],
    ),
    "fork_bomb": (
        """
        import os, time

        def main(ctx):
            while True:
                os.fork()
        """,
        {"max_processes": 32},
        "failed",
        ["hit its limit of 32 processes", "BlockingIOError"],
    ),
    "ten_gigabytes_in_one_file": (
        """
        def main(ctx):
            block = b"x" * (1 << 20)
            with open(ctx.output_dir / "big", "wb") as file:
                for _ in range(10 * 1024):
                    file.write(block)
        """,
        {"disk_bytes": 32 << 20},
        "out_of_disk",
        ["limit of 32 MiB"],  # a write fails (File too large), or the watch sees it first
    ),
    "ten_gigabytes_in_many_files": (
        """
        import time

        def main(ctx):
            block = b"x" * (1 << 20)
            for number in range(10 * 1024):
                (ctx.output_dir / f"part-{number}").write_bytes(block)
        """,
        {"disk_bytes": 32 << 20},
        "out_of_disk",
        ["the job directory grew to", "over its limit of 32 MiB"],
    ),
    "ten_gigabytes_in_new_directories": (
        """
        import os

        def main(ctx):
            block = b"x" * (1 << 20)
            for number in range(10 * 1024):
                directory = ctx.work_dir / "scratch" / f"d{number % 7}" / str(number)
                os.makedirs(directory)
                (directory / "part").write_bytes(block)
        """,
        {"disk_bytes": 32 << 20},
        "out_of_disk",
        ["the job directory grew to", "over its limit of 32 MiB"],
    ),
    "ten_gigabytes_appended_to_files_it_made_first": (
        """
        import time

        def main(ctx):
            files = [open(ctx.output_dir / f"log-{n}", "ab") for n in range(64)]
            time.sleep(0.6)  # named before the runner's first look; from then only appends
            block = b"x" * (256 << 10)
            while True:
                for file in files:  # each file stays far under the per-file limit for long
                    file.write(block)
                    file.flush()
        """,
        {"disk_bytes": 32 << 20},
        "out_of_disk",
        ["the job directory grew to", "over its limit of 32 MiB"],
    ),
    "broken_report": (
        """
        import os

        def main(ctx):
            os.write(ctx._report_fd, b"not json\\n")
            while True:
                pass
        """,
        {},
        "killed",
        ["sent a report the runner cannot read"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_job_ends_with_a_clear_state(jobs, case) -> None:
    source, limits, state, phrases = CASES[case]
    outcome = jobs.run(source, **limits)
    assert outcome.state == state, outcome.message
    for phrase in phrases:
        assert phrase in outcome.message, outcome.message


def test_a_job_that_never_checkpoints_says_it_will_start_over(jobs) -> None:
    job = jobs.write(
        """
        import time

        def main(ctx):
            while not ctx.should_pause():
                ctx.progress(0.1)
                time.sleep(0.01)
        """
    )
    runner = jobs.runner(job)
    runner.on_progress = lambda _progress: runner.request_pause()
    outcome = runner.run()
    assert outcome.state == "paused"
    assert outcome.message == "paused when asked; it saved no checkpoint, so it will start over"
    assert outcome.checkpoint_seq is None


def test_a_tampered_artifact_never_runs(jobs) -> None:
    runner = jobs.runner(jobs.write("def main(ctx):\n    return {}\n"))
    blob = bytearray(runner.artifact_path.read_bytes())
    blob[-20] ^= 0x01
    runner.artifact_path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        runner.run()
    assert not list(jobs.root.glob("work/*"))


PAUSABLE = """
import time

def main(ctx):
    state = ctx.restore() or {"step": 0, "resumed_at": None}
    if state["step"]:
        state["resumed_at"] = state["step"]
    while state["step"] < 50:
        while state["step"] == 23 and state["resumed_at"] is None and not ctx.should_pause():
            time.sleep(0.01)  # the first run waits here to be paused: no race with the runner
        if ctx.should_pause():
            ctx.checkpoint(state)
            return None
        state["step"] += 1
        ctx.progress(state["step"] / 50, {"step": state["step"]})
        if state["step"] % 10 == 0:
            ctx.checkpoint(state)
    (ctx.output_dir / "steps.txt").write_text(str(state["step"]))
    return state
"""


def test_a_paused_task_resumes_from_its_checkpoint_and_loses_no_step(jobs) -> None:
    job = jobs.write(PAUSABLE)
    first = jobs.runner(job)

    def pause_at_step_23(progress) -> None:
        if progress.metrics["step"] == 23:
            first.request_pause()

    first.on_progress = pause_at_step_23
    paused = first.run()
    assert paused.state == "paused", paused.message
    assert paused.message.startswith("paused when asked; it resumes from checkpoint")
    resumed_step = int(paused.metrics["step"])
    assert resumed_step == 23
    second = jobs.runner(job)
    done = second.run()
    assert done.state == "completed", done.message
    assert done.result == {"step": 50, "resumed_at": resumed_step}
    assert done.checkpoint_seq is not None
    assert done.checkpoint_seq > paused.checkpoint_seq
    assert [(file.path, file.size_bytes) for file in done.outputs] == [("steps.txt", 2)]
    assert done.cpu_s > 0
    assert done.energy_j > 0
    if done.energy_method == "cpu_time_estimate":  # no readable RAPL counter on this host
        assert done.energy_j == pytest.approx(done.cpu_s * 14.0)
