"""Draw the jobs of a scenario: Poisson arrivals, log-normal energy sizes, who and what they need.

Each job is one task. Arrival times are a Poisson process of ``rate_per_h`` over the leading
``arrivals_end_fraction`` of the horizon (the rest lets the queue drain); sizes are log-normal
with median ``median_j`` and log-standard deviation ``sigma``, capped at ``max_size_factor``
times the median; submitter ``i`` (of ``submitters``) is drawn with weight ``1 / (i + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatgrid.core._arrays import FloatArray
from heatgrid.sim.fleet import random_streams
from heatgrid.sim.scenario import Scenario

__all__ = ["Jobs", "sample_jobs"]

_S_PER_H = 3600.0


@dataclass(frozen=True, eq=False)
class Jobs:
    """The jobs of one run, in arrival order; index ``i`` is task ``t{i:07d}``.

    Parameters
    ----------
    arrival_ts : numpy.ndarray
        When each job arrives [POSIX s, UTC].
    size_j : numpy.ndarray
        Energy to finish it [J].
    priority : numpy.ndarray
        0 or 1 (higher runs first under the heat-aware policy).
    submitter : numpy.ndarray
        Submitter index.
    cpu_ok : numpy.ndarray of bool
        Whether it also runs on a CPU (else GPU only).
    min_vram_gb : numpy.ndarray
        GPU memory it needs [GB].
    """

    arrival_ts: FloatArray
    size_j: FloatArray
    priority: NDArray[np.int64]
    submitter: NDArray[np.int64]
    cpu_ok: NDArray[np.bool_]
    min_vram_gb: FloatArray

    @property
    def count(self) -> int:
        """Number of jobs."""
        return int(self.arrival_ts.size)


def sample_jobs(scenario: Scenario) -> Jobs:
    """Draw the jobs of ``scenario`` (the same for the same seed, whatever the policy)."""
    rng = random_streams(scenario.seed)[1]
    stream = scenario.jobs
    span_s = scenario.n_steps * scenario.step_s * stream.arrivals_end_fraction
    count = int(rng.poisson(stream.rate_per_h * span_s / _S_PER_H))
    arrival = scenario.start_ts + np.sort(rng.uniform(0.0, span_s, count))
    size = np.minimum(
        rng.lognormal(np.log(stream.median_j), stream.sigma, count),
        stream.max_size_factor * stream.median_j,
    )
    weights = 1.0 / np.arange(1, stream.submitters + 1)
    submitter = rng.choice(stream.submitters, size=count, p=weights / weights.sum())
    priority = (rng.random(count) < stream.high_priority_share).astype(np.int64)
    cpu_ok = rng.random(count) < stream.cpu_ok_share
    vram = np.asarray(stream.vram_choices_gb, dtype=np.float64)[
        rng.integers(0, len(stream.vram_choices_gb), count)
    ]
    return Jobs(
        arrival_ts=arrival,
        size_j=size,
        priority=priority,
        submitter=submitter.astype(np.int64),
        cpu_ok=cpu_ok,
        min_vram_gb=np.where(cpu_ok, 0.0, vram),
    )
