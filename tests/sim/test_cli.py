"""``heatgrid simulate`` end to end: the default scenario's verdict, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heatgrid.cli.main import main
from heatgrid.sim.distributed import ray_available

_SMALL = ["--homes", "20", "--days", "0.5", "--seed", "3"]


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["simulate", *args, "--json"]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_default_scenario_heat_aware_beats_fifo(capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance: better comfort and useful heat than FIFO, with the same jobs completed."""
    policies = _run_json(capsys, "--compare", "heat-aware,fifo")["policies"]
    assert isinstance(policies, dict)
    heat_aware, fifo = policies["heat-aware"], policies["fifo"]
    assert heat_aware["homes"] == 100
    assert heat_aware["jobs_submitted"] == fifo["jobs_submitted"] > 100
    assert heat_aware["jobs_completed"] == fifo["jobs_completed"] == fifo["jobs_submitted"]
    assert heat_aware["comfort_mean_k_h"] < fifo["comfort_mean_k_h"]
    assert heat_aware["useful_heat_pct"] > fifo["useful_heat_pct"]


def test_same_seed_same_output_other_seed_other_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _run_json(capsys, *_SMALL, "--compare", "all")
    second = _run_json(capsys, *_SMALL, "--compare", "all")
    assert first == second
    assert set(first["policies"]) == {"heat-aware", "fifo", "mining-only"}  # type: ignore[arg-type]
    other = _run_json(capsys, *_SMALL[:-1], "4", "--compare", "all")
    assert other["policies"] != first["policies"]


def test_table_and_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "out"
    args = [*_SMALL, "--weather", "Berlin", "--weather", "Madrid", "--policy", "fifo"]
    assert main(["simulate", *args, "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "useful heat" in out
    assert "fifo" in out
    assert "per home, fifo" in out
    assert "net cost" in out
    assert "[kWh]" in out  # units survive Rich's markup
    markdown = (report / "report.md").read_text()
    assert "Berlin, Madrid" in markdown
    pictures = sorted(path.name for path in report.glob("*.png"))
    assert pictures == [
        "co2.png",
        "heat_power.png",
        "job_latency_cdf.png",
        "net_cost_per_home.png",
        "revenue.png",
        "room_temperature.png",
    ]
    assert "## Per home, fifo" in markdown
    assert "| mining revenue [EUR] |" in markdown
    for name in pictures:
        assert f"]({name})" in markdown
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_fused_engine_gives_the_local_engines_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [*_SMALL, "--compare", "all"]
    local = _run_json(capsys, *args)["policies"]
    fused = _run_json(capsys, *args, "--engine", "fused")["policies"]
    assert isinstance(local, dict)
    assert isinstance(fused, dict)
    assert set(fused) == set(local)
    for policy, summary in local.items():
        for key, value in summary.items():
            if isinstance(value, float):
                assert fused[policy][key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
            elif key != "per_home":
                assert fused[policy][key] == value, key
    report = tmp_path / "fused"
    mining = ["--policy", "mining-only", "--jobs", "poisson:rate_per_h=0"]
    assert main(["simulate", *_SMALL, *mining, "--engine", "fused", "--report", str(report)]) == 0
    assert "## Per home, mining-only" in (report / "report.md").read_text()


def test_an_epw_file_is_a_region(capsys: pytest.CaptureFixture[str], lyon_epw: Path) -> None:
    result = _run_json(capsys, *_SMALL, "--weather", str(lyon_epw))
    scenario = result["scenario"]
    assert isinstance(scenario, dict)
    assert len(scenario["regions"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--homes", "0"], "--homes must be at least 1"),
        (["--days", "-1"], "--days must be greater than 0"),
        (["--policy", "round-robin"], "unknown policy 'round-robin'"),
        (["--compare", "fifo,lottery"], "unknown policy 'lottery'"),
        (["--compare", "fifo,fifo"], "twice"),
        (["--policy", "fifo", "--compare", "all"], "not both"),
        (["--weather", "/nonexistent/place.epw"], "place.epw"),
        (["--weather", "Atlantis"], "unknown weather 'Atlantis'"),
        (["--jobs", "poisson:rate=1"], "--jobs"),
        (["--start", "13-45"], "--start"),
        (["--days", "400"], "--days must be at most 366 (one weather year)"),
        (["--start", "12-20", "--days", "30"], "does not cover"),
        (["--engine", "spark"], "--engine"),
        (["--step-s", "0"], "--step-s must be from 10 to 3600 seconds"),
        (["--step-s", "0.001"], "--step-s must be from 10 to 3600 seconds"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 2**63 - 1, got -1"),
        (["--seed", str(2**64)], "--seed must be a whole number from 0"),
        (["--homes", "100000000"], "--homes must be at most 1,000,000"),
        (["--days", "1e9"], "--days must be at most 366"),
        (["--days", "inf"], "--days must be at most 366"),
        (["--days", "nan"], "--days must be greater than 0"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", *args]) == 2
    captured = capsys.readouterr()
    assert message in " ".join(captured.err.split())
    assert "Traceback" not in captured.err + captured.out


def test_unreadable_weather_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.epw"
    broken.write_text("not an EPW file\n")
    assert main(["simulate", "--weather", str(broken)]) == 2
    assert "broken.epw" in capsys.readouterr().err


@pytest.mark.skipif(ray_available(), reason="Ray is installed; this checks the message without it")
def test_engine_ray_without_ray_says_how_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *_SMALL, "--engine", "ray"]) == 2
    assert "optional extra 'distributed'" in " ".join(capsys.readouterr().err.split())
