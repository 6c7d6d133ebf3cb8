"""Tensor fingerprints: a small fixed-size summary of a model's values, compared by relative L2.

A training task's result (and each of its checkpoints) may carry a *tensor fingerprint*, computed
inside the sandbox by :meth:`heatgrid.jobs.sdk.JobContext.tensor_fingerprint` over the values of
the tensors (not their file: torch writes a random id into each file). It holds

* ``values_sha256``: SHA-256 over each tensor's name, dtype, shape and bytes, in name order:
  equal exactly when every value is bit-for-bit equal (the same CPU kind);
* ``count``: the number of values [values];
* ``norm``: the L2 norm of all values, in float64 [value units];
* ``sketch``: :data:`SKETCH_SIZE` numbers, a seeded sparse random projection of the values
  (each value, at position ``i`` of the name-ordered flattened tensors, is added with a hashed
  sign into :data:`SKETCH_NONZEROS` distinct buckets, scaled by ``1/sqrt(SKETCH_NONZEROS)``), so
  that ``||sketch(x) - sketch(y)||`` estimates ``||x - y||`` within a few ten percent
  (Johnson-Lindenstrauss), whatever the number of values.

:func:`fingerprint_rel_l2` estimates the relative L2 distance of two tensor sets from their
fingerprints alone; :func:`fingerprints_agree` is the rule verification applies with a job's
``verify_rel_l2``. The tolerance 1e-5 sits between the drift measured across CPU instruction
sets (about 5e-7) and a task that skips one training step (about 8e-4), each side with a
margin far wider than the sketch's error.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from heatgrid.core.errors import InputError, require_finite

__all__ = [
    "DEFAULT_REL_L2",
    "MAX_VERIFY_REL_L2",
    "SKETCH_NONZEROS",
    "SKETCH_SEED",
    "SKETCH_SIZE",
    "ReplaySegment",
    "TensorFingerprint",
    "fingerprint_rel_l2",
    "fingerprints_agree",
    "replay_segment",
]

SKETCH_SIZE = 64
"""Numbers in a fingerprint's sketch [buckets]."""
SKETCH_NONZEROS = 4
"""Distinct buckets each value is added into [buckets]."""
SKETCH_SEED = 0x6865617467726964
"""Seed of the sketch's hash (the same for every job, so any two fingerprints compare)."""
DEFAULT_REL_L2 = 1e-5
"""Tolerance that issue 17 names for replays across CPU kinds [dimensionless]."""
MAX_VERIFY_REL_L2 = 0.1
"""Largest tolerance a job may declare [dimensionless]: beyond, a result is not checked."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_COUNT = 1 << 53


@dataclasses.dataclass(frozen=True, slots=True)
class TensorFingerprint:
    """A fingerprint of a set of tensors' values (see the module's text).

    ``values_sha256`` is 64 lower-case hex digits, ``count`` the values [values], ``norm`` their
    L2 norm [value units] and ``sketch`` :data:`SKETCH_SIZE` finite numbers [value units].
    """

    values_sha256: str
    count: int
    norm: float
    sketch: tuple[float, ...]

    def __post_init__(self) -> None:
        """Reject what no honest fingerprint holds: a bad digest, size, or non-finite number."""
        if not isinstance(self.values_sha256, str) or not _SHA256.match(self.values_sha256):
            raise InputError("values_sha256 must be 64 lower-case hex digits")
        count = self.count
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
            raise InputError(f"count must be an integer in [0, 2**53], got {count!r}")
        norm = require_finite("norm", self.norm)
        if norm < 0.0:
            raise InputError(f"norm must be >= 0, got {norm!r}")
        if len(self.sketch) != SKETCH_SIZE:
            raise InputError(f"sketch must hold {SKETCH_SIZE} numbers, got {len(self.sketch)}")
        for value in self.sketch:
            require_finite("sketch", value)


def fingerprint_rel_l2(a: TensorFingerprint, b: TensorFingerprint) -> float:
    """Return the estimated relative L2 distance of the tensors behind two fingerprints.

    0 when their ``values_sha256`` are equal, infinity when their counts differ; else
    ``max(|norm_a - norm_b|, ||sketch_a - sketch_b||) / max(norm_a, norm_b)``. The norm term is
    a sure lower bound of ``||a - b||`` (triangle inequality); the sketch term estimates it.
    Symmetric [dimensionless].
    """
    if a.values_sha256 == b.values_sha256:
        return 0.0
    if a.count != b.count:
        return math.inf
    peak = max(a.norm, b.norm)
    gap = math.sqrt(math.fsum((x - y) ** 2 for x, y in zip(a.sketch, b.sketch, strict=True)))
    if peak == 0.0:
        return 0.0 if gap == 0.0 else math.inf
    return max(abs(a.norm - b.norm), gap) / peak


def fingerprints_agree(a: TensorFingerprint, b: TensorFingerprint, rel_l2_max: float) -> bool:
    """Return whether two fingerprints agree within a relative L2 of ``rel_l2_max``.

    ``rel_l2_max`` 0 asks for bit-for-bit equal values (equal ``values_sha256``).

    Parameters
    ----------
    a, b : TensorFingerprint
        The fingerprints of the original and of the replica.
    rel_l2_max : float
        Largest estimated relative L2 distance [dimensionless], in [0, :data:`MAX_VERIFY_REL_L2`].
    """
    tolerance = require_finite("rel_l2_max", rel_l2_max)
    if not 0.0 <= tolerance <= MAX_VERIFY_REL_L2:
        raise InputError(f"rel_l2_max must be in [0, {MAX_VERIFY_REL_L2}], got {rel_l2_max!r}")
    if tolerance == 0.0:
        return a.values_sha256 == b.values_sha256
    return fingerprint_rel_l2(a, b) <= tolerance


@dataclasses.dataclass(frozen=True, slots=True)
class ReplaySegment:
    """A segment of a training task to replay: from one checkpoint to the next.

    ``start`` is the index of the checkpoint to resume from (None: the task's beginning) and
    ``end`` the index of the checkpoint whose fingerprint the replay must reach, both into the
    sequence given to :func:`replay_segment`; ``steps`` is the segment's length [steps].
    """

    start: int | None
    end: int
    steps: int


def replay_segment(
    checkpoint_steps: Sequence[int], draw: float, startable: Sequence[bool] | None = None
) -> ReplaySegment | None:
    """Choose the segment of a training task to replay, given a uniform draw in [0, 1).

    The segments run from the beginning (step 0) to the first checkpoint and from each
    checkpoint to the next; those that advance at least one step are eligible, each with the
    same chance. The caller draws *after* the device reported its result (with a secure
    generator), so the device cannot know which segment is checked: a device that skips steps
    in a share ``f`` of its segments is caught with probability ``f`` per check.

    Parameters
    ----------
    checkpoint_steps : Sequence[int]
        The step each of the task's checkpoints was saved after, in the order saved [steps].
    draw : float
        Uniform in [0, 1) [dimensionless].
    startable : Sequence[bool], optional
        Whether a replay can resume from each checkpoint (its blob is still stored), one per
        checkpoint; a segment that starts at a checkpoint that cannot be resumed from is not
        eligible (the task's beginning always can be). None: every checkpoint can.

    Returns
    -------
    ReplaySegment or None
        None when no segment advances (no checkpoints, or none after step 0) or none that
        advances can be started.
    """
    if startable is not None and len(startable) != len(checkpoint_steps):
        raise InputError(
            f"startable has {len(startable)} entries for {len(checkpoint_steps)} checkpoints"
        )
    value = require_finite("draw", draw)
    if not 0.0 <= value < 1.0:
        raise InputError(f"draw must be in [0, 1), got {draw!r}")
    eligible = []
    previous: int | None = None
    previous_step = 0
    for index, step in enumerate(checkpoint_steps):
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InputError(f"checkpoint_steps[{index}] must be an integer >= 0, got {step!r}")
        resumable = previous is None or startable is None or bool(startable[previous])
        if step > previous_step and resumable:
            eligible.append(ReplaySegment(previous, index, step - previous_step))
        previous, previous_step = index, step
    if not eligible:
        return None
    return eligible[min(int(value * len(eligible)), len(eligible) - 1)]
