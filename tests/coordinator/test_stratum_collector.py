"""The proxy process's garbage-collection policy: settled connections out of full passes.

The rule is checked with a recording stand-in for :mod:`gc` on a clock passed in; then, with the
real collector, that a miner's connection is frozen by a freeze (a full pass no longer walks
it) and that a closed connection's objects are freed by the hourly reclaim.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Iterator

import pytest

from heatgrid.coordinator.stratum import CollectorPolicy, StratumProxy
from heatgrid.coordinator.stratum import collector as collector_module
from heatgrid.core.errors import InputError
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum

from .stratum_fleet import make_miners, until
from .test_stratum_hostile import Raw
from .test_stratum_proxy import POOL_DIFFICULTY, POOL_PASSWORD, POOL_USER, proxy_settings


class _Recorder:
    """Stands in for :mod:`gc`: notes each call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect({generation})")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


def test_start_freezes_then_survivors_are_frozen_and_everything_reclaimed_on_schedule() -> None:
    recorder = _Recorder()
    policy = CollectorPolicy(freeze_interval_s=2.0, reclaim_interval_s=10.0, collector=recorder)
    policy.start(100.0)
    assert recorder.calls == ["collect(2)", "freeze"]
    recorder.calls.clear()

    assert policy.tick(101.9) is None
    assert policy.tick(102.0) == "freeze"
    assert recorder.calls == ["collect(1)", "freeze"]  # the young generations only
    assert policy.tick(103.0) is None  # the next one is 2 s after this one
    assert policy.tick(104.0) == "freeze"
    assert [policy.tick(t) for t in (106.0, 108.0)] == ["freeze", "freeze"]
    recorder.calls.clear()

    assert policy.tick(110.0) == "reclaim"  # due with a freeze: the reclaim wins
    assert recorder.calls == ["unfreeze", "collect(2)", "freeze"]
    assert policy.tick(111.0) is None
    assert policy.tick(112.0) == "freeze"
    assert policy.tick(119.9) == "freeze"
    assert policy.tick(120.0) == "reclaim"  # 10 s after the last, whatever came between
    assert (policy.freezes, policy.reclaims) == (6, 2)


def test_a_late_tick_does_each_thing_once_not_once_per_missed_interval() -> None:
    recorder = _Recorder()
    policy = CollectorPolicy(freeze_interval_s=1.0, reclaim_interval_s=3600.0, collector=recorder)
    policy.start(0.0)
    assert policy.tick(50.0) == "freeze"
    assert policy.tick(50.5) is None  # a loop that ran late does not catch up 49 freezes


def test_nothing_is_done_before_start() -> None:
    recorder = _Recorder()
    policy = CollectorPolicy(collector=recorder)
    assert policy.tick(1e9) is None
    assert recorder.calls == []


@pytest.mark.parametrize("field", ["freeze_interval_s", "reclaim_interval_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_intervals_must_be_positive(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        CollectorPolicy(**{field: value})  # type: ignore[arg-type]


def test_run_ticks_on_its_clock_and_logs_each_reclaim_with_its_pause(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(collector_module, "_TICK_S", 0.0)
    recorder = _Recorder()
    policy = CollectorPolicy(freeze_interval_s=2.0, reclaim_interval_s=5.0, collector=recorder)
    # start; ticks at 1 (nothing), 2 (freeze), 2 (nothing), 5 (reclaim, read again when done:
    # 5.25), 6 (nothing), 7 (freeze: 2 s after the reclaim); then the clock cancels the loop
    readings = iter([0.0, 1.0, 2.0, 2.0, 5.0, 5.25, 6.0, 7.0])

    def clock() -> float:
        try:
            return next(readings)
        except StopIteration:
            raise asyncio.CancelledError from None

    async def scenario() -> None:
        with pytest.raises(asyncio.CancelledError):
            await policy.run(clock)

    with caplog.at_level(logging.INFO, logger="heatgrid.coordinator.stratum"):
        asyncio.run(scenario())
    assert (policy.freezes, policy.reclaims) == (2, 1)
    assert recorder.calls[-2:] == ["collect(1)", "freeze"]
    (record,) = [r for r in caplog.records if "full collection" in r.getMessage()]
    assert record.pause_s == 0.25  # type: ignore[attr-defined]
    assert record.reclaims == 1  # type: ignore[attr-defined]


@pytest.fixture
def real_collector() -> Iterator[None]:
    """The test process's collector, thawed and collected again afterwards."""
    yield
    gc.unfreeze()
    gc.collect()


@pytest.mark.usefixtures("real_collector")
def test_a_settled_connection_is_frozen_and_a_closed_one_is_freed_by_the_reclaim(
    database_url: str,
) -> None:
    (device_id, password), *_ = make_miners(database_url, 1)

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            policy = CollectorPolicy(freeze_interval_s=1.0, reclaim_interval_s=100.0)
            policy.start(0.0)
            miner = await Raw.open(proxy.port)
            assert (await miner.call(stratum.Subscribe(1))).error is None
            assert (await miner.call(stratum.Authorize(2, f"{device_id}.rig", password))).result
            await miner.job()
            (session,) = proxy.sessions
            transport = session._transport  # the object asyncio leaves in a cycle
            in_full_pass = {id(o) for o in gc.get_objects()}
            assert id(session) in in_full_pass
            assert id(transport) in in_full_pass

            assert policy.tick(1.0) == "freeze"
            in_full_pass = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
            assert id(session) not in in_full_pass
            assert id(transport) not in in_full_pass
            assert id(session.validator) not in in_full_pass

            gone = weakref.ref(transport)
            del session, transport, in_full_pass
            await miner.close()
            await until(lambda: not proxy.sessions, "the proxy closed the connection")
            await asyncio.sleep(0.1)  # asyncio's connection_lost callbacks
            gc.collect(1)  # what a freeze does first: the young generations hold none of it
            assert gone() is not None, "frozen: only a full pass frees the transport's cycle"
            assert policy.tick(100.0) == "reclaim"
            assert gone() is None

    asyncio.run(scenario())
