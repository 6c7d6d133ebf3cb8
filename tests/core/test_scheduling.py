"""The scheduling policy shared by the coordinator and the simulator (core.scheduling)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.core.scheduling import (
    POLICIES,
    Claimant,
    FleetView,
    QueuedTask,
    WindowSegment,
    choose,
    fits_hardware,
    time_to_deliver_s,
    window_energy_j,
)

NOW = 1_700_000_000.0
HOUR_S = 3600.0


def _task(
    task_id: str,
    *,
    queued_ts: float = NOW - 60.0,
    priority: int = 0,
    submitter: str = "alice",
    kinds: tuple[str, ...] = ("gpu",),
    vram_gb: float = 0.0,
    energy_j: float = 1e5,
) -> QueuedTask:
    return QueuedTask(
        task_id=task_id,
        submitter_id=submitter,
        priority=priority,
        queued_ts=queued_ts,
        device_kinds=kinds,
        min_vram_gb=vram_gb,
        energy_to_checkpoint_j=energy_j,
    )


def _window(*powers_w: float, start_ts: float = NOW) -> tuple[WindowSegment, ...]:
    return tuple(
        WindowSegment(start_ts + i * HOUR_S, HOUR_S, power) for i, power in enumerate(powers_w)
    )


def _heater(*powers_w: float, kind: str = "gpu", vram_gb: float = 12.0, slots: int = 1) -> Claimant:
    return Claimant(
        device_id="heater",
        kind=kind,  # type: ignore[arg-type]
        vram_gb=vram_gb,
        has_room=True,
        max_power_w=300.0,
        window=_window(*powers_w),
        slots=slots,
    )


def _rack(slots: int = 1) -> Claimant:
    return Claimant(
        device_id="rack", kind="rack", vram_gb=48.0, has_room=False, max_power_w=350.0, slots=slots
    )


# --- hardware fit -----------------------------------------------------------------------------


def test_hardware_fit() -> None:
    gpu_task = _task("g", vram_gb=12.0)
    either = _task("e", kinds=("gpu", "cpu"))
    assert fits_hardware(_heater(100.0, vram_gb=12.0), gpu_task)
    assert not fits_hardware(_heater(100.0, vram_gb=8.0), gpu_task)
    assert not fits_hardware(_heater(100.0, kind="cpu", vram_gb=0.0), gpu_task)
    assert fits_hardware(_heater(100.0, kind="cpu", vram_gb=0.0), either)
    assert not fits_hardware(_heater(100.0, kind="asic", vram_gb=0.0), either)
    assert fits_hardware(_rack(), gpu_task)
    assert fits_hardware(_rack(), _task("c", kinds=("cpu",)))


@pytest.mark.parametrize("policy", POLICIES)
def test_no_policy_gives_a_task_to_hardware_that_cannot_run_it(policy: str) -> None:
    tasks = [_task("big", vram_gb=24.0), _task("gpu-only", kinds=("gpu",))]
    cpu = _heater(500.0, 500.0, kind="cpu", vram_gb=0.0)
    assert choose(policy, cpu, tasks, FleetView(), now_ts=NOW) == ()
    asic = _heater(500.0, kind="asic", vram_gb=0.0)
    assert choose(policy, asic, [_task("any", kinds=("gpu", "cpu"))], FleetView(), now_ts=NOW) == ()


# --- heat windows -----------------------------------------------------------------------------


def test_window_energy_and_time_to_deliver() -> None:
    window = _window(100.0, 0.0, 200.0)
    assert window_energy_j(window, NOW, NOW + 3 * HOUR_S) == pytest.approx(300.0 * HOUR_S)
    assert window_energy_j(window, NOW + 0.5 * HOUR_S, NOW + HOUR_S) == pytest.approx(50 * HOUR_S)
    assert time_to_deliver_s(window, NOW, 0.0) == 0.0
    assert time_to_deliver_s(window, NOW, 50.0 * HOUR_S) == pytest.approx(0.5 * HOUR_S)
    # The empty hour is waited through.
    assert time_to_deliver_s(window, NOW, 200.0 * HOUR_S) == pytest.approx(2.5 * HOUR_S)
    assert math.isinf(time_to_deliver_s(window, NOW, 301.0 * HOUR_S))
    # Time already past does not count.
    assert math.isinf(time_to_deliver_s(window, NOW + 2.5 * HOUR_S, 101.0 * HOUR_S))


@given(
    powers=st.lists(st.floats(0.0, 3000.0), min_size=1, max_size=8),
    energy=st.floats(0.0, 2e7),
    offset_s=st.floats(0.0, 3 * HOUR_S),
)
def test_time_to_deliver_delivers_exactly_the_energy(
    powers: list[float], energy: float, offset_s: float
) -> None:
    """Property: the window wants ``energy`` over [now, now + t], and t grows with energy."""
    window = _window(*powers)
    now = NOW + offset_s
    t_s = time_to_deliver_s(window, now, energy)
    available_j = window_energy_j(window, now, NOW + len(powers) * HOUR_S)
    if math.isinf(t_s):
        assert energy > available_j * (1 - 1e-12)
    else:
        assert window_energy_j(window, now, now + t_s) == pytest.approx(
            energy,
            rel=1e-9,
            abs=1e-2,  # time stamps near 1.7e9 s carry ~2e-7 s of rounding
        )
        assert time_to_deliver_s(window, now, energy * 0.5) <= t_s + 1e-9


# --- heat-aware -------------------------------------------------------------------------------


def test_heat_aware_heater_takes_a_task_only_if_the_window_reaches_its_checkpoint() -> None:
    task = _task("t", energy_j=150.0 * HOUR_S)
    assert choose("heat-aware", _heater(100.0), [task], FleetView(), now_ts=NOW) == ()
    assert choose("heat-aware", _heater(100.0, 50.0), [task], FleetView(), now_ts=NOW) == ("t",)
    assert choose("heat-aware", _heater(0.0, 0.0, 0.0), [task], FleetView(), now_ts=NOW) == ()


def test_heat_aware_counts_the_energy_of_tasks_already_taken() -> None:
    tasks = [_task("a", energy_j=80.0 * HOUR_S), _task("b", energy_j=80.0 * HOUR_S)]
    heater = _heater(100.0, slots=2)
    assert choose("heat-aware", heater, tasks, FleetView(), now_ts=NOW) == ("a",)
    big = _heater(100.0, 100.0, slots=2)
    assert choose("heat-aware", big, tasks, FleetView(), now_ts=NOW) == ("a", "b")


def test_heat_aware_skips_a_task_too_big_for_the_window_and_takes_a_smaller_one() -> None:
    tasks = [
        _task("huge", queued_ts=NOW - 900.0, energy_j=1e9),
        _task("small", queued_ts=NOW - 10.0, energy_j=1e4),
    ]
    assert choose("heat-aware", _heater(100.0), tasks, FleetView(), now_ts=NOW) == ("small",)


def test_heat_aware_runs_higher_priority_first() -> None:
    tasks = [_task("old", queued_ts=NOW - 900.0), _task("urgent", priority=1, queued_ts=NOW)]
    assert choose("heat-aware", _heater(500.0), tasks, FleetView(), now_ts=NOW) == ("urgent",)


def test_heat_aware_is_fair_across_submitters() -> None:
    tasks = [
        _task("a1", submitter="alice", queued_ts=NOW - 300.0),
        _task("a2", submitter="alice", queued_ts=NOW - 200.0),
        _task("b1", submitter="bob", queued_ts=NOW - 100.0),
    ]
    busy_alice = FleetView(running_by_submitter={"alice": 3})
    assert choose("heat-aware", _heater(500.0), tasks, busy_alice, now_ts=NOW) == ("b1",)
    # Fairness is updated as tasks are chosen: alice, then bob (alice now runs one), then alice.
    heater = _heater(500.0, 500.0, slots=3)
    assert choose("heat-aware", heater, tasks, FleetView(), now_ts=NOW) == ("a1", "b1", "a2")
    # Priority beats fairness.
    tasks.append(_task("a3", submitter="alice", priority=1, queued_ts=NOW))
    assert choose("heat-aware", _heater(500.0), tasks, busy_alice, now_ts=NOW) == ("a3",)


def test_heat_aware_rack_leaves_tasks_to_heaters_until_max_wait() -> None:
    fresh = [_task("f1", queued_ts=NOW - 10.0), _task("f2", queued_ts=NOW - 5.0)]
    two_wanting = FleetView(heaters_wanting_work=2)
    one_wanting = FleetView(heaters_wanting_work=1)
    assert choose("heat-aware", _rack(), fresh, two_wanting, now_ts=NOW, max_wait_s=900.0) == ()
    assert choose("heat-aware", _rack(), fresh, one_wanting, now_ts=NOW, max_wait_s=900.0) == (
        "f2",
    )
    assert choose("heat-aware", _rack(), fresh, FleetView(), now_ts=NOW) == ("f1",)
    stale = [_task("s", queued_ts=NOW - 901.0)]
    assert choose("heat-aware", _rack(), stale, two_wanting, now_ts=NOW, max_wait_s=900.0) == ("s",)


# --- fifo and mining-only ---------------------------------------------------------------------


def test_fifo_takes_the_oldest_whatever_the_window_priority_or_submitter() -> None:
    tasks = [
        _task("new", queued_ts=NOW, priority=5, submitter="bob"),
        _task("old", queued_ts=NOW - 600.0, energy_j=1e12),
        _task("mid", queued_ts=NOW - 300.0),
    ]
    busy = FleetView(running_by_submitter={"alice": 10}, heaters_wanting_work=5)
    assert choose("fifo", _heater(0.0), tasks, busy, now_ts=NOW) == ("old",)
    assert choose("fifo", _rack(slots=2), tasks, busy, now_ts=NOW) == ("old", "mid")


def test_mining_only_never_leases() -> None:
    tasks = [_task("t")]
    assert choose("mining-only", _heater(1000.0), tasks, FleetView(), now_ts=NOW) == ()
    assert choose("mining-only", _rack(), tasks, FleetView(), now_ts=NOW) == ()


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="policy must be one of"):
        choose("round-robin", _rack(), [], FleetView(), now_ts=NOW)
    with pytest.raises(InputError, match="max_wait_s"):
        choose("fifo", _rack(), [], FleetView(), now_ts=NOW, max_wait_s=-1.0)
    with pytest.raises(InputError, match="device_kinds"):
        _task("t", kinds=("asic",))
    with pytest.raises(InputError, match="energy_to_checkpoint_j"):
        _task("t", energy_j=0.0)
    with pytest.raises(InputError, match="duration_s"):
        WindowSegment(NOW, 0.0, 10.0)
    assert choose("fifo", _heater(100.0, slots=0), [_task("t")], FleetView(), now_ts=NOW) == ()


# --- properties -------------------------------------------------------------------------------

_tasks = st.lists(
    st.builds(
        _task,
        st.uuids().map(str),
        queued_ts=st.floats(NOW - 7200.0, NOW),
        priority=st.integers(0, 2),
        submitter=st.sampled_from(["alice", "bob", "carol"]),
        kinds=st.sampled_from([("gpu",), ("cpu",), ("gpu", "cpu")]),
        vram_gb=st.sampled_from([0.0, 8.0, 16.0]),
        energy_j=st.floats(1e3, 3e6),
    ),
    max_size=12,
    unique_by=lambda task: task.task_id,
)


@given(
    policy=st.sampled_from(POLICIES),
    tasks=_tasks,
    powers=st.lists(st.floats(0.0, 400.0), min_size=1, max_size=6),
    kind=st.sampled_from(["gpu", "cpu"]),
    vram_gb=st.sampled_from([0.0, 12.0]),
    slots=st.integers(0, 4),
)
def test_choices_are_fitting_unique_and_within_the_heat_window(
    *,
    policy: str,
    tasks: list[QueuedTask],
    powers: list[float],
    kind: str,
    vram_gb: float,
    slots: int,
) -> None:
    """Property: at most ``slots`` distinct fitting tasks; heat-aware never exceeds the window."""
    heater = _heater(*powers, kind=kind, vram_gb=vram_gb, slots=slots)
    chosen = choose(policy, heater, tasks, FleetView(), now_ts=NOW)
    by_id = {task.task_id: task for task in tasks}
    assert len(chosen) <= slots
    assert len(set(chosen)) == len(chosen)
    assert all(fits_hardware(heater, by_id[task_id]) for task_id in chosen)
    if policy == "mining-only":
        assert chosen == ()
    if policy == "heat-aware":
        energy_j = sum(by_id[task_id].energy_to_checkpoint_j for task_id in chosen)
        assert energy_j <= window_energy_j(heater.window, NOW, math.inf) * (1 + 1e-12)
        fitting = [t for t in tasks if fits_hardware(heater, t)]
        if fitting and slots:
            top = max(t.priority for t in fitting)
            smallest_top_j = min(t.energy_to_checkpoint_j for t in fitting if t.priority == top)
            if smallest_top_j <= window_energy_j(heater.window, NOW, math.inf) * 0.999:
                # Something fits the window, so the heater is not left without work.
                assert chosen
    if policy == "fifo" and chosen:
        fitting = sorted(
            (t for t in tasks if fits_hardware(heater, t)), key=lambda t: (t.queued_ts, t.task_id)
        )
        assert [t.task_id for t in fitting[: len(chosen)]] == list(chosen)
