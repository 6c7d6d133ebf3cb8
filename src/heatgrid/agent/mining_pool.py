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
    PoolMiner,
)
from heatgrid.agent.state_store import StateStore

__all__ = ["PoolPointer", "worker_name"]

_PASSWORD_KEY = "mining_password"
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
        The heater's miners; those with ``coordinator_pool`` False are never touched.
    store : StateStore
        The agent's state file, where the mining password is kept.
    clock : callable
        Returns the present time [POSIX s].
    """

    def __init__(
        self, miners: Iterable[PoolMiner], store: StateStore, clock: Callable[[], float]
    ) -> None:
        self._miners = [miner for miner in miners if miner.coordinator_pool]
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
            user = worker_name(device_id, miner.name)
            try:
                await miner.set_pool(shown.pool_url, user, kept[0])
            except (DeviceCommandError, DeviceUnavailableError) as error:
                _log.warning("%s: not pointed at the coordinator's pool: %s", miner.name, error)
                continue
            self._pointed.add(miner.name)
            _log.info("%s mines at %s as %s", miner.name, shown.pool_url, user)

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
