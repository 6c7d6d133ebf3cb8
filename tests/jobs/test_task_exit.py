"""A task's process ends with ``os._exit`` (no interpreter teardown) and loses nothing by it.

What the interpreter's own exit would have done that the runner can see must still happen:
files left open are flushed, ``atexit`` handlers run, non-daemon threads finish, whatever
printed reaches the log. Each assertion fails if the bootstrap skips that step.
"""

from __future__ import annotations

import threading

import pytest

_LEFT_BEHIND = """
    import atexit
    import sys
    import threading
    import time

    _LOG = None


    def _late(path):
        time.sleep(0.3)
        path.write_text("thread")


    def main(ctx):
        global _LOG
        _LOG = open(ctx.output_dir / "log.txt", "w")  # never closed: its buffer still holds it
        _LOG.write("buffered line\\n")
        text = ctx.output_dir / "text.bin"
        atexit.register((ctx.output_dir / "atexit.txt").write_text, "atexit")
        threading.Thread(target=_late, args=(ctx.output_dir / "thread.txt",)).start()
        sys.stdout.write("printed without a newline")
        ctx.checkpoint(b"state")
        if ctx.params.get("pause"):
            while not ctx.should_pause():
                time.sleep(0.01)
            return None
        return {"done": True}
"""


@pytest.mark.parametrize("pause", [False, True], ids=["completed", "paused"])
def test_what_the_task_left_behind_at_its_exit_is_all_there(jobs, pause) -> None:
    runner = jobs.runner(jobs.write(_LEFT_BEHIND), params={"pause": pause})
    if pause:
        threading.Timer(1.0, runner.request_pause).start()
    outcome = runner.run()
    assert outcome.state == ("paused" if pause else "completed"), outcome.message
    assert (runner.output_dir / "log.txt").read_text() == "buffered line\n"
    assert (runner.output_dir / "atexit.txt").read_text() == "atexit"
    assert (runner.output_dir / "thread.txt").read_text() == "thread"
    assert "printed without a newline" in runner.log_tail
    assert outcome.checkpoint_seq == 1
