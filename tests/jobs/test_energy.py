"""Metered task energy: the RAPL reader on a powercap tree in a temp dir, and the fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heatgrid.jobs.energy import EnergyMeter, RaplReader, host_cpu_s

_HZ = os.sysconf("SC_CLK_TCK")


def _zone(root: Path, name: str, energy_uj: int, max_range_uj: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone


def _stat(path: Path, busy_ticks: int, idle_ticks: int) -> None:
    # user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0\n")


def test_rapl_reader_reads_packages_not_their_parts(tmp_path) -> None:
    _zone(tmp_path, "intel-rapl:0", 1_000, 10_000)
    _zone(tmp_path, "intel-rapl:1", 2_000, 10_000)
    _zone(tmp_path, "intel-rapl:0:0", 500, 10_000)  # the cores of package 0: in package 0
    (tmp_path / "intel-rapl:2").mkdir()  # no readable counter: left out
    reader = RaplReader(tmp_path)
    assert reader.available
    assert reader.read_uj() == [1_000, 2_000]


def test_rapl_energy_handles_a_wrapped_counter(tmp_path) -> None:
    zone = _zone(tmp_path, "intel-rapl:0", 9_000_000, 9_999_999)
    reader = RaplReader(tmp_path)
    before = reader.read_uj()
    (zone / "energy_uj").write_text("1000000\n")  # wrapped past 9_999_999
    assert reader.energy_j(before, reader.read_uj()) == pytest.approx(2.0)


def test_meter_shares_rapl_energy_by_the_tasks_cpu_time(tmp_path) -> None:
    zone = _zone(tmp_path / "powercap", "intel-rapl:0", 5_000_000, 2**32)
    stat = tmp_path / "stat"
    _stat(stat, busy_ticks=100 * _HZ, idle_ticks=50 * _HZ)
    meter = EnergyMeter(14.0, rapl=RaplReader(tmp_path / "powercap"), proc_stat=stat)
    meter.start()
    (zone / "energy_uj").write_text(f"{5_000_000 + 80_000_000}\n")  # 80 J drawn
    _stat(stat, busy_ticks=104 * _HZ, idle_ticks=60 * _HZ)  # 4 s busy on the host
    energy = meter.finish(task_cpu_s=3.0)
    assert energy.method == "rapl"
    assert energy.energy_j == pytest.approx(60.0)  # three quarters of the package's 80 J


def test_meter_falls_back_to_the_estimate_when_nothing_is_readable(tmp_path) -> None:
    meter = EnergyMeter(14.0, rapl=RaplReader(tmp_path / "no-powercap"))
    meter.start()
    energy = meter.finish(task_cpu_s=2.0)
    assert (energy.energy_j, energy.method) == (pytest.approx(28.0), "cpu_time_estimate")


def test_meter_off_on_an_accelerated_clock_estimates(tmp_path) -> None:
    _zone(tmp_path, "intel-rapl:0", 0, 2**32)
    meter = EnergyMeter(14.0, metered=False, rapl=RaplReader(tmp_path))
    meter.start()
    assert meter.finish(task_cpu_s=1.0).method == "cpu_time_estimate"


def test_this_host_meters_what_it_can_read() -> None:
    """On this machine: RAPL where the counter is readable, else the estimate."""
    readable = RaplReader().available
    meter = EnergyMeter(14.0)
    meter.start()
    energy = meter.finish(task_cpu_s=0.5)
    assert energy.method == ("rapl" if readable else "cpu_time_estimate")
    if not readable:
        assert energy.energy_j == pytest.approx(7.0)


def test_host_cpu_time_counts_busy_ticks_only(tmp_path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, busy_ticks=3 * _HZ, idle_ticks=1000 * _HZ)
    assert host_cpu_s(stat) == pytest.approx(3.0)
    assert host_cpu_s() > 0.0
