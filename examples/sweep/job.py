"""A deterministic Monte Carlo sweep: estimate pi by throwing points at the unit square.

Each task of the sweep has a ``seed`` and a number of ``samples``; it draws them in chunks from
NumPy's PCG64 generator, checkpoints after every chunk (the generator's state and the count so
far) and resumes from there. The result is checkable: the same seed and samples give exactly
the same ``hits`` on any machine, interrupted or not, and ``pi_estimate`` lies within a few
``standard_error`` of pi.

Parameters (``ctx.params``): ``seed`` (0), ``samples`` (2_000_000), ``chunk`` (200_000).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:  # the job runs without heatgrid installed; only the type checker reads it
    from heatgrid.jobs.sdk import JobContext


def main(ctx: JobContext) -> dict[str, Any] | None:
    """Throw ``samples`` points for ``seed``, resuming from the last checkpoint.

    Parameters
    ----------
    ctx : JobContext
        The task's parameters, checkpoints, progress and pause requests.

    Returns
    -------
    dict or None
        ``seed``, ``samples``, ``hits``, ``pi_estimate`` and ``standard_error``; None when
        paused (after a checkpoint).
    """
    seed = int(ctx.params.get("seed", 0))
    samples = int(ctx.params.get("samples", 2_000_000))
    chunk = int(ctx.params.get("chunk", 200_000))
    state = cast("dict[str, Any]", ctx.restore() or {"done": 0, "hits": 0, "rng": None})
    generator = np.random.Generator(np.random.PCG64(seed))
    if state["rng"] is not None:
        generator.bit_generator.state = state["rng"]
    while state["done"] < samples:
        if ctx.should_pause():
            ctx.checkpoint(state)
            return None
        size = min(chunk, samples - state["done"])
        points = generator.random((size, 2))
        state["hits"] += int(np.count_nonzero((points**2).sum(axis=1) <= 1.0))
        state["done"] += size
        state["rng"] = generator.bit_generator.state
        ctx.checkpoint(state)
        ctx.progress(state["done"] / samples, {"samples": state["done"]})
    p = state["hits"] / samples
    return {
        "seed": seed,
        "samples": samples,
        "hits": state["hits"],
        "pi_estimate": 4.0 * p,
        "standard_error": 4.0 * math.sqrt(p * (1.0 - p) / samples),
    }
