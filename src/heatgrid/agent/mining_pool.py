"""Point the heater's miners at the coordinator's Stratum proxy with its mining credentials.

Once the agent is enrolled, :class:`PoolPointer` asks the coordinator where its proxy listens
(``GET /v1/devices/{id}/mining-credentials``). A coordinator without a proxy answers no URL,
and the miners' pools are left alone. Otherwise the agent needs the heater's mining password:
the coordinator stores only its hash, so the agent issues one (``POST``, which replaces the
password in force) the first time and keeps it in its state file. Every miner configured with
``coordinator_pool = true`` is then set, through pyasic, to mine at the proxy as
``DEVICE_ID.NAME`` with that password.

It runs after each successful sync: a miner that refused (or did not answer) is tried again at
the next one, and the credentials are read again now and then: when the password in force is
not the one kept (someone issued a new one, e.g. with ``heatgrid mining credentials
--rotate``), the agent issues its own again and points every miner anew.

Before a miner is pointed at the proxy for the first time, its pool groups as pyasic reads them
(the owner's own pools) are kept in the state file; a miner whose pools cannot be read is not
pointed. :meth:`PoolPointer.restore` puts them back and forgets them: the agent does it for a
miner whose ``coordinator_pool`` was turned off and, once the heater has left its coordinator
(``heatgrid agent leave``), for every miner.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from heatgrid.agent.client import (
    CoordinatorClient,
    CoordinatorRefusedError,
    CoordinatorUnavailableError,
)
from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceUnavailableError,
    PoolGroup,
    PoolMiner,
    StratumPool,
)
from heatgrid.agent.state_store import StateStore

__all__ = ["PoolPointer", "worker_name"]

_PASSWORD_KEY = "mining_password"
_OWNER_POOLS_KEY = "owner_pools"  # {miner name: [pool group, ...]} as the owner had them
_RECHECK_S = 3600.0  # how often the credentials are read again once every miner is set [s]
_log = logging.getLogger("heatgrid.agent")


def worker_name(device_id: str, device_name: str) -> str:
    """Return the Stratum user ``DEVICE_ID.NAME`` (the name reduced to ``[A-Za-z0-9_-]``)."""
    worker = re.sub(r"[^A-Za-z0-9_-]+", "-", device_name).strip("-") or "miner"
    return f"{device_id}.{worker}"


class PoolPointer:
    """Keeps the heater's pyasic miners mining at the coordinator's proxy.

    Parameters
    ----------
    miners : iterable of PoolMiner
        The heater's miners; those with ``coordinator_pool`` False are never pointed at the
        proxy (only given back their owner's pools if they were).
    store : StateStore
        The agent's state file, where the mining password and the owner's pools are kept.
    clock : callable
        Returns the present time [POSIX s].
    """

    def __init__(
        self, miners: Iterable[PoolMiner], store: StateStore, clock: Callable[[], float]
    ) -> None:
        self._all = list(miners)
        self._miners = [miner for miner in self._all if miner.coordinator_pool]
        self._store = store
        self._clock = clock
        self._pointed: set[str] = set()
        self._checked_ts = -math.inf
        self.pool_url: str | None = None
        """The proxy the miners were last pointed at (None: none yet)."""

    @property
    def pointed(self) -> frozenset[str]:
        """Names of the miners that mine at the proxy now."""
        return frozenset(self._pointed)

    async def sync(self, client: CoordinatorClient, device_id: str, token: str) -> None:
        """Point the miners not yet pointed; read the credentials again when it is time.

        Failures are logged and tried again at the next call; none is raised.
        """
        if not self._miners:
            return
        now_ts = self._clock()
        every_miner = len(self._pointed) == len(self._miners)
        if every_miner and now_ts - self._checked_ts < _RECHECK_S:
            return
        try:
            shown = await client.mining_credentials(device_id, token)
            self._checked_ts = now_ts
            if shown.pool_url is None:
                return  # the coordinator runs no proxy: the owner's pools stay
            kept = self._kept_password(device_id)
            if kept is None or kept[1] != shown.created_ts:
                issued = await client.issue_mining_credentials(device_id, token)
                if issued.password is None:
                    raise CoordinatorRefusedError("the coordinator issued no mining password", 500)
                kept = (issued.password, issued.created_ts)
                self._store.put(
                    _PASSWORD_KEY,
                    {
                        "device_id": device_id,
                        "password": issued.password,
                        "created_ts": issued.created_ts,
                    },
                )
                self._pointed.clear()  # the old password no longer works anywhere
        except (CoordinatorUnavailableError, CoordinatorRefusedError) as error:
            _log.warning("mining credentials not read from the coordinator: %s", error)
            return
        if shown.pool_url != self.pool_url:
            self._pointed.clear()
            self.pool_url = shown.pool_url
        for miner in self._miners:
            if miner.name in self._pointed:
                continue
            if not await self._keep_owner_pools(miner, shown.pool_url):
                continue
            user = worker_name(device_id, miner.name)
            try:
                await miner.set_pool(shown.pool_url, user, kept[0])
            except (DeviceCommandError, DeviceUnavailableError) as error:
                _log.warning("%s: not pointed at the coordinator's pool: %s", miner.name, error)
                continue
            self._pointed.add(miner.name)
            _log.info("%s mines at %s as %s", miner.name, shown.pool_url, user)

    @property
    def kept(self) -> dict[str, tuple[PoolGroup, ...]]:
        """The owner's pools kept per miner name, to be put back."""
        return {name: groups for name, groups in self._owner_pools().items() if groups}

    def forget_password(self) -> None:
        """Forget the kept mining password (the heater leaves its coordinator)."""
        self._store.delete(_PASSWORD_KEY)
        self._pointed.clear()

    async def restore(self, *, every_miner: bool) -> list[str]:
        """Give miners back their owner's pools, and forget those given back.

        Parameters
        ----------
        every_miner : bool
            True: every miner with pools kept (the heater left its coordinator); False: only
            those whose ``coordinator_pool`` is off.

        Returns
        -------
        list of str
            One line per miner not given back its pools (it did not answer or refused), naming
            it and why; they stay kept, to be tried again. Failures are also logged.
        """
        kept = self._owner_pools()
        failures: list[str] = []
        for miner in self._all:
            groups = kept.get(miner.name)
            if not groups or (miner.coordinator_pool and not every_miner):
                continue
            try:
                await miner.set_pools(groups)
            except (DeviceCommandError, DeviceUnavailableError) as error:
                failures.append(f"{miner.name}: the owner's pools not restored: {error}")
                _log.warning("%s", failures[-1])
                continue
            del kept[miner.name]
            self._store_owner_pools(kept)
            self._pointed.discard(miner.name)
            _log.info("%s mines at its owner's pool %s again", miner.name, groups[0].pools[0].url)
        return failures

    async def _keep_owner_pools(self, miner: PoolMiner, proxy_url: str) -> bool:
        """Keep the miner's pools before it is first pointed; False: it must not be pointed."""
        kept = self._owner_pools()
        if kept.get(miner.name):
            return True
        try:
            groups = await miner.get_pools()
        except (DeviceCommandError, DeviceUnavailableError) as error:
            _log.warning(
                "%s: not pointed at the coordinator's pool: its own pools were not "
                "read, so they could not be restored later: %s",
                miner.name,
                error,
            )
            return False
        if not groups:
            _log.info(
                "%s: has no pool of its own; it mines at the coordinator's pool, and leaving "
                "will have no pool of its owner to put back",
                miner.name,
            )
            return True
        if any(pool.url == proxy_url for group in groups for pool in group.pools):
            # already at the proxy (e.g. a state file lost): nothing of the owner's to keep
            _log.warning(
                "%s: already mines at the proxy; no pool of its owner is known to "
                "restore when it leaves",
                miner.name,
            )
            return True
        kept[miner.name] = groups
        self._store_owner_pools(kept)
        return True

    def _owner_pools(self) -> dict[str, tuple[PoolGroup, ...]]:
        stored: Any = self._store.get(_OWNER_POOLS_KEY)
        if not isinstance(stored, dict):
            return {}
        return {
            name: groups
            for name, value in stored.items()
            if isinstance(name, str) and (groups := _groups_from_json(value))
        }

    def _store_owner_pools(self, kept: dict[str, tuple[PoolGroup, ...]]) -> None:
        self._store.put(
            _OWNER_POOLS_KEY,
            {name: [_group_json(group) for group in groups] for name, groups in kept.items()},
        )

    def _kept_password(self, device_id: str) -> tuple[str, float | None] | None:
        kept: Any = self._store.get(_PASSWORD_KEY)
        if (
            not isinstance(kept, dict)
            or kept.get("device_id") != device_id
            or not isinstance(kept.get("password"), str)
        ):
            return None
        created_ts = kept.get("created_ts")
        return kept["password"], created_ts if isinstance(created_ts, int | float) else None


def _group_json(group: PoolGroup) -> dict[str, Any]:
    return {
        "name": group.name,
        "quota": group.quota,
        "pools": [
            {"url": pool.url, "user": pool.user, "password": pool.password} for pool in group.pools
        ],
    }


def _groups_from_json(value: Any) -> tuple[PoolGroup, ...]:
    """Read kept pool groups back; anything malformed reads as none."""
    if not isinstance(value, list):
        return ()
    groups: list[PoolGroup] = []
    for group in value:
        pools = group.get("pools") if isinstance(group, dict) else None
        if not isinstance(pools, list):
            return ()
        read = [
            StratumPool(url=pool["url"], user=pool["user"], password=pool["password"])
            for pool in pools
            if isinstance(pool, dict)
            and all(isinstance(pool.get(key), str) for key in ("url", "user", "password"))
        ]
        if len(read) != len(pools) or not read:
            return ()
        quota, name = group.get("quota"), group.get("name")
        groups.append(
            PoolGroup(
                pools=tuple(read),
                quota=quota if isinstance(quota, int) else 1,
                name=name if isinstance(name, str) else None,
            )
        )
    return tuple(groups)
