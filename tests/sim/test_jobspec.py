"""The --jobs spec: sections, keys, per-home rates, mean or median sizes, clear errors."""

from __future__ import annotations

import math

import pytest

from heatgrid.core.errors import InputError
from heatgrid.sim.jobspec import DEFAULT_RATE_PER_HOME_H, parse_job_stream
from heatgrid.sim.scenario import JobStream

_J_PER_KWH = 3.6e6


def test_empty_spec_gives_the_defaults_with_a_per_home_rate() -> None:
    stream = parse_job_stream("", 200)
    assert stream.rate_per_h == pytest.approx(DEFAULT_RATE_PER_HOME_H * 200)
    assert stream.median_j == JobStream().median_j


def test_the_documented_example() -> None:
    stream = parse_job_stream("poisson:rate_per_h=20,lognormal:mean_kwh=2,sigma=0.8", 10)
    assert stream.rate_per_h == 20.0
    assert stream.sigma == 0.8
    assert stream.median_j == pytest.approx(2.0 * _J_PER_KWH * math.exp(-0.32))


def test_every_section() -> None:
    stream = parse_job_stream(
        "poisson: rate_per_home_h=0.5, end_fraction=0.8, lognormal: median_kwh=1, max_factor=3,"
        " checkpoint: every_kwh=0.2, mix: priority_share=0.5, cpu_share=0.1, submitters=3",
        100,
    )
    assert stream.rate_per_h == pytest.approx(50.0)
    assert stream.arrivals_end_fraction == 0.8
    assert stream.median_j == pytest.approx(_J_PER_KWH)
    assert stream.max_size_factor == 3.0
    assert stream.checkpoint_every_j == pytest.approx(0.2 * _J_PER_KWH)
    assert stream.high_priority_share == 0.5
    assert stream.cpu_ok_share == 0.1
    assert stream.submitters == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("uniform:rate=3", "unknown section 'uniform'"),
        ("rate_per_h=3", "before any section"),
        ("poisson:rate=3", "keys are rate_per_h"),
        ("poisson:rate_per_h=fast", "must be a number"),
        ("poisson:rate_per_h=-1", ">= 0"),
        ("poisson:rate_per_h=1,rate_per_home_h=1", "not both"),
        ("lognormal:median_kwh=1,mean_kwh=1", "not both"),
        ("lognormal:median_kwh=0", "median_j"),
        ("poisson:end_fraction=2", "arrivals_end_fraction"),
        ("poisson:rate_per_h=1,rate_per_h=2", "twice"),
        ("mix:submitters=1.5", "whole number"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as raised:
        parse_job_stream(spec, 10)
    assert str(raised.value).startswith("--jobs: ")
