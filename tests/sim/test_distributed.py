"""``engine="ray"``: the same numbers as the local engine, on a local Ray instance it starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pytest

from heatgrid.sim.run import simulate
from heatgrid.sim.scenario import Scenario

ray = pytest.importorskip("ray", reason="Ray is the optional extra 'distributed'")


@pytest.mark.slow
def test_ray_engine_equals_the_local_engine(make_scenario: Callable[..., Scenario]) -> None:
    scenario = make_scenario(n_homes=30, days=0.5)
    policies = ["heat-aware", "fifo"]
    assert not ray.is_initialized()
    on_ray = simulate(scenario, policies, engine="ray")
    assert not ray.is_initialized()  # the local instance it started is shut down again
    local = simulate(scenario, policies)
    assert on_ray.summaries == local.summaries
    for policy in policies:
        for field in fields(local.runs[policy]):
            left = getattr(local.runs[policy], field.name)
            right = getattr(on_ray.runs[policy], field.name)
            if isinstance(left, np.ndarray):
                assert np.array_equal(left, right, equal_nan=True), field.name
            else:
                assert left == right, field.name
