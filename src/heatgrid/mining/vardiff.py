"""Variable share difficulty: steer each miner towards one share per target interval.

Pure: the caller counts a miner's accepted shares over a window and asks for the next
difficulty. The step is bounded (about ×4 or ÷4 a retarget) so one lucky or unlucky window
does not swing it, and rounded to a power of two so repeated retargets settle instead of
hunting; it stays within ``[min_difficulty, max_difficulty]``.
"""

from __future__ import annotations

import math

from heatgrid.core.errors import InputError, require_positive

__all__ = ["DEFAULT_SHARE_INTERVAL_S", "retarget"]

DEFAULT_SHARE_INTERVAL_S = 10.0
"""A share every 10 s per miner by default [s]."""

_MAX_STEP = 4.0


def retarget(
    difficulty: float,
    shares: int,
    window_s: float,
    *,
    share_interval_s: float = DEFAULT_SHARE_INTERVAL_S,
    min_difficulty: float = 2.0**-20,
    max_difficulty: float = 2.0**40,
) -> float:
    """Return the next share difficulty for a miner.

    Parameters
    ----------
    difficulty : float
        The difficulty its shares in the window were at [-].
    shares : int
        Accepted shares in the window [-].
    window_s : float
        Length of the window [s].
    share_interval_s : float
        The wanted time between shares [s].
    min_difficulty, max_difficulty : float
        Bounds (the minimum low enough for CPU test miners) [-].

    Returns
    -------
    float
        A power of two (or a bound), within a factor 4·√2 of ``difficulty``: at most ×4 or
        ÷4, then rounded to the nearest power of two in log scale [-].
    """
    require_positive("difficulty", difficulty)
    require_positive("window_s", window_s)
    require_positive("share_interval_s", share_interval_s)
    require_positive("min_difficulty", min_difficulty)
    if shares < 0:
        raise InputError(f"shares must be >= 0, got {shares}")
    if min_difficulty > max_difficulty:
        raise InputError("min_difficulty must not exceed max_difficulty")
    wanted = difficulty * shares * share_interval_s / window_s
    wanted = min(max(wanted, difficulty / _MAX_STEP), difficulty * _MAX_STEP)
    rounded = 2.0 ** round(math.log2(wanted))
    return min(max(rounded, min_difficulty), max_difficulty)
