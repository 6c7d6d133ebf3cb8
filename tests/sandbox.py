"""The ``sandbox_ready`` fixture: bubblewrap and a writable cgroup hierarchy, or a skip.

Where ``bwrap`` or a writable cgroup hierarchy is missing, the tests that need them skip with
the reason, unless ``HEATGRID_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid

import pytest

from heatgrid.jobs.cgroups import CgroupUnavailableError, create_task_cgroup
from heatgrid.jobs.sandbox import SandboxUnavailableError, find_bwrap


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
