"""core.challenge: plan, commitment and spot-checked rows of the hardware challenge."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core import challenge
from heatgrid.core.errors import InputError


def _digests(count: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(count)]


@given(st.integers(1, 300), st.data())
def test_every_leaf_has_a_path_to_the_root_and_no_other_place_does(
    count: int, data: st.DataObject
) -> None:
    digests = _digests(count)
    root = challenge.merkle_root(digests)
    index = data.draw(st.integers(0, count - 1))
    path = challenge.merkle_path(digests, index)
    assert challenge.merkle_verify(root, digests[index], index, count, path)
    assert len(path) <= max(1, (count - 1).bit_length())
    other = data.draw(st.integers(0, count - 1))
    if digests[other] != digests[index]:
        assert not challenge.merkle_verify(root, digests[other], index, count, path)
    if count > 1:
        wrong = (index + 1) % count
        assert not challenge.merkle_verify(root, digests[index], wrong, count, path)
        assert not challenge.merkle_verify(root, digests[index], index, count, path[:-1])


def test_the_tree_hash_is_rfc_9162s() -> None:
    """Three leaves: node(node(l0, l1), l2), with 0x00/0x01 domain separation."""
    d = _digests(3)

    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    leaves = [h(b"\x00" + x) for x in d]
    expected = h(b"\x01" + h(b"\x01" + leaves[0] + leaves[1]) + leaves[2])
    assert challenge.merkle_root(d) == expected
    assert challenge.merkle_path(d, 2) == [h(b"\x01" + leaves[0] + leaves[1])]
    assert challenge.merkle_path(d, 0) == [leaves[1], leaves[2]]


@settings(max_examples=50)
@given(st.floats(1e9, 2e14), st.floats(0.05, 2.0))
def test_a_plan_fills_the_target_at_the_claimed_throughput(flops: float, target_s: float) -> None:
    plan = challenge.plan_challenge(7, flops, target_s=target_s)
    assert 16 <= plan.n <= challenge.MAX_CHALLENGE_N
    assert 4 * plan.rows * plan.n <= max(challenge.MAX_HOST_BYTES, 4 * plan.n * plan.n)
    assert plan.links <= challenge.MAX_LINKS
    claimed_s = plan.work_flop / flops
    assert claimed_s <= target_s or plan.links == 1
    assert 1 <= plan.steps <= challenge.MAX_STEPS
    assert plan.steps == 1 or plan.n >= challenge.MIN_STEPPED_N
    if plan.n >= challenge.MIN_STEPPED_N and plan.steps < challenge.MAX_STEPS:
        assert claimed_s >= target_s / 2  # the host-byte cap no longer shortens the chain
    assert plan.deadline_s >= challenge.DEFAULT_CHALLENGE_SLACK * claimed_s
    assert plan.deadline_s >= challenge.DEFAULT_CHALLENGE_OVERHEAD_S


def test_a_cpu_posing_as_a_gpu_misses_the_deadline_and_a_home_cpu_meets_its_own() -> None:
    gpu = challenge.plan_challenge(1, 82.6e12)  # an RTX 4090's fp32 peak
    home_cpu_flops = 100e9  # a desktop CPU's float32 BLAS, generously
    host_s = 4.0 * gpu.rows * gpu.n / challenge.HOST_HASH_BYTES_PER_S
    assert gpu.work_flop / home_cpu_flops + host_s > 3 * gpu.deadline_s
    cpu = challenge.plan_challenge(1, home_cpu_flops)
    assert cpu.links == 1
    assert challenge.passes_deadline(cpu, cpu.deadline_s)
    assert not challenge.passes_deadline(cpu, cpu.deadline_s * 1.01)


def test_a_many_core_server_cpu_posing_as_an_h200_misses_the_deadline() -> None:
    """Measured on an H200's 16-core host: with one product per link its CPU answered the
    H200's round in 1.71 s of the 2.81 s deadline (the GPU: 1.46 s); with steps, 24.7 s of
    4.71 s (the GPU: 2.1 s). The FLOP rates here are rounder and kinder to the CPU."""
    gpu = challenge.plan_challenge(1, 67e12)  # an H200's fp32 peak
    assert gpu.n == challenge.MAX_CHALLENGE_N
    assert gpu.steps > 1
    server_cpu_flops = 4e12
    host_s = 4.0 * gpu.rows * gpu.n / challenge.HOST_HASH_BYTES_PER_S
    assert gpu.work_flop / server_cpu_flops + host_s > 1.5 * gpu.deadline_s
    h200_sgemm_flops = 45e12  # well below its peak: cuBLAS float32 without TF32
    assert gpu.work_flop / h200_sgemm_flops + 2 * host_s < 0.75 * gpu.deadline_s


def test_links_of_several_products_pass_and_fewer_or_float16_products_fail() -> None:
    plan = challenge.ChallengePlan(seed=5, n=challenge.MIN_STEPPED_N, links=2, deadline_s=1.0)
    steps = 6
    a, b = challenge.challenge_inputs(plan)
    rows = a[:4]
    honest, short, half = rows, rows, rows.astype(np.float16)
    for step in range(steps):
        honest = honest @ b
        short = short @ b if step else short
        half = (half @ b.astype(np.float16)).astype(np.float16)
    assert challenge.rows_are_products(rows, b, honest, steps).all()
    assert not challenge.rows_are_products(rows, b, short, steps).any()  # one product skipped
    assert not challenge.rows_are_products(rows, b, half.astype(np.float32), steps).any()
    assert not challenge.rows_are_products(rows, b, honest, steps - 1).any()
    with pytest.raises(InputError, match="steps"):
        challenge.rows_are_products(rows, b, honest, 0)


def _chain(plan: challenge.ChallengePlan) -> list[np.ndarray]:
    a, b = challenge.challenge_inputs(plan)
    links = [a @ b]
    for _ in range(plan.links - 1):
        links.append(links[-1] @ b)
    return links


def test_honest_links_pass_and_float16_or_tampered_rows_fail() -> None:
    plan = challenge.ChallengePlan(seed=3, n=256, links=challenge.MAX_LINKS, deadline_s=1.0)
    a, b = challenge.challenge_inputs(plan)
    assert np.array_equal(a, challenge.challenge_inputs(plan)[0])
    links = _chain(plan)
    for link in links:  # b keeps the rows' size along the chain
        ratio = float(np.linalg.norm(link) / np.linalg.norm(a))
        assert 0.2 < ratio < 5.0
    assert challenge.row_is_product(a[5], b, links[0][5])
    assert challenge.row_is_product(links[1][9], b, links[2][9])
    half = (a.astype(np.float16) @ b.astype(np.float16)).astype(np.float32)
    assert not challenge.row_is_product(a[5], b, half[5])
    tampered = links[0][5].copy()
    tampered[17] += 1e-2
    assert not challenge.row_is_product(a[5], b, tampered)
    assert not challenge.row_is_product(a[5], b, links[0][5][:-1])
    assert not challenge.row_is_product(a[5], b, np.full(256, np.nan, dtype=np.float32))
    assert challenge.leaf_index(plan, 2, 9) == 2 * 256 + 9


def test_row_digests_bind_the_place_of_the_row() -> None:
    values = np.arange(4, dtype=np.float32)
    assert challenge.row_digest(0, 1, values) != challenge.row_digest(1, 0, values)
    assert challenge.row_digest(0, 1, values) == challenge.row_digest(0, 1, values.tolist())


def test_bad_plans_are_named() -> None:
    with pytest.raises(InputError, match="seed"):
        challenge.plan_challenge(-1, 1e9)
    with pytest.raises(InputError, match="claimed_flops_per_s"):
        challenge.plan_challenge(1, 0.0)
    with pytest.raises(InputError, match="slack"):
        challenge.plan_challenge(1, 1e9, slack=0.5)
    with pytest.raises(InputError, match="link"):
        challenge.leaf_index(challenge.plan_challenge(1, 1e9), 10**9, 0)
    with pytest.raises(InputError, match="at least one leaf"):
        challenge.merkle_root([])


def test_the_working_set_is_more_than_half_the_claimed_memory_in_whole_blocks() -> None:
    claimed = 24.0e9
    plan = challenge.plan_challenge(1, 8.0e13, claimed_memory_bytes=claimed)
    assert claimed / 2 < plan.memory_bytes <= challenge.DEFAULT_MEMORY_FRACTION * claimed
    size = challenge.memory_block_bytes(plan.memory_bytes)
    assert plan.memory_bytes == plan.memory_blocks * size
    assert plan.memory_blocks <= challenge.MAX_MEMORY_BLOCKS
    assert plan.deadline_s > challenge.plan_challenge(1, 8.0e13).deadline_s  # filling takes time
    capped = challenge.plan_challenge(
        1, 8.0e13, claimed_memory_bytes=claimed, max_memory_bytes=2**22
    )
    assert capped.memory_bytes == 2**22
    assert challenge.plan_challenge(1, 8.0e13).memory_bytes == 0


def test_block_digests_bind_the_index_and_the_contents() -> None:
    block = np.arange(64, dtype=np.uint8)
    assert challenge.memory_digest(3, block) != challenge.memory_digest(2, block)
    assert challenge.memory_digest(3, block) != challenge.memory_digest(3, block[::-1])


@given(st.integers(1, 300), st.data())
def test_paths_from_the_levels_are_the_rfc_paths(count: int, data: st.DataObject) -> None:
    digests = _digests(count)
    levels = challenge.merkle_levels(digests)
    assert levels[-1] == [challenge.merkle_root(digests)]
    index = data.draw(st.integers(0, count - 1))
    assert challenge.merkle_level_path(levels, index) == challenge.merkle_path(digests, index)
    with pytest.raises(InputError, match="index"):
        challenge.merkle_level_path(levels, count)


@pytest.mark.parametrize(
    "bad",
    [
        {"claimed_memory_bytes": -1.0},
        {"memory_fraction": 0.5},
        {"memory_fraction": 1.5},
        {"max_memory_bytes": -1},
    ],
)
def test_bad_memory_plans_are_refused_with_the_name(bad: dict[str, float]) -> None:
    with pytest.raises(InputError, match=next(iter(bad))):
        challenge.plan_challenge(1, 1.0e10, **bad)  # type: ignore[arg-type]
