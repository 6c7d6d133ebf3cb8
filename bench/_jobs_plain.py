"""The baseline of ``bench_jobs``: a job's ``main`` in a plain Python process, no heatgrid.

Run as ``python bench/_jobs_plain.py JOB_DIR PARAMS_JSON [RESTORE_FILE]``. The job's ``job.py``
is imported and its ``main(ctx)`` called with a bare context: no sandbox, no cgroup, no runner,
no pipes; ``checkpoint`` keeps the newest state in memory, ``restore`` reads ``RESTORE_FILE``
(bytes that the heatgrid run checkpointed) when given, ``should_pause`` is false until the
process gets SIGTERM (then the job stops as it would when a heater pauses it). It prints
``{"training": true}`` at the first progress report (so that the benchmark knows the imports
are done), and at the end one JSON line: when the process started and each progress report
(``time.monotonic``, the system-wide clock the benchmark reads too, the step, and the
process's CPU time), and the job's result.
Standard library only (and whatever the job imports).
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PlainContext", "main"]


class PlainContext:
    """The least a job's ``main(ctx)`` needs, with none of heatgrid's machinery."""

    def __init__(self, params: dict[str, object], restore_file: Path | None, out: Path) -> None:
        self.task_index = 0
        self.params = params
        self.inputs: dict[str, Path] = {}
        self.device = "cpu"
        self.output_dir = out
        self.work_dir = out
        self._restore = restore_file
        self.reports: list[tuple[float, float, float]] = []
        self.checkpoints = 0
        self.stop = False

    def restore(self) -> object | None:
        """Return the bytes of the restore file, or None."""
        return None if self._restore is None else self._restore.read_bytes()

    def checkpoint(
        self, state: object, *, step: int | None = None, fingerprint: object = None
    ) -> int:
        """Count the checkpoint; keep nothing (the baseline stores no checkpoint)."""
        self.checkpoints += 1
        return self.checkpoints

    def tensor_fingerprint(self, tensors: Mapping[str, object]) -> None:
        """Nothing: the fingerprints verification compares are heatgrid's work, not the job's."""

    def progress(self, fraction: float, metrics: Mapping[str, float] | None = None) -> None:
        """Record when (and at what CPU time) the step in ``metrics`` was reached."""
        step = float((metrics or {}).get("step", 0.0))
        self.reports.append((time.monotonic(), step, time.process_time()))
        if len(self.reports) == 1:
            print(json.dumps({"training": True}), flush=True)

    def should_pause(self) -> bool:
        """False until the process got SIGTERM (the benchmark's end of an open-ended run)."""
        return self.stop


def main(argv: list[str]) -> int:
    """Run the job once in this process; print the timings and result as JSON."""
    started = time.monotonic()
    job_dir, params = Path(argv[0]), json.loads(argv[1])
    restore_file = Path(argv[2]) if len(argv) > 2 else None
    sys.path.insert(0, str(job_dir))
    module = importlib.import_module("job")
    with tempfile.TemporaryDirectory() as out:
        ctx = PlainContext(params, restore_file, Path(out))
        signal.signal(signal.SIGTERM, lambda *_: setattr(ctx, "stop", True))
        result = module.main(ctx)
    finished = time.monotonic()
    print(
        json.dumps(
            {
                "started": started,
                "finished": finished,
                "reports": ctx.reports,
                "checkpoints": ctx.checkpoints,
                "result": result,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
