"""Task energy: wrapping counter deltas and the CPU-time-share attribution rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.core.task_energy import attribute_energy_j, counter_delta_uj

_ENERGY = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
_CPU = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(package_j=_ENERGY, tasks=st.lists(_CPU, max_size=20), host_cpu_s=_CPU)
def test_attributed_energy_never_exceeds_the_package(package_j, tasks, host_cpu_s) -> None:
    shares = attribute_energy_j(package_j, tasks, host_cpu_s)
    assert len(shares) == len(tasks)
    assert all(0.0 <= share <= package_j for share in shares)
    assert math.fsum(shares) <= package_j


@given(package_j=_ENERGY, tasks=st.lists(_CPU, min_size=2, max_size=10), host_cpu_s=_CPU)
def test_more_cpu_time_is_never_given_less_energy(package_j, tasks, host_cpu_s) -> None:
    shares = attribute_energy_j(package_j, tasks, host_cpu_s)
    for cpu_a, share_a in zip(tasks, shares, strict=True):
        for cpu_b, share_b in zip(tasks, shares, strict=True):
            if cpu_a > cpu_b:
                assert share_a >= share_b


def test_a_task_gets_its_cpu_share_of_the_package() -> None:
    # one task busy 3 s of the host's 4 s of CPU time: three quarters of 100 J
    assert attribute_energy_j(100.0, [3.0], 4.0) == [pytest.approx(75.0)]
    # the host's count read a little early: the tasks' sum counts, all energy given out
    assert attribute_energy_j(100.0, [3.0, 1.0], 3.9) == [
        pytest.approx(75.0),
        pytest.approx(25.0),
    ]
    assert attribute_energy_j(100.0, [0.0], 0.0) == [0.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1.0, [1.0], 1.0), "package_j must be finite"),
        ((1.0, [math.nan], 1.0), r"task_cpu_s\[0\] must be finite"),
        ((1.0, [1.0], math.inf), "host_cpu_s must be finite"),
    ],
)
def test_bad_attribution_input_is_named(args, message) -> None:
    with pytest.raises(InputError, match=message):
        attribute_energy_j(*args)


@given(
    max_range_uj=st.integers(min_value=1, max_value=2**40),
    data=st.data(),
)
def test_counter_delta_handles_one_wrap(max_range_uj, data) -> None:
    before = data.draw(st.integers(min_value=0, max_value=max_range_uj))
    spent = data.draw(st.integers(min_value=0, max_value=max_range_uj))
    after = (before + spent) % (max_range_uj + 1)  # the counter runs 0..max_range_uj
    assert counter_delta_uj(before, after, max_range_uj) == spent


def test_counter_delta_examples_and_bad_readings() -> None:
    assert counter_delta_uj(100, 250, 1000) == 150
    assert counter_delta_uj(990, 9, 1000) == 20  # 990..1000 is 10, wrap to 0 is 1, then 9
    with pytest.raises(InputError, match="after_uj must be between 0 and 1000"):
        counter_delta_uj(5, 1001, 1000)
    with pytest.raises(InputError, match="max_range_uj must be positive"):
        counter_delta_uj(0, 0, 0)
