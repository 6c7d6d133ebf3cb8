"""The first code a task runs in its sandbox: load the job's entry point and call it.

Run as ``python -m heatgrid.jobs._bootstrap JOB_ROOT CONTROL_FD REPORT_FD``. It reports to the
runner how ``main`` ended: ``result`` (it returned), ``paused`` (it returned after
``ctx.should_pause()`` said so), or ``error`` with a message that names the fault. Standard
library only.

It ends with ``os._exit`` once it has done what an interpreter's exit does that the runner
can see (:func:`_finish`): with PyTorch and scikit-learn loaded, the interpreter's own
teardown (every module and object freed, one by one) took 0.5 to 1.9 s after ``main``
returned, most of a graceful pause, and nothing of it reaches the runner.
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import io
import json
import os
import resource
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import cast

from heatgrid.jobs.sdk import CONTROL_DIR, MAX_REPORT_BYTES, TASK_FILE, JobContext

__all__ = ["main"]

_MAX_MESSAGE_CHARS = 1800


def _report(fd: int, message: dict[str, object]) -> None:
    line = json.dumps(message, allow_nan=False).encode() + b"\n"
    view = memoryview(line[:MAX_REPORT_BYTES])
    while view:
        view = view[os.write(fd, view) :]


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE_CHARS else "…" + text[-_MAX_MESSAGE_CHARS:]


def _job_traceback(error: BaseException) -> str:
    """Return the traceback of ``error`` without the bootstrap's own frames."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.endswith(("_bootstrap.py", "importlib/__init__.py"))
        and "<frozen" not in frame.filename
    ]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


class _JobError(Exception):
    """The job failed in a way the runner reports: a kind and a message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _entry(entry_point: str) -> Callable[[JobContext], object]:
    module_name, _, function_name = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as error:
        where = f"{Path(error.filename or module_name).name}, line {error.lineno}"
        raise _JobError("syntax", f"syntax error in {where}: {error.msg}") from None
    except BaseException as error:  # the job's import-time code; report anything
        raise _JobError(
            "import", f"importing {module_name} failed:\n{_job_traceback(error)}"
        ) from None
    entry = getattr(module, function_name, None)
    if not callable(entry):
        raise _JobError(
            "entry_point",
            f"{module_name}.py defines no function {function_name}(ctx) (the entry point "
            f"{entry_point!r})",
        )
    return cast("Callable[[JobContext], object]", entry)


def _result(entry_point: str, result: object) -> dict[str, object]:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise _JobError(
            "result", f"{entry_point} returned a {type(result).__name__}; return a dict or None"
        )
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise _JobError("result", f"the result is not JSON: {error}") from None
    if len(text) > MAX_REPORT_BYTES - 100:
        raise _JobError(
            "result",
            f"the result takes {len(text)} bytes as JSON, over {MAX_REPORT_BYTES - 100}; "
            "write large results to files in ctx.output_dir",
        )
    return result


def _flush_files() -> None:
    """Flush every open Python file object: what the interpreter's teardown would write.

    A job may leave a file open with data in its buffer (a log it never closes, a global
    writer); the teardown flushes such files as it frees them, ``os._exit`` would drop the
    buffers. Text wrappers go first, since flushing one fills the binary buffer below it.
    What is written is in the kernel's page cache then, which the runner reads on the host:
    no fsync is needed for it to see the files (the runner fsyncs the checkpoints it keeps).
    Each object's class is read with ``type()``: ``isinstance`` reads ``__class__``, which
    some library objects answer with a warning (PyTorch's deprecated
    ``torch.distributed.reduce_op``), an exception where the job turned warnings into errors.
    """
    files = [obj for obj in gc.get_objects() if issubclass(type(obj), io.IOBase)]
    files.sort(key=lambda obj: not isinstance(obj, io.TextIOBase))
    for file in [sys.stdout, sys.stderr, *files]:
        try:
            if file is not None and not file.closed:
                file.flush()
        except Exception:  # a file that cannot flush (a closed pipe …): the others still do
            continue


def _finish(report_fd: int, message: dict[str, object], status: int) -> int:
    """Do the interpreter's exit that the runner can see, report ``message``, and ``_exit``.

    In the order of Python's own exit: wait for the job's non-daemon threads (and run the
    ``threading`` exit hooks, which end ``concurrent.futures`` pools), run the ``atexit``
    handlers (``multiprocessing`` joins its children there), flush the open files
    (:func:`_flush_files`); then report, and leave without the teardown, which frees objects
    one by one and runs ``__del__`` methods that Python does not promise to run at exit.
    Returns ``status`` only where ``os._exit`` is replaced (a test).
    """
    shutdown = getattr(threading, "_shutdown", None)
    try:
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()  # what Py_FinalizeEx runs; it has no public name
    finally:
        _flush_files()
        _report(report_fd, message)
    os._exit(status)
    return status  # pragma: no cover - reached only where os._exit is replaced


def main(argv: list[str]) -> int:
    """Run the task described in ``JOB_ROOT``; return the process exit status."""
    job_root, control_fd, report_fd = Path(argv[0]), int(argv[1]), int(argv[2])
    task = json.loads((job_root / CONTROL_DIR / TASK_FILE).read_text(encoding="utf-8"))
    entry_point = str(task["entry_point"])
    max_file_bytes = int(task["max_file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    code_dir = job_root / "code"
    os.chdir(code_dir)
    sys.path.insert(0, str(code_dir))
    try:
        entry = _entry(entry_point)
        ctx = JobContext(job_root, control_fd, report_fd)
        try:
            returned = entry(ctx)
        except OSError as error:
            if error.errno != errno.EFBIG:
                raise _JobError(
                    "exception", f"{entry_point} raised:\n{_job_traceback(error)}"
                ) from None
            raise _JobError(
                "file_too_large",
                f"the task wrote a file over the job directory's limit of "
                f"{max_file_bytes / 2**20:.0f} MiB: {error}",
            ) from None
        except BaseException as error:  # the job's code; report anything, SystemExit included
            raise _JobError(
                "exception", f"{entry_point} raised:\n{_job_traceback(error)}"
            ) from None
        ctx.flush()
        if ctx.pause_seen:
            return _finish(report_fd, {"type": "paused"}, 0)
        result = _result(entry_point, returned)
    except _JobError as error:
        message: dict[str, object] = {"type": "error", "kind": error.kind}
        message["message"] = _short(str(error))
        return _finish(report_fd, message, 1)
    return _finish(report_fd, {"type": "result", "result": result}, 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
