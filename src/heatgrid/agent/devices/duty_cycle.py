"""Duty-cycling processes with SIGSTOP/SIGCONT: average power from on/off time.

A busy process draws its full power while it runs and (nearly) nothing while it is stopped, so
running it for a fraction ``duty`` of each period draws on average
``idle_power_w + duty · (max_power_w − idle_power_w)``. This is how the CPU adapter reaches a
power target with busy worker processes, and how the GPU adapter throttles a task's process
where it may not set the board's power limit. One code path serves both:
:class:`DutyCycler` signals a set of process ids from an asyncio task.

Duty 0 stops the processes at once and duty 1 continues them at once (in the calling
coroutine, so that a failure raises there); a duty in between runs a loop that continues them
for ``duty · period_s`` and stops them for the rest of each period (a new duty in between takes
effect at the loop's next switch, within one period). A process that has exited is dropped from
the set; any other signalling failure is kept and raised by the next call.

The loop sleeps with plain :func:`asyncio.sleep` and is stopped by cancelling it: Python 3.11's
``asyncio.wait_for`` can swallow a cancellation that races with its inner wait, which once left
this loop running (and its processes stopped) for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from collections.abc import Iterable

from heatgrid.core.errors import InputError, require_positive

__all__ = ["DutyCycler", "duty_for_power"]


def duty_for_power(power_w: float, idle_power_w: float, max_power_w: float) -> float:
    """Return the fraction of time a busy load must run to draw ``power_w`` on average.

    Parameters
    ----------
    power_w : float
        Average power wanted [W].
    idle_power_w : float
        Power drawn with the load stopped [W].
    max_power_w : float
        Power drawn with the load running all the time [W], > ``idle_power_w``.

    Returns
    -------
    float
        ``(power_w − idle_power_w) / (max_power_w − idle_power_w)``, clipped to [0, 1] [-].
    """
    if not max_power_w > idle_power_w:
        raise InputError(
            f"max_power_w ({max_power_w!r}) must exceed idle_power_w ({idle_power_w!r})"
        )
    if not math.isfinite(power_w):
        raise InputError(f"power_w must be finite, got {power_w!r}")
    duty = (power_w - idle_power_w) / (max_power_w - idle_power_w)
    return min(1.0, max(0.0, duty))


class DutyCycler:
    """Runs a set of processes for a fraction of each period.

    Parameters
    ----------
    period_s : float
        Length of one on/off period [s], > 0. Short periods smooth the power; each period costs
        two signals per process.
    pids : iterable of int
        Process ids to drive; more can be given with :meth:`set_pids`.
    """

    def __init__(self, *, period_s: float, pids: Iterable[int] = ()) -> None:
        self._period_s = require_positive("period_s", period_s)
        self._pids: set[int] = set(pids)
        self._duty = 1.0
        self._task: asyncio.Task[None] | None = None
        self._error: OSError | None = None

    @property
    def duty(self) -> float:
        """The fraction of each period the processes run [-]."""
        return self._duty

    @property
    def pids(self) -> frozenset[int]:
        """The process ids driven (those that exited are dropped)."""
        return frozenset(self._pids)

    def set_pids(self, pids: Iterable[int]) -> None:
        """Drive these processes from now on (they keep whatever state they are in)."""
        self._pids = set(pids)

    async def set_duty(self, duty: float) -> None:
        """Run the processes a fraction ``duty`` [-] of each period, from now on.

        Raises
        ------
        InputError
            If ``duty`` is not within [0, 1].
        OSError
            If a process could not be signalled (no permission); a process that has exited
            is dropped instead.
        """
        if not 0.0 <= duty <= 1.0:
            raise InputError(f"duty must be within [0, 1], got {duty!r}")
        self._raise_pending()
        self._duty = duty
        if duty <= 0.0:
            self._stop_loop()
            self._signal(signal.SIGSTOP)
        elif duty >= 1.0:
            self._stop_loop()
            self._signal(signal.SIGCONT)
        elif self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="duty-cycler")
        await asyncio.sleep(0)

    async def aclose(self, *, leave_running: bool) -> None:
        """Stop cycling; leave the processes continued (``leave_running``) or stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._duty = 1.0 if leave_running else 0.0
        self._signal(signal.SIGCONT if leave_running else signal.SIGSTOP)

    def _stop_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _signal(self, signum: signal.Signals) -> None:
        for pid in sorted(self._pids):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                self._pids.discard(pid)

    async def _loop(self) -> None:
        try:
            while 0.0 < self._duty < 1.0:
                self._signal(signal.SIGCONT)
                await asyncio.sleep(self._duty * self._period_s)
                if not 0.0 < self._duty < 1.0:
                    break
                self._signal(signal.SIGSTOP)
                await asyncio.sleep((1.0 - self._duty) * self._period_s)
        except OSError as error:
            self._error = error
