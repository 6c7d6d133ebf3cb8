"""What a fleet simulation runs: regions with weather, the fleet's make-up, the job stream.

Everything here is plain data, validated on construction; nothing is drawn yet. The random
draws (homes, devices, jobs, departures) happen in :mod:`heatgrid.sim.fleet` and
:mod:`heatgrid.sim.jobs` from ``numpy.random.Generator`` streams spawned from ``seed``, one
stream per purpose, so that every policy sees the same homes, jobs and departures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.economics import MarketSnapshot
from heatgrid.core.errors import InputError, require_finite, require_non_negative, require_positive
from heatgrid.core.heat_value import HEATING_ALTERNATIVES
from heatgrid.core.leasing import (
    DEFAULT_HAND_BACK_AFTER_S,
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PAUSE_AFTER_S,
    DEFAULT_RETRY_BASE_S,
    DEFAULT_RETRY_MAX_S,
)
from heatgrid.core.scheduling import DEFAULT_MAX_WAIT_S
from heatgrid.core.trust import DEFAULT_HALF_RATE_RESULTS, DEFAULT_SPOT_CHECK_FLOOR

__all__ = [
    "DEFAULT_HEATER_MIX",
    "DEFAULT_RACK_DEVICE",
    "JobStream",
    "Region",
    "Scenario",
    "Verification",
]

DEFAULT_HEATER_MIX: Mapping[str, float] = MappingProxyType(
    {
        "Avalon Q": 0.2,
        "Avalon Mini 3": 0.15,
        "Antminer S9 (Braiins OS)": 0.1,
        "GeForce RTX 3060": 0.15,
        "GeForce RTX 4070": 0.1,
        "GeForce RTX 4090": 0.1,
        "RTX A4000": 0.1,
        "Ryzen 9 7950X": 0.1,
    }
)
"""Catalog devices in the heaters and their share of homes (weights, normalised)."""

DEFAULT_RACK_DEVICE = "L40S"
"""Catalog device of the racks (devices without a room)."""

_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6


@dataclass(frozen=True, eq=False)
class Region:
    """A grid region: its hourly weather and its grid's carbon intensity.

    Parameters
    ----------
    name : str
        Label (a city, a weather file).
    timestamps_ts : array_like
        End of each weather hour [POSIX s, UTC], strictly increasing by 3600 s.
    outdoor_temp_c : array_like
        Outdoor air temperature during each hour [°C].
    carbon_g_per_kwh : float
        Grid carbon intensity [g CO2e/kWh], >= 0.
    tz_offset_h : float
        Local standard time minus UTC [h]; for the homes' schedules.
    tariff_eur_per_kwh : float, optional
        Household electricity price in the region [EUR/kWh], >= 0; the scenario's
        ``tariff_eur_per_kwh`` if omitted.
    """

    name: str
    timestamps_ts: FloatArray
    outdoor_temp_c: FloatArray
    carbon_g_per_kwh: float
    tz_offset_h: float = 0.0
    tariff_eur_per_kwh: float | None = None

    def __post_init__(self) -> None:
        stamps = checked_array("timestamps_ts", self.timestamps_ts)
        outdoor = checked_array("outdoor_temp_c", self.outdoor_temp_c)
        if stamps.ndim != 1 or stamps.size < 2 or outdoor.shape != stamps.shape:
            raise InputError(
                f"region {self.name!r}: timestamps_ts and outdoor_temp_c must be two equal "
                "one-dimensional series of at least two hours"
            )
        if bool(np.any(np.abs(np.diff(stamps) - _S_PER_H) > 1e-6)):
            raise InputError(f"region {self.name!r}: timestamps_ts must step by 3600 s")
        require_non_negative("carbon_g_per_kwh", self.carbon_g_per_kwh)
        require_finite("tz_offset_h", self.tz_offset_h)
        if self.tariff_eur_per_kwh is not None:
            require_non_negative("tariff_eur_per_kwh", self.tariff_eur_per_kwh)
        object.__setattr__(self, "timestamps_ts", stamps)
        object.__setattr__(self, "outdoor_temp_c", outdoor)

    def outdoor_at(self, when_ts: FloatArray) -> FloatArray:
        """Outdoor temperature at instants: the value of the weather hour that contains them [°C].

        Instants past the last hour take the last hour's value (the heat window of a run's
        last hours).

        Parameters
        ----------
        when_ts : numpy.ndarray
            Instants [POSIX s, UTC] inside the weather's span.
        """
        index = np.searchsorted(self.timestamps_ts, when_ts, side="right")
        result: FloatArray = self.outdoor_temp_c[np.clip(index, 0, self.outdoor_temp_c.size - 1)]
        return result

    def covers(self, start_ts: float, end_ts: float) -> bool:
        """Whether the weather covers ``[start_ts, end_ts)`` [POSIX s, UTC]."""
        first_ts = float(self.timestamps_ts[0]) - _S_PER_H
        return first_ts <= start_ts and end_ts <= float(self.timestamps_ts[-1])


@dataclass(frozen=True, kw_only=True)
class JobStream:
    """Jobs arriving at the coordinator: a Poisson process with log-normal energy sizes.

    Each job is one task. Its size is the electric energy its device must burn to finish it.

    Parameters
    ----------
    rate_per_h : float
        Mean arrivals per hour, >= 0.
    median_j : float
        Median task size [J], > 0.
    sigma : float
        Standard deviation of the size's natural logarithm [-], >= 0.
    max_size_factor : float
        Sizes are capped at this multiple of the median [-], >= 1 (no infinite tails).
    checkpoint_every_j : float
        A task checkpoints each time it has burned this much more energy [J], > 0.
    arrivals_end_fraction : float
        Jobs arrive during this leading share of the horizon [-], in (0, 1]; the rest drains.
    submitters : int
        Number of submitters, drawn with Zipf-like weights, >= 1.
    high_priority_share : float
        Share of jobs with priority 1 rather than 0 [-], in [0, 1].
    cpu_ok_share : float
        Share of jobs that run on a CPU as well as on a GPU [-], in [0, 1].
    vram_choices_gb : tuple of float
        GPU memory a job may need [GB], drawn uniformly.
    """

    rate_per_h: float = 20.0
    median_j: float = 0.5 * _J_PER_KWH
    sigma: float = 0.8
    max_size_factor: float = 4.0
    checkpoint_every_j: float = 0.1 * _J_PER_KWH
    arrivals_end_fraction: float = 0.5
    submitters: int = 5
    high_priority_share: float = 0.1
    cpu_ok_share: float = 0.2
    vram_choices_gb: tuple[float, ...] = (0.0, 8.0, 12.0, 16.0)

    def __post_init__(self) -> None:
        require_non_negative("rate_per_h", self.rate_per_h)
        require_positive("median_j", self.median_j)
        require_non_negative("sigma", self.sigma)
        if require_finite("max_size_factor", self.max_size_factor) < 1.0:
            raise InputError(f"max_size_factor must be at least 1, got {self.max_size_factor!r}")
        require_positive("checkpoint_every_j", self.checkpoint_every_j)
        _share("arrivals_end_fraction", self.arrivals_end_fraction, open_low=True)
        if self.submitters < 1:
            raise InputError(f"submitters must be at least 1, got {self.submitters!r}")
        _share("high_priority_share", self.high_priority_share)
        _share("cpu_ok_share", self.cpu_ok_share)
        if not self.vram_choices_gb:
            raise InputError("vram_choices_gb must hold at least one value")
        for value in self.vram_choices_gb:
            require_non_negative("vram_choices_gb", value)


@dataclass(frozen=True, kw_only=True)
class Verification:
    """Results verified as the coordinator verifies them (``Settings.verify_results``).

    A task's result is *reported*; a round's first result is spot-checked with the
    probability :func:`heatgrid.core.trust.spot_check_rate` gives its device's reputation on
    the job's kind (here: its submitter's jobs, one kind per submitter), and a checked result
    waits for replicas on devices of other owners (one device per owner in a simulated fleet)
    until ``quorum`` agree. Every device is honest: the run measures what verification costs
    (replica energy, latency), not what it catches.

    Parameters
    ----------
    quorum : int
        Owners that must agree on a checked result (the coordinator's ``verify_quorum``), >= 2.
    max_results : int
        Most results a round may take (``verify_max_results``), >= ``quorum``.
    spot_check_floor : float
        Lowest spot-check rate of a trusted device [-], in (0, 1].
    half_rate_results : int
        Verified results in a row at which a device's rate is one half, >= 1.
    trusted_results : int
        Verified results in a row every device starts the run with on every kind, >= 0: 0
        for a new fleet (every first result checked), a few hundred for a fleet long at work
        (at the floor from ``half_rate_results · (1 / floor − 1)``, 213 by default).
    """

    quorum: int = 2
    max_results: int = 3
    spot_check_floor: float = DEFAULT_SPOT_CHECK_FLOOR
    half_rate_results: int = DEFAULT_HALF_RATE_RESULTS
    trusted_results: int = 0

    def __post_init__(self) -> None:
        for name, least in (
            ("quorum", 2),
            ("max_results", self.quorum),
            ("half_rate_results", 1),
            ("trusted_results", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"{name} must be a whole number >= {least}, got {value!r}")
        if not 0.0 < require_finite("spot_check_floor", self.spot_check_floor) <= 1.0:
            raise InputError(f"spot_check_floor must be in (0, 1], got {self.spot_check_floor!r}")


def _share(name: str, value: float, *, open_low: bool = False) -> float:
    number = require_finite(name, value)
    if not (0.0 < number <= 1.0 if open_low else 0.0 <= number <= 1.0):
        bounds = "(0, 1]" if open_low else "[0, 1]"
        raise InputError(f"{name} must be in {bounds}, got {value!r}")
    return number


@dataclass(frozen=True, kw_only=True, eq=False)
class Scenario:
    """One simulated fleet and its time span.

    Parameters
    ----------
    n_homes : int
        Homes, each with one compute heater, >= 1.
    start_ts : float
        Start of the first step [POSIX s, UTC].
    days : float
        Length of the run [d], > 0.
    step_s : float
        Control tick and thermal step [s], > 0.
    regions : tuple of Region
        Grid regions; homes are spread over them by ``region_weights``.
    region_weights : tuple of float
        Share of homes per region (normalised); empty for equal shares.
    jobs : JobStream
        The job arrivals.
    seed : int
        Seed of every random draw.
    heater_mix : mapping of str to float
        Catalog device names of the heaters and their weights.
    rack_device : str
        Catalog device of the racks.
    rack_share : float
        Racks per home [-], in [0, 1).
    share_1r1c : float
        Share of homes modelled as one node (1R1C) rather than two (2R2C) [-], in [0, 1].
    away_share : float
        Share of homes empty on weekdays 08:30–17:30 local time (setback, fewer gains) [-].
    comfort_band_k : float
        Comfort band half-width around the setpoint [K], > 0; time outside it counts.
    lease_s : float
        A device offline this long (its heartbeats stop) loses its lease [s], > 0 (the
        coordinator's default).
    pause_after_s, hand_back_after_s : float
        A heater's task left without power (its room warm) this long is checkpointed, and this
        long is handed back, to be claimed again at once [s], >= 0 and > 0 (the agent's
        ``[jobs]`` settings; :func:`heatgrid.core.leasing.pauses`,
        :func:`~heatgrid.core.leasing.hands_back`).
    max_attempts : int
        Attempts per task before the dead letter, >= 1 (the coordinator's default per job).
    retry_base_s, retry_max_s : float
        Backoff before a lost task may be claimed again, ``retry_base_s · 2^(attempt−1)`` up to
        ``retry_max_s`` [s], >= 0 (the coordinator's defaults).
    max_wait_s : float
        Longest a task is held back for heaters from a rack (heat-aware policy) [s], >= 0.
    claim_batch : int
        Candidate tasks the coordinator locks per claim, in its lock order (64, as the
        coordinator), >= 1.
    window_h : int
        Hours of heat window a heater offers when it claims, >= 1.
    departure_rate_per_day : float
        Times per day a device goes offline [1/d], >= 0.
    mean_offline_h : float
        Mean time offline [h], > 0.
    market : MarketSnapshot
        Bitcoin market for mining revenue.
    compute_price_eur_per_kwh : float
        What customers pay per kWh of task energy kept (lost work is unpaid) [EUR/kWh], >= 0.
    tariff_eur_per_kwh : float
        Electricity price the owners pay [EUR/kWh], >= 0, in regions that give none.
    pue : float
        Power usage effectiveness of the data centre in the CO2 baseline [-], >= 1.
    displaced : {"resistive", "heat-pump", "gas"}
        Heating that the heaters' heat displaces in the CO2 baseline.
    backup_heating : bool
        Homes keep their existing heating, which supplies the thermostat's demand whenever the
        compute heater has no work (a GPU or CPU heater without a task, a device offline); the
        summary reports the share of the heat that came from compute. Without it such homes
        get no heat at all.
    verification : Verification or None
        Verify the tasks' results (spot checks and replicas) as the coordinator does with
        ``verify_results``; None: a result is kept as it comes, as without it.
    """

    n_homes: int
    start_ts: float
    days: float
    step_s: float = 300.0
    regions: tuple[Region, ...]
    region_weights: tuple[float, ...] = ()
    jobs: JobStream = field(default_factory=JobStream)
    seed: int = 0
    heater_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HEATER_MIX))
    rack_device: str = DEFAULT_RACK_DEVICE
    rack_share: float = 0.1
    share_1r1c: float = 0.3
    away_share: float = 0.4
    comfort_band_k: float = 1.0
    lease_s: float = DEFAULT_LEASE_S
    pause_after_s: float = DEFAULT_PAUSE_AFTER_S
    hand_back_after_s: float = DEFAULT_HAND_BACK_AFTER_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_base_s: float = DEFAULT_RETRY_BASE_S
    retry_max_s: float = DEFAULT_RETRY_MAX_S
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    claim_batch: int = 64
    window_h: int = 6
    departure_rate_per_day: float = 0.1
    mean_offline_h: float = 4.0
    market: MarketSnapshot = field(default_factory=MarketSnapshot)
    compute_price_eur_per_kwh: float = 0.8
    tariff_eur_per_kwh: float = 0.2
    pue: float = 1.4
    displaced: str = "gas"
    backup_heating: bool = True
    verification: Verification | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_homes, bool) or int(self.n_homes) != self.n_homes or self.n_homes < 1:
            raise InputError(f"n_homes must be a whole number >= 1, got {self.n_homes!r}")
        require_finite("start_ts", self.start_ts)
        require_positive("days", self.days)
        require_positive("step_s", self.step_s)
        if self.n_steps < 1:
            raise InputError(f"days must span at least one step of {self.step_s:g} s")
        if self.claim_batch < 1 or self.window_h < 1:
            raise InputError("claim_batch and window_h must be at least 1")
        self._check_regions()
        self._check_fleet()
        self._check_economics()
        if self.verification is not None and not isinstance(self.verification, Verification):
            raise InputError(
                f"verification must be a Verification or None, got {self.verification!r}"
            )
        object.__setattr__(self, "n_homes", int(self.n_homes))
        object.__setattr__(self, "heater_mix", MappingProxyType(dict(self.heater_mix)))

    def _check_regions(self) -> None:
        if not self.regions:
            raise InputError("regions must hold at least one Region")
        if self.region_weights and len(self.region_weights) != len(self.regions):
            raise InputError("region_weights must give one weight per region")
        for weight in self.region_weights:
            require_non_negative("region_weights", weight)
        if self.region_weights and sum(self.region_weights) <= 0.0:
            raise InputError("region_weights must not all be 0")
        # The run must lie in the weather; a heat window offered in the last hours may reach
        # past it and then holds the last hour's temperature (Region.outdoor_at), so that a
        # whole weather year (8,760 h) can run.
        end_ts = self.start_ts + self.n_steps * self.step_s
        for region in self.regions:
            if not region.covers(self.start_ts, end_ts):
                raise InputError(
                    f"the weather of {region.name!r} does not cover the run: shorten days or "
                    "move start_ts"
                )

    def _check_fleet(self) -> None:
        if not self.heater_mix or any(w < 0.0 for w in self.heater_mix.values()):
            raise InputError("heater_mix must give non-negative weights to at least one device")
        if sum(self.heater_mix.values()) <= 0.0:
            raise InputError("heater_mix weights must not all be 0")
        if not 0.0 <= require_finite("rack_share", self.rack_share) < 1.0:
            raise InputError(f"rack_share must be in [0, 1), got {self.rack_share!r}")
        _share("share_1r1c", self.share_1r1c)
        _share("away_share", self.away_share)
        require_positive("comfort_band_k", self.comfort_band_k)
        require_positive("lease_s", self.lease_s)
        require_non_negative("pause_after_s", self.pause_after_s)
        require_positive("hand_back_after_s", self.hand_back_after_s)
        if isinstance(self.max_attempts, bool) or not (
            isinstance(self.max_attempts, int) and self.max_attempts >= 1
        ):
            raise InputError(f"max_attempts must be a whole number >= 1, got {self.max_attempts!r}")
        require_non_negative("retry_base_s", self.retry_base_s)
        require_non_negative("retry_max_s", self.retry_max_s)
        require_non_negative("max_wait_s", self.max_wait_s)
        require_non_negative("departure_rate_per_day", self.departure_rate_per_day)
        require_positive("mean_offline_h", self.mean_offline_h)

    def _check_economics(self) -> None:
        require_non_negative("compute_price_eur_per_kwh", self.compute_price_eur_per_kwh)
        require_non_negative("tariff_eur_per_kwh", self.tariff_eur_per_kwh)
        if require_finite("pue", self.pue) < 1.0:
            raise InputError(f"pue must be at least 1, got {self.pue!r}")
        if self.displaced not in HEATING_ALTERNATIVES:
            raise InputError(
                f"displaced must be one of {', '.join(HEATING_ALTERNATIVES)}, "
                f"got {self.displaced!r}"
            )

    @property
    def n_steps(self) -> int:
        """Number of steps: ``days`` rounded down to whole steps."""
        return int(self.days * 86_400.0 / self.step_s + 1e-9)

    @property
    def n_racks(self) -> int:
        """Number of racks: ``rack_share · n_homes``, rounded."""
        return round(self.rack_share * self.n_homes)
