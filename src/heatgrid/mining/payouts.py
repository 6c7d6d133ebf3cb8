"""Mining payout arithmetic: hashrate from work, FPPS rates, and exact splits in satoshi.

Work is counted in difficulty-1 shares: a share of difficulty ``d`` is ``d`` of them, and one
takes ``2**32`` hashes on average. Amounts are integer satoshi, split with the largest
remainder method on exact rationals, so the parts always add up to the whole.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from heatgrid.core.economics import SECONDS_PER_DAY, mining_revenue_btc
from heatgrid.core.errors import InputError

__all__ = [
    "HASHES_PER_DIFF1",
    "SAT_PER_BTC",
    "Split",
    "fpps_gross_sat",
    "hashprice_sat_per_th_day",
    "hashrate_hs",
    "split_sat",
    "split_with_fee",
]

HASHES_PER_DIFF1 = 2**32
"""Hashes a difficulty-1 share takes on average."""

SAT_PER_BTC = 100_000_000
"""Satoshi per bitcoin."""

_HASHES_PER_TH = 10**12

K = TypeVar("K", bound=Hashable)


def hashrate_hs(work_diff1: float, window_s: float) -> float:
    """Return the hashrate that does ``work_diff1`` in ``window_s`` on average [H/s].

    Parameters
    ----------
    work_diff1 : float
        Accepted work [difficulty-1 shares], >= 0.
    window_s : float
        Length of the window the work was done in [s], > 0.
    """
    if not window_s > 0.0:
        raise InputError(f"window_s must be > 0, got {window_s!r}")
    return work_diff1 * HASHES_PER_DIFF1 / window_s


def hashprice_sat_per_th_day(
    difficulty: float, subsidy_btc: float, fees_btc_per_block: float
) -> float:
    """Return the hashprice of the network [sat per TH/s per day].

    The revenue of 1 TH/s for a day by :func:`heatgrid.core.economics.mining_revenue_btc`,
    the model ``heatgrid economics`` and the simulator use.
    """
    return mining_revenue_btc(1.0, SECONDS_PER_DAY, difficulty, subsidy_btc, fees_btc_per_block) * (
        SAT_PER_BTC
    )


def fpps_gross_sat(work_diff1: float, hashprice_sat_per_th_day: float) -> int:
    """Return what FPPS pays for ``work_diff1`` at a hashprice, rounded down [sat].

    ``work · 2**32 / (1e12 · 86400) · hashprice``: the work is that many TH/s for one day.

    Parameters
    ----------
    work_diff1 : float
        Accepted work [difficulty-1 shares], >= 0.
    hashprice_sat_per_th_day : float
        Hashprice [sat per TH/s per day], >= 0.
    """
    if not (math.isfinite(work_diff1) and work_diff1 >= 0.0):
        raise InputError(f"work_diff1 must be finite and >= 0, got {work_diff1!r}")
    if not (math.isfinite(hashprice_sat_per_th_day) and hashprice_sat_per_th_day >= 0.0):
        raise InputError(
            f"hashprice_sat_per_th_day must be finite and >= 0, got {hashprice_sat_per_th_day!r}"
        )
    th_days = Fraction(work_diff1) * HASHES_PER_DIFF1 / (_HASHES_PER_TH * int(SECONDS_PER_DAY))
    return math.floor(th_days * Fraction(hashprice_sat_per_th_day))


def split_sat(total_sat: int, weights: Mapping[K, float]) -> dict[K, int]:
    """Split ``total_sat`` in proportion to ``weights`` exactly (largest remainder) [sat].

    Ties in the remainders go to the larger weight, then to the key that sorts first (by its
    text), so the split does not depend on the mapping's order. Keys of weight 0 get 0.

    Raises
    ------
    heatgrid.core.errors.InputError
        If ``total_sat`` is negative, a weight is negative or not finite, or every weight is 0
        while ``total_sat`` is not.
    """
    if total_sat < 0:
        raise InputError(f"total_sat must be >= 0, got {total_sat}")
    exact: dict[K, Fraction] = {}
    for key, weight in weights.items():
        if not (math.isfinite(weight) and weight >= 0.0):
            raise InputError(f"weight of {key!r} must be finite and >= 0, got {weight!r}")
        exact[key] = Fraction(weight)
    whole = sum(exact.values(), Fraction(0))
    if whole == 0:
        if total_sat:
            raise InputError(f"cannot split {total_sat} sat over no work")
        return dict.fromkeys(weights, 0)
    quotas = {key: weight * total_sat / whole for key, weight in exact.items()}
    parts = {key: math.floor(quota) for key, quota in quotas.items()}
    left = total_sat - sum(parts.values())
    order = sorted(quotas, key=lambda key: (-(quotas[key] - parts[key]), -exact[key], str(key)))
    for key in order[:left]:
        parts[key] += 1
    return parts


@dataclass(frozen=True)
class Split(Generic[K]):
    """A payout split: ``gross_sat == fee_sat + sum(credits_sat.values())``."""

    gross_sat: int
    fee_sat: int
    credits_sat: dict[K, int]


def split_with_fee(gross_sat: int, fee_fraction: float, weights: Mapping[K, float]) -> Split[K]:
    """Take the operator's fee off ``gross_sat`` and split the rest by ``weights`` [sat].

    The fee is ``round(gross_sat · fee_fraction)`` (halves up).

    Parameters
    ----------
    gross_sat : int
        What the work earned [sat], >= 0.
    fee_fraction : float
        The operator's share [-], 0 to 1.
    weights : mapping
        Work per payee [difficulty-1 shares].
    """
    if not (math.isfinite(fee_fraction) and 0.0 <= fee_fraction <= 1.0):
        raise InputError(f"fee_fraction must be between 0 and 1, got {fee_fraction!r}")
    if gross_sat < 0:
        raise InputError(f"gross_sat must be >= 0, got {gross_sat}")
    fee_sat = math.floor(Fraction(gross_sat) * Fraction(fee_fraction) + Fraction(1, 2))
    credits = split_sat(gross_sat - fee_sat, weights)
    return Split(gross_sat=gross_sat, fee_sat=fee_sat, credits_sat=credits)
