"""A real, unmodified Stratum mining client → the proxy → the test pool, over loopback TCP.

No such client is installable from a package registry that CI reaches (Debian bookworm has no
cpuminer, cgminer or bfgminer; PyPI and npm have none that mines Bitcoin over Stratum on a CPU
with today's Python), so this test runs only where ``HEATGRID_REAL_MINER`` names a CPU miner
with cpuminer's command line, e.g. pooler's cpuminer 2.5.1 (``minerd``) built from its source
(docs/mining.md, "A real CPU miner"). Elsewhere it is skipped, saying why.

Two miner processes, one per device, mine with their real hashing code at a fixed share
difficulty. The proxy's accepted work per device must match the pool's own count within
0.1 %, every share the miner heard accepted must be in the proxy's table, and neither the
proxy nor the pool may reject any.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from heatgrid.coordinator.stratum import StratumProxy
from heatgrid.emulators.stratum_pool import StratumPool

from .stratum_fleet import make_miners, rejects_by_device, shares_by_device, until
from .test_stratum_proxy import POOL_PASSWORD, POOL_USER, proxy_settings

DIFFICULTY = 2.0**-12  # about a million hashes a share: a few shares a second on one thread
SHARES = 40  # per device
_MINER = os.environ.get("HEATGRID_REAL_MINER", "")
_ACCEPTED = re.compile(rb"accepted: (\d+)/(\d+)")

pytestmark = pytest.mark.skipif(
    not (_MINER and shutil.which(_MINER)),
    reason="HEATGRID_REAL_MINER does not name a real Stratum CPU miner (cpuminer's minerd): "
    "none is installable from a package registry; see docs/mining.md",
)


def _miner_answers(log: Path) -> tuple[int, int]:
    """The last ``accepted: A/S`` the miner printed: shares it heard accepted, and answered."""
    found = _ACCEPTED.findall(log.read_bytes())
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def test_a_real_miner_through_the_proxy_is_counted_as_the_pool_counts(
    database_url: str, tmp_path: Path
) -> None:
    miners = make_miners(database_url, 2)

    async def scenario() -> None:
        pool = StratumPool(difficulty=DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        fixed = {f"{which}_difficulty": DIFFICULTY for which in ("start", "min", "max")}
        async with pool, StratumProxy(proxy_settings(database_url, pool, **fixed)) as proxy:
            url = f"stratum+tcp://127.0.0.1:{proxy.port}"
            logs = [tmp_path / f"miner-{index}.log" for index in range(len(miners))]
            processes: list[asyncio.subprocess.Process] = []
            try:
                for (device_id, password), log in zip(miners, logs, strict=True):
                    with log.open("wb") as out:  # the child keeps its own descriptor
                        processes.append(
                            await asyncio.create_subprocess_exec(
                                _MINER, "--algo=sha256d", "--threads=1", "--retry-pause=1",
                                f"--url={url}", f"--user={device_id}.rig",
                                f"--pass={password}",
                                stdout=out, stderr=out,
                            )
                        )  # fmt: skip
                await until(
                    lambda: all(_miner_answers(log)[0] >= SHARES for log in logs),
                    f"{SHARES} shares accepted by each real miner",
                )
            finally:
                for process in processes:
                    with contextlib.suppress(ProcessLookupError):
                        process.terminate()
                    await process.wait()
            work, rows = shares_by_device(database_url)
            await until(
                lambda: sum(pool.stats.accepted_shares.values()) >= sum(rows.values()),
                "the pool heard every share the proxy accepted",
            )
            assert not pool.stats.rejected
            assert rejects_by_device(database_url) == {}
            for (device_id, _), log in zip(miners, logs, strict=True):
                heard, answered = _miner_answers(log)
                assert heard == answered  # the proxy refused none of the real miner's shares
                assert heard <= rows[device_id] <= heard + 2  # +2: answers lost to terminate
                pool_worker = f"{POOL_USER}.{device_id}"
                assert pool.stats.accepted_shares[pool_worker] == rows[device_id]
                assert work[device_id] == pytest.approx(
                    pool.stats.accepted_work[pool_worker], rel=1e-3
                )
                assert work[device_id] == pytest.approx(rows[device_id] * DIFFICULTY, rel=1e-9)

    asyncio.run(scenario())
