"""Tests for the workload arbiter: work by value, power within hardware limits, long cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core.arbiter import (
    BOOST_WORK_ID,
    ArbiterState,
    DeviceArrays,
    DeviceCapability,
    DevicePlan,
    DeviceState,
    DeviceStateArrays,
    WorkOffer,
    plan,
    plan_many,
)
from heatgrid.core.catalog import load_catalog
from heatgrid.core.errors import InputError

NOW_TS = 1_736_942_400.0  # 2025-01-15 12:00 UTC
MINING = WorkOffer.mining(0.05, 20.0)
ASIC = DeviceCapability(
    device_id="asic", kind="asic", min_power_w=1000.0, max_power_w=3000.0, min_cycle_s=900.0
)
BOOST = DeviceCapability(device_id="boost", kind="resistive", min_power_w=100.0, max_power_w=2000.0)


def _gpu(device_id: str, vram_gb: float = 24.0) -> DeviceCapability:
    return DeviceCapability(
        device_id=device_id,
        kind="gpu",
        min_power_w=150.0,
        max_power_w=450.0,
        power_levels_w=(150.0, 250.0, 350.0, 450.0),
        min_cycle_s=300.0,
        vram_gb=vram_gb,
    )


def _task(work_id: str, value_eur_per_kwh: float, min_vram_gb: float = 0.0) -> WorkOffer:
    return WorkOffer(
        work_id=work_id,
        value_eur_per_kwh=value_eur_per_kwh,
        device_kinds=("gpu",),
        min_vram_gb=min_vram_gb,
    )


def _by_id(plans: list[DevicePlan]) -> dict[str, DevicePlan]:
    return {p.device_id: p for p in plans}


def _bracket(device: DeviceCapability, target_w: float) -> tuple[float, float]:
    """Feasible powers just below and above a target, computed independently of the arbiter."""
    if device.power_levels_w:
        feasible = [0.0, *device.power_levels_w]
        if any(abs(level - target_w) <= 1e-9 for level in feasible):
            return target_w, target_w
        return max(f for f in feasible if f < target_w), min(f for f in feasible if f > target_w)
    if target_w == 0.0 or target_w >= device.min_power_w:
        return target_w, target_w
    return 0.0, device.min_power_w


def _allowed(device: DeviceCapability, power_w: float) -> bool:
    if power_w == 0.0:
        return True
    if device.power_levels_w:
        return power_w in device.power_levels_w
    return device.min_power_w <= power_w <= device.max_power_w


def _state_key(device: DeviceCapability, power_w: float) -> float | bool:
    """The discrete state: the level for a device with levels, on/off otherwise."""
    return power_w if device.power_levels_w else power_w > 0.0


# --- strategies --------------------------------------------------------------------------------


@st.composite
def capabilities(draw: st.DrawFn, device_id: str = "d", kind: str = "asic") -> DeviceCapability:
    max_w = draw(st.integers(20, 5000))
    min_w = draw(st.integers(1, max_w))
    levels: tuple[float, ...] = ()
    if draw(st.booleans()):
        inner = draw(st.sets(st.integers(min_w, max_w), max_size=4))
        levels = tuple(float(v) for v in sorted({min_w, max_w, *inner}))
    return DeviceCapability(
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        min_power_w=float(min_w),
        max_power_w=float(max_w),
        power_levels_w=levels,
        min_cycle_s=draw(st.floats(0.0, 1800.0)),
        vram_gb=draw(st.sampled_from([0.0, 16.0, 48.0])),
    )


# --- averages and hardware limits --------------------------------------------------------------


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(capabilities(), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=8,
    ),
    st.floats(10.0, 120.0),
)
def test_long_run_average_equals_the_demand_within_one_quantum(
    homes: list[tuple[DeviceCapability, float]], dt_s: float
) -> None:
    devices = [device for device, _ in homes]
    demand_w = np.array([fraction * device.max_power_w for device, fraction in homes])
    arrays = DeviceArrays.from_capabilities(devices)
    state = DeviceStateArrays.initial(len(devices))
    ticks = 600
    delivered_j = np.zeros(len(devices))
    for tick in range(ticks):
        state, power_w = plan_many(state, demand_w, arrays, NOW_TS + tick * dt_s)
        delivered_j += power_w * dt_s
    for index, device in enumerate(devices):
        below_w, above_w = _bracket(device, float(demand_w[index]))
        quantum_j = (above_w - below_w) * (device.min_cycle_s + 2 * dt_s)
        asked_j = demand_w[index] * ticks * dt_s
        # 1e-9 W: targets that close to a level are that level.
        tolerance_j = 1e-6 * asked_j + 1e-9 * ticks * dt_s
        assert abs(delivered_j[index] - asked_j) <= quantum_j + tolerance_j


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["asic", "gpu", "resistive"]), st.integers()),
        min_size=1,
        max_size=3,
    ).flatmap(
        lambda kinds: st.tuples(
            *(capabilities(f"{kind}{i}", kind) for i, (kind, _) in enumerate(kinds))
        )
    ),
    st.lists(
        st.tuples(st.floats(1.0, 900.0), st.floats(0.0, 8000.0), st.booleans()),
        min_size=1,
        max_size=60,
    ),
)
def test_powers_are_feasible_and_switching_respects_min_cycle(
    devices: tuple[DeviceCapability, ...], ticks: list[tuple[float, float, bool]]
) -> None:
    # The task comes and goes; a device left without work may stop early, nothing else may.
    state = ArbiterState()
    now_ts = NOW_TS
    last_change_ts = {d.device_id: -math.inf for d in devices}
    last_key = {d.device_id: _state_key(d, 0.0) for d in devices}
    for step_s, demand_w, task_offered in ticks:
        now_ts += step_s
        offers = [MINING, _task("job-1", 0.3)] if task_offered else [MINING]
        state, plans = plan(state, demand_w, devices, offers, now_ts)
        assert [p.device_id for p in plans] == [d.device_id for d in devices]
        assert sum(p.target_w for p in plans) <= demand_w + 1e-9
        for device, device_plan in zip(devices, plans, strict=True):
            assert _allowed(device, device_plan.power_w), device_plan
            assert (device_plan.work_id is None) == (device_plan.power_w == 0.0)
            key = _state_key(device, device_plan.power_w)
            if key != last_key[device.device_id]:
                work_ended = device.kind == "gpu" and not task_offered
                dwell_s = now_ts - last_change_ts[device.device_id]
                assert dwell_s >= device.min_cycle_s or work_ended
                last_change_ts[device.device_id] = now_ts
                last_key[device.device_id] = key


def test_demand_below_the_floor_becomes_long_cycles() -> None:
    state = ArbiterState()
    powers_w = []
    for minute in range(24 * 60):
        state, plans = plan(state, 250.0, [ASIC], [MINING], NOW_TS + 60.0 * minute)
        powers_w.append(plans[0].power_w)
    on = np.array(powers_w) > 0.0
    assert set(powers_w) == {0.0, 1000.0}
    runs = np.diff(np.flatnonzero(np.diff(on.astype(int)) != 0))
    assert runs.min() * 60.0 >= ASIC.min_cycle_s  # every full on or off period
    assert np.mean(powers_w) == pytest.approx(250.0, abs=1000.0 * 960.0 / 86_400.0)


def test_demand_between_levels_alternates_between_the_neighbours() -> None:
    gpu = _gpu("gpu")
    state = ArbiterState()
    powers_w = []
    for minute in range(12 * 60):
        state, plans = plan(state, 300.0, [gpu], [_task("job", 0.2)], NOW_TS + 60.0 * minute)
        powers_w.append(plans[0].power_w)
    assert set(powers_w) == {250.0, 350.0}
    assert np.mean(powers_w) == pytest.approx(300.0, abs=100.0 * 360.0 / (12 * 3600.0))


def test_feasible_demand_is_delivered_exactly() -> None:
    state, plans = plan(ArbiterState(), 2222.0, [ASIC], [MINING], NOW_TS)
    assert plans[0].power_w == 2222.0
    assert state.devices[0].debt_j == 0.0
    state, plans = plan(ArbiterState(), 350.0, [_gpu("gpu")], [_task("job", 0.1)], NOW_TS)
    assert plans[0].power_w == 350.0


def test_a_held_device_runs_at_the_power_nearest_the_target() -> None:
    # On since 60 s with a 900 s minimum cycle: demand drops to 0, the ASIC stays at its floor.
    on = DeviceState("asic", power_w=2500.0, target_w=2500.0, since_ts=NOW_TS - 60.0)
    state, plans = plan(ArbiterState((on,)), 0.0, [ASIC], [MINING], NOW_TS)
    assert plans[0].power_w == ASIC.min_power_w
    assert plans[0].target_w == 0.0
    state, plans = plan(state, 0.0, [ASIC], [MINING], NOW_TS + 840.0)
    assert plans[0].power_w == 0.0
    assert plans[0].work_id is None


def test_stop_now_beats_the_minimum_cycle() -> None:
    on = DeviceState("asic", power_w=2500.0, target_w=2500.0, since_ts=NOW_TS - 60.0)
    state, plans = plan(ArbiterState((on,)), 2500.0, [ASIC], [MINING], NOW_TS, stop_now=True)
    assert plans[0].power_w == 0.0
    assert state.devices[0].since_ts == NOW_TS
    # The minimum off time then counts from the stop.
    state, plans = plan(state, 2500.0, [ASIC], [MINING], NOW_TS + 60.0)
    assert plans[0].power_w == 0.0
    states = DeviceStateArrays.from_states([on, on])
    arrays = DeviceArrays.from_capabilities([ASIC, ASIC])
    _, power_w = plan_many(states, 2500.0, arrays, NOW_TS, stop_now=[True, False])
    assert power_w.tolist() == [0.0, 2500.0]


def test_a_device_whose_work_ends_stops_at_once() -> None:
    gpu = _gpu("gpu")
    state, plans = plan(ArbiterState(), 450.0, [gpu], [_task("job", 0.2)], NOW_TS)
    assert (plans[0].work_id, plans[0].power_w) == ("job", 450.0)
    state, plans = plan(state, 450.0, [gpu], [], NOW_TS + 10.0)
    assert (plans[0].work_id, plans[0].power_w) == (None, 0.0)


# --- work by value -----------------------------------------------------------------------------


def test_the_most_valuable_work_gets_the_power() -> None:
    efficient = DeviceCapability(
        device_id="s21", kind="asic", min_power_w=1000.0, max_power_w=3500.0
    )
    old = DeviceCapability(device_id="s9", kind="asic", min_power_w=600.0, max_power_w=1323.0)
    offers = [
        WorkOffer.mining(0.05, 95.0, work_id="mining-s9", device_ids=("s9",)),
        WorkOffer.mining(0.05, 17.5, work_id="mining-s21", device_ids=("s21",)),
    ]
    _, plans = plan(ArbiterState(), 3000.0, [old, efficient], offers, NOW_TS)
    by_id = _by_id(plans)
    assert by_id["s21"].power_w == 3000.0
    assert by_id["s21"].work_id == "mining-s21"
    assert by_id["s9"].power_w == 0.0
    # Above the efficient miner's maximum, the old one takes the rest.
    _, plans = plan(ArbiterState(), 4000.0, [old, efficient], offers, NOW_TS)
    by_id = _by_id(plans)
    assert (by_id["s21"].power_w, by_id["s9"].target_w) == (3500.0, 500.0)


def test_a_task_outbids_mining_and_goes_to_one_fitting_gpu() -> None:
    small, large = _gpu("small", vram_gb=24.0), _gpu("large", vram_gb=80.0)
    offers = [MINING, _task("llm", 0.4, min_vram_gb=40.0), _task("cnn", 0.25)]
    _, plans = plan(ArbiterState(), 3500.0, [ASIC, small, large], offers, NOW_TS)
    by_id = _by_id(plans)
    assert by_id["large"].work_id == "llm"  # only it has the memory
    assert by_id["small"].work_id == "cnn"  # exclusive: the next task
    assert by_id["asic"].work_id == "mining"
    assert by_id["asic"].target_w == 3500.0 - 2 * 450.0  # tasks are worth more: filled first
    _, plans = plan(ArbiterState(), 400.0, [ASIC, small, large], offers, NOW_TS)
    by_id = _by_id(plans)
    assert (by_id["large"].target_w, by_id["small"].target_w, by_id["asic"].target_w) == (
        400.0,
        0.0,
        0.0,
    )


def test_one_exclusive_task_runs_on_one_device_only() -> None:
    _, plans = plan(ArbiterState(), 900.0, [_gpu("a"), _gpu("b")], [_task("job", 0.3)], NOW_TS)
    assert [p.work_id for p in plans] == ["job", None]
    assert [p.target_w for p in plans] == [450.0, 0.0]


def test_boost_covers_only_the_demand_above_the_compute_maximum() -> None:
    _, plans = plan(ArbiterState(), 2500.0, [BOOST, ASIC], [MINING], NOW_TS)
    assert [(p.device_id, p.target_w) for p in plans] == [("boost", 0.0), ("asic", 2500.0)]
    _, plans = plan(ArbiterState(), 4200.0, [BOOST, ASIC], [MINING], NOW_TS)
    by_id = _by_id(plans)
    assert by_id["boost"].power_w == 1200.0
    assert by_id["boost"].work_id == BOOST_WORK_ID
    assert by_id["boost"].value_eur_per_kwh == 0.0
    # Without work for the miner, the boost element heats alone.
    _, plans = plan(ArbiterState(), 1500.0, [BOOST, ASIC], [], NOW_TS)
    assert [(p.device_id, p.power_w) for p in plans] == [("boost", 1500.0), ("asic", 0.0)]


def test_mining_value_per_kwh_follows_from_hashprice_and_efficiency() -> None:
    offer = WorkOffer.mining(0.05, 20.0)
    # 1 kWh at 20 J/TH is 180 000 TH; a TH/s-day is 86 400 TH, worth 0.05 EUR.
    assert offer.value_eur_per_kwh == pytest.approx(0.05 * 3.6e6 / 20.0 / 86_400.0)
    assert not offer.exclusive
    assert offer.device_kinds == ("asic",)


def test_capability_from_the_catalog() -> None:
    avalon = load_catalog().find("Avalon Q")
    device = DeviceCapability.from_catalog(avalon, "heater-1", min_cycle_s=600.0)
    assert device.power_levels_w == avalon.power_levels_w
    assert (device.min_power_w, device.max_power_w) == (avalon.min_power_w, avalon.max_power_w)
    _, plans = plan(ArbiterState(), 1000.0, [device], [MINING], NOW_TS)
    assert plans[0].power_w in avalon.power_levels_w


# --- scalar and vector forms -------------------------------------------------------------------


@settings(max_examples=40)
@given(
    capabilities(),
    st.lists(st.tuples(st.floats(1.0, 900.0), st.floats(0.0, 6000.0)), min_size=1, max_size=40),
)
def test_plan_and_plan_many_agree_for_one_device(
    device: DeviceCapability, ticks: list[tuple[float, float]]
) -> None:
    arrays = DeviceArrays.from_capabilities([device])
    state = ArbiterState()
    state_arrays = DeviceStateArrays.initial(1)
    now_ts = NOW_TS
    for step_s, demand_w in ticks:
        now_ts += step_s
        state, plans = plan(state, demand_w, [device], [MINING], now_ts)
        state_arrays, power_w = plan_many(state_arrays, [demand_w], arrays, now_ts)
        assert power_w[0] == plans[0].power_w
        assert state_arrays.state(0, device.device_id) == state.devices[0]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"min_power_w": 4000.0}, "min_power_w"),
        ({"max_power_w": math.nan}, "max_power_w"),
        ({"min_cycle_s": -1.0}, "min_cycle_s"),
        ({"power_levels_w": (1000.0, 2000.0)}, "power_levels_w"),
        ({"power_levels_w": (1000.0, 3000.0, 2000.0)}, "power_levels_w"),
        ({"kind": "toaster"}, "kind"),
        ({"device_id": ""}, "device_id"),
    ],
)
def test_capability_rejects_bad_input(changes: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "device_id": "asic",
        "kind": "asic",
        "min_power_w": 1000.0,
        "max_power_w": 3000.0,
    }
    arguments.update(changes)
    with pytest.raises(InputError, match=match):
        DeviceCapability(**arguments)  # type: ignore[arg-type]


def test_offer_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="value_eur_per_kwh"):
        _task("job", -0.1)
    with pytest.raises(InputError, match="device_kinds"):
        WorkOffer(work_id="job", value_eur_per_kwh=0.1, device_kinds=("resistive",))
    with pytest.raises(InputError, match="work_id"):
        WorkOffer(work_id=BOOST_WORK_ID, value_eur_per_kwh=0.1, device_kinds=("gpu",))
    with pytest.raises(InputError, match="efficiency_j_per_th"):
        WorkOffer.mining(0.05, 0.0)


def test_plan_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="demand_w"):
        plan(ArbiterState(), -1.0, [ASIC], [MINING], NOW_TS)
    with pytest.raises(InputError, match="now_ts"):
        plan(ArbiterState(), 1.0, [ASIC], [MINING], math.inf)
    with pytest.raises(InputError, match="devices"):
        plan(ArbiterState(), 1.0, [ASIC, ASIC], [MINING], NOW_TS)
    with pytest.raises(InputError, match="offers"):
        plan(ArbiterState(), 1.0, [ASIC], [MINING, MINING], NOW_TS)
    arrays = DeviceArrays.from_capabilities([ASIC])
    with pytest.raises(InputError, match="demand_w"):
        plan_many(DeviceStateArrays.initial(1), [math.nan], arrays, NOW_TS)
    with pytest.raises(InputError, match="power_levels_w"):
        DeviceArrays(
            min_power_w=np.array([1.0]),
            max_power_w=np.array([2.0]),
            power_levels_w=np.array([[1.0, 5.0]]),
            min_cycle_s=np.array([0.0]),
        )
