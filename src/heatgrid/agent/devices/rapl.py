"""CPU package power from Linux RAPL energy counters (the powercap sysfs tree).

Each CPU package is a zone ``<root>/intel-rapl:<N>`` (AMD CPUs use the same name) holding
``energy_uj``, a counter of microjoules that wraps to 0 after ``max_energy_range_uj``. Sub-zones
(``intel-rapl:<N>:<M>``: cores, uncore, DRAM) count energy already in their package and are
left out. Power is the energy counted between two samples over the time between them.

Since Linux 5.10 ``energy_uj`` is readable by root only; :meth:`RaplMeter.discover` returns None
where no package zone is present and readable, and the caller falls back to a power model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_POWERCAP_ROOT", "RaplMeter", "RaplSample", "energy_delta_uj"]

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")
_J_PER_UJ = 1e-6


def energy_delta_uj(previous_uj: int, current_uj: int, max_energy_range_uj: int) -> int:
    """Return the energy counted from ``previous_uj`` to ``current_uj`` [µJ], across a wrap.

    Parameters
    ----------
    previous_uj, current_uj : int
        Two readings of the counter, in that order [µJ].
    max_energy_range_uj : int
        The value after which the counter wraps to 0 [µJ], > 0.

    Returns
    -------
    int
        ``current_uj − previous_uj``, plus ``max_energy_range_uj`` when the counter wrapped
        (assuming it wrapped at most once between the readings) [µJ].
    """
    delta_uj = current_uj - previous_uj
    if delta_uj < 0:
        delta_uj += max_energy_range_uj
    return delta_uj


@dataclass(frozen=True)
class RaplSample:
    """What one sample of the meter found.

    Attributes
    ----------
    power_w : float or None
        Mean power of all packages since the previous sample [W]; None on the first sample or
        when no time has passed.
    energy_j : float
        Energy counted by all packages since the meter was opened [J].
    """

    power_w: float | None
    energy_j: float


@dataclass(frozen=True)
class _Zone:
    energy_path: Path
    max_energy_range_uj: int


class RaplMeter:
    """Sums the package energy counters of one machine and turns them into power.

    Parameters
    ----------
    zones : list
        The package zones, as found by :meth:`discover`.
    monotonic : callable
        A monotonic clock [s] for the time between samples.
    """

    def __init__(self, zones: list[_Zone], monotonic: Callable[[], float]) -> None:
        self._zones = zones
        self._monotonic = monotonic
        self._last_uj = [self._read_uj(zone) for zone in zones]
        self._last_s = monotonic()
        self._total_uj = 0
        self._last_power_w: float | None = None

    @classmethod
    def discover(
        cls, root: Path = DEFAULT_POWERCAP_ROOT, monotonic: Callable[[], float] = time.monotonic
    ) -> RaplMeter | None:
        """Return a meter over the readable package zones under ``root``, or None if none is.

        Parameters
        ----------
        root : pathlib.Path
            The powercap directory (``/sys/class/powercap`` on Linux).
        monotonic : callable
            A monotonic clock [s].
        """
        if not root.is_dir():
            return None
        zones: list[_Zone] = []
        for path in sorted(root.iterdir()):
            if not _PACKAGE_ZONE.match(path.name):
                continue
            try:
                max_range_uj = int((path / "max_energy_range_uj").read_text().strip())
                int((path / "energy_uj").read_text().strip())
            except (OSError, ValueError):
                continue
            if max_range_uj > 0:
                zones.append(_Zone(path / "energy_uj", max_range_uj))
        return cls(zones, monotonic) if zones else None

    @property
    def zone_count(self) -> int:
        """Number of CPU packages measured."""
        return len(self._zones)

    def sample(self) -> RaplSample:
        """Read the counters now and return the power since the previous sample.

        Raises
        ------
        OSError
            If a counter can no longer be read.
        """
        now_s = self._monotonic()
        current_uj = [self._read_uj(zone) for zone in self._zones]
        delta_uj = sum(
            energy_delta_uj(previous, current, zone.max_energy_range_uj)
            for previous, current, zone in zip(self._last_uj, current_uj, self._zones, strict=True)
        )
        elapsed_s = now_s - self._last_s
        if elapsed_s > 0.0:
            self._last_power_w = delta_uj * _J_PER_UJ / elapsed_s
            self._total_uj += delta_uj
            self._last_uj = current_uj
            self._last_s = now_s
        return RaplSample(power_w=self._last_power_w, energy_j=self._total_uj * _J_PER_UJ)

    @staticmethod
    def _read_uj(zone: _Zone) -> int:
        try:
            return int(zone.energy_path.read_text().strip())
        except ValueError as error:
            raise OSError(f"{zone.energy_path}: not an integer") from error
