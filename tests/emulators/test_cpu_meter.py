"""The emulated CPU-heater meter: real processes on this machine, read through Linux /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from heatgrid.core.errors import InputError
from heatgrid.emulators.cpu_meter import ProcessTreeMeter, descendants_cpu_s

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

_WAIT_S = 60.0  # a bound for a starved machine, not a measurement
# A parent that starts one child spinning on a CPU core, then waits for it.
_PARENT_OF_A_SPINNER = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
    "print(child.pid, flush=True)\n"
    "child.wait()\n"
)


@contextmanager
def _process(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def _parent_of_a_spinner(executable: str = sys.executable) -> Iterator[tuple[int, int]]:
    """Yield (parent pid, spinning child pid); both are killed by their PIDs at the end."""
    with _process([executable, "-c", _PARENT_OF_A_SPINNER]) as parent:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        try:
            yield parent.pid, child_pid
        finally:
            os.kill(child_pid, signal.SIGKILL)


def _until_busy(meter: ProcessTreeMeter, above_w: float) -> float:
    deadline = time.monotonic() + _WAIT_S
    meter.power_w()
    while True:
        time.sleep(0.3)
        power_w = meter.power_w()
        if power_w > above_w:
            return power_w
        assert time.monotonic() < deadline, f"the spinner never showed: {power_w} W"


def test_a_busy_descendant_is_the_heaters_power_and_its_agent_is_not() -> None:
    with _parent_of_a_spinner() as (parent_pid, child_pid):
        found = descendants_cpu_s(parent_pid)
        assert [pid for pid, _ in found] == [child_pid]  # the parent itself is left out
        meter = ProcessTreeMeter(
            parent_pid, idle_power_w=50.0, core_power_w=500.0, max_power_w=550.0
        )
        assert meter.power_w() == 50.0  # no interval yet: the idle draw
        power_w = _until_busy(meter, 50.0 + 0.2 * 500.0)
    assert power_w <= 550.0


def test_a_busy_process_outside_the_tree_is_not_counted() -> None:
    with (
        _process([sys.executable, "-c", "import time; time.sleep(600)"]) as idle_agent,
        _parent_of_a_spinner() as (spinner_parent, _),
    ):
        meter = ProcessTreeMeter(
            idle_agent.pid, idle_power_w=40.0, core_power_w=500.0, max_power_w=540.0
        )
        spinner = ProcessTreeMeter(
            spinner_parent, idle_power_w=0.0, core_power_w=1.0, max_power_w=2.0
        )
        _until_busy(spinner, 0.2)  # it spins now
        meter.power_w()
        time.sleep(0.3)
        assert meter.power_w() == 40.0
        assert descendants_cpu_s(idle_agent.pid) == {}


def test_the_power_is_capped_and_a_name_with_brackets_is_read(tmp_path: Path) -> None:
    odd = tmp_path / "a) b ("  # /proc/PID/stat writes the name in brackets, spaces and all
    odd.symlink_to(sys.executable)
    with _parent_of_a_spinner(str(odd)) as (parent_pid, child_pid):
        assert Path(f"/proc/{parent_pid}/stat").read_text().startswith(f"{parent_pid} (a) b (")
        meter = ProcessTreeMeter(
            os.getpid(), idle_power_w=10.0, core_power_w=1.0e6, max_power_w=300.0
        )
        assert _until_busy(meter, 10.0) == 300.0
        assert any(pid == child_pid for pid, _ in descendants_cpu_s(os.getpid()))


def test_bad_meter_settings_are_refused() -> None:
    with pytest.raises(InputError, match="max_power_w must be at least idle_power_w"):
        ProcessTreeMeter(1, idle_power_w=100.0, core_power_w=10.0, max_power_w=50.0)
    with pytest.raises(InputError, match="core_power_w"):
        ProcessTreeMeter(1, idle_power_w=1.0, core_power_w=0.0, max_power_w=50.0)
    with pytest.raises(InputError, match="idle_power_w"):
        ProcessTreeMeter(1, idle_power_w=-1.0, core_power_w=1.0, max_power_w=50.0)
