"""Default household prices: every built-in city's country has a row, with source and period."""

from __future__ import annotations

import pytest

from heatgrid.core.errors import InputError
from heatgrid.core.prices import (
    household_prices,
    load_household_prices,
    parse_household_prices,
)
from heatgrid.weather.cities import CITIES

HEADER = "country,electricity_per_kwh,gas_per_kwh,currency,currency_per_eur,period,accuracy,source"


def test_every_built_in_city_has_its_countrys_prices_with_source_and_period() -> None:
    table = load_household_prices()
    for city in CITIES.values():
        row = table[city.country]
        assert row.source, city.name
        assert row.period, city.name
        assert 0.03 < row.electricity_eur_per_kwh < 0.6, city.name


def test_german_households_pay_what_eurostat_reports_not_a_flat_twenty_cents() -> None:
    germany = household_prices("de")
    assert germany.electricity_eur_per_kwh == pytest.approx(0.39, abs=0.005)
    assert "Eurostat" in germany.source
    assert germany.period == "2024-H2"


def test_prices_in_another_currency_convert_to_euros_at_the_stated_rate() -> None:
    us = household_prices("US")
    assert us.currency == "USD"
    assert us.electricity_eur_per_kwh == pytest.approx(us.electricity_per_kwh / us.currency_per_eur)
    assert household_prices("UK") == household_prices("GB")


def test_an_unknown_country_names_the_known_codes() -> None:
    with pytest.raises(InputError, match=r"no default household prices for country 'XX'; known: "):
        household_prices("XX")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("EU,abc,0.1,EUR,1,2024,published,x", "electricity_per_kwh is not a number"),
        ("EU,0.2,0.1,EUR,0,2024,published,x", "currency_per_eur must be a finite number"),
        ("EU,0.2,0.1,EUR,1,2024,guessed,x", "accuracy must be one of published, approximate"),
        ("FR,0.2,0.1,EUR,1,2024,published,x", "needs a row for EU"),
    ],
)
def test_a_bad_table_names_the_row_and_column(row: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_household_prices(f"# comment\n{HEADER}\n{row}\n", "prices.csv")
