"""The hardware challenge, played by commitment and spot-checked rows (the coordinator's rule).

A device that claims a throughput must show it. The coordinator plans a chain of seeded float32
matrix products (:func:`plan_challenge`): ``C_0 = A B^s`` and ``C_j = C_(j-1) B^s`` for ``links``
links of ``s = steps`` products each (``B`` scaled so that rows keep their size). The *claimed*
device computes the chain in about ``target_s``; the device hashes each row of each link
(:func:`row_digest`) and commits to all of them with one Merkle root (:func:`merkle_root`, RFC
9162's tree hash) before the deadline. Only then does the coordinator name a few (link, row) places
at random; the device reveals each row and the row it was computed from, with their inclusion paths
(:func:`merkle_path`), and the coordinator checks the paths (:func:`merkle_verify`) and the rows
(:func:`row_is_product`: O(steps · n²) per row, against the chain's O(links · steps · n³)). Only the
links are hashed, so ``steps`` lets a fast GPU's chain fill its target time without more host work:
without it a many-core CPU, whose hashing is as fast as the GPU host's, could answer for a big GPU
(a 16-core server CPU did for an H200, see ``docs/trust.md``).

A device that computed too slowly misses the deadline; one that skipped or faked links, or
computed them in float16, cannot show rows it committed to that are products of each other: a
device that computed a share ``q`` of the rows honestly passes ``k`` checked places with
probability about ``q**k``. Inputs are generated once (2 n² numbers) and the host hashes
``links · n²`` float32 values, so the deadline allows for that host work
(:data:`HOST_HASH_BYTES_PER_S`) on top of the claimed compute time.

The plan also names a working set of ``memory_bytes``: :data:`DEFAULT_MEMORY_FRACTION` of the
memory the device claims (capped by ``max_memory_bytes``), more than half of it, so a device
with half the memory it claims cannot hold it. The device fills it with labelled blocks, each
made from the contents of earlier ones (:mod:`heatgrid.core.challenge_space`), and commits to
their digests (:func:`memory_digest`) with a second Merkle root; after the commitment the
coordinator picks blocks, which the device must show, with their parents, within a short
deadline: remaking blocks it did not keep takes far longer.

Everything here is pure: time and randomness come from the caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from heatgrid.core.defaults import (
    DEFAULT_CHALLENGE_TARGET_S,
    DEFAULT_ROWS_CHECKED,
    MAX_CHALLENGE_N,
)
from heatgrid.core.errors import InputError, require_non_negative, require_positive
from heatgrid.core.trust import challenge_matrices, challenge_size_n, freivalds_default_rtol

__all__ = [
    "DEFAULT_CHALLENGE_OVERHEAD_S",
    "DEFAULT_CHALLENGE_SLACK",
    "DEFAULT_CHALLENGE_TARGET_S",
    "DEFAULT_MEMORY_FRACTION",
    "DEFAULT_ROWS_CHECKED",
    "HOST_FILL_BYTES_PER_S",
    "HOST_HASH_BYTES_PER_S",
    "HOST_RANDOM_PER_S",
    "MAX_CHALLENGE_N",
    "MAX_HOST_BYTES",
    "MAX_LINKS",
    "MAX_MEMORY_BLOCKS",
    "MAX_STEPS",
    "MIN_MEMORY_BLOCK_BYTES",
    "MIN_STEPPED_N",
    "ChallengePlan",
    "challenge_inputs",
    "leaf_index",
    "memory_block_bytes",
    "memory_digest",
    "merkle_level_path",
    "merkle_levels",
    "merkle_path",
    "merkle_root",
    "merkle_verify",
    "passes_deadline",
    "plan_challenge",
    "row_digest",
    "row_is_product",
    "rows_are_products",
]


MAX_HOST_BYTES = 512 * 1024 * 1024
"""Most answer bytes the device must hash: limits the links of a big claim [bytes]."""

MAX_LINKS = 32
"""Longest chain: repeated products by one random matrix drift in size (about 20 times over
32 links at n = 64, 1.1 times at n = 1024), so chains stay short and claims grow n instead."""

MAX_STEPS = 64
"""Most products per link: the chain's rows grow by the spectral radius of ``B`` (about
1 + 0.5 / sqrt(n)) per product and lean towards its top eigenvector, so chains stay a few
hundred products long (at most 8 links of 64 at n = 4096: rows grow about 100 times and the
top eigenvector's lead stays far above the check's tolerance)."""

MIN_STEPPED_N = 1024
"""Smallest side whose links take more than one product (smaller ``B`` drift faster)."""

HOST_HASH_BYTES_PER_S = 5.0e8
"""Host SHA-256 throughput the deadline allows for, conservatively [bytes/s]."""

HOST_RANDOM_PER_S = 5.0e7
"""Host rate of generating the seeded inputs the deadline allows for [numbers/s]."""

HOST_FILL_BYTES_PER_S = 1.0e7
"""Host rate of labelling, hashing and placing the working set the deadline allows for
[bytes/s]: each block hashes its six parents (:mod:`heatgrid.core.challenge_space`); the
build machine labelled 35 MB/s with two cores shared by a load of 14, so slow heater CPUs
pass; the memory round's commitment deadline times nothing else."""

DEFAULT_MEMORY_FRACTION = 0.75
"""Share of the claimed memory the working set fills [dimensionless]: above one half, so a
device with half the memory it claims cannot hold it; below one, so the driver's and the
agent's own use of the memory leave an honest device room."""

MIN_MEMORY_BLOCK_BYTES = 8 * 1024
"""Smallest block of the working set [bytes]."""

MAX_MEMORY_BLOCKS = 1 << 22
"""Most blocks of the working set: bigger sets have bigger blocks (powers of two)."""

DEFAULT_CHALLENGE_OVERHEAD_S = 1.0
"""Round trip and start-up the deadline allows for [s]."""


DEFAULT_CHALLENGE_SLACK = 4.0
"""Deadline factor over the claimed compute time [dimensionless]."""


_LEAF = b"\x00"
_NODE = b"\x01"


@dataclasses.dataclass(frozen=True, slots=True)
class ChallengePlan:
    """A chain of ``links`` links of seeded ``n`` × ``n`` float32 matrices.

    Each link is ``steps`` products by ``B``. ``deadline_s`` is the time from issue to commitment
    the device is allowed [s]; ``memory_bytes`` the working set the device must hold, a whole number
    of blocks of :func:`memory_block_bytes` (0: none) [bytes].
    """

    seed: int
    n: int
    links: int
    deadline_s: float
    memory_bytes: int = 0
    steps: int = 1

    @property
    def memory_blocks(self) -> int:
        """Blocks of the working set (0 when there is none)."""
        return self.memory_bytes // memory_block_bytes(self.memory_bytes)

    @property
    def work_flop(self) -> float:
        """Floating-point operations of the chain [FLOP]."""
        return 2.0 * self.links * self.steps * float(self.n) ** 3

    @property
    def rows(self) -> int:
        """Rows committed to: ``links * n``; row ``i`` of link ``j`` is leaf ``j * n + i``."""
        return self.links * self.n


def plan_challenge(
    seed: int,
    claimed_flops_per_s: float,
    *,
    target_s: float = DEFAULT_CHALLENGE_TARGET_S,
    slack: float = DEFAULT_CHALLENGE_SLACK,
    max_n: int = MAX_CHALLENGE_N,
    claimed_memory_bytes: float = 0.0,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    max_memory_bytes: int = 1 << 40,
) -> ChallengePlan:
    """Return the challenge that the claimed device computes in about ``target_s``.

    ``n`` is :func:`~heatgrid.core.trust.challenge_size_n` capped at ``max_n``; ``links`` fills
    ``target_s`` at the claimed throughput (at least 1), capped at :data:`MAX_LINKS` and so that the
    answer is at most :data:`MAX_HOST_BYTES`; where that cap leaves time, each link takes ``steps``
    products (at most :data:`MAX_STEPS`, and 1 below :data:`MIN_STEPPED_N`). The deadline is
    ``slack`` times the chain's time at the claimed throughput, plus the host's work (inputs,
    hashing) and :data:`DEFAULT_CHALLENGE_OVERHEAD_S`, plus filling the working set at
    :data:`HOST_FILL_BYTES_PER_S`. The working set is ``memory_fraction`` of the claimed memory, at
    most ``max_memory_bytes``, rounded down to whole blocks.

    Parameters
    ----------
    seed : int
        Seed of the inputs, in [0, 2**32) (drawn by the coordinator with a secure generator).
    claimed_flops_per_s : float
        Throughput the device claims [FLOP/s], > 0.
    target_s : float, optional
        Wanted compute time on the claimed device [s], > 0.
    slack : float, optional
        Deadline factor over the claimed compute time [dimensionless], >= 1.
    max_n : int, optional
        Largest matrix side [entries], >= 16.
    claimed_memory_bytes : float, optional
        Memory the device claims [bytes], >= 0 (0: no working set).
    memory_fraction : float, optional
        Share of the claimed memory to fill [dimensionless], in (0.5, 1].
    max_memory_bytes : int, optional
        Largest working set [bytes], >= 0.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
        raise InputError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    flops = require_positive("claimed_flops_per_s", claimed_flops_per_s)
    seconds = require_positive("target_s", target_s)
    factor = require_positive("slack", slack)
    if factor < 1.0:
        raise InputError(f"slack must be at least 1, got {slack!r}")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 16:
        raise InputError(f"max_n must be an integer >= 16, got {max_n!r}")
    claimed = require_non_negative("claimed_memory_bytes", claimed_memory_bytes)
    if not 0.5 < memory_fraction <= 1.0:
        raise InputError(f"memory_fraction must be in (0.5, 1], got {memory_fraction!r}")
    if (
        isinstance(max_memory_bytes, bool)
        or not isinstance(max_memory_bytes, int)
        or max_memory_bytes < 0
    ):
        raise InputError(f"max_memory_bytes must be an integer >= 0, got {max_memory_bytes!r}")
    wanted = min(int(memory_fraction * claimed), max_memory_bytes)
    memory_bytes = wanted - wanted % memory_block_bytes(wanted)
    n = min(challenge_size_n(flops, seconds), max_n)
    most_links = max(1, min(MAX_LINKS, MAX_HOST_BYTES // (4 * n * n)))
    links = min(most_links, max(1, math.floor(flops * seconds / (2.0 * n**3))))
    steps = 1
    if n >= MIN_STEPPED_N:
        steps = min(MAX_STEPS, max(1, math.floor(flops * seconds / (2.0 * n**3 * links))))
    host_s = 4.0 * links * n * n / HOST_HASH_BYTES_PER_S + 2.0 * n * n / HOST_RANDOM_PER_S
    compute_s = 2.0 * links * steps * n**3 / flops
    host_s += memory_bytes / HOST_FILL_BYTES_PER_S
    deadline_s = factor * compute_s + host_s + DEFAULT_CHALLENGE_OVERHEAD_S
    return ChallengePlan(seed, n, links, deadline_s, memory_bytes, steps)


def memory_block_bytes(memory_bytes: int) -> int:
    """Return the block size for a working set of ``memory_bytes`` [bytes].

    At least :data:`MIN_MEMORY_BLOCK_BYTES`, a power of two, and big enough that the set has
    at most :data:`MAX_MEMORY_BLOCKS` blocks.
    """
    if memory_bytes < 0:
        raise InputError(f"memory_bytes must be >= 0, got {memory_bytes!r}")
    size = MIN_MEMORY_BLOCK_BYTES
    while size * MAX_MEMORY_BLOCKS < memory_bytes:
        size *= 2
    return size


def memory_digest(index: int, data: npt.ArrayLike) -> bytes:
    """Return the SHA-256 of one block of the working set: a tag, its index and its bytes."""
    raw = np.ascontiguousarray(np.asarray(data, dtype=np.uint8)).tobytes()
    return hashlib.sha256(b"memory" + index.to_bytes(8, "little") + raw).digest()


def challenge_inputs(plan: ChallengePlan) -> tuple[np.ndarray, np.ndarray]:
    """Return the float32 inputs ``(a, b)``; ``b`` is scaled by sqrt(3 / n) to keep row sizes."""
    a, b = challenge_matrices(plan.seed, plan.n, np.float32)
    return a, (b * np.float32(math.sqrt(3.0 / plan.n))).astype(np.float32)


def leaf_index(plan: ChallengePlan, link: int, row: int) -> int:
    """Return the leaf of row ``row`` of link ``link``."""
    if not (0 <= link < plan.links and 0 <= row < plan.n):
        raise InputError(f"(link, row) must be within ({plan.links}, {plan.n}), got {link, row}")
    return link * plan.n + row


def row_digest(link: int, row: int, values: npt.ArrayLike) -> bytes:
    """Return the SHA-256 of one answer row: its place and its float32 values, little-endian."""
    data = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    return hashlib.sha256(
        link.to_bytes(4, "little") + row.to_bytes(4, "little") + data.tobytes()
    ).digest()


def _leaf(digest: bytes) -> bytes:
    return hashlib.sha256(_LEAF + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(count: int) -> int:
    """Largest power of two below ``count`` (RFC 9162's ``k``)."""
    return 1 << ((count - 1).bit_length() - 1)


def _root(leaves: Sequence[bytes]) -> bytes:
    level = list(leaves)
    # RFC 9162's recursive definition equals this bottom-up pairing in which an odd node at
    # the end of a level is carried up unchanged.
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(digests: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (RFC 9162) over the row digests, in order."""
    if not digests:
        raise InputError("a Merkle tree needs at least one leaf")
    return _root([_leaf(digest) for digest in digests])


def merkle_path(digests: Sequence[bytes], index: int) -> list[bytes]:
    """Return the inclusion path (RFC 9162) of leaf ``index``, from the leaf up."""
    if not 0 <= index < len(digests):
        raise InputError(f"index must be in [0, {len(digests)}), got {index!r}")
    leaves = [_leaf(digest) for digest in digests]
    path: list[bytes] = []
    low, high, at = 0, len(leaves), index
    while high - low > 1:
        k = _split(high - low)
        if at - low < k:
            path.append(_root(leaves[low + k : high]))
            high = low + k
        else:
            path.append(_root(leaves[low : low + k]))
            low += k
    return path[::-1]


def merkle_levels(digests: Sequence[bytes]) -> list[list[bytes]]:
    """Return the tree's levels, leaves first and the root last, for many paths of one tree.

    Each level pairs the one below; an odd node at the end is carried up unchanged (the same
    tree as :func:`merkle_root`).
    """
    if not digests:
        raise InputError("a Merkle tree needs at least one leaf")
    levels = [[_leaf(digest) for digest in digests]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        level = [_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            level.append(below[-1])
        levels.append(level)
    return levels


def merkle_level_path(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """Return the inclusion path of leaf ``index`` from :func:`merkle_levels` (as merkle_path)."""
    if not 0 <= index < len(levels[0]):
        raise InputError(f"index must be in [0, {len(levels[0])}), got {index!r}")
    path: list[bytes] = []
    at = index
    for level in levels[:-1]:
        sibling = at ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        at //= 2
    return path


def merkle_verify(
    root: bytes, digest: bytes, index: int, count: int, path: Sequence[bytes]
) -> bool:
    """Return whether ``path`` proves row digest ``index`` of ``count`` under ``root``.

    RFC 9162, section 2.1.3.2: a path of the wrong length or for another place fails.
    """
    if not 0 <= index < count:
        return False
    fn, sn, value = index, count - 1, _leaf(digest)
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = _node(sibling, value)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            value = _node(value, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and value == root


def rows_are_products(
    input_rows: npt.ArrayLike, b: npt.ArrayLike, answer_rows: npt.ArrayLike, steps: int = 1
) -> np.ndarray:
    """Return, per row, whether ``answer_rows[i]`` is ``input_rows[i] @ b^steps`` in float32.

    Each entry must lie within :func:`~heatgrid.core.trust.freivalds_default_rtol` of the
    float64 product, relative to the root sum of squares of its terms: float32 rounding passes,
    a float16 product (inputs rounded to 11 bits) fails, and so does a row of the wrong length
    or with a non-finite value. Over ``steps`` products the rounding errors of the products
    are independent and ``b`` keeps the rows' size, so they add in quadrature: the allowance
    is ``sqrt(steps)`` times the last product's, and a float16 chain's error grows alike. The
    check costs ``steps + 1`` products of the rows by ``b``.

    Parameters
    ----------
    input_rows : array_like
        ``(k, n)`` rows the answers were computed from (of ``A``, or of the link before).
    b : array_like
        ``(n, n)`` right-hand matrix.
    answer_rows : array_like
        ``(k, n)`` rows the device committed to.
    steps : int, optional
        Products by ``b`` from the input rows to the answers, >= 1.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1, got {steps!r}")
    rows = np.atleast_2d(np.asarray(input_rows, dtype=np.float64))
    matrix = np.asarray(b, dtype=np.float64)
    answers = np.atleast_2d(np.asarray(answer_rows))
    k, n = rows.shape
    if matrix.shape != (n, n):
        raise InputError(f"b must be {n} x {n} for rows of {n} entries, got {matrix.shape}")
    if answers.shape != (k, n) or answers.dtype.kind != "f":
        return np.zeros(k, dtype=bool)
    exact = rows
    for _ in range(steps - 1):
        exact = exact @ matrix
    scale = np.sqrt(steps * ((exact * exact) @ (matrix * matrix)))
    exact = exact @ matrix
    with np.errstate(invalid="ignore"):
        close = np.abs(answers.astype(np.float64) - exact) <= freivalds_default_rtol(n) * scale
    return np.asarray(np.all(close & np.isfinite(answers), axis=1), dtype=bool)


def row_is_product(
    a_row: npt.ArrayLike, b: npt.ArrayLike, answer_row: npt.ArrayLike, steps: int = 1
) -> bool:
    """Return whether ``answer_row`` is ``a_row @ b^steps`` computed honestly in float32."""
    row = np.asarray(a_row)
    answer = np.asarray(answer_row)
    if row.ndim != 1 or answer.ndim != 1:
        raise InputError("a_row and answer_row must be one row each")
    if answer.shape != row.shape:
        return False
    return bool(rows_are_products(row[None, :], b, answer[None, :], steps)[0])


def passes_deadline(plan: ChallengePlan, elapsed_s: float) -> bool:
    """Return whether a commitment ``elapsed_s`` after issue met the plan's deadline."""
    return require_non_negative("elapsed_s", elapsed_s) <= plan.deadline_s
