"""The memory round as a proof of space: labelled blocks, picks, the reveal's deadline.

The working set is a graph labelling. Block 0 is seeded; block ``i > 0`` is the expansion
(:func:`expand`) of a SHA-256 over the whole *contents* of its :data:`PARENTS` parents
(:func:`block_parents`): block ``i - 1`` and five earlier blocks drawn from the seed at
distances spread evenly over scales (1-2, 2-4, 4-8, ... blocks back, as in DRSample). A device
fills the set in one pass, in place, and commits to the blocks' digests with a Merkle root.
After the commitment the coordinator picks blocks; the device shows the contents of each
pick's parents with their paths, and the coordinator recomputes the pick from them
(:func:`space_block`) and checks the pick's own path: it stores nothing but the root, and
checks a pick with one label's work. The device first *seals* what it will show, a SHA-256
over the shown blocks (:func:`seal_digest`), and sends the blocks after.

A device that kept only some blocks must remake a missing parent from *its* parents, and so
on back to blocks it kept: :func:`regeneration` counts that work (labels, and the longest
chain of labels that must be made one after another). The seal has a deadline from the
moment the picks are issued (:func:`seal_deadline_s`): network slack plus reading and hashing
the shown blocks, far less than remaking a large share of the set. The least time a
regeneration takes is :func:`regeneration_time_s`: each label hashes its parents' contents
with SHA-256, one message after another, at no more than :data:`FAST_HASH_BYTES_PER_S`.

Everything here is pure: randomness and time come from the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from heatgrid.core.challenge import HOST_HASH_BYTES_PER_S, ChallengePlan, memory_block_bytes
from heatgrid.core.errors import InputError, require_non_negative, require_positive

__all__ = [
    "BASE64_FACTOR",
    "DEFAULT_REVEAL_SLACK_S",
    "FAST_HASH_BYTES_PER_S",
    "PARENTS",
    "block_parents",
    "expand",
    "label_key",
    "memory_picks",
    "regeneration",
    "regeneration_time_s",
    "seal_deadline_s",
    "seal_digest",
    "shown_blocks",
    "space_block",
]

PARENTS = 6
"""Parents of every block but the first: the block before and five drawn ones."""

DEFAULT_REVEAL_SLACK_S = 2.0
"""Round trip and scheduling the seal's deadline allows [s]."""

FAST_HASH_BYTES_PER_S = 2.5e9
"""SHA-256 rate of one message on the fastest hardware known here [bytes/s]: a CPU core with
SHA extensions (about 2 GB/s); one message cannot be spread over cores or GPU threads."""

BASE64_FACTOR = 4.0 / 3.0
"""Bytes sent per byte shown (base64 in JSON) [dimensionless]."""

_TAG = b"heatgrid-space-1"


def _check_index(plan: ChallengePlan, index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < plan.memory_blocks:
        raise InputError(f"block must be in [0, {plan.memory_blocks}), got {index!r}")


def block_parents(plan: ChallengePlan, index: int) -> tuple[int, ...]:
    """Return the parents of block ``index``: none for block 0, else :data:`PARENTS` blocks.

    The first is ``index - 1``; each other is ``index - r`` with ``r`` drawn (by a SHA-512 of
    the seed and the index) from a scale ``[2**(b-1), 2**b)`` whose ``b`` is uniform over the
    scales below ``index``, so that near and far parents are equally likely per scale.
    Parents may repeat.
    """
    _check_index(plan, index)
    if index == 0:
        return ()
    digest = hashlib.sha512(
        _TAG + b"parents" + plan.seed.to_bytes(4, "little") + index.to_bytes(8, "little")
    ).digest()
    scales = index.bit_length()
    found = [index - 1]
    for k in range(PARENTS - 1):
        draw = int.from_bytes(digest[12 * k : 12 * k + 12], "little")
        scale = 1 + draw % scales
        low = 1 << (scale - 1)
        distance = low + (draw // scales) % low
        found.append(index - min(distance, index))
    return tuple(found)


def label_key(plan: ChallengePlan, index: int, parents: Sequence[npt.ArrayLike]) -> bytes:
    """Return the SHA-256 over the tag, the seed, the index and the parents' whole contents."""
    hasher = hashlib.sha256(_TAG + plan.seed.to_bytes(4, "little") + index.to_bytes(8, "little"))
    for parent in parents:
        hasher.update(np.ascontiguousarray(np.asarray(parent, dtype=np.uint8)).data)
    return hasher.digest()


def expand(key: bytes, size_bytes: int) -> np.ndarray:
    """Return ``size_bytes`` pseudo-random bytes keyed by ``key`` (SHAKE128): incompressible."""
    return np.frombuffer(hashlib.shake_128(key).digest(size_bytes), dtype=np.uint8)


def space_block(plan: ChallengePlan, index: int, parents: Sequence[npt.ArrayLike]) -> np.ndarray:
    """Return block ``index`` made from its parents' contents, in :func:`block_parents` order.

    Raises :class:`~heatgrid.core.errors.InputError` when the parents are not as many as the
    block has or not one block long each.
    """
    wanted = block_parents(plan, index)
    size = memory_block_bytes(plan.memory_bytes)
    if len(parents) != len(wanted):
        raise InputError(f"block {index} has {len(wanted)} parents, got {len(parents)}")
    for parent in parents:
        if np.asarray(parent).size != size:
            raise InputError(f"each parent must be {size} bytes, got {np.asarray(parent).size}")
    return expand(label_key(plan, index, parents), size)


def shown_blocks(plan: ChallengePlan, picks: Iterable[int]) -> list[int]:
    """Return the blocks whose contents a reveal shows: every pick's parents, sorted."""
    return sorted({parent for pick in picks for parent in block_parents(plan, pick)})


def memory_picks(plan: ChallengePlan, wanted: int, max_shown_bytes: float) -> int:
    """Return how many blocks to pick: ``wanted``, fewer if their parents would not fit.

    Each pick shows up to :data:`PARENTS` blocks, sent as base64 (:data:`BASE64_FACTOR`);
    the reveal must stay within ``max_shown_bytes`` (the coordinator's body limit, less room
    for the paths and rows). At least one block is picked, at most every block.
    """
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise InputError(f"wanted must be an integer >= 1, got {wanted!r}")
    budget = require_positive("max_shown_bytes", max_shown_bytes)
    each = BASE64_FACTOR * PARENTS * memory_block_bytes(plan.memory_bytes)
    return max(1, min(wanted, plan.memory_blocks, int(budget // each)))


def seal_digest(blocks: Iterable[tuple[int, npt.ArrayLike]]) -> bytes:
    """Return the SHA-256 over shown blocks, each its index and its contents, in the order given.

    The device sends this digest (a few bytes, timed) before the blocks themselves (untimed),
    so that the deadline does not have to allow for uploading them.
    """
    hasher = hashlib.sha256(_TAG + b"seal")
    for index, contents in blocks:
        hasher.update(index.to_bytes(8, "little"))
        hasher.update(np.ascontiguousarray(np.asarray(contents, dtype=np.uint8)).data)
    return hasher.digest()


def seal_deadline_s(
    plan: ChallengePlan, picks: Iterable[int], *, slack_s: float = DEFAULT_REVEAL_SLACK_S
) -> float:
    """Return the time from issuing the picks to receiving the seal that is allowed [s].

    ``slack_s`` plus reading and hashing the shown blocks on the host at
    :data:`~heatgrid.core.challenge.HOST_HASH_BYTES_PER_S`. Reading a few blocks from memory
    that holds them takes microseconds; remaking them takes :func:`regeneration_time_s`.

    Parameters
    ----------
    plan : ChallengePlan
        The memory round's plan.
    picks : iterable of int
        The blocks picked after the commitment.
    slack_s : float, optional
        Round trip and scheduling allowed [s], >= 0.
    """
    slack = require_non_negative("slack_s", slack_s)
    shown = len(shown_blocks(plan, picks)) * memory_block_bytes(plan.memory_bytes)
    return slack + shown / HOST_HASH_BYTES_PER_S


def regeneration(
    plan: ChallengePlan, kept: npt.ArrayLike, wanted: Iterable[int]
) -> tuple[int, int]:
    """Return the labels a device that kept only ``kept`` must make to show ``wanted``.

    Returns ``(labels, depth)``: how many missing blocks must be remade (each once), and the
    longest chain of them that must be made one after another (a label needs its parents).

    Parameters
    ----------
    plan : ChallengePlan
        The memory round's plan.
    kept : array_like of bool
        Per block, whether the device still holds it.
    wanted : iterable of int
        The blocks it must show.
    """
    held = np.asarray(kept, dtype=bool)
    if held.shape != (plan.memory_blocks,):
        raise InputError(f"kept must have one flag per block ({plan.memory_blocks})")
    missing: set[int] = set()
    stack = [index for index in wanted if not held[index]]
    while stack:
        index = stack.pop()
        if index in missing:
            continue
        missing.add(index)
        stack.extend(p for p in block_parents(plan, index) if not held[p] and p not in missing)
    depth: dict[int, int] = {}
    for index in sorted(missing):  # parents come before their children
        depth[index] = 1 + max(
            (depth.get(parent, 0) for parent in block_parents(plan, index)), default=0
        )
    return len(missing), max(depth.values(), default=0)


def regeneration_time_s(plan: ChallengePlan, labels: int) -> float:
    """Return the least time making ``labels`` labels one after another takes [s].

    Each label hashes its :data:`PARENTS` parents' contents (one SHA-256 message) at
    :data:`FAST_HASH_BYTES_PER_S`. Pass the depth of :func:`regeneration` for a device with
    unlimited cores, its label count for one core.
    """
    count = require_non_negative("labels", labels)
    return count * PARENTS * memory_block_bytes(plan.memory_bytes) / FAST_HASH_BYTES_PER_S
