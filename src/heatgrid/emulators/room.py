"""An emulated room: the core thermal model stepped by an injected clock.

:class:`RoomEmulator` holds a room's node temperatures and moves them to a given time with a
given heater power (:meth:`RoomEmulator.advance`), exactly (``heatgrid.core.thermal``'s
zero-order hold), with the outdoor temperature of an :class:`OutdoorSeries` sampled at the middle
of sub-steps of at most ``max_step_s``. It never reads a clock and never sleeps, so tests (and
the agent's closed-loop tests) step it deterministically. :mod:`heatgrid.emulators.room_mqtt`
is the thin shell that reads the heaters and publishes the temperature on MQTT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.errors import InputError, require_finite, require_positive
from heatgrid.core.thermal import DiscreteModel, Room1R1C, Room2R2C, RoomModel, discretize, step

__all__ = ["OutdoorSeries", "RoomEmulator"]


@dataclass(frozen=True, eq=False, init=False)
class OutdoorSeries:
    """Outdoor temperatures at a regular interval, repeating after their end (a typical year).

    Parameters
    ----------
    outdoor_temp_c : array_like
        Outdoor temperatures, one per interval, finite [°C]; at least one.
    start_ts : float
        Time of the first value [POSIX s].
    interval_s : float
        Time between values [s], > 0 (3600 for hourly weather).
    """

    outdoor_temp_c: FloatArray
    start_ts: float
    interval_s: float

    def __init__(self, outdoor_temp_c: ArrayLike, start_ts: float, interval_s: float = 3600.0):
        temps_c = checked_array("outdoor_temp_c", outdoor_temp_c)
        if temps_c.ndim != 1 or temps_c.size == 0:
            raise InputError(f"outdoor_temp_c must be a non-empty 1-D array, got {temps_c.shape}")
        temps_c = temps_c.copy()
        temps_c.flags.writeable = False
        object.__setattr__(self, "outdoor_temp_c", temps_c)
        object.__setattr__(self, "start_ts", require_finite("start_ts", start_ts))
        object.__setattr__(self, "interval_s", require_positive("interval_s", interval_s))

    def at(self, ts: float) -> float:
        """Outdoor temperature at ``ts`` [°C], linear between values, wrapping after the end."""
        temps_c = self.outdoor_temp_c
        n = temps_c.size
        position = ((ts - self.start_ts) / self.interval_s) % n
        i = math.floor(position)
        frac = position - i
        return float((1.0 - frac) * temps_c[i % n] + frac * temps_c[(i + 1) % n])


class RoomEmulator:
    """One room whose temperature follows the heat put into it.

    Parameters
    ----------
    model : Room1R1C or Room2R2C
        The room, with scalar fields.
    outdoor : OutdoorSeries
        Outdoor temperature over time.
    now_ts : float
        Time of the initial state [POSIX s].
    initial_temp_c : float
        Temperature of every node (room air and building mass) at ``now_ts`` [°C].
    gains_w : float
        Constant other gains into the room air (people, appliances) [W].
    max_step_s : float
        Longest sub-step over which the outdoor temperature is held [s], > 0.
    """

    def __init__(
        self,
        model: RoomModel,
        outdoor: OutdoorSeries,
        *,
        now_ts: float,
        initial_temp_c: float,
        gains_w: float = 0.0,
        max_step_s: float = 600.0,
    ) -> None:
        if not isinstance(model, Room1R1C | Room2R2C):
            raise InputError(f"model must be a Room1R1C or Room2R2C, got {type(model).__name__}")
        if np.ndim(model.ua_w_per_k) != 0:
            raise InputError("model must describe one room (scalar fields), not a fleet")
        self.model = model
        self.outdoor = outdoor
        self.gains_w = require_finite("gains_w", gains_w)
        self.max_step_s = require_positive("max_step_s", max_step_s)
        n_nodes = 1 if isinstance(model, Room1R1C) else 2
        self._state_c = np.full(n_nodes, require_finite("initial_temp_c", initial_temp_c))
        self._now_ts = require_finite("now_ts", now_ts)
        self._discrete: DiscreteModel | None = None

    @property
    def now_ts(self) -> float:
        """Time of the present state [POSIX s]."""
        return self._now_ts

    @property
    def room_temp_c(self) -> float:
        """Room air temperature now [°C]."""
        return float(self._state_c[0])

    @property
    def state_c(self) -> FloatArray:
        """Node temperatures now, room air first [°C] (a copy)."""
        return self._state_c.copy()

    def outdoor_temp_c(self, ts: float) -> float:
        """Outdoor temperature at ``ts`` [°C]."""
        return self.outdoor.at(ts)

    def advance(self, now_ts: float, heat_power_w: float) -> float:
        """Move the room to ``now_ts`` with ``heat_power_w`` held since the last call.

        Parameters
        ----------
        now_ts : float
            The new present [POSIX s]; not before :attr:`now_ts`.
        heat_power_w : float
            Heater power into the room air since :attr:`now_ts` [W], >= 0.

        Returns
        -------
        float
            Room air temperature at ``now_ts`` [°C].
        """
        now_ts = require_finite("now_ts", now_ts)
        power_w = require_finite("heat_power_w", heat_power_w)
        if power_w < 0.0:
            raise InputError(f"heat_power_w must be >= 0, got {heat_power_w!r}")
        duration_s = now_ts - self._now_ts
        if duration_s < 0.0:
            raise InputError(
                f"now_ts {now_ts!r} is before the room's present {self._now_ts!r}: "
                "time does not go backwards"
            )
        if duration_s == 0.0:
            return self.room_temp_c
        n_steps = math.ceil(duration_s / self.max_step_s)
        step_s = duration_s / n_steps
        discrete = self._discrete
        if discrete is None or not math.isclose(discrete.step_s, step_s, rel_tol=1e-12):
            discrete = self._discrete = discretize(self.model, step_s)
        state_c = self._state_c
        for k in range(n_steps):
            mid_ts = self._now_ts + (k + 0.5) * step_s
            outdoor_c = self.outdoor.at(mid_ts)
            state_c = step(discrete, state_c, power_w, outdoor_c, step_s, self.gains_w)
        self._state_c = np.asarray(state_c, dtype=np.float64)
        self._now_ts = now_ts
        return self.room_temp_c
