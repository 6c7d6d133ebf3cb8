"""``heatgrid economics``: the default run, JSON with units, the plot, and bad input (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heatgrid.cli.main import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A key carries its unit as a suffix, optionally followed by a qualifier (savings_eur_gas).
_UNIT = re.compile(
    r"_(w|kwh|c|k|k_h|h|s|ths|eur|usd|btc|kg|pct|deg|m|w_per_k|j_per_k|per_kwh|"
    r"g_per_kwh|eur_per_kwh|usd_per_ph_day|btc_per_block)(_[a-z_]+)?$"
)
_DIMENSIONLESS = {"difficulty", "boiler_efficiency", "heat_pump_seasonal_cop"}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["economics", *args])
    out, err = capsys.readouterr()
    return status, out, " ".join(err.split())


def _heatgrid() -> list[str]:
    script = Path(sys.executable).with_name("heatgrid")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "heatgrid.cli.main"]


def _tiny_epw(path: Path, *, cut_last_row_at: int | None = None) -> Path:
    """Write a one-day EPW file (24 rows); optionally cut its last row after some fields."""
    header = [
        "LOCATION,Testville,,FRA,test,000000,45.7,4.9,1.0,200.0",
        "DESIGN CONDITIONS,0",
        "TYPICAL/EXTREME PERIODS,0",
        "GROUND TEMPERATURES,0",
        "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
        "COMMENTS 1,made by the test",
        "COMMENTS 2,",
        "DATA PERIODS,1,1,Data,Sunday,1/ 1,1/ 1",
    ]
    rows = []
    for hour in range(1, 25):
        rows.append(
            f"2023,1,1,{hour},60,?9?9?9?9E0?9?9?9*9*9?9?9?9?9*9?9?9*9*9*9*9*9,0.0,-2.0,85,99846,"
            "0,0,271,0,0,0,0,0,0,0,268,3.0,8,8,6750.0,77777,9,999999999,8,0.0850,0,88,0.200,"
            "0.0,0.0"
        )
    if cut_last_row_at is not None:
        rows[-1] = ",".join(rows[-1].split(",")[:cut_last_row_at])
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    return path


def test_the_default_run_prints_a_table_and_a_verdict_with_no_files() -> None:
    done = subprocess.run(
        [*_heatgrid(), "economics"], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    text = " ".join(done.stdout.split())
    for label in ("Heat demand", "Mining revenue", "Net heating cost", "Saving against heat pump"):
        assert label in text
    assert "Avalon Q" in text
    assert "Lyon" in text
    assert re.search(r"would cover \d+ % of the heat delivered, earn [\d,]+ € a year", text)
    assert re.search(r"cost [\d,]+ € (less|more) than your heat pump", text)


def test_json_echoes_inputs_and_reports_every_figure_with_its_unit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "year.png"
    status, out, err = _run(
        capsys,
        "--json",
        "--weather",
        "Oslo",
        "--device",
        "Antminer S9 (Braiins OS)",
        "--ua-w-per-k",
        "180",
        "--capacity-j-per-k",
        "2.5e7",
        "--night-setback-c",
        "17",
        "--tariff-eur-per-kwh",
        "0.3",
        "--hashprice-usd-per-ph-day",
        "45",
        "--displaced",
        "gas",
        "--plot",
        str(plot),
    )
    assert status == 0, err
    report: dict[str, Any] = json.loads(out)  # exactly one JSON object on stdout
    assert set(report) == {"inputs", "results", "monthly"}
    inputs, results, monthly = report["inputs"], report["results"], report["monthly"]

    for key, value in {**inputs, **results}.items():
        if isinstance(value, float | int) and not isinstance(value, bool):
            assert _UNIT.search(key) or key in _DIMENSIONLESS, key
    for key, values in monthly.items():
        assert _UNIT.search(key), key
        assert len(values) == 12

    assert inputs["device"] == "Antminer S9 (Braiins OS)"
    assert inputs["weather"] == "Oslo"
    assert inputs["country"] == "NO"
    assert inputs["carbon_g_per_kwh"] == 30.0
    assert inputs["ua_w_per_k"] == 180.0
    assert inputs["capacity_j_per_k"] == 2.5e7
    assert inputs["night_setback_c"] == 17.0
    assert inputs["tariff_eur_per_kwh"] == 0.3
    assert inputs["hashprice_usd_per_ph_day"] == 45.0
    assert inputs["displaced"] == "gas"
    assert inputs["backup"] == "gas"
    assert inputs["plot"] == str(plot)

    assert results["hours_h"] == 8760.0
    assert results["heating_degree_hours_k_h"] > 50_000.0
    assert results["heat_demand_kwh"] > 0.0
    assert results["heat_delivered_kwh"] == pytest.approx(
        results["heat_from_device_kwh"] + results["backup_heat_kwh"]
    )
    assert results["device_energy_kwh"] == results["heat_from_device_kwh"]
    assert results["hashprice_usd_per_ph_day"] == 45.0
    # 13.5 TH/s at 1323 W, hashrate proportional to power: revenue = TH/s · hashprice · days.
    device_days = results["device_energy_kwh"] / 1.323 / 24.0
    assert results["mining_revenue_usd"] == pytest.approx(13.5 / 1000.0 * 45.0 * device_days)
    assert results["savings_eur"] == results["savings_eur_gas"]
    assert results["savings_eur_gas"] == pytest.approx(
        results["displaced_cost_eur_gas"] - results["net_heating_cost_eur"]
    )
    assert sum(monthly["heat_from_device_kwh"]) == pytest.approx(results["heat_from_device_kwh"])
    assert sum(monthly["mining_revenue_eur"]) == pytest.approx(results["mining_revenue_eur"])
    assert monthly["heat_demand_kwh"][0] > monthly["heat_demand_kwh"][6]  # January > July

    data = plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


@pytest.mark.needs_shared
def test_the_lyon_epw_runs_end_to_end(capsys: pytest.CaptureFixture[str], lyon_epw: Path) -> None:
    status, out, err = _run(capsys, "--weather", str(lyon_epw), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["inputs"]["weather_source"].endswith(lyon_epw.name)
    assert report["inputs"]["country"] == "EU"  # a file names no ISO country: EU mean
    results = report["results"]
    assert results["hours_h"] == 8760.0
    assert 30_000.0 < results["heating_degree_hours_k_h"] < 90_000.0
    assert results["heat_demand_kwh"] > 1000.0
    assert results["mining_revenue_eur"] > 0.0


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--ua-w-per-k", "-5", "--capacity-j-per-k", "1e7"],
            "--ua-w-per-k must be greater than 0, got -5.0",
        ),
        (["--setpoint-c", "nan"], "--setpoint-c must be a finite number, got nan"),
        (["--tolerance-k", "-1"], "--tolerance-k must not be negative, got -1.0"),
        (["--btc-price-usd", "inf"], "--btc-price-usd must be a finite number"),
        (["--ua-w-per-k", "200"], "--ua-w-per-k and --capacity-j-per-k must be given together"),
        (["--boiler-efficiency", "3"], "--boiler-efficiency must be at most 1.1"),
        (["--displaced", "coal"], "--displaced must be one of resistive, heat-pump, gas"),
        (["--house", "castle"], "--house must be one of"),
        (["--country", "XX"], "--country: country_code 'XX' has no grid carbon intensity"),
        (["--weather", "Lyonn"], "not a built-in city and not an .epw file. Did you mean: Lyon"),
        (["--plot", "year.jpg"], "--plot must name a .png file, got 'year.jpg'"),
        (["--plot", "/no/such/dir/year.png"], "--plot: directory '/no/such/dir' does not exist"),
        (["--schedule-c", "20,21"], "--schedule-c needs 24 comma-separated values, got 2"),
    ],
)
def test_bad_options_exit_2_with_a_message_naming_the_option(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status, out, err = _run(capsys, *args)
    assert status == 2
    assert out == ""
    assert err.startswith("error:")
    assert message in err


def test_an_unknown_device_lists_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "--device", "Antminer S99")
    assert status == 2
    assert "unknown device 'Antminer S99'" in err
    assert "did you mean 'Antminer S9'" in err


def test_a_user_catalog_adds_devices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    catalog = _write(
        tmp_path / "mine.csv",
        "name,kind,max_power_w,min_power_w,hashrate_ths,source\n"
        "Garage Heater,asic,2000,700,100,my own measurement\n",
    )
    status, out, err = _run(
        capsys,
        "--catalog",
        str(catalog),
        "--device",
        "garage heater",
        "--weather",
        "Rome",
        "--json",
    )
    assert status == 0, err
    assert json.loads(out)["inputs"]["device_max_power_w"] == 2000.0
    status, _, err = _run(capsys, "--catalog", str(tmp_path / "absent.csv"))
    assert status == 2
    assert "--catalog: file not found" in err


def test_a_truncated_epw_names_file_line_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    epw = _tiny_epw(tmp_path / "cut.epw", cut_last_row_at=7)
    status, out, err = _run(capsys, "--weather", str(epw))
    assert status == 2
    assert out == ""
    assert str(epw) in err
    assert "line 32" in err  # 8 header lines, then the 24th data row
    assert "field 7 dew_point_c" in err  # the first missing field
    assert "Traceback" not in err
    status, _, err = _run(capsys, "--weather", str(tmp_path / "missing.epw"))
    assert status == 2
    assert "missing.epw" in err


def test_a_tariff_csv_must_cover_the_weather_year(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Lyon's year runs in local standard time (UTC+1): its first hour starts 2022-12-31 23:00 UTC.
    start_ts = 1_672_531_200.0 - 3600.0
    rows = [f"{start_ts + 3600.0 * h:.0f},{0.10 if h % 24 < 6 else 0.30}" for h in range(8760)]
    csv = _write(tmp_path / "prices.csv", "timestamp,price_eur_per_kwh\n" + "\n".join(rows))
    status, out, err = _run(capsys, "--tariff-csv", str(csv), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["inputs"]["tariff"] == str(csv)
    mean_price = (
        report["results"]["device_electricity_cost_eur"] / report["results"]["device_energy_kwh"]
    )
    assert 0.10 < mean_price < 0.30

    short = _write(tmp_path / "short.csv", "timestamp,price_eur_per_kwh\n" + "\n".join(rows[1:]))
    status, _, err = _run(capsys, "--tariff-csv", str(short))
    assert status == 2
    assert f"--tariff-csv {short}: prices cover 2023-01-01 00:00 UTC" in err
    assert "needs prices from 2022-12-31 23:00 UTC" in err


def test_bad_input_never_prints_a_traceback_from_the_installed_command() -> None:
    done = subprocess.run(
        [*_heatgrid(), "economics", "--setpoint-c", "warm"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--setpoint-c" in done.stderr


def test_list_devices_prints_the_catalog_and_the_unknown_device_hint_points_to_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["economics", "--list-devices"]) == 0
    listed = capsys.readouterr().out
    assert "Antminer S9" in listed
    assert "GeForce RTX 4090" in listed or "RTX 4090" in listed
    assert main(["economics", "--device", "antminer s99"]) == 2
    assert "heatgrid economics --list-devices" in capsys.readouterr().err
