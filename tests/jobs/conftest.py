"""Fixtures for running job tasks in the real sandbox (bubblewrap) with real cgroups.

Where ``bwrap`` or a writable cgroup hierarchy is missing, the tests that need them skip with
the reason, unless ``HEATGRID_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.cgroups import CgroupUnavailableError, create_task_cgroup
from heatgrid.jobs.runner import RunLimits, TaskRunner
from heatgrid.jobs.sandbox import SandboxUnavailableError, find_bwrap
from heatgrid.protocol.jobs import TaskRun, TaskRunOutcome, TaskRunProgress


def _sandbox_missing() -> str | None:
    try:
        find_bwrap()
        cgroup = create_task_cgroup(
            f"heatgrid-probe-{uuid.uuid4().hex[:8]}", memory_bytes=1 << 28, max_processes=16
        )
    except (SandboxUnavailableError, CgroupUnavailableError) as error:
        return str(error)
    cgroup.remove()
    return None


@pytest.fixture(scope="session")
def sandbox_ready() -> None:
    """Skip (fail in CI) where bubblewrap or a writable cgroup hierarchy is missing."""
    reason = _sandbox_missing()
    if reason is not None:
        if os.environ.get("HEATGRID_REQUIRE_SERVICES"):
            pytest.fail(f"the sandbox is required here (HEATGRID_REQUIRE_SERVICES=1): {reason}")
        pytest.skip(reason)


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
