"""Targets: from a block's ``nbits``, from a share difficulty, and back.

A hash meets a target when the hash, read as a little-endian 256-bit integer, is at most the
target. Difficulty 1 is the target ``0x00000000FFFF0000…0000`` (``nbits`` 0x1d00ffff), the
convention of Bitcoin Core's ``getdifficulty`` and of Stratum's ``mining.set_difficulty``:
a share of difficulty ``d`` has target ``floor(DIFF1_TARGET / d)`` and takes on average
``d · 2**32`` hashes.
"""

from __future__ import annotations

import math
from fractions import Fraction

from bitcoin.core.serialize import compact_from_uint256, uint256_from_compact

from heatgrid.core.errors import InputError

__all__ = [
    "DIFF1_TARGET",
    "MAX_TARGET",
    "difficulty_from_target",
    "hash_difficulty",
    "nbits_from_target",
    "target_from_difficulty",
    "target_from_nbits",
]

DIFF1_TARGET = 0xFFFF << 208
"""The target of difficulty 1 (``nbits`` 0x1d00ffff) [-]."""

MAX_TARGET = (1 << 256) - 1
"""The largest 256-bit target: every hash meets it [-]."""

_SIGN_BIT = 0x00800000
_MANTISSA = 0x007FFFFF


def target_from_nbits(nbits: int) -> int:
    """Return the target that a block header's compact ``nbits`` encodes.

    Parameters
    ----------
    nbits : int
        The header's 32-bit compact target (e.g. 0x17029a8a) [-].

    Returns
    -------
    int
        The 256-bit target [-].

    Raises
    ------
    InputError
        If ``nbits`` is not a 32-bit value, encodes a negative number (sign bit with a
        non-zero mantissa), zero, or a target above 2**256 - 1, as Bitcoin Core rejects them.
    """
    if not 0 <= nbits <= 0xFFFFFFFF:
        raise InputError(f"nbits must be a 32-bit unsigned value, got {nbits!r}")
    if nbits & _SIGN_BIT and nbits & _MANTISSA:
        raise InputError(f"nbits 0x{nbits:08x} encodes a negative target")
    target: int = uint256_from_compact(nbits)
    if target == 0:
        raise InputError(f"nbits 0x{nbits:08x} encodes a zero target")
    if target > MAX_TARGET:
        raise InputError(f"nbits 0x{nbits:08x} encodes a target above 2**256 - 1")
    return target


def nbits_from_target(target: int) -> int:
    """Return the compact ``nbits`` of ``target`` (rounded down to 3 significant bytes).

    Parameters
    ----------
    target : int
        A target between 1 and 2**256 - 1 [-].

    Returns
    -------
    int
        The 32-bit compact encoding [-].
    """
    if not 0 < target <= MAX_TARGET:
        raise InputError(f"a target must be between 1 and 2**256 - 1, got {target!r}")
    nbits: int = compact_from_uint256(target)
    return nbits


def target_from_difficulty(difficulty: float) -> int:
    """Return the share target of a Stratum difficulty: ``floor(DIFF1_TARGET / difficulty)``.

    Parameters
    ----------
    difficulty : float
        Share difficulty, > 0; below 1 for CPU miners (e.g. 2**-16) [-].

    Returns
    -------
    int
        The target, capped at 2**256 - 1 [-].
    """
    if not (isinstance(difficulty, int | float) and math.isfinite(difficulty) and difficulty > 0):
        raise InputError(f"a difficulty must be a finite number > 0, got {difficulty!r}")
    target = int(Fraction(DIFF1_TARGET) / Fraction(difficulty))
    return max(1, min(target, MAX_TARGET))


def difficulty_from_target(target: int) -> float:
    """Return the difficulty of ``target``: ``DIFF1_TARGET / target``.

    Parameters
    ----------
    target : int
        A target between 1 and 2**256 - 1 [-].

    Returns
    -------
    float
        The difficulty [-].
    """
    if not 0 < target <= MAX_TARGET:
        raise InputError(f"a target must be between 1 and 2**256 - 1, got {target!r}")
    return float(Fraction(DIFF1_TARGET, target))


def hash_difficulty(block_hash: bytes) -> float:
    """Return the difficulty a header hash achieves: ``DIFF1_TARGET / hash``.

    Parameters
    ----------
    block_hash : bytes
        A double SHA-256 digest in internal (little-endian) byte order [-].

    Returns
    -------
    float
        The achieved difficulty; ``inf`` for the all-zero hash [-].
    """
    value = int.from_bytes(block_hash, "little")
    if value == 0:
        return math.inf
    return float(Fraction(DIFF1_TARGET, value))
