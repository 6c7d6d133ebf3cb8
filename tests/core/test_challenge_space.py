"""core.challenge_space: the memory round's labelled blocks, picks, deadline and the cost of
remaking blocks that were not kept."""

from __future__ import annotations

import numpy as np
import pytest

from heatgrid.core import challenge, challenge_space
from heatgrid.core.errors import InputError

_BLOCK_BYTES = challenge.MIN_MEMORY_BLOCK_BYTES


def _plan(blocks: int, seed: int = 7) -> challenge.ChallengePlan:
    return challenge.ChallengePlan(seed, 16, 1, 10.0, blocks * _BLOCK_BYTES)


def _fill(plan: challenge.ChallengePlan) -> list[np.ndarray]:
    """The honest device's one pass: each block from its parents, in order."""
    blocks: list[np.ndarray] = []
    for index in range(plan.memory_blocks):
        parents = [blocks[p] for p in challenge_space.block_parents(plan, index)]
        blocks.append(challenge_space.space_block(plan, index, parents))
    return blocks


def test_every_block_but_the_first_has_earlier_parents_the_one_before_first() -> None:
    plan = _plan(4096)
    assert challenge_space.block_parents(plan, 0) == ()
    assert challenge_space.block_parents(plan, 1) == (0,) * challenge_space.PARENTS
    distances = []
    for index in range(1, plan.memory_blocks):
        parents = challenge_space.block_parents(plan, index)
        assert len(parents) == challenge_space.PARENTS
        assert parents[0] == index - 1
        assert all(0 <= parent < index for parent in parents)
        distances.extend(index - parent for parent in parents[1:])
    # Drawn over scales: near parents and parents thousands of blocks back are both common.
    assert np.mean(np.array(distances) <= 4) > 0.1
    assert np.mean(np.array(distances) >= 1024) > 0.05
    assert challenge_space.block_parents(_plan(4096, seed=8), 4000) != (
        challenge_space.block_parents(plan, 4000)
    )


def test_a_block_depends_on_the_whole_contents_of_each_parent() -> None:
    plan = _plan(64)
    blocks = _fill(plan)
    parents = [blocks[p] for p in challenge_space.block_parents(plan, 40)]
    assert np.array_equal(challenge_space.space_block(plan, 40, parents), blocks[40])
    for which in range(challenge_space.PARENTS):
        changed = [parent.copy() for parent in parents]
        changed[which][-1] ^= 1  # one bit of one parent
        assert not np.array_equal(challenge_space.space_block(plan, 40, changed), blocks[40])
    assert len({block.tobytes() for block in blocks}) == len(blocks)
    assert blocks[40].size == _BLOCK_BYTES
    assert not np.array_equal(_fill(_plan(64, seed=8))[40], blocks[40])


def test_wrong_parents_are_refused_with_the_reason() -> None:
    plan = _plan(64)
    blocks = _fill(plan)
    with pytest.raises(InputError, match="parents"):
        challenge_space.space_block(plan, 40, blocks[:2])
    with pytest.raises(InputError, match="bytes"):
        challenge_space.space_block(plan, 40, [b[:10] for b in blocks[: challenge_space.PARENTS]])
    with pytest.raises(InputError, match="block must be in"):
        challenge_space.block_parents(plan, 64)


def test_the_seal_deadline_is_slack_plus_hashing_the_shown_blocks() -> None:
    plan = _plan(4096)
    picks = [100, 2000, 4000]
    shown = challenge_space.shown_blocks(plan, picks)
    assert 4000 - 1 in shown
    assert 100 - 1 in shown
    assert len(shown) <= len(picks) * challenge_space.PARENTS
    deadline_s = challenge_space.seal_deadline_s(plan, picks, slack_s=2.0)
    assert deadline_s == pytest.approx(
        2.0 + len(shown) * _BLOCK_BYTES / challenge.HOST_HASH_BYTES_PER_S
    )
    with pytest.raises(InputError, match="slack_s"):
        challenge_space.seal_deadline_s(plan, picks, slack_s=-1.0)


def test_the_seal_binds_every_shown_block_and_its_place() -> None:
    one, two = np.zeros(8, dtype=np.uint8), np.ones(8, dtype=np.uint8)
    sealed = challenge_space.seal_digest([(1, one), (2, two)])
    assert challenge_space.seal_digest([(1, one), (2, two)]) == sealed
    assert challenge_space.seal_digest([(1, two), (2, one)]) != sealed
    assert challenge_space.seal_digest([(1, one), (3, two)]) != sealed
    assert challenge_space.seal_digest([(1, one)]) != sealed


def test_picks_fit_the_reveal_in_the_body_limit() -> None:
    small = _plan(4096)
    assert challenge_space.memory_picks(small, 12, 768 * 1024) == 12
    big = challenge.ChallengePlan(1, 16, 1, 10.0, 2**40)  # 1 MiB blocks
    assert challenge_space.memory_picks(big, 12, 768 * 1024) == 1
    assert challenge_space.memory_picks(_plan(3), 12, 1e9) == 3
    with pytest.raises(InputError, match="wanted"):
        challenge_space.memory_picks(small, 0, 1e6)


def test_a_device_that_kept_everything_remakes_nothing() -> None:
    plan = _plan(1024)
    wanted = challenge_space.shown_blocks(plan, [5, 500, 1000])
    kept = np.ones(plan.memory_blocks, dtype=bool)
    assert challenge_space.regeneration(plan, kept, wanted) == (0, 0)
    with pytest.raises(InputError, match="one flag per block"):
        challenge_space.regeneration(plan, kept[:-1], wanted)


@pytest.mark.parametrize("strategy", ["every other", "first half", "last half", "random half"])
def test_keeping_half_costs_remaking_a_large_share_of_the_set(strategy: str) -> None:
    blocks = 8192
    plan = _plan(blocks)
    index = np.arange(blocks)
    kept = {
        "every other": index % 2 == 0,
        "first half": index < blocks // 2,
        "last half": index >= blocks // 2,
        "random half": np.random.default_rng(1).permutation(blocks) < blocks // 2,
    }[strategy]
    picks = [int(p) for p in np.random.default_rng(2).choice(blocks, 12, replace=False)]
    labels, depth = challenge_space.regeneration(
        plan, kept, challenge_space.shown_blocks(plan, picks)
    )
    # Over a fifth of the whole set is remade (most of what was dropped), through chains of
    # at least a hundred labels that must be made one after another.
    assert labels > blocks // 5
    assert depth >= 100
    assert challenge_space.regeneration_time_s(plan, labels) == pytest.approx(
        labels * challenge_space.PARENTS * _BLOCK_BYTES / challenge_space.FAST_HASH_BYTES_PER_S
    )
