"""Extranonce slices for a proxy's miners, and vardiff (pure building blocks of the proxy)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.mining import blocks

from heatgrid.core.errors import InputError
from heatgrid.mining import stratum
from heatgrid.mining.extranonce import ExtranonceSlicer, upstream_submit
from heatgrid.mining.hashing import prevhash_from_stratum
from heatgrid.mining.shares import ShareValidator, job_from_notify
from heatgrid.mining.transactions import strip_witness
from heatgrid.mining.vardiff import retarget

MASK = 0x1FFFE000


def test_slices_are_distinct_and_reused_only_after_release() -> None:
    slicer = ExtranonceSlicer(b"\x01\x02\x03\x04", 8, prefix_bytes=1)
    slices = [slicer.allocate() for _ in range(256)]
    assert len({s.prefix for s in slices}) == 256
    assert {s.extranonce2_size for s in slices} == {7}
    assert all(s.extranonce1 == b"\x01\x02\x03\x04" + s.prefix for s in slices)
    with pytest.raises(InputError, match="all 256 extranonce slices are taken"):
        slicer.allocate()
    slicer.release(slices[17])
    slicer.release(slices[17])  # twice is harmless
    assert slicer.allocate().prefix == slices[17].prefix
    with pytest.raises(InputError, match="all 256"):
        slicer.allocate()


def test_a_slicer_needs_room_for_the_miners_extranonce2() -> None:
    with pytest.raises(InputError, match="no room"):
        ExtranonceSlicer(b"\x00" * 4, 4, prefix_bytes=3)


def _notify() -> stratum.Notify:
    coinbase = strip_witness(blocks.BLOCK_881423_COINBASE_SEGWIT)
    start = coinbase.index(blocks.BLOCK_881423_EXTRANONCE1)
    return stratum.Notify(
        job_id="up1",
        prevhash=prevhash_from_stratum(blocks.BLOCK_881423_PREVHASH),
        coinbase1=coinbase[:start],
        coinbase2=coinbase[start + 8 :],
        merkle_branch=blocks.BLOCK_881423_MERKLE_BRANCH,
        version=0x20000000,
        nbits=blocks.BLOCK_881423_BITS,
        ntime=blocks.BLOCK_881423_TIME,
        clean_jobs=True,
    )


def test_the_pool_sees_the_very_header_the_proxy_checked() -> None:
    """Block 881423 mined through a 1-byte slice: proxy and pool both find the block."""
    upstream_en1 = blocks.BLOCK_881423_EXTRANONCE1
    slicer = ExtranonceSlicer(upstream_en1, 4, prefix_bytes=1)
    for _ in range(blocks.BLOCK_881423_EXTRANONCE2[0]):
        slicer.allocate()
    miner_slice = slicer.allocate()
    assert miner_slice.prefix == blocks.BLOCK_881423_EXTRANONCE2[:1]
    job = job_from_notify(_notify())
    proxy_side = ShareValidator(miner_slice.extranonce1, miner_slice.extranonce2_size, MASK)
    proxy_side.authorize("dev1.rig")
    proxy_side.add_job(job, 1.0)
    miner_share = stratum.Submit(
        7,
        "dev1.rig",
        "up1",
        blocks.BLOCK_881423_EXTRANONCE2[1:],
        blocks.BLOCK_881423_TIME,
        blocks.BLOCK_881423_NONCE,
        blocks.BLOCK_881423_VERSION & MASK,
    )
    checked = proxy_side.check(miner_share)
    pool_side = ShareValidator(upstream_en1, 4, MASK)
    pool_side.authorize("operator.proxy1")
    pool_side.add_job(job, 1.0)
    forwarded = upstream_submit(miner_share, miner_slice, 99, "operator.proxy1")
    assert forwarded.extranonce2 == blocks.BLOCK_881423_EXTRANONCE2
    at_pool = pool_side.check(forwarded)
    assert checked.accepted
    assert at_pool.accepted
    assert checked.header == at_pool.header
    assert at_pool.block_hash == blocks.BLOCK_881423_HASH


@given(st.integers(min_value=0, max_value=255), st.integers(min_value=0, max_value=255))
def test_two_miners_never_build_the_same_coinbase(a: int, b: int) -> None:
    slicer = ExtranonceSlicer(b"\xaa\xbb\xcc\xdd", 4, prefix_bytes=1)
    first, second = slicer.allocate(), slicer.allocate()
    en2_a, en2_b = bytes([a, 0, 0]), bytes([b, 0, 0])
    share_a = stratum.Submit(1, "w", "j", en2_a[:3], 0, 0)
    share_b = stratum.Submit(1, "w", "j", en2_b[:3], 0, 0)
    up_a = upstream_submit(share_a, first, 1, "pool")
    up_b = upstream_submit(share_b, second, 1, "pool")
    assert up_a.extranonce2 != up_b.extranonce2


def test_vardiff_steers_towards_the_share_interval() -> None:
    # 60 shares in 60 s at difficulty 1: ten times too many for one per 10 s
    assert retarget(1.0, 60, 60.0) == 4.0  # at most x4 a step
    assert retarget(4.0, 15, 60.0) == 8.0  # 10 shares a minute wanted: 4 * 15/6 = 10 -> 8
    assert retarget(8.0, 6, 60.0) == 8.0  # on target: stays
    assert retarget(8.0, 0, 60.0) == 2.0  # silence: /4
    assert retarget(2.0**-19, 0, 600.0) == 2.0**-20  # the CPU-miner floor
    with pytest.raises(InputError, match="window_s"):
        retarget(1.0, 3, 0.0)


@given(
    st.floats(min_value=2.0**-20, max_value=2.0**40),
    st.integers(min_value=0, max_value=100_000),
    st.floats(min_value=1.0, max_value=3600.0),
)
def test_vardiff_stays_in_bounds_and_bounded_steps(
    difficulty: float, shares: int, window_s: float
) -> None:
    new = retarget(difficulty, shares, window_s)
    assert 2.0**-20 <= new <= 2.0**40
    assert (
        difficulty / (4 * math.sqrt(2)) * (1 - 1e-12)
        <= new
        <= difficulty * 4 * math.sqrt(2) * (1 + 1e-12)
    )
    assert math.log2(new) == round(math.log2(new))


@given(
    st.integers(min_value=-20, max_value=30),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
)
def test_vardiff_is_monotone_in_the_share_rate(power: int, fewer: int, more: int) -> None:
    low, high = sorted((fewer, more))
    assert retarget(2.0**power, low, 60.0) <= retarget(2.0**power, high, 60.0)
