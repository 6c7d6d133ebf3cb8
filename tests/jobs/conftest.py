"""Fixtures for running job tasks in the real sandbox (bubblewrap) with real cgroups."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.runner import RunLimits, TaskRunner
from heatgrid.protocol.jobs import TaskRun, TaskRunOutcome, TaskRunProgress


@dataclass
class JobHarness:
    """Writes a job, packs it, and runs one task of it as the agent would."""

    root: Path

    def write(self, source: str, name: str = "job", **files: str) -> Path:
        job_dir = self.root / name
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "job.py").write_text(textwrap.dedent(source))
        for file_name, text in files.items():
            (job_dir / file_name.replace("__", ".")).write_text(textwrap.dedent(text))
        return job_dir

    def runner(
        self,
        job_dir: Path,
        *,
        params: dict[str, object] | None = None,
        on_progress: Callable[[TaskRunProgress], None] | None = None,
        **limits: object,
    ) -> TaskRunner:
        store = self.root / "store"
        ref = pack_job(job_dir, store)
        defaults: dict[str, object] = {
            "memory_bytes": 256 << 20,
            "disk_bytes": 64 << 20,
            "max_processes": 64,
            "time_s": 120.0,
            "pause_grace_s": 5.0,
            "term_grace_s": 2.0,
        }
        return TaskRunner(
            artifact_path(store, ref.sha256),
            TaskRun(artifact=ref, params=params or {}),
            checkpoint_dir=self.root / "checkpoints" / job_dir.name,
            output_dir=self.root / "outputs" / job_dir.name,
            limits=RunLimits(**(defaults | limits)),  # type: ignore[arg-type]
            work_root=self.root / "work",
            on_progress=on_progress,
        )

    def run(self, source: str, **kwargs: object) -> TaskRunOutcome:
        return self.runner(self.write(source), **kwargs).run()  # type: ignore[arg-type]


@pytest.fixture
def jobs(sandbox_ready: None, tmp_path: Path) -> JobHarness:
    """A harness that runs job tasks in the real sandbox, under ``tmp_path``."""
    return JobHarness(tmp_path)
