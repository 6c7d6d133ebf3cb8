"""Run a scenario under one or several policies, locally or over a Ray cluster.

Every policy runs on the same drawn fleet and jobs (:func:`~heatgrid.sim.fleet.sample_fleet`,
:func:`~heatgrid.sim.jobs.sample_jobs`, both from the scenario's seed), so their results
differ only by the policy. With ``engine="ray"`` each policy runs as one Ray task
(:mod:`heatgrid.sim.distributed`); the draws are repeated there from the same seed, so the
result equals the local one bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from heatgrid.core.errors import InputError
from heatgrid.core.scheduling import POLICIES
from heatgrid.sim.distributed import ENGINES
from heatgrid.sim.engine import RawRun, run_one, run_policy
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.results import summarize
from heatgrid.sim.scenario import Scenario

__all__ = ["ENGINES", "Simulation", "run_one", "simulate"]


@dataclass(frozen=True, eq=False)
class Simulation:
    """Runs of one scenario, by policy, in the order asked.

    Parameters
    ----------
    scenario : Scenario
        What was simulated.
    runs : dict of str to RawRun
        Raw series and totals per policy.
    summaries : dict of str to dict
        :func:`heatgrid.sim.results.summarize` per policy.
    """

    scenario: Scenario
    runs: dict[str, RawRun]
    summaries: dict[str, dict[str, Any]]


def simulate(
    scenario: Scenario,
    policies: Sequence[str],
    *,
    engine: str = "local",
    record_rooms: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> Simulation:
    """Run ``scenario`` under each policy.

    Parameters
    ----------
    scenario : Scenario
        The fleet, jobs and time span.
    policies : sequence of str
        Policies from :data:`heatgrid.core.scheduling.POLICIES`, at least one, no repeats.
    engine : {"local", "fused", "ray"}
        Where and how to run them (:data:`heatgrid.sim.distributed.ENGINES`).
    record_rooms : bool
        Keep every room temperature at every step.
    progress : callable, optional
        ``progress(policy, steps_done)`` after each step, or each burst of steps with the
        fused engine (not on Ray).

    Returns
    -------
    Simulation
        Raw runs and summaries by policy.
    """
    if not policies:
        raise InputError("policies must name at least one policy")
    for policy in policies:
        if policy not in POLICIES:
            raise InputError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if len(set(policies)) != len(policies):
        raise InputError(f"policies must not repeat, got {list(policies)!r}")
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "ray":
        from heatgrid.sim.distributed import run_on_ray  # noqa: PLC0415 (Ray on demand)

        runs = run_on_ray(scenario, policies, record_rooms=record_rooms)
    else:
        fleet = sample_fleet(scenario)
        jobs = sample_jobs(scenario)
        runs = {}
        runner = run_policy
        if engine == "fused":
            from heatgrid.sim.fused import run_policy_fused  # noqa: PLC0415 (its kernel on demand)

            runner = run_policy_fused
        for policy in policies:
            report = None if progress is None else _bound(progress, policy)
            runs[policy] = runner(
                scenario, fleet, jobs, policy, record_rooms=record_rooms, progress=report
            )
    summaries = {policy: summarize(scenario, run) for policy, run in runs.items()}
    return Simulation(scenario=scenario, runs=runs, summaries=summaries)


def _bound(progress: Callable[[str, int], None], policy: str) -> Callable[[int], None]:
    def report(steps: int) -> None:
        progress(policy, steps)

    return report
