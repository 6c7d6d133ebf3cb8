"""Prometheus metrics of one coordinator app: request latency, devices online, fleet heat, tasks.

Each app has its own registry, so several apps (in tests) never share counters. The fleet
gauges are read from the database when Prometheus scrapes, so every coordinator process
behind one database reports the same fleet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator.devices import fleet_status
from heatgrid.coordinator.jobs import queue_status

__all__ = ["AppMetrics"]

_LOG = logging.getLogger(__name__)

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _FleetCollector(Collector):
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Callable[[], float],
        online_window_s: float,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._online_window_s = online_window_s

    def collect(self) -> Iterator[Metric]:
        try:
            with self._session_factory() as session:
                status = fleet_status(
                    session, now_ts=float(self._clock()), online_window_s=self._online_window_s
                )
                tasks_by_state, expiries = queue_status(session)
        except SQLAlchemyError as error:
            _LOG.warning("fleet metrics unavailable", extra={"error": str(error)})
            return
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
        self.registry.register(_FleetCollector(session_factory, clock, online_window_s))
