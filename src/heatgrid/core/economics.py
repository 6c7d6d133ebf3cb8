"""Money from compute: Bitcoin mining revenue, hashprice, AI-compute revenue, a market snapshot.

Mining follows from first principles. A hash wins a block with probability
``1 / (difficulty · 2**32)``, so a miner hashing at ``H`` hash/s for ``t`` seconds expects
``H · t / (difficulty · 2**32)`` blocks, each paying ``subsidy + fees`` BTC. Hashprice (USD per
TH/s per day) is the same quantity per unit of hashrate and time, priced in USD; both paths
agree to rounding error.

This module also re-exports the tariff, carbon and heat-value APIs
(:mod:`heatgrid.core.tariffs`, :mod:`heatgrid.core.carbon`, :mod:`heatgrid.core.heat_value`),
so that ``heatgrid.core.economics`` is the one import for the economics of a heater.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.carbon import (
    GAS_CARBON_G_PER_KWH,
    GRID_CARBON_G_PER_KWH,
    GRID_CARBON_SOURCE,
    co2_kg,
    grid_carbon_g_per_kwh,
)
from heatgrid.core.errors import InputError, require_non_negative, require_positive
from heatgrid.core.heat_value import (
    HEATING_ALTERNATIVES,
    HeatingAlternative,
    displaced_co2_kg,
    displaced_energy_kwh,
    displaced_heating_cost_eur,
    heat_pump_cop,
)
from heatgrid.core.tariffs import (
    FlatTariff,
    SeriesTariff,
    Tariff,
    TimeOfUseTariff,
    TouPeriod,
    parse_tariff_csv,
)

__all__ = [
    "GAS_CARBON_G_PER_KWH",
    "GRID_CARBON_G_PER_KWH",
    "GRID_CARBON_SOURCE",
    "HALVING_INTERVAL_BLOCKS",
    "HEATING_ALTERNATIVES",
    "INITIAL_SUBSIDY_BTC",
    "SECONDS_PER_DAY",
    "FlatTariff",
    "HeatingAlternative",
    "MarketSnapshot",
    "SeriesTariff",
    "Tariff",
    "TimeOfUseTariff",
    "TouPeriod",
    "block_subsidy_btc",
    "co2_kg",
    "compute_revenue_eur",
    "displaced_co2_kg",
    "displaced_energy_kwh",
    "displaced_heating_cost_eur",
    "grid_carbon_g_per_kwh",
    "hashprice_usd_per_ph_day",
    "hashprice_usd_per_th_day",
    "heat_pump_cop",
    "mining_revenue_btc",
    "mining_revenue_from_hashprice_usd",
    "parse_tariff_csv",
]

SECONDS_PER_DAY = 86_400.0
"""Seconds in a day [s]."""

HALVING_INTERVAL_BLOCKS = 210_000
"""Blocks between two subsidy halvings (Bitcoin consensus rule)."""

INITIAL_SUBSIDY_BTC = 50.0
"""Block subsidy of the first epoch [BTC]."""

_HASHES_PER_DIFFICULTY = 2.0**32
_HASHES_PER_TH = 1e12
_SATS_PER_BTC = 100_000_000
_INITIAL_SUBSIDY_SAT = 50 * _SATS_PER_BTC
_LAST_HALVING = 64  # the subsidy in satoshis is shifted right by the epoch; 0 from epoch 64 on


def block_subsidy_btc(height: int) -> float:
    """Return the block subsidy at a block height [BTC].

    The subsidy starts at 50 BTC and halves every 210,000 blocks, computed in whole satoshis
    exactly as Bitcoin Core's ``GetBlockSubsidy`` does (right shift), so it reaches 0 after
    64 halvings.

    Parameters
    ----------
    height : int
        Block height [dimensionless], >= 0.

    Returns
    -------
    float
        Subsidy of a block at ``height`` [BTC].
    """
    if isinstance(height, bool) or not isinstance(height, int | np.integer):
        raise InputError(f"height must be an integer block height, got {height!r}")
    if height < 0:
        raise InputError(f"height must not be negative, got {height!r}")
    halvings = int(height) // HALVING_INTERVAL_BLOCKS
    if halvings >= _LAST_HALVING:
        return 0.0
    return (_INITIAL_SUBSIDY_SAT >> halvings) / _SATS_PER_BTC


@overload
def hashprice_usd_per_th_day(
    difficulty: float, btc_price_usd: float, subsidy_btc: float, fees_btc_per_block: float
) -> float: ...
@overload
def hashprice_usd_per_th_day(
    difficulty: ArrayLike,
    btc_price_usd: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatArray: ...
def hashprice_usd_per_th_day(
    difficulty: ArrayLike,
    btc_price_usd: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatOrArray:
    """Return the hashprice: expected mining revenue per TH/s per day [USD/(TH/s·day)].

    ``1e12 · 86400 / (difficulty · 2**32) · (subsidy_btc + fees_btc_per_block) · btc_price_usd``.

    Parameters
    ----------
    difficulty : float or array_like
        Network difficulty [dimensionless], > 0.
    btc_price_usd : float or array_like
        Bitcoin price [USD/BTC], >= 0.
    subsidy_btc : float or array_like
        Block subsidy [BTC], >= 0 (see :func:`block_subsidy_btc`).
    fees_btc_per_block : float or array_like
        Mean transaction fees per block [BTC], >= 0.

    Returns
    -------
    float or numpy.ndarray
        Hashprice [USD per TH/s per day]; an array if any input is one (broadcast).
    """
    btc_per_th_day = _btc_per_hash(difficulty, subsidy_btc, fees_btc_per_block) * (
        _HASHES_PER_TH * SECONDS_PER_DAY
    )
    price = checked_array("btc_price_usd", btc_price_usd, minimum=0.0)
    return scalar_or_array(btc_per_th_day * price)


@overload
def hashprice_usd_per_ph_day(
    difficulty: float, btc_price_usd: float, subsidy_btc: float, fees_btc_per_block: float
) -> float: ...
@overload
def hashprice_usd_per_ph_day(
    difficulty: ArrayLike,
    btc_price_usd: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatArray: ...
def hashprice_usd_per_ph_day(
    difficulty: ArrayLike,
    btc_price_usd: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatOrArray:
    """Return the hashprice per PH/s per day, as pools quote it [USD/(PH/s·day)].

    Exactly ``1000 ·`` :func:`hashprice_usd_per_th_day`; parameters as there.

    Parameters
    ----------
    difficulty : float or array_like
        Network difficulty [dimensionless], > 0.
    btc_price_usd : float or array_like
        Bitcoin price [USD/BTC], >= 0.
    subsidy_btc : float or array_like
        Block subsidy [BTC], >= 0.
    fees_btc_per_block : float or array_like
        Mean transaction fees per block [BTC], >= 0.

    Returns
    -------
    float or numpy.ndarray
        Hashprice [USD per PH/s per day].
    """
    per_th = np.asarray(
        hashprice_usd_per_th_day(difficulty, btc_price_usd, subsidy_btc, fees_btc_per_block)
    )
    return scalar_or_array(per_th * 1000.0)


@overload
def mining_revenue_btc(
    hashrate_ths: float,
    duration_s: float,
    difficulty: float,
    subsidy_btc: float,
    fees_btc_per_block: float,
) -> float: ...
@overload
def mining_revenue_btc(
    hashrate_ths: ArrayLike,
    duration_s: ArrayLike,
    difficulty: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatArray: ...
def mining_revenue_btc(
    hashrate_ths: ArrayLike,
    duration_s: ArrayLike,
    difficulty: ArrayLike,
    subsidy_btc: ArrayLike,
    fees_btc_per_block: ArrayLike,
) -> FloatOrArray:
    """Return the expected mining revenue of a hashrate over a duration [BTC].

    ``H · t / (difficulty · 2**32) · (subsidy_btc + fees_btc_per_block)`` with ``H`` in hash/s
    (``hashrate_ths · 1e12``). This is the expectation under full-pay-per-share payout, before
    pool fees; it is linear in hashrate and in time.

    Parameters
    ----------
    hashrate_ths : float or array_like
        Hashrate [TH/s], >= 0; e.g. one value per hour of a simulation.
    duration_s : float or array_like
        Time spent hashing at that rate [s], >= 0.
    difficulty : float or array_like
        Network difficulty [dimensionless], > 0.
    subsidy_btc : float or array_like
        Block subsidy [BTC], >= 0.
    fees_btc_per_block : float or array_like
        Mean transaction fees per block [BTC], >= 0.

    Returns
    -------
    float or numpy.ndarray
        Expected revenue [BTC]; an array if any input is one (broadcast).
    """
    hashrate = checked_array("hashrate_ths", hashrate_ths, minimum=0.0)
    duration = checked_array("duration_s", duration_s, minimum=0.0)
    btc_per_hash = _btc_per_hash(difficulty, subsidy_btc, fees_btc_per_block)
    return scalar_or_array(hashrate * _HASHES_PER_TH * duration * btc_per_hash)


@overload
def mining_revenue_from_hashprice_usd(
    hashrate_ths: float, duration_s: float, hashprice_usd_per_ph_day: float
) -> float: ...
@overload
def mining_revenue_from_hashprice_usd(
    hashrate_ths: ArrayLike, duration_s: ArrayLike, hashprice_usd_per_ph_day: ArrayLike
) -> FloatArray: ...
def mining_revenue_from_hashprice_usd(
    hashrate_ths: ArrayLike, duration_s: ArrayLike, hashprice_usd_per_ph_day: ArrayLike
) -> FloatOrArray:
    """Return mining revenue from a quoted hashprice, the usual shortcut [USD].

    ``hashrate_ths / 1000 · hashprice_usd_per_ph_day · duration_s / 86400``. With the hashprice
    from :func:`hashprice_usd_per_ph_day` it equals :func:`mining_revenue_btc` times the BTC
    price.

    Parameters
    ----------
    hashrate_ths : float or array_like
        Hashrate [TH/s], >= 0.
    duration_s : float or array_like
        Time spent hashing [s], >= 0.
    hashprice_usd_per_ph_day : float or array_like
        Hashprice [USD per PH/s per day], >= 0.

    Returns
    -------
    float or numpy.ndarray
        Expected revenue [USD].
    """
    hashrate = checked_array("hashrate_ths", hashrate_ths, minimum=0.0)
    duration = checked_array("duration_s", duration_s, minimum=0.0)
    hashprice = checked_array("hashprice_usd_per_ph_day", hashprice_usd_per_ph_day, minimum=0.0)
    return scalar_or_array(hashrate / 1000.0 * hashprice * (duration / SECONDS_PER_DAY))


@overload
def compute_revenue_eur(
    gpu_time_h: float, price_eur_per_gpu_h: float, utilisation: float = 1.0
) -> float: ...
@overload
def compute_revenue_eur(
    gpu_time_h: ArrayLike, price_eur_per_gpu_h: ArrayLike, utilisation: ArrayLike = 1.0
) -> FloatArray: ...
def compute_revenue_eur(
    gpu_time_h: ArrayLike, price_eur_per_gpu_h: ArrayLike, utilisation: ArrayLike = 1.0
) -> FloatOrArray:
    """Return revenue from selling GPU time to AI/ML customers [EUR].

    ``gpu_time_h · utilisation · price_eur_per_gpu_h``. ``gpu_time_h`` is the time the GPU is
    powered and offered (e.g. hours the room wants heat); ``utilisation`` is the fraction of that
    time a paying task actually runs (queue gaps, verification and failed tasks are unpaid).

    Parameters
    ----------
    gpu_time_h : float or array_like
        GPU time offered [h], >= 0 (GPU count × hours for several GPUs).
    price_eur_per_gpu_h : float or array_like
        Price paid per busy GPU-hour [EUR/h], >= 0.
    utilisation : float or array_like
        Paid fraction of the offered time [dimensionless], in [0, 1].

    Returns
    -------
    float or numpy.ndarray
        Revenue [EUR].
    """
    hours = checked_array("gpu_time_h", gpu_time_h, minimum=0.0)
    price = checked_array("price_eur_per_gpu_h", price_eur_per_gpu_h, minimum=0.0)
    used = checked_array("utilisation", utilisation, minimum=0.0)
    if bool(np.any(used > 1.0)):
        raise InputError(f"utilisation must be at most 1, got {float(used.max())!r}")
    return scalar_or_array(hours * used * price)


@dataclass(frozen=True)
class MarketSnapshot:
    """Bitcoin market and exchange-rate values at one date.

    The defaults describe late November 2025, rounded: difficulty ≈ 1.5e14 (it was near
    1.5e14–1.56e14 in November 2025), BTC ≈ 90,000 USD (it traded roughly 84,000–95,000 USD in the
    second half of November 2025), subsidy 3.125 BTC (the fourth epoch, heights 840,000–1,049,999),
    fees ≈ 0.02 BTC per block (a low-fee period) and 1 EUR ≈ 1.16 USD. They give a hashprice of
    about 38 USD/(PH/s·day). They are rounded recollections written down when this module was
    written, not a live feed: pass current values for real decisions.

    Parameters
    ----------
    btc_price_usd : float
        Bitcoin price [USD/BTC], > 0.
    difficulty : float
        Network difficulty [dimensionless], > 0.
    fees_btc_per_block : float
        Mean transaction fees per block [BTC], >= 0.
    subsidy_btc : float
        Block subsidy [BTC], >= 0.
    usd_per_eur : float
        Exchange rate [USD/EUR], > 0.
    as_of : str
        ISO-8601 date the values describe.
    """

    btc_price_usd: float = 90_000.0
    difficulty: float = 1.5e14
    fees_btc_per_block: float = 0.02
    subsidy_btc: float = 3.125
    usd_per_eur: float = 1.16
    as_of: str = "2025-11-25"

    def __post_init__(self) -> None:
        require_positive("btc_price_usd", self.btc_price_usd)
        require_positive("difficulty", self.difficulty)
        require_non_negative("fees_btc_per_block", self.fees_btc_per_block)
        require_non_negative("subsidy_btc", self.subsidy_btc)
        require_positive("usd_per_eur", self.usd_per_eur)

    @property
    def btc_price_eur(self) -> float:
        """Bitcoin price [EUR/BTC]."""
        return self.btc_price_usd / self.usd_per_eur

    @property
    def hashprice_usd_per_th_day(self) -> float:
        """Hashprice at this snapshot [USD per TH/s per day]."""
        return hashprice_usd_per_th_day(
            self.difficulty, self.btc_price_usd, self.subsidy_btc, self.fees_btc_per_block
        )

    @property
    def hashprice_usd_per_ph_day(self) -> float:
        """Hashprice at this snapshot [USD per PH/s per day]."""
        return self.hashprice_usd_per_th_day * 1000.0

    @property
    def hashprice_eur_per_th_day(self) -> float:
        """Hashprice at this snapshot [EUR per TH/s per day]."""
        return self.hashprice_usd_per_th_day / self.usd_per_eur


def _btc_per_hash(
    difficulty: ArrayLike, subsidy_btc: ArrayLike, fees_btc_per_block: ArrayLike
) -> FloatArray:
    """Return the expected BTC earned per hash: (subsidy + fees) / (difficulty · 2**32) [BTC]."""
    diff = checked_array("difficulty", difficulty, minimum=0.0, strictly_above=True)
    subsidy = checked_array("subsidy_btc", subsidy_btc, minimum=0.0)
    fees = checked_array("fees_btc_per_block", fees_btc_per_block, minimum=0.0)
    result: FloatArray = (subsidy + fees) / (diff * _HASHES_PER_DIFFICULTY)
    return result
