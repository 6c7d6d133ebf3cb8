"""Payout arithmetic: exact splits, FPPS at a hashprice, and agreement with core economics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.economics import MarketSnapshot, mining_revenue_btc
from heatgrid.core.errors import InputError
from heatgrid.mining.payouts import (
    SAT_PER_BTC,
    fpps_gross_sat,
    hashprice_sat_per_th_day,
    hashrate_hs,
    split_sat,
    split_with_fee,
)

_WORK = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


@given(
    total_sat=st.integers(min_value=0, max_value=21_000_000 * SAT_PER_BTC),
    weights=st.dictionaries(st.text(min_size=1, max_size=4), _WORK, min_size=1, max_size=20),
)
def test_split_adds_up_and_is_proportional_to_one_satoshi(
    total_sat: int, weights: dict[str, float]
) -> None:
    if sum(weights.values()) == 0.0:
        total_sat = 0
    parts = split_sat(total_sat, weights)
    assert sum(parts.values()) == total_sat
    whole = math.fsum(weights.values())
    for key, weight in weights.items():
        exact = total_sat * weight / whole if whole else 0.0
        assert abs(parts[key] - exact) <= 1.0 + 1e-9 * exact
        assert parts[key] >= 0


@given(
    gross_sat=st.integers(min_value=0, max_value=10**12),
    fee_fraction=st.floats(min_value=0.0, max_value=1.0),
    weights=st.dictionaries(
        st.integers(0, 50), st.floats(min_value=2**-20, max_value=1e6), min_size=1, max_size=20
    ),
)
def test_fee_plus_credits_is_the_gross(
    gross_sat: int, fee_fraction: float, weights: dict[int, float]
) -> None:
    split = split_with_fee(gross_sat, fee_fraction, weights)
    assert split.fee_sat + sum(split.credits_sat.values()) == gross_sat
    assert abs(split.fee_sat - gross_sat * fee_fraction) <= 0.5 + 1e-9 * gross_sat


def test_split_does_not_depend_on_the_order_of_the_mapping() -> None:
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert split_sat(2, weights) == split_sat(2, dict(reversed(weights.items())))
    assert split_sat(2, weights) == {"a": 1, "b": 1, "c": 0}


def test_fpps_pays_a_day_of_one_th_s_the_hashprice() -> None:
    # 1 TH/s for a day is 1e12 * 86400 / 2**32 difficulty-1 shares.
    one_th_day_diff1 = 1e12 * 86_400 / 2**32
    assert fpps_gross_sat(one_th_day_diff1, 42.0) == 42
    assert fpps_gross_sat(10 * one_th_day_diff1, 42.5) == 425
    assert fpps_gross_sat(0.0, 42.0) == 0


def test_the_hashprice_is_core_economics_revenue_of_one_th_s_for_a_day() -> None:
    market = MarketSnapshot()
    hashprice = hashprice_sat_per_th_day(
        market.difficulty, market.subsidy_btc, market.fees_btc_per_block
    )
    # The same number as economics' USD hashprice, in satoshi.
    assert hashprice == pytest.approx(
        market.hashprice_usd_per_th_day / market.btc_price_usd * SAT_PER_BTC, rel=1e-12
    )
    # FPPS on a measured hashrate's work pays what economics predicts for that hashrate.
    work_diff1 = 14e12 * 3600.0 / 2**32  # an S9 (14 TH/s) for an hour
    predicted_sat = (
        mining_revenue_btc(
            14.0, 3600.0, market.difficulty, market.subsidy_btc, market.fees_btc_per_block
        )
        * SAT_PER_BTC
    )
    assert abs(fpps_gross_sat(work_diff1, hashprice) - predicted_sat) <= 1.0
    assert hashrate_hs(work_diff1, 3600.0) == pytest.approx(14e12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: split_sat(-1, {"a": 1.0}), "total_sat"),
        (lambda: split_sat(5, {"a": 0.0}), "over no work"),
        (lambda: split_sat(5, {"a": math.nan}), "finite"),
        (lambda: split_with_fee(5, 1.5, {"a": 1.0}), "fee_fraction"),
        (lambda: fpps_gross_sat(-1.0, 42.0), "work_diff1"),
        (lambda: fpps_gross_sat(1.0, math.inf), "hashprice"),
        (lambda: hashrate_hs(1.0, 0.0), "window_s"),
    ],
)
def test_bad_input_is_refused_by_name(call: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()  # type: ignore[operator]
