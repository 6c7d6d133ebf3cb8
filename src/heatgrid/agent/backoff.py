"""Jittered exponential backoff for retrying an unreachable coordinator ("full jitter")."""

from __future__ import annotations

import random

from heatgrid.core.errors import require_positive

__all__ = ["Backoff"]


class Backoff:
    """Waits that grow exponentially, each drawn uniformly from ``[0, cap]``.

    The ``n``-th wait after a success (counting from 0) is uniform in
    ``[0, min(max_s, initial_s · 2**n)]``, so heaters that lost the coordinator together do not
    come back together.

    Parameters
    ----------
    initial_s : float
        Cap of the first wait [s], > 0.
    max_s : float
        Largest cap [s], > 0.
    rng : random.Random, optional
        Source of the jitter (seed it in tests).
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = require_positive("initial_s", initial_s)
        self.max_s = max(require_positive("max_s", max_s), self.initial_s)
        self._rng = rng or random.Random()
        self.failures = 0
        """Failures since the last success."""

    def cap_s(self) -> float:
        """Cap of the next wait [s]."""
        return min(self.max_s, self.initial_s * 2.0 ** min(self.failures, 60))

    def next_delay_s(self) -> float:
        """Record a failure and return the wait before the next try [s]."""
        delay_s = self._rng.uniform(0.0, self.cap_s())
        self.failures += 1
        return delay_s

    def reset(self) -> None:
        """Record a success: the next failure waits at most ``initial_s`` again."""
        self.failures = 0
