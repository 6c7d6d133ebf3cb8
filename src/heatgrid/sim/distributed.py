"""Run a scenario's policies as tasks on a Ray cluster (the optional extra ``distributed``).

Each policy is one Ray task running :func:`heatgrid.sim.engine.run_one`, which draws the fleet and
the jobs again from the scenario's seed, so every task sees the same homes and jobs as the local
engine and the numbers are the same. Ray is imported only when asked for; without it the caller
gets an :class:`~heatgrid.core.errors.InputError` that says how to install it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from heatgrid.sim.engine import RawRun
    from heatgrid.sim.scenario import Scenario

__all__ = ["ENGINES", "INSTALL_HINT", "ray_available", "run_on_ray"]

ENGINES = ("local", "fused", "ray")
"""Where and how the policies run: in this process step by step (``local``), in this process
with the fused engine (``fused``, :mod:`heatgrid.sim.fused`: the same numbers to about 1e-13,
many times faster where nothing is scheduled), or as tasks on a Ray cluster."""

INSTALL_HINT = "install the optional extra 'distributed': pip install 'heatgrid[distributed]'"
"""How to get Ray."""


def ray_available() -> bool:
    """Return whether Ray can be imported."""
    return importlib.util.find_spec("ray") is not None


def _ray() -> ModuleType:
    if not ray_available():
        raise InputError(f"engine 'ray' needs Ray, which is not installed: {INSTALL_HINT}")
    return importlib.import_module("ray")


def run_on_ray(
    scenario: Scenario, policies: Sequence[str], *, record_rooms: bool = False
) -> dict[str, RawRun]:
    """Run ``scenario`` under each policy as one Ray task.

    Uses the Ray instance this process is connected to (``ray.init(address=...)`` first to use
    a cluster); without one, starts a local instance and shuts it down again before returning.

    Parameters
    ----------
    scenario : Scenario
        The fleet, jobs and time span (pickled to the workers).
    policies : sequence of str
        Policies from :data:`heatgrid.core.scheduling.POLICIES`.
    record_rooms : bool
        Keep every room temperature at every step.

    Returns
    -------
    dict of str to RawRun
        The runs, in the order of ``policies``.

    Raises
    ------
    InputError
        If Ray is not installed.
    """
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        from heatgrid.sim.engine import run_one  # noqa: PLC0415 - numba: keeps --help light

        remote = ray.remote(run_one)
        futures = [
            remote.remote(scenario, policy, record_rooms=record_rooms) for policy in policies
        ]
        runs: list[RawRun] = ray.get(futures)
    finally:
        if started:
            ray.shutdown()
    return dict(zip(policies, runs, strict=True))
