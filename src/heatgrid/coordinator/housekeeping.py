"""Work the coordinator does on its own clock: end silent leases, refund, drop checkpoints.

Held credit left unverified past ``Settings.hold_limit_s`` is refunded by
:func:`~heatgrid.coordinator.verification.expire_holds` (issue 17). Checkpoints that serve no
attempt any more (a task's up to ``Task.spent_checkpoint_seq``: its result was verified,
refuted or voided, or it ended dead or cancelled) lose their blob and then their row
(:func:`drop_spent_checkpoints`).

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
from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.coordinator.db.models import Checkpoint, Task
from heatgrid.coordinator.leases import expire_leases
from heatgrid.coordinator.settings import Settings
from heatgrid.coordinator.threads import run_to_its_end
from heatgrid.coordinator.verification import expire_holds

__all__ = ["DROP_BATCH", "drop_spent_checkpoints", "sweep", "sweep_expired_leases"]

DROP_BATCH = 500
"""Most spent checkpoints one sweep removes (the rest wait for the next)."""

_LOG = logging.getLogger(__name__)


def drop_spent_checkpoints(
    session: Session, store: CheckpointStore, *, limit: int = DROP_BATCH
) -> int:
    """Remove the blobs, then the rows, of up to ``limit`` spent checkpoints; commit.

    A checkpoint is spent once its ``seq`` is at most its task's ``spent_checkpoint_seq``:
    no replay and no resume can read it any more (reads of it are refused before the store
    is asked). Blobs go first, with no transaction open, so a crash in between leaves rows
    whose blobs are gone, which the next sweep removes again (a missing blob is no error),
    never a blob without its row; a blob the store cannot remove now (unreachable) keeps its
    row for the next sweep. Coordinators sweeping together remove the same ones at worst twice.

    Returns
    -------
    int
        The checkpoints removed.
    """
    rows = session.execute(
        select(Checkpoint.task_id, Checkpoint.seq, Checkpoint.blob_key, Checkpoint.pruned_ts)
        .join(Task, Task.id == Checkpoint.task_id)
        .where(
            Task.spent_checkpoint_seq.is_not(None),
            Checkpoint.seq <= Task.spent_checkpoint_seq,
        )
        .order_by(Checkpoint.task_id, Checkpoint.seq)
        .limit(limit)
    ).all()
    session.rollback()  # no transaction waits on the store
    removed = []
    for row in rows:
        try:
            if row.pruned_ts is None:  # a pruned one's blob is gone already
                store.remove(row.blob_key)
        except OSError as error:
            _LOG.warning(
                "checkpoint blob not removed", extra={"key": row.blob_key, "error": str(error)}
            )
            continue
        removed.append((row.task_id, row.seq))
    if removed:
        session.execute(
            delete(Checkpoint).where(tuple_(Checkpoint.task_id, Checkpoint.seq).in_(removed))
        )
    session.commit()
    return len(removed)


def sweep(session: Session, store: CheckpointStore, *, now_ts: float, settings: Settings) -> int:
    """Do one sweep at ``now_ts``: end expired leases, refund stale holds, drop checkpoints.

    Stale holds are refunded where results are verified; spent checkpoints are removed from
    ``store`` (:func:`drop_spent_checkpoints`). Commits; returns the leases ended.
    """
    expired = expire_leases(session, now_ts=now_ts, settings=settings)
    if settings.verify_results:
        expire_holds(session, now_ts=now_ts, settings=settings)
    dropped = drop_spent_checkpoints(session, store)
    if dropped:
        _LOG.info("spent checkpoints removed", extra={"count": dropped})
    return expired


async def sweep_expired_leases(
    session_factory: sessionmaker[Session],
    store: CheckpointStore,
    clock: Callable[[], float],
    settings: Settings,
) -> None:
    """Sweep (:func:`sweep`) every ``settings.expiry_interval_s``.

    A database error is logged and the sweep tries again at the next interval. Cancelled
    while a sweep runs in its thread, it waits for that sweep to end before it ends: a
    thread cannot be stopped, and the app disposes of the engine once this task has ended,
    which must not happen while the sweep still holds one of its connections (returned
    later, it would be left open).
    """

    def sweep_now() -> int:
        with session_factory() as session:
            return sweep(session, store, now_ts=float(clock()), settings=settings)

    while True:
        await asyncio.sleep(settings.expiry_interval_s)
        try:
            expired = await run_to_its_end(anyio.to_thread.run_sync(sweep_now))
        except SQLAlchemyError as error:
            _LOG.warning("lease sweep failed", extra={"error": str(error)})
            continue
        if expired:
            _LOG.info("leases expired", extra={"count": expired})
