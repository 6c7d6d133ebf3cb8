"""The proxy stamps shares and rejections with the clock it is given, not the wall clock.

``heatgrid demo`` runs its coordinator on an emulated winter day months away from today; the
proxy beside it must stamp on the same clock, or the coordinator's mining report (shares of the
last 24 hours) and the ledger's settlements would find none of the demo's shares.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningReject, MiningShare
from heatgrid.coordinator.stratum import StratumProxy
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum

from .stratum_fleet import make_miners, until
from .test_stratum_hostile import Raw
from .test_stratum_proxy import POOL_DIFFICULTY, POOL_PASSWORD, POOL_USER, proxy_settings

_WINTER_TS = datetime(2026, 1, 14, 6, 30, tzinfo=UTC).timestamp()
_LATER_S = 7200.0  # the rejection comes two emulated hours after the shares
_MINER_HS = 2.0e5  # a few shares a second [H/s]


def _stamps(database_url: str) -> tuple[list[float], list[tuple[float, int]]]:
    """Every share's ``accepted_ts`` and every rejection count's (hour, count)."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            shares = list(session.scalars(select(MiningShare.accepted_ts)))
            rejects = [
                (row.hour_start_ts, row.count) for row in session.scalars(select(MiningReject))
            ]
    finally:
        engine.dispose()
    return shares, rejects


def test_shares_and_rejections_are_stamped_with_the_given_clock(database_url: str) -> None:
    (miner_id, miner_password), (raw_id, raw_password) = make_miners(database_url, 2)
    now_ts = [_WINTER_TS]

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with (
            pool,
            StratumProxy(proxy_settings(database_url, pool), clock=lambda: now_ts[0]) as proxy,
        ):
            url = f"stratum+tcp://127.0.0.1:{proxy.port}"
            miner = StratumMinerClient(url, miner_id, miner_password, lambda: _MINER_HS)
            mining = asyncio.create_task(miner.run())
            try:
                await until(lambda: miner.stats.accepted >= 5, "five shares accepted")
            finally:
                mining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mining
            now_ts[0] = _WINTER_TS + _LATER_S
            raw = await Raw.open(proxy.port)
            try:
                await raw.call(stratum.Subscribe(1))
                worker = f"{raw_id}.rig"
                assert (await raw.call(stratum.Authorize(2, worker, raw_password))).result is True
                job = await raw.job()
                submit = stratum.Submit(3, worker, "nosuchjob", bytes(2), job.ntime, 1, 0x2000)
                answer = await raw.call(submit)
                assert answer.error is not None
                assert answer.error.code == stratum.ErrorCode.JOB_NOT_FOUND
            finally:
                await raw.close()
            await until(lambda: bool(_stamps(database_url)[1]), "the rejection is stored")

    asyncio.run(scenario())
    shares, rejects = _stamps(database_url)
    assert len(shares) >= 5
    assert set(shares) == {_WINTER_TS}  # not the wall clock's December (or whenever)
    later_hour_ts = (_WINTER_TS + _LATER_S) // 3600.0 * 3600.0
    assert rejects == [(later_hour_ts, 1)]
