"""bench/jobs's verdicts: the median's distribution-free interval, and where it meets a goal."""

from __future__ import annotations

import pytest
from bench.bench_jobs import _median_interval, _verdict


@pytest.mark.parametrize(
    ("n", "k"),
    [(6, 1), (10, 2), (20, 6), (40, 14)],  # the sign test's 95 % order statistics (tables)
)
def test_the_interval_is_between_the_kth_smallest_and_largest(n, k) -> None:
    values = [float(v) for v in range(1, n + 1)]  # the i-th smallest is i
    median, low, high = _median_interval(list(reversed(values)))
    assert median == (n + 1) / 2
    assert (low, high) == (k, n + 1 - k)


def test_a_goal_is_decided_only_when_the_interval_is_wholly_on_one_side() -> None:
    assert _verdict(0.991, 1.02, 0.99) == "met"
    assert _verdict(0.99, 0.99, 0.99) == "met"
    assert _verdict(0.95, 0.985, 0.99) == "missed"
    assert _verdict(0.985, 1.02, 0.99) == "inconclusive"
