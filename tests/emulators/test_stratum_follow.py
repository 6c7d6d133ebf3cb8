"""The emulated miner mines into the pool pyasic configures, and moves when pyasic changes it."""

from __future__ import annotations

import asyncio
import warnings

from heatgrid.emulators import miner_model
from heatgrid.emulators.miner_server import MinerEmulator, scaled_clock
from heatgrid.emulators.stratum_miner import PoolFollower
from heatgrid.emulators.stratum_pool import StratumPool

with warnings.catch_warnings():
    # pyasic 0.79 declares pydantic models with a class-based Config, and passlib imports the
    # deprecated crypt module: third-party deprecations raised once, at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(pyasic|passlib)\b")
    from pyasic.config import MinerConfig
    from pyasic.config.pools import Pool, PoolConfig
    from pyasic.miners.auradine import AuradineFluxAT1500


async def _until(condition: object, limit_s: float = 60.0) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), limit_s)


def test_pyasic_points_the_miner_at_a_pool_and_then_at_another() -> None:
    async def scenario() -> None:
        async with (
            MinerEmulator(rpc_port=0, web_port=0, clock=scaled_clock(50.0)) as emulator,
            StratumPool(difficulty=2.0**-20, users={"dev3": "pw3"}) as first,
            StratumPool(difficulty=2.0**-20) as second,
        ):

            def configured() -> tuple[str, str, str] | None:
                pools = emulator.device.view().pools
                return (pools[0].url, pools[0].user, pools[0].password) if pools else None

            def hashrate_hs() -> float:
                return miner_model.hashrate_ths(emulator.state, emulator.params) * 1e12

            follower = PoolFollower(configured, hashrate_hs, poll_s=0.05)
            task = asyncio.create_task(follower.run())
            miner = AuradineFluxAT1500("127.0.0.1")
            miner.rpc.port = emulator.rpc_port
            miner.web.port = emulator.web_port
            try:
                await asyncio.sleep(0.2)
                assert follower.client is None  # no pool configured: no mining
                current = await miner.get_config()
                for pool, user, password in ((first, "dev3.rig", "pw3"), (second, "dev3.b", "x")):
                    pools = PoolConfig.simple([Pool(url=pool.url, user=user, password=password)])
                    await miner.send_config(
                        MinerConfig(pools=pools, mining_mode=current.mining_mode)
                    )
                    await _until(lambda p=pool, u=user: p.stats.accepted_shares[u] >= 2)
                    assert follower.client is not None
                    assert follower.client.user == user
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert not first.stats.rejected
            assert not second.stats.rejected
            assert first.stats.accepted_shares["dev3.b"] == 0

    asyncio.run(scenario())
