"""Tests for the hardware catalog: shipped data, lookup, power model and user files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.catalog import (
    CATALOG_COLUMNS,
    Catalog,
    Device,
    load_catalog,
    parse_catalog,
)
from heatgrid.core.errors import InputError

CATALOG = load_catalog()
ASIC_NAMES = [device.name for device in CATALOG.of_kind("asic")]
GPU_NAMES = [device.name for device in CATALOG.of_kind("gpu")]

HEADER = ",".join(CATALOG_COLUMNS)


def _user_csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


# ----- shipped data -----------------------------------------------------------------------


def test_shipped_catalog_covers_all_kinds() -> None:
    assert len(CATALOG.of_kind("asic")) >= 15
    assert len(CATALOG.of_kind("gpu")) >= 10
    assert len(CATALOG.of_kind("cpu")) >= 2
    for name in ("Antminer S9", "Antminer S21", "Bitaxe Gamma", "Avalon Mini 3", "Heatbit Trio"):
        assert name in CATALOG


@pytest.mark.parametrize("device", list(CATALOG), ids=lambda device: device.name)
def test_every_row_names_a_source(device: Device) -> None:
    source = device.source.strip()
    assert len(source) >= 15, f"{device.name}: source {source!r} is too short to find"
    assert "http" in source or any(
        word in source.lower() for word in ("specifications", "datasheet", "whitepaper")
    ), f"{device.name}: source {source!r} is neither a URL nor a named document"


@pytest.mark.parametrize("name", ASIC_NAMES)
def test_asic_efficiency_matches_power_over_hashrate(name: str) -> None:
    device = CATALOG.find(name)
    assert device.efficiency_j_per_th is not None
    derived = device.max_power_w / device.hashrate_ths
    assert device.efficiency_j_per_th == pytest.approx(derived, rel=0.03)


@pytest.mark.parametrize("name", GPU_NAMES)
def test_gpu_rows_have_memory_and_throughput(name: str) -> None:
    device = CATALOG.find(name)
    assert device.vram_gb > 0
    assert device.fp16_tflops > device.fp32_tflops > 0
    assert device.hashrate_ths == 0.0
    assert device.efficiency_j_per_th is None
    # GPUs go down to roughly a third of board power through their power limit.
    assert 0.2 * device.max_power_w <= device.min_power_w <= 0.7 * device.max_power_w


def test_power_ranges_and_levels_are_coherent() -> None:
    for device in CATALOG:
        assert 0 < device.min_power_w <= device.max_power_w
        if device.power_levels_w:
            assert device.power_levels_w[0] == device.min_power_w
            assert device.power_levels_w[-1] == device.max_power_w
    assert CATALOG.find("Avalon Q").power_levels_w == (800.0, 1300.0, 1674.0)


# ----- lookup -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Antminer S19j Pro", "Antminer S19j Pro"),
        ("antminer-s19J_PRO", "Antminer S19j Pro"),
        ("  ANTMINER  S19J  PRO ", "Antminer S19j Pro"),
        ("antminer s9 braiins os", "Antminer S9 (Braiins OS)"),
        ("S9", "Antminer S9"),
        ("rtx 4090", "GeForce RTX 4090"),
        ("Whatsminer M30S", "Whatsminer M30S"),
        ("whatsminer m30s++", "Whatsminer M30S++"),
        ("a100 pcie 80 gb", "A100 PCIe 80GB"),
        ("NVIDIA H200", "H200 SXM"),  # as NVML names the board
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
    ],
)
def test_find_ignores_case_spaces_and_punctuation(query: str, expected: str) -> None:
    assert CATALOG.find(query).name == expected


def test_unknown_device_lists_close_matches_and_how_to_list() -> None:
    with pytest.raises(InputError) as caught:
        CATALOG.find("Antminer S19 XPP Hydro")
    message = str(caught.value)
    assert "'Antminer S19 XPP Hydro'" in message
    assert "did you mean" in message
    assert "'Antminer S19 XP'" in message
    assert "names()" in message


def test_misspelt_gpu_suggests_the_real_one() -> None:
    with pytest.raises(InputError, match=r"did you mean .*'GeForce RTX 4090'"):
        CATALOG.find("GeForce RTX 4909")


def test_ambiguous_name_lists_candidates() -> None:
    with pytest.raises(InputError, match="ambiguous") as caught:
        CATALOG.find("avalon nano")
    assert "'Avalon Nano 3'" in str(caught.value)
    assert "'Avalon Nano 3S'" in str(caught.value)


def test_nonsense_name_still_says_how_to_list() -> None:
    with pytest.raises(InputError, match=r"unknown device 'zzzz'.*names\(\)"):
        CATALOG.find("zzzz")


# ----- power model ------------------------------------------------------------------------


def test_hashrate_at_power_endpoints() -> None:
    s9 = CATALOG.find("Antminer S9 (Braiins OS)")
    assert s9.hashrate_at_power_ths(s9.max_power_w) == pytest.approx(13.5)
    assert s9.hashrate_at_power_ths(0.0) == 0.0
    assert s9.hashrate_at_power_ths(600.0) == pytest.approx(13.5 * 600 / 1323)


@given(fraction=st.floats(min_value=0.0, max_value=1.0))
def test_hashrate_proportional_to_power_in_range(fraction: float) -> None:
    device = CATALOG.find("Antminer S19j Pro (Braiins OS)")
    power_w = device.min_power_w + fraction * (device.max_power_w - device.min_power_w)
    hashrate_ths = device.hashrate_at_power_ths(power_w)
    assert hashrate_ths / power_w == pytest.approx(device.hashrate_ths / device.max_power_w)
    assert 0 < hashrate_ths <= device.hashrate_ths * (1 + 1e-12)


def test_hashrate_outside_range_raises() -> None:
    s19 = CATALOG.find("Antminer S19j Pro (Braiins OS)")
    with pytest.raises(InputError, match="outside the range"):
        s19.hashrate_at_power_ths(1000.0)
    with pytest.raises(InputError, match="outside the range"):
        s19.hashrate_at_power_ths(3100.0)
    with pytest.raises(InputError, match="power_w"):
        s19.hashrate_at_power_ths(-1.0)


def test_hashrate_discrete_levels() -> None:
    avalon = CATALOG.find("Avalon Q")
    hashrates = avalon.hashrate_at_power_ths(np.array([0.0, 800.0, 1300.0, 1674.0]))
    np.testing.assert_allclose(hashrates, 90.0 * np.array([0, 800, 1300, 1674]) / 1674)
    with pytest.raises(InputError, match="not a power level"):
        avalon.hashrate_at_power_ths(1000.0)


def test_gpu_hashes_nothing() -> None:
    gpu = CATALOG.find("RTX 4090")
    assert gpu.hashrate_at_power_ths(300.0) == 0.0


def test_device_rejects_inconsistent_asic() -> None:
    with pytest.raises(InputError, match="efficiency_j_per_th"):
        Device(
            name="Bad",
            kind="asic",
            max_power_w=3000,
            min_power_w=3000,
            hashrate_ths=100,
            efficiency_j_per_th=20,
            source="test",
        )
    with pytest.raises(InputError, match="hashrate_ths"):
        Device(name="Bad", kind="asic", max_power_w=3000, min_power_w=3000, source="test")


# ----- user files -------------------------------------------------------------------------


def test_parse_user_csv_defaults_and_derivation() -> None:
    text = "# my rigs\nname,kind,max_power_w,hashrate_ths,source\nShed S19,asic,3000,100,my meter\n"
    catalog = parse_catalog(text, "rigs.csv")
    device = catalog.find("shed s19")
    assert device.min_power_w == 3000.0  # on/off only unless said otherwise
    assert device.efficiency_j_per_th == pytest.approx(30.0)


def test_merged_overrides_and_adds() -> None:
    user = parse_catalog(
        _user_csv(
            "antminer s9,asic,1200,500,,12,100,0,0,0,,my wattmeter,tuned",
            "Garage GPU,gpu,300,100,,0,,24,70,35,,my invoice,",
        ),
        "user.csv",
    )
    merged = CATALOG.merged(user)
    assert len(merged) == len(CATALOG) + 1
    assert merged.find("Antminer S9").max_power_w == 1200.0
    assert merged.names().index("antminer s9") == CATALOG.names().index("Antminer S9")
    assert merged.names()[-1] == "Garage GPU"
    assert CATALOG.find("Antminer S9").max_power_w == 1323.0  # the shipped one is unchanged


@pytest.mark.parametrize(
    ("row", "column", "fragment"),
    [
        ("X,asic,lots,,,1,,0,0,0,,src,", "column 3 (max_power_w)", "expected a number"),
        ("X,toaster,100,,,0,,0,0,0,,src,", "column 2 (kind)", "must be one of"),
        ("X,asic,100,200,,1,,0,0,0,,src,", "column 4 (min_power_w)", "at most max_power_w"),
        ("X,asic,3000,,,100,20,0,0,0,,src,", "column 7 (efficiency_j_per_th)", "disagrees"),
        ("X,gpu,300,100,,0,,24,nan,35,,src,", "column 9 (fp16_tflops)", "finite"),
        ("X,asic,100,,,1,,0,0,0,,,", "column 12 (source)", "must not be empty"),
        ("X,asic,100,50,50;80,1,,0,0,0,,src,", "column 5 (power_levels_w)", "max_power_w"),
    ],
)
def test_bad_csv_row_names_file_line_and_column(row: str, column: str, fragment: str) -> None:
    text = _user_csv("Good,cpu,100,50,,0,,0,0,0,,src,", row)
    with pytest.raises(InputError) as caught:
        parse_catalog(text, "user.csv")
    message = str(caught.value)
    assert message.startswith(f"user.csv, line 3, {column}")
    assert fragment in message


def test_csv_structure_errors() -> None:
    with pytest.raises(InputError, match=r"mine\.csv, line 1, column 3: unknown column 'max_kw'"):
        parse_catalog("name,kind,max_kw,source\n", "mine.csv")
    with pytest.raises(InputError, match="missing column"):
        parse_catalog("name,kind,source\n", "mine.csv")
    with pytest.raises(InputError, match="line 2: expected 4 columns"):
        parse_catalog("name,kind,max_power_w,source\nA,cpu,100\n", "mine.csv")
    with pytest.raises(InputError, match=r"line 3, column 1 \(name\).*already defined on line 2"):
        parse_catalog("name,kind,max_power_w,source\nA,cpu,100,s\na,cpu,90,s\n", "mine.csv")
    with pytest.raises(InputError, match="empty file"):
        parse_catalog("\n# nothing\n", "mine.csv")


def test_parse_toml_catalog() -> None:
    text = """
[[device]]
name = "Loft Avalon"
kind = "asic"
max_power_w = 800
power_levels_w = [450, 800]
hashrate_ths = 37.5
source = "Canaan spec sheet"
"""
    device = parse_catalog(text, "mine.toml").find("loft avalon")
    assert device.power_levels_w == (450.0, 800.0)
    assert device.min_power_w == 450.0


def test_toml_errors_name_table_and_key() -> None:
    text = '[[device]]\nname = "A"\nkind = "cpu"\nmax_power_w = "hot"\nsource = "s"\n'
    with pytest.raises(InputError, match=r"mine\.toml, \[\[device\]\] #1, key max_power_w"):
        parse_catalog(text, "mine.toml")
    with pytest.raises(InputError, match=r"mine\.toml: invalid TOML.*line 1"):
        parse_catalog("[[device]\n", "mine.toml")


def test_catalog_rejects_duplicate_names() -> None:
    device = CATALOG.find("L4")
    with pytest.raises(InputError, match="same after ignoring case"):
        Catalog((device, device))
