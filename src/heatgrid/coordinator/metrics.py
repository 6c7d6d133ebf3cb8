"""Prometheus metrics of one coordinator app: request latency, devices online, fleet heat, tasks.

Each app has its own registry, so several apps (in tests) never share counters. What this
process did (heartbeats stored, leases granted, requests answered) is
counted in memory as it happens: a scrape reads those counters and queries nothing. The
fleet gauges (devices online, fleet heat, tasks per state) come from the database, so every
process behind one database reports the same fleet; they are read at most once per
``refresh_s`` of the app's clock, however often Prometheus (or several) scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator.devices import FleetStatus, fleet_status
from heatgrid.coordinator.jobs import queue_status

__all__ = ["AppMetrics"]

_LOG = logging.getLogger(__name__)

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class _Snapshot:
    read_ts: float
    status: FleetStatus
    tasks_by_state: dict[str, int]
    expiries: int


class _FleetCollector(Collector):
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Callable[[], float],
        online_window_s: float,
        refresh_s: float,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._online_window_s = online_window_s
        self._refresh_s = refresh_s
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()  # one reader at a time; the others take its answer

    def _read(self) -> _Snapshot | None:
        with self._lock:
            now_ts = float(self._clock())
            kept = self._snapshot
            if kept is not None and 0.0 <= now_ts - kept.read_ts < self._refresh_s:
                return kept
            try:
                with self._session_factory() as session:
                    status = fleet_status(
                        session, now_ts=now_ts, online_window_s=self._online_window_s
                    )
                    tasks_by_state, expiries = queue_status(session)
            except SQLAlchemyError as error:
                _LOG.warning("fleet metrics unavailable", extra={"error": str(error)})
                return kept
            self._snapshot = _Snapshot(now_ts, status, tasks_by_state, expiries)
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._read()
        if snapshot is None:
            return
        status, tasks_by_state, expiries = (
            snapshot.status,
            snapshot.tasks_by_state,
            snapshot.expiries,
        )
        yield GaugeMetricFamily(
            "heatgrid_devices_online",
            f"Devices not revoked and heard from within {self._online_window_s:g} s.",
            value=status.devices_online,
        )
        yield GaugeMetricFamily(
            "heatgrid_fleet_heat_power_w",
            "Heat power of the online devices, from each one's latest sample [W].",
            value=status.heat_power_w,
        )
        tasks = GaugeMetricFamily("heatgrid_tasks", "Tasks in each state.", labels=["state"])
        for state, count in tasks_by_state.items():
            tasks.add_metric([state], count)
        yield tasks
        yield CounterMetricFamily(
            "heatgrid_lease_expiries",
            "Task attempts that ended because their device went silent past the lease.",
            value=expiries,
        )


class AppMetrics:
    """The registry and the metrics of one app."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Callable[[], float],
        online_window_s: float,
        refresh_s: float = 15.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.request_duration_s = Histogram(
            "heatgrid_http_request_duration_s",
            "Time to answer an HTTP request, by route template [s].",
            ("method", "route", "status"),
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.unhandled_errors = Counter(
            "heatgrid_http_unhandled_errors",
            "Requests that ended in an unexpected exception (answered 500).",
            registry=self.registry,
        )
        self.heartbeats = Counter(
            "heatgrid_heartbeats",
            "Heartbeats stored by this process.",
            registry=self.registry,
        )
        self.leases_granted = Counter(
            "heatgrid_leases_granted",
            "Task attempts leased by this process's claims.",
            registry=self.registry,
        )
        self.registry.register(_FleetCollector(session_factory, clock, online_window_s, refresh_s))
