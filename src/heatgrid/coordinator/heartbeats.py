"""Heartbeats written in batches: one transaction stores the heartbeats of many devices.

A heartbeat is a handful of small writes (the device's ``last_seen_ts``, its samples, its heat
window, its leases renewed). Done one request at a time, each write is a database round trip
and most of a heartbeat's cost. The :class:`HeartbeatWriter` of a process instead collects the
heartbeats that arrive while it writes, and stores them together in one transaction of five
statements, whatever their number (group commit). Each request is answered only once that
transaction committed, so an acknowledged heartbeat is as durable as before; a batch that
fails fails each of its requests.

A batch holds at most one heartbeat per device, so that a device's heartbeats are applied in
the order they arrived. Heartbeats that change a device's kind or hardware do not come here
(:func:`heatgrid.coordinator.devices.record_heartbeat` handles them one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator.db.models import Device, HeatWindowSegmentRow, Task, TelemetrySampleRow
from heatgrid.core.leasing import LEASED_STATES
from heatgrid.protocol import v1

__all__ = ["HeartbeatWriter", "StoredHeartbeat"]

_LOG = logging.getLogger(__name__)
_MAX_BATCH = 512
_ROWS_PER_STATEMENT = 1000  # VALUES rows per INSERT: far below PostgreSQL's 65,535 parameters
_HOLDING = tuple(sorted(state.value for state in LEASED_STATES))
_IDLE_S = 5.0  # an idle writer's thread ends; the next heartbeat starts another


@dataclass(frozen=True)
class StoredHeartbeat:
    """What one heartbeat stored.

    Attributes
    ----------
    revoked : bool
        The device was revoked: nothing was stored.
    stored_samples, duplicate_samples : int
        Samples new, and samples already stored before.
    leased_task_ids : list of str
        Tasks whose leases the device holds, renewed.
    """

    revoked: bool
    stored_samples: int = 0
    duplicate_samples: int = 0
    leased_task_ids: tuple[str, ...] = ()


@dataclass
class _Pending:
    device_id: str
    heartbeat: v1.Heartbeat
    now_ts: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredHeartbeat]


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        yield rows[start : start + _ROWS_PER_STATEMENT]


def _write(session: Session, batch: Sequence[_Pending], lease_s: float) -> list[StoredHeartbeat]:
    """Store one heartbeat per device of ``batch`` in the session's transaction, and commit."""
    now_ts = max(pending.now_ts for pending in batch)
    ids = [pending.device_id for pending in batch]
    alive = set(
        session.scalars(
            update(Device)
            .where(Device.id.in_(ids), Device.revoked_ts.is_(None))
            .values(last_seen_ts=now_ts)
            .returning(Device.id)
            .execution_options(synchronize_session=False)
        )
    )
    kept = [pending for pending in batch if pending.device_id in alive]
    samples = [
        {"device_id": pending.device_id, "received_ts": pending.now_ts, **sample.model_dump()}
        for pending in kept
        for sample in pending.heartbeat.telemetry
    ]
    stored: dict[str, int] = defaultdict(int)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for rows in _chunks(samples):
        statement = (
            dialect.insert(TelemetrySampleRow)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["device_id", "sample_ts"])
            .returning(TelemetrySampleRow.device_id)
        )
        for device_id in session.scalars(statement):
            stored[device_id] += 1
    if kept:
        session.execute(
            delete(HeatWindowSegmentRow)
            .where(HeatWindowSegmentRow.device_id.in_([pending.device_id for pending in kept]))
            .execution_options(synchronize_session=False)
        )
    segments = [
        {"device_id": pending.device_id, "received_ts": pending.now_ts, **segment.model_dump()}
        for pending in kept
        for segment in pending.heartbeat.heat_window
    ]
    for rows in _chunks(segments):
        session.execute(insert(HeatWindowSegmentRow).values(list(rows)))
    held: dict[str, list[str]] = defaultdict(list)
    if kept:
        renewed = session.execute(
            update(Task)
            .where(Task.lease_device_id.in_(alive), Task.state.in_(_HOLDING))
            .values(lease_expires_ts=now_ts + lease_s)
            .returning(Task.id, Task.lease_device_id)
            .execution_options(synchronize_session=False)
        )
        for task_id, device_id in renewed:
            held[str(device_id)].append(str(task_id))
    session.commit()
    return [
        StoredHeartbeat(
            revoked=pending.device_id not in alive,
            stored_samples=stored[pending.device_id],
            duplicate_samples=len(pending.heartbeat.telemetry) - stored[pending.device_id],
            leased_task_ids=tuple(sorted(held[pending.device_id])),
        )
        for pending in batch
    ]


def _settle(pending: _Pending, outcome: StoredHeartbeat | BaseException) -> None:
    def deliver() -> None:
        if pending.future.done():  # the request went away
            return
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # its event loop closed: nobody is waiting
        pending.loop.call_soon_threadsafe(deliver)


class HeartbeatWriter:
    """The process's writer of heartbeats: a thread that stores them in batches.

    Parameters
    ----------
    session_factory : sessionmaker
        Sessions that may write.
    lease_s : float
        Leases the heartbeat's device holds are renewed to ``now_ts + lease_s`` [s].
    max_batch : int
        Most heartbeats stored in one transaction.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], lease_s: float, max_batch: int = _MAX_BATCH
    ) -> None:
        self._session_factory = session_factory
        self._lease_s = lease_s
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batches = 0
        """Transactions written so far."""

    async def write(
        self, device_id: str, heartbeat: v1.Heartbeat, *, now_ts: float
    ) -> StoredHeartbeat:
        """Queue a heartbeat of ``device_id`` received at ``now_ts`` [POSIX s]; return once stored.

        Raises
        ------
        sqlalchemy.exc.SQLAlchemyError
            When its batch could not be stored (nothing of it was).
        """
        loop = asyncio.get_running_loop()
        pending = _Pending(device_id, heartbeat, now_ts, loop, loop.create_future())
        with self._lock:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="heatgrid-heartbeat-writer", daemon=True
                )
                self._thread.start()
            self._queue.append(pending)
            self._wake.notify()
        return await pending.future

    def stop(self) -> None:
        """Finish the heartbeats queued, then end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._stopping = False

    def _take(self) -> list[_Pending] | None:
        """Wait for heartbeats; take up to ``max_batch`` of them, one per device."""
        with self._lock:
            while not self._queue:
                idle = self._stopping or not self._wake.wait(timeout=_IDLE_S)
                if idle and not self._queue:
                    self._thread = None  # ends; write() starts another when needed
                    return None
            batch: list[_Pending] = []
            later: list[_Pending] = []
            devices: set[str] = set()
            for pending in self._queue:
                if pending.device_id in devices or len(batch) >= self._max_batch:
                    later.append(pending)
                else:
                    devices.add(pending.device_id)
                    batch.append(pending)
            self._queue = later
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                with self._session_factory() as session:
                    outcomes = _write(session, batch, self._lease_s)
            except Exception as error:  # each request of the batch answers it
                _LOG.warning("heartbeat batch failed", extra={"error": str(error)})
                for pending in batch:
                    _settle(pending, error)
                continue
            self.batches += 1
            for pending, outcome in zip(batch, outcomes, strict=True):
                _settle(pending, outcome)
