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


_STRICT_WARNINGS = """
    import warnings


    class _Deprecated:
        # warns when its __class__ is read, as torch.distributed.reduce_op does

        @property
        def __class__(self):
            warnings.warn("deprecated", FutureWarning)
            return type(self)


    _HELD = _Deprecated()
    _LOG = None


    def main(ctx):
        global _LOG
        warnings.simplefilter("error")  # a job may turn warnings into errors
        _LOG = open(ctx.output_dir / "log.txt", "w")
        _LOG.write("buffered line\\n")
        return {"done": True}
"""


def test_an_object_that_warns_when_its_class_is_read_does_not_stop_the_exit(jobs) -> None:
    """Finding the open files at exit reads no object's ``__class__`` (``isinstance`` did)."""
    runner = jobs.runner(jobs.write(_STRICT_WARNINGS))
    outcome = runner.run()
    assert outcome.state == "completed", outcome.message
    assert outcome.result == {"done": True}
    assert (runner.output_dir / "log.txt").read_text() == "buffered line\n"
