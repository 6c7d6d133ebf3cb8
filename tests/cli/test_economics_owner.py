"""``heatgrid economics`` read literally by a home owner: prices with their source, what each
heat figure is a share of, and a published user test reproduced from its stated inputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.cli._economics_explain import hours_report
from heatgrid.cli.main import main
from heatgrid.core.catalog import load_catalog
from heatgrid.core.economics import MarketSnapshot


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["economics", *args])
    out, err = capsys.readouterr()
    return status, out, " ".join(err.split())


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status, out, err = _run(capsys, "--json", *args)
    assert status == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def test_berlin_uses_german_household_prices_and_says_where_they_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = _json(capsys, "--weather", "Berlin")["inputs"]
    assert inputs["price_country"] == "DE"
    assert inputs["tariff_eur_per_kwh"] == pytest.approx(0.39)
    assert "Eurostat" in inputs["tariff_source"]
    assert inputs["tariff_period"] == "2024-H2"
    assert inputs["gas_price_eur_per_kwh"] == pytest.approx(0.12)
    assert "Eurostat" in inputs["gas_price_source"]


def test_a_tariff_in_dollars_is_converted_and_the_output_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = _json(
        capsys, "--weather", "Oslo", "--tariff-usd-per-kwh", "0.232", "--usd-per-eur", "1.16"
    )["inputs"]
    assert inputs["tariff_eur_per_kwh"] == pytest.approx(0.2)
    assert inputs["tariff_usd_per_kwh"] == 0.232
    assert "1.16 USD/EUR" in inputs["tariff_source"]
    status, _, err = _run(capsys, "--tariff-usd-per-kwh", "0.2", "--tariff-eur-per-kwh", "0.2")
    assert status == 2
    assert "give --tariff-eur-per-kwh or --tariff-usd-per-kwh, not both" in err


def test_the_table_names_the_prices_used_and_how_revenue_was_computed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = _run(capsys, "--weather", "Berlin")
    assert status == 0, err
    text = " ".join(out.split())
    assert "How this was computed" in text
    assert "Prices: electricity 0.39 EUR/kWh, DE households, 2024-H2" in text
    assert "USD/(PH/s·day) = 1e15 H/s × 86,400 s / (difficulty" in text
    assert re.search(r"Same heat \([\d,]+ kWh of demand\): resistive [\d,]+ kWh × 0\.390", text)
    assert "heat pump ÷ seasonal COP" in text


def test_heat_above_demand_is_reported_as_overshoot_and_shares_say_of_what(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--weather", "Berlin", "--device", "Antminer S19", "--backup", "none")
    results = _json(capsys, *args)["results"]
    delivered = results["heat_delivered_kwh"]
    assert results["heat_from_device_kwh"] > results["heat_demand_kwh"]  # the case
    assert results["heat_above_demand_kwh"] == pytest.approx(delivered - results["heat_demand_kwh"])
    assert results["heat_above_demand_kwh"] > 0.0
    assert results["device_heat_share_pct"] + results["backup_heat_share_pct"] == pytest.approx(
        100.0
    )
    status, out, err = _run(capsys, *args)
    assert status == 0, err
    text = " ".join(out.split())
    assert re.search(r"from the compute heater\W+[\d,]+ kWh · [\d.]+ % of delivered", text)
    assert re.search(r"above demand: on/off overshoot\W+[\d,]+ kWh · [\d.]+ % of demand", text)


# Published user test: Casey Scalf, "Mid-Century Modern Bitcoin ASIC Space Heater"
# (caseyjscalf.com, 2024). Stated: an Antminer S9 set to 700 W, about 8.5 TH/s, around the
# clock all winter, "about 1,600 sats a day", "about $0.70" at the time; after the April 2024
# halving "about 700 sats a day". Not stated, taken from public chain data (rounded): network
# difficulty about 7.3e13 in January 2024 and 8.8e13 in May 2024; mean fees about 0.25 BTC per
# block in January 2024 (inscription period) and 0.15 after the halving. The BTC price at the
# time is the post's own ratio, $0.70 / 1,600 sat = 43,750 USD/BTC. Tolerance 15 %: the post
# gives round "about" figures over a season in which difficulty moved by more than 15 %.
SCALF_TOLERANCE = 0.15


@pytest.mark.parametrize(
    ("difficulty", "subsidy", "fees", "sats_per_day"),
    [("7.3e13", "6.25", "0.25", 1600.0), ("8.8e13", "3.125", "0.15", 700.0)],
)
def test_a_published_home_miner_test_is_reproduced_from_its_inputs(
    capsys: pytest.CaptureFixture[str],
    difficulty: str,
    subsidy: str,
    fees: str,
    sats_per_day: float,
) -> None:
    args = [
        "--device",
        "Antminer S9 (Braiins OS)",
        "--power-w",
        "700",
        "--hashrate-ths",
        "8.5",
        "--hours",
        "24",
        "--difficulty",
        difficulty,
        "--subsidy-btc",
        subsidy,
        "--fees-btc-per-block",
        fees,
        "--btc-price-usd",
        "43750",
        "--tariff-usd-per-kwh",
        "0.12",
    ]
    results = _json(capsys, *args)["results"]
    assert results["mining_revenue_sat"] == pytest.approx(sats_per_day, rel=SCALF_TOLERANCE)
    if sats_per_day == 1600.0:
        assert results["mining_revenue_usd"] == pytest.approx(0.70, rel=SCALF_TOLERANCE)
    assert results["energy_kwh"] == pytest.approx(16.8)  # the extra electricity: 700 W × 24 h
    assert results["electricity_cost_usd"] == pytest.approx(16.8 * 0.12)
    status, out, err = _run(capsys, *args)
    assert status == 0, err
    text = " ".join(out.split())
    assert "Energy: 700 W × 24.0 h = 16.80 kWh" in text
    assert "Mining: 8.5 TH/s ÷ 1000 TH/PH ×" in text
    assert f"({results['mining_revenue_sat']:,.0f} sat)" in text


def test_hours_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "--hours", "24", "--device", "Avalon Q", "--power-w", "5000")
    assert status == 2
    assert "--power-w: power_w 5000.0 is outside the range of 'Avalon Q'" in err
    status, _, err = _run(capsys, "--power-w", "800")
    assert status == 2
    assert "--power-w and --hashrate-ths apply to a run of --hours only" in err
    status, _, err = _run(capsys, "--hours", "-1")
    assert status == 2
    assert "--hours must be greater than 0" in err


_S19 = load_catalog().find("Antminer S19")


@settings(max_examples=60, deadline=None)
@given(
    hours=st.floats(0.5, 2000.0),
    tariff=st.floats(0.0, 1.0),
    hashprice=st.floats(0.0, 200.0),
    scale=st.floats(1.5, 4.0),
)
def test_hours_figures_are_linear_in_time_and_net_is_cost_minus_revenue(
    hours: float, tariff: float, hashprice: float, scale: float
) -> None:
    market = MarketSnapshot()

    def run(h: float) -> dict[str, Any]:
        return hours_report(
            _S19,
            hours_h=h,
            power_w=None,
            hashrate_ths=None,
            market=market,
            quoted_hashprice_usd_per_ph_day=hashprice,
            tariff_eur_per_kwh=tariff,
        )

    one, more = run(hours), run(hours * scale)
    assert one["energy_kwh"] == pytest.approx(_S19.max_power_w * hours / 1000.0)
    assert one["electricity_cost_eur"] == pytest.approx(one["energy_kwh"] * tariff)
    assert one["mining_revenue_usd"] == pytest.approx(
        _S19.hashrate_ths / 1000.0 * hashprice * hours / 24.0
    )
    for key in ("energy_kwh", "electricity_cost_eur", "mining_revenue_usd", "net_cost_eur"):
        assert more[key] == pytest.approx(one[key] * scale, rel=1e-9, abs=1e-12)
    assert one["net_cost_eur"] == pytest.approx(
        one["electricity_cost_eur"] - one["mining_revenue_eur"], abs=1e-12
    )


def test_a_progress_bar_counts_the_hours_on_stderr_and_json_stays_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = _run(capsys, "--weather", "Oslo")
    assert status == 0, err
    assert "Avalon Q in Oslo" in err
    assert "8760/8760 hours" in err
    assert "8760/8760" not in out
    status, out, err = _run(capsys, "--weather", "Oslo", "--json")
    assert status == 0
    assert err == ""
    json.loads(out)
