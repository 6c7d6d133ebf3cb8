"""bench/jobs's verdicts: the interval of the process pairs' ratio, and where it meets a goal."""

from __future__ import annotations

import math

import pytest
from bench.bench_jobs import _mean_interval, _process_interval, _verdict


@pytest.mark.parametrize("n", [2, 3, 6, 11])  # 1 to 10 degrees of freedom: the table
def test_the_interval_is_students_t_over_the_values(n) -> None:
    stats = pytest.importorskip("scipy.stats")
    values = [float(v * v % 7) for v in range(n)]
    mean, low, high = _mean_interval(values)
    exact = stats.t.ppf(0.975, n - 1) * stats.tstd(values) / math.sqrt(n)
    assert mean == pytest.approx(sum(values) / n)
    half = (high - low) / 2
    assert low + half == pytest.approx(mean)
    assert half == pytest.approx(exact, rel=1e-3)  # the table's quantiles, to 3 decimals


def test_the_unit_is_a_pair_of_processes_not_a_slice() -> None:
    # three pairs of processes: the slices of each agree closely, the processes do not
    medians, ratio, low, high = _process_interval(
        [[0.97, 0.971, 0.969, 5.0], [1.03, 1.031, 1.029, 0.1], [1.0, 1.001, 0.999, 1.0]]
    )
    assert medians == pytest.approx([0.9705, 1.0295, 1.0])
    assert ratio == pytest.approx(math.exp(sum(map(math.log, medians)) / 3))
    assert low < 0.97  # wider than the slices of any one pair say
    assert high > 1.03


def test_a_goal_is_decided_only_when_the_interval_is_wholly_on_one_side() -> None:
    assert _verdict(0.991, 1.02, 0.99) == "met"
    assert _verdict(0.99, 0.99, 0.99) == "met"
    assert _verdict(0.95, 0.985, 0.99) == "missed"
    assert _verdict(0.985, 1.02, 0.99) == "inconclusive"
