"""The first code a task runs in its sandbox: load the job's entry point and call it.

Run as ``python -m heatgrid.jobs._bootstrap JOB_ROOT CONTROL_FD REPORT_FD``. It reports to the
runner how ``main`` ended: ``result`` (it returned), ``paused`` (it returned after
``ctx.should_pause()`` said so), or ``error`` with a message that names the fault. Standard
library only.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import resource
import signal
import sys
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
            _report(report_fd, {"type": "paused"})
            return 0
        result = _result(entry_point, returned)
    except _JobError as error:
        _report(report_fd, {"type": "error", "kind": error.kind, "message": _short(str(error))})
        return 1
    _report(report_fd, {"type": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
