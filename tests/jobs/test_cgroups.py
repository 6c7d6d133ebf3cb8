"""Cgroup detection: where no hierarchy can hold a task's limits, nothing runs."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from heatgrid.jobs.cgroups import (
    CgroupUnavailableError,
    create_task_cgroup,
    detect_cgroup_version,
    remove_leftover_task_cgroup,
)
from heatgrid.jobs.runner import forget_leftover_tasks


def test_no_cgroup_hierarchy_means_no_run(tmp_path) -> None:
    with pytest.raises(CgroupUnavailableError, match=r"memory, pids, freezer; .* not run"):
        create_task_cgroup("x", memory_bytes=1 << 28, max_processes=16, mount=tmp_path)


def test_a_unified_hierarchy_is_told_from_v1_controllers(tmp_path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert detect_cgroup_version(tmp_path) == 2
    (tmp_path / "cgroup.controllers").unlink()
    for name in ("memory", "pids", "freezer"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
    assert detect_cgroup_version(tmp_path) == 1


def test_a_task_cgroup_freezes_and_kills_real_processes(sandbox_ready) -> None:
    cgroup = create_task_cgroup(
        f"heatgrid-test-{uuid.uuid4().hex[:8]}", memory_bytes=64 << 20, max_processes=8
    )
    try:
        script = 'for p in "$@"; do echo $$ > "$p"; done; exec sleep 600'
        process = subprocess.Popen(["/bin/sh", "-c", script, "sh", *map(str, cgroup.procs_files)])
        while process.pid not in cgroup.pids():
            time.sleep(0.01)
        cgroup.freeze()
        assert cgroup.frozen()
        cgroup.thaw()
        assert not cgroup.frozen()
        cgroup.kill(process.pid)
        assert process.wait() == -9
        assert cgroup.pids() == []
    finally:
        cgroup.remove()


UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(
    not (UNIFIED / "cgroup.controllers").is_file()
    or "memory" in (UNIFIED / "cgroup.controllers").read_text().split(),
    reason="needs a hybrid host whose cgroup v2 hierarchy lacks the memory controller",
)
def test_a_v2_hierarchy_without_memory_and_pids_is_refused() -> None:
    # This machine's real cgroup v2 mount (hybrid layout): the controllers live in v1
    with pytest.raises(CgroupUnavailableError, match=r"cgroup v2: .* cannot hand the memory"):
        create_task_cgroup(
            "heatgrid-v2-probe", memory_bytes=1 << 28, max_processes=16, mount=UNIFIED
        )
    assert not (UNIFIED / "heatgrid-v2-probe").exists()


def test_a_cgroup_a_killed_runner_left_is_removed_with_its_processes(
    sandbox_ready, tmp_path
) -> None:
    # what a runner killed mid-task leaves: its task's work directory, and the task's cgroup
    # with a process in it that called setsid
    work = tmp_path / "work" / f"task-{uuid.uuid4().hex[:12]}"
    (work / "job").mkdir(parents=True)
    name = f"heatgrid-{work.name}"
    cgroup = create_task_cgroup(name, memory_bytes=64 << 20, max_processes=8)
    script = 'for p in "$@"; do echo $$ > "$p"; done; exec setsid sleep 600'
    process = subprocess.Popen(["/bin/sh", "-c", script, "sh", *map(str, cgroup.procs_files)])
    try:
        while process.pid not in cgroup.pids():
            time.sleep(0.01)
        assert forget_leftover_tasks(tmp_path / "work") == 1
        assert process.wait() == -9  # killed with its cgroup
        assert not work.exists()
        assert cgroup.pids() == []
        assert remove_leftover_task_cgroup(name) is False  # gone: nothing left to remove
        assert forget_leftover_tasks(tmp_path / "work") == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cgroup.remove()


def test_no_leftover_cgroup_is_found_where_no_hierarchy_is_usable(tmp_path) -> None:
    assert remove_leftover_task_cgroup("heatgrid-task-0", mount=tmp_path) is False
