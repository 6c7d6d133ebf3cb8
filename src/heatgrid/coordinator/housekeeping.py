"""Work the coordinator does on its own clock: ending silent leases, refunding stale holds.

Held credit left unverified past ``Settings.hold_limit_s`` is refunded by
:func:`~heatgrid.coordinator.verification.expire_holds` (issue 17).

Claims end expired leases before they look for work, but a fleet where nobody claims would
keep a silent device's task ``leased`` forever; so each coordinator process also sweeps every
``expiry_interval_s``. Several processes sweeping one PostgreSQL database do not collide:
:func:`~heatgrid.coordinator.leases.expire_leases` locks with ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator.leases import expire_leases
from heatgrid.coordinator.settings import Settings
from heatgrid.coordinator.verification import expire_holds

__all__ = ["sweep", "sweep_expired_leases"]

_LOG = logging.getLogger(__name__)


def sweep(session: Session, *, now_ts: float, settings: Settings) -> int:
    """Do one sweep at ``now_ts``: end expired leases and (verifying) refund stale holds.

    Commits; returns the leases ended.
    """
    expired = expire_leases(session, now_ts=now_ts, settings=settings)
    if settings.verify_results:
        expire_holds(session, now_ts=now_ts, settings=settings)
    return expired


async def sweep_expired_leases(
    session_factory: sessionmaker[Session], clock: Callable[[], float], settings: Settings
) -> None:
    """End expired leases (and refund stale holds) every ``settings.expiry_interval_s``.

    A database error is logged and the sweep tries again at the next interval.
    """

    def sweep_now() -> int:
        with session_factory() as session:
            return sweep(session, now_ts=float(clock()), settings=settings)

    while True:
        await asyncio.sleep(settings.expiry_interval_s)
        try:
            expired = await anyio.to_thread.run_sync(sweep_now)
        except SQLAlchemyError as error:
            _LOG.warning("lease sweep failed", extra={"error": str(error)})
            continue
        if expired:
            _LOG.info("leases expired", extra={"count": expired})
