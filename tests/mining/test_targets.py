"""Targets from nbits and from share difficulty, and their round trips (hypothesis)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.mining.targets import (
    DIFF1_TARGET,
    MAX_TARGET,
    difficulty_from_target,
    hash_difficulty,
    nbits_from_target,
    target_from_difficulty,
    target_from_nbits,
)

difficulties = st.floats(min_value=2.0**-32, max_value=2.0**60, allow_nan=False)


def test_difficulty_one_is_0x00000000ffff0000() -> None:
    assert f"{DIFF1_TARGET:064x}" == "00000000ffff" + "0" * 52
    assert target_from_nbits(0x1D00FFFF) == DIFF1_TARGET
    assert target_from_difficulty(1.0) == DIFF1_TARGET
    assert difficulty_from_target(DIFF1_TARGET) == 1.0


def test_block_881423_nbits_difficulty() -> None:
    target = target_from_nbits(0x17029A8A)
    assert target == 0x029A8A << (8 * (0x17 - 3))
    assert difficulty_from_target(target) == float(Fraction(0xFFFF << 48, 0x029A8A))
    assert nbits_from_target(target) == 0x17029A8A


@pytest.mark.parametrize(
    ("nbits", "what"),
    [(0x01FEDCBA, "negative"), (0x00000000, "zero"), (0xFF123456, "above"), (-1, "32-bit")],
)
def test_invalid_nbits_are_refused_with_a_reason(nbits: int, what: str) -> None:
    with pytest.raises(InputError, match=what):
        target_from_nbits(nbits)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "1"])
def test_invalid_difficulty_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="difficulty"):
        target_from_difficulty(bad)  # type: ignore[arg-type]


def test_tiny_difficulty_caps_at_the_largest_target() -> None:
    assert target_from_difficulty(2.0**-40) == MAX_TARGET
    assert hash_difficulty(bytes(32)) == math.inf


@given(difficulties)
def test_difficulty_target_round_trip(difficulty: float) -> None:
    target = target_from_difficulty(difficulty)
    assert difficulty_from_target(target) == pytest.approx(difficulty, rel=1e-12)


@given(difficulties, difficulties)
def test_higher_difficulty_never_has_a_larger_target(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert target_from_difficulty(high) <= target_from_difficulty(low)


@given(st.integers(min_value=4, max_value=32), st.integers(min_value=0x8000, max_value=0x7FFFFF))
def test_normalized_nbits_round_trip(exponent: int, mantissa: int) -> None:
    nbits = exponent << 24 | mantissa
    target = target_from_nbits(nbits)
    assert nbits_from_target(target) == nbits


@given(st.integers(min_value=1, max_value=MAX_TARGET >> 8))
def test_nbits_keeps_three_significant_bytes(target: int) -> None:
    rounded = target_from_nbits(nbits_from_target(target))
    assert rounded <= target
    assert target - rounded < max(1, target >> 15)


@given(st.binary(min_size=32, max_size=32))
def test_a_hash_meets_the_target_of_its_own_difficulty(digest: bytes) -> None:
    value = int.from_bytes(digest, "little")
    if value == 0:
        return
    difficulty = hash_difficulty(digest)
    assert value <= target_from_difficulty(difficulty * (1 - 1e-9))
