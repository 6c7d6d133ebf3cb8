"""Tests for mining revenue, hashprice, compute revenue and the market snapshot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core import economics
from heatgrid.core.economics import (
    MarketSnapshot,
    block_subsidy_btc,
    compute_revenue_eur,
    hashprice_usd_per_ph_day,
    hashprice_usd_per_th_day,
    mining_revenue_btc,
    mining_revenue_from_hashprice_usd,
)
from heatgrid.core.errors import InputError

hashrates_ths = st.floats(min_value=1e-3, max_value=1e6)
durations_s = st.floats(min_value=1.0, max_value=1e8)
difficulties = st.floats(min_value=1.0, max_value=1e16)
prices_usd = st.floats(min_value=1.0, max_value=1e7)
subsidies_btc = st.sampled_from([50.0, 25.0, 12.5, 6.25, 3.125, 1.5625])
fees_btc = st.floats(min_value=0.0, max_value=5.0)


@pytest.mark.parametrize(
    ("height", "subsidy"),
    [
        (0, 50.0),
        (209_999, 50.0),
        (210_000, 25.0),
        (630_000, 6.25),
        (840_000, 3.125),
        (1_049_999, 3.125),
        (1_050_000, 1.5625),
        (33 * 210_000, 0.0),  # 5e9 sat >> 33 is 0 satoshi: Core's integer shift ends here
        (64 * 210_000, 0.0),
    ],
)
def test_block_subsidy_halves_every_210000_blocks(height: int, subsidy: float) -> None:
    assert block_subsidy_btc(height) == subsidy


def test_block_subsidy_is_in_whole_satoshis() -> None:
    assert block_subsidy_btc(10 * 210_000) == 0.04882812  # 4882812.5 sat truncated
    with pytest.raises(InputError, match="height"):
        block_subsidy_btc(-1)
    with pytest.raises(InputError, match="height"):
        block_subsidy_btc(1.5)  # type: ignore[arg-type]


def test_difficulty_one_pays_one_block_per_2_32_hashes() -> None:
    # At difficulty 1 a block takes 2**32 hashes on average: that many hashes earn one subsidy.
    revenue_btc = mining_revenue_btc(2.0**32 / 1e12, 1.0, 1.0, 50.0, 0.0)
    assert revenue_btc == pytest.approx(50.0, rel=1e-12)


def test_hashprice_late_2025_value() -> None:
    # 1e12 * 86400 / (1.5e14 * 2**32) * 3.145 BTC * 90,000 USD, worked by hand: 0.03796 USD.
    value = hashprice_usd_per_th_day(1.5e14, 90_000.0, 3.125, 0.02)
    assert value == pytest.approx(0.037960, rel=1e-4)
    assert hashprice_usd_per_ph_day(1.5e14, 90_000.0, 3.125, 0.02) == pytest.approx(1000 * value)


@given(
    hashrate_ths=hashrates_ths,
    duration_s=durations_s,
    difficulty=difficulties,
    subsidy_btc=subsidies_btc,
    fees_btc_per_block=fees_btc,
    btc_price_usd=prices_usd,
)
def test_two_revenue_paths_agree(
    *,
    hashrate_ths: float,
    duration_s: float,
    difficulty: float,
    subsidy_btc: float,
    fees_btc_per_block: float,
    btc_price_usd: float,
) -> None:
    direct_usd = (
        mining_revenue_btc(hashrate_ths, duration_s, difficulty, subsidy_btc, fees_btc_per_block)
        * btc_price_usd
    )
    hashprice = hashprice_usd_per_ph_day(difficulty, btc_price_usd, subsidy_btc, fees_btc_per_block)
    shortcut_usd = mining_revenue_from_hashprice_usd(hashrate_ths, duration_s, hashprice)
    assert math.isclose(direct_usd, shortcut_usd, rel_tol=1e-9)


@given(
    hashrate_ths=hashrates_ths,
    duration_s=durations_s,
    difficulty=difficulties,
    fees_btc_per_block=fees_btc,
    # zero, or a factor whose products stay normal floats (subnormals lose relative precision)
    factor=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e3)),
    extra_s=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e3)),
)
def test_revenue_linear_in_hashrate_and_time(
    *,
    hashrate_ths: float,
    duration_s: float,
    difficulty: float,
    fees_btc_per_block: float,
    factor: float,
    extra_s: float,
) -> None:
    def revenue(h: float, t: float) -> float:
        return mining_revenue_btc(h, t, difficulty, 3.125, fees_btc_per_block)

    base = revenue(hashrate_ths, duration_s)
    assert math.isclose(revenue(factor * hashrate_ths, duration_s), factor * base, rel_tol=1e-12)
    assert math.isclose(
        revenue(hashrate_ths, duration_s + extra_s),
        base + revenue(hashrate_ths, extra_s),
        rel_tol=1e-12,
    )


def test_revenue_vectorised_matches_scalar_calls() -> None:
    hashrate_ths = np.array([0.0, 13.5, 100.0, 200.0])
    hourly = mining_revenue_btc(hashrate_ths, 3600.0, 1.5e14, 3.125, 0.02)
    assert isinstance(hourly, np.ndarray)
    assert hourly.shape == (4,)
    for h, value in zip(hashrate_ths, hourly, strict=True):
        assert value == mining_revenue_btc(float(h), 3600.0, 1.5e14, 3.125, 0.02)
    scalar = mining_revenue_btc(100.0, 3600.0, 1.5e14, 3.125, 0.02)
    assert isinstance(scalar, float)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"difficulty": 0.0}, "difficulty"),
        ({"hashrate_ths": float("nan")}, "hashrate_ths"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"fees_btc_per_block": -0.1}, "fees_btc_per_block"),
        ({"hashrate_ths": np.array([1.0, np.inf])}, "hashrate_ths"),
    ],
)
def test_mining_revenue_rejects_bad_input(kwargs: dict[str, object], name: str) -> None:
    arguments: dict[str, object] = {
        "hashrate_ths": 100.0,
        "duration_s": 3600.0,
        "difficulty": 1.5e14,
        "subsidy_btc": 3.125,
        "fees_btc_per_block": 0.02,
    }
    arguments.update(kwargs)
    with pytest.raises(InputError, match=name):
        mining_revenue_btc(**arguments)  # type: ignore[call-overload]


def test_compute_revenue() -> None:
    assert compute_revenue_eur(10.0, 0.5, 0.8) == pytest.approx(4.0)
    hourly = compute_revenue_eur(np.ones(24), 0.4)
    assert float(np.sum(hourly)) == pytest.approx(9.6)
    with pytest.raises(InputError, match="utilisation"):
        compute_revenue_eur(1.0, 1.0, 1.5)
    with pytest.raises(InputError, match="price_eur_per_gpu_h"):
        compute_revenue_eur(1.0, -1.0)


@given(
    st.floats(min_value=0.0, max_value=1e5),
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_compute_revenue_bounded_by_full_utilisation(
    gpu_time_h: float, price: float, utilisation: float
) -> None:
    partial = compute_revenue_eur(gpu_time_h, price, utilisation)
    assert 0.0 <= partial <= compute_revenue_eur(gpu_time_h, price, 1.0) * (1 + 1e-12)


def test_market_snapshot_defaults() -> None:
    snapshot = MarketSnapshot()
    assert snapshot.subsidy_btc == block_subsidy_btc(900_000)
    # Late-2025 hashprice was in the tens of USD per PH/s per day.
    assert 25.0 < snapshot.hashprice_usd_per_ph_day < 60.0
    assert snapshot.hashprice_eur_per_th_day == pytest.approx(
        snapshot.hashprice_usd_per_th_day / 1.16
    )
    assert snapshot.btc_price_eur == pytest.approx(90_000 / 1.16)
    with pytest.raises(InputError, match="difficulty"):
        MarketSnapshot(difficulty=0.0)
    with pytest.raises(InputError, match="usd_per_eur"):
        MarketSnapshot(usd_per_eur=float("nan"))


def test_economics_reexports_the_whole_api() -> None:
    for name in economics.__all__:
        assert hasattr(economics, name), name
    for name in ("FlatTariff", "TimeOfUseTariff", "SeriesTariff", "heat_pump_cop", "co2_kg"):
        assert name in economics.__all__
