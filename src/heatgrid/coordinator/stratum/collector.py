"""Garbage collection in the proxy's process, kept off the miners' answers.

CPython's cycle collector stops the process while it walks the objects it tracks; a full
(generation 2) pass walks every one not frozen. A miner connection was ~50 such objects
(asyncio's transport, protocol, stream reader and writer, the connection's task and
coroutines, the :class:`~.miner.MinerSession` and its share validator; fewer since the session
is the connection's protocol itself), so with 10,000 miners held a full pass walked ~500,000
objects and stalled every answer for 14 to 248 ms on a free 16-core machine, each time the
collector's own rule (a quarter more long-lived objects than at the last full pass) fired; one
such pass among the shares set the p99 (``bench/bench_stratum_proxy.py``).

:class:`CollectorPolicy` keeps what lives long out of those passes:

* at start, what the process loaded (modules, the database layer) is frozen
  (:func:`gc.freeze`);
* every ``freeze_interval_s`` the young generations are collected (a pass bounded by the
  collector's thresholds: 3 to 17 ms of CPU on the loaded 2-core development machine) and
  what survived is frozen: the connections that settled since. Automatic full passes then walk
  only what was made since the last freeze;
* every ``reclaim_interval_s`` everything is thawed, collected in one full pass and frozen
  again. A frozen object that dies is freed at once if nothing refers to it in a cycle, but a
  cycle is freed only by the collector, and on Python 3.11 asyncio leaves one behind each
  closed connection (the transport, its dict, its bound read callback, the socket object and
  asyncio's wrapper of it: 5 to 8 objects; the descriptor is closed). That pass is as long as
  the full passes were before (it walks everything), once an hour by default: 0.01 % of the
  time at 0.5 s.

Time is passed in (:meth:`tick`), and the collector's functions are a parameter, so the rule is
tested without touching the test process's collector.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from heatgrid.core.errors import require_positive

__all__ = ["DEFAULT_FREEZE_INTERVAL_S", "DEFAULT_RECLAIM_INTERVAL_S", "CollectorPolicy"]

DEFAULT_FREEZE_INTERVAL_S = 2.0
"""How often the young generations are collected and their survivors frozen [s]."""
DEFAULT_RECLAIM_INTERVAL_S = 3600.0
"""How often everything is thawed and collected in one full pass [s]."""
_TICK_S = 1.0
_log = logging.getLogger("heatgrid.coordinator.stratum")


class _Collector(Protocol):
    """The parts of :mod:`gc` the policy uses."""

    def collect(self, generation: int = 2) -> int: ...  # pragma: no cover - a protocol

    def freeze(self) -> None: ...  # pragma: no cover - a protocol

    def unfreeze(self) -> None: ...  # pragma: no cover - a protocol


@dataclass
class CollectorPolicy:
    """When to freeze survivors and when to reclaim frozen cycles (see the module).

    Parameters
    ----------
    freeze_interval_s : float
        Young collection and freeze of its survivors this often [s].
    reclaim_interval_s : float
        A full collection of everything, frozen objects included, this often [s].
    collector : object with ``collect``, ``freeze``, ``unfreeze``
        The collector; :mod:`gc` by default.
    """

    freeze_interval_s: float = DEFAULT_FREEZE_INTERVAL_S
    reclaim_interval_s: float = DEFAULT_RECLAIM_INTERVAL_S
    collector: _Collector = gc
    freezes: int = 0
    """Young collections followed by a freeze so far [-]."""
    reclaims: int = 0
    """Full collections of everything so far [-]."""
    _next_freeze_s: float = field(default=float("inf"), init=False, repr=False)
    _next_reclaim_s: float = field(default=float("inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        require_positive("freeze_interval_s", self.freeze_interval_s)
        require_positive("reclaim_interval_s", self.reclaim_interval_s)

    def start(self, now_s: float) -> None:
        """Collect and freeze what the process holds at ``now_s`` [monotonic s]: its start-up."""
        self.collector.collect()
        self.collector.freeze()
        self._next_freeze_s = now_s + self.freeze_interval_s
        self._next_reclaim_s = now_s + self.reclaim_interval_s

    def tick(self, now_s: float) -> str | None:
        """Do what is due at ``now_s`` [monotonic s]: ``"reclaim"``, ``"freeze"`` or None."""
        if now_s >= self._next_reclaim_s:
            self.collector.unfreeze()
            self.collector.collect()
            self.collector.freeze()
            self.reclaims += 1
            self._next_reclaim_s = now_s + self.reclaim_interval_s
            self._next_freeze_s = now_s + self.freeze_interval_s
            return "reclaim"
        if now_s >= self._next_freeze_s:
            self.collector.collect(1)
            self.collector.freeze()
            self.freezes += 1
            self._next_freeze_s = now_s + self.freeze_interval_s
            return "freeze"
        return None

    async def run(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Start, then tick once a second until cancelled; each reclaim is logged with its pause.

        Parameters
        ----------
        clock : callable
            Returns the present [monotonic s].
        """
        self.start(clock())
        while True:
            await asyncio.sleep(_TICK_S)
            started_s = clock()
            if self.tick(started_s) == "reclaim":
                _log.info(
                    "full collection of the frozen objects",
                    extra={"pause_s": round(clock() - started_s, 4), "reclaims": self.reclaims},
                )
