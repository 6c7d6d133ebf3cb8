"""One emulated clock that several processes share: the room, the miners and the agents.

An emulated room may run on a past date (``--start 2026-01-15``) or faster than real time
(``--speed 60``), and it stamps its readings with that time. An agent that judged those stamps
by the wall clock would call every reading stale and heat nothing; an agent and a miner that
each started their own accelerated clock a few real seconds apart would disagree by minutes.
So the clock is a pure function of the wall clock, the same in every process:

``emulated_ts = start_ts + speed · (real_ts − origin_ts)``

and it travels as one line of text (:meth:`ClockSpec.text`, parsed by :func:`parse_clock`),
``start=2026-01-15T00:00:00Z,speed=60,origin_ts=1764790000.5``, given to each command with
``--clock`` or the ``HEATGRID_CLOCK`` environment variable. ``heatgrid emulate room`` prints
the line of the clock it runs on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from heatgrid.core.errors import InputError

__all__ = ["CLOCK_ENV", "ClockSpec", "parse_clock"]

CLOCK_ENV = "HEATGRID_CLOCK"
"""The environment variable that holds a clock's text for every heatgrid command."""

_KEYS = ("start", "speed", "origin_ts")


@dataclass(frozen=True, kw_only=True)
class ClockSpec:
    """An emulated clock, as a function of the wall clock.

    Parameters
    ----------
    start_ts : float
        Emulated time at ``origin_ts`` [POSIX s].
    origin_ts : float
        Wall-clock time at which the emulated clock read ``start_ts`` [POSIX s].
    speed : float
        Emulated seconds per real second [-], > 0.
    """

    start_ts: float
    origin_ts: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start_ts", "origin_ts", "speed"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(
                    f"clock: {name} must be a finite number, got {getattr(self, name)}"
                )
        if self.speed <= 0.0:
            raise InputError(f"clock: speed must be greater than 0, got {self.speed:g}")

    def emulated_ts(self, real_ts: float) -> float:
        """Return the emulated time at the wall-clock time ``real_ts`` [POSIX s]."""
        return self.start_ts + self.speed * (real_ts - self.origin_ts)

    def real_s(self, emulated_s: float) -> float:
        """Return how many real seconds ``emulated_s`` emulated seconds last [s]."""
        return emulated_s / self.speed

    def text(self) -> str:
        """Return the clock as one line that :func:`parse_clock` reads back exactly."""
        start = datetime.fromtimestamp(self.start_ts, UTC).isoformat().replace("+00:00", "Z")
        return f"start={start},speed={self.speed!r},origin_ts={self.origin_ts!r}"


def parse_clock(text: str) -> ClockSpec:
    """Parse ``start=ISO date or POSIX s,speed=X,origin_ts=POSIX s`` (see the module docstring).

    ``start`` is an ISO date or date-time (UTC unless it names a zone) or POSIX seconds;
    ``speed`` defaults to 1. All three keys but ``speed`` are required.

    Raises
    ------
    InputError
        Naming the part that is wrong.
    """
    values: dict[str, str] = {}
    for part in (piece.strip() for piece in text.split(",")):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS:
            raise InputError(
                f"clock: expected start=...,speed=...,origin_ts=... , got {part!r} in {text!r}"
            )
        if key in values:
            raise InputError(f"clock: {key} is given twice in {text!r}")
        values[key] = value.strip()
    missing = [key for key in ("start", "origin_ts") if key not in values]
    if missing:
        raise InputError(f"clock: {' and '.join(missing)} missing in {text!r}")
    return ClockSpec(
        start_ts=_moment_ts(values["start"]),
        origin_ts=_number("origin_ts", values["origin_ts"]),
        speed=_number("speed", values.get("speed", "1")),
    )


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"clock: {key} must be a number, got {text!r}") from None


def _moment_ts(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"clock: start must be a date such as 2026-01-15 or POSIX seconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
