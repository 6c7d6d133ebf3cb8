"""core.fingerprint: tensor fingerprints (computed by the job SDK) compared by relative L2."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core import fingerprint, trust
from heatgrid.core.errors import InputError
from heatgrid.core.fingerprint import TensorFingerprint, fingerprint_rel_l2, fingerprints_agree
from heatgrid.jobs import sdk

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
_SIZES = st.integers(min_value=64, max_value=5000)


def _weights(seed: int, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    split = size // 3
    return {
        "layer.weight": rng.standard_normal(size - split).astype(np.float32),
        "layer.bias": (0.1 * rng.standard_normal(split)).astype(np.float32),
    }


def _print(tensors: dict[str, np.ndarray]) -> TensorFingerprint:
    raw = sdk.tensor_fingerprint(tensors)
    return TensorFingerprint(raw["values_sha256"], raw["count"], raw["norm"], tuple(raw["sketch"]))


def _flat(tensors: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([tensors[name].astype(np.float64).ravel() for name in sorted(tensors)])


def test_the_sdk_and_core_share_the_sketch_constants() -> None:
    assert sdk._SKETCH_SIZE == fingerprint.SKETCH_SIZE
    assert sdk._SKETCH_NONZEROS == fingerprint.SKETCH_NONZEROS
    assert sdk._SKETCH_SEED == fingerprint.SKETCH_SEED


@settings(max_examples=30, deadline=None)
@given(seed=_SEEDS, size=_SIZES)
def test_identical_values_agree_exactly(seed: int, size: int) -> None:
    a = _print(_weights(seed, size))
    b = _print({name: t.copy() for name, t in _weights(seed, size).items()})
    assert a == b
    assert fingerprint_rel_l2(a, b) == 0.0
    assert fingerprints_agree(a, b, 0.0)
    assert fingerprints_agree(a, b, 1e-5)
    assert a.count == size
    assert a.norm == pytest.approx(float(np.linalg.norm(_flat(_weights(seed, size)))), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=_SEEDS, size=_SIZES)
def test_values_scaled_by_one_plus_1e7_agree_at_1e5_but_not_exactly(seed: int, size: int) -> None:
    weights = _weights(seed, size)
    scaled = {name: t.astype(np.float64) * (1 + 1e-7) for name, t in weights.items()}
    a, b = _print({n: t.astype(np.float64) for n, t in weights.items()}), _print(scaled)
    sketch_norm = math.sqrt(math.fsum(x * x for x in a.sketch))
    expected = max(a.norm, sketch_norm) * 1e-7 / b.norm  # the norm's gap is a sure lower bound
    assert fingerprint_rel_l2(a, b) == pytest.approx(expected, rel=1e-3)
    assert fingerprints_agree(a, b, 1e-5)
    assert not fingerprints_agree(a, b, 0.0)


@settings(max_examples=40, deadline=None)
@given(seed=_SEEDS, size=_SIZES, shift=st.floats(min_value=8e-4, max_value=1.0))
def test_a_perturbation_of_8e4_disagrees_at_1e5(seed: int, size: int, shift: float) -> None:
    weights = _weights(seed, size)
    rng = np.random.default_rng(seed + 1)
    norm = float(np.linalg.norm(_flat(weights)))
    moved = {}
    for name, tensor in weights.items():
        direction = rng.standard_normal(tensor.size)
        moved[name] = tensor.astype(np.float64) + direction * (shift * norm / math.sqrt(size))
    a = _print({n: t.astype(np.float64) for n, t in weights.items()})
    b = _print(moved)
    true_rel = float(np.linalg.norm(_flat(moved) - _flat(weights))) / max(
        norm, float(np.linalg.norm(_flat(moved)))
    )
    estimate = fingerprint_rel_l2(a, b)
    assert 0.25 * true_rel < estimate < 4.0 * true_rel  # Johnson-Lindenstrauss, 64 buckets
    assert not fingerprints_agree(a, b, 1e-5)


def test_the_measured_drifts_fall_on_either_side_of_1e5() -> None:
    rng = np.random.default_rng(5)
    weights = rng.standard_normal(10_000).astype(np.float32)
    other_cpu = weights * (1 + np.float32(5e-7) * rng.standard_normal(10_000).astype(np.float32))
    skipped_step = weights + np.float32(8e-4) * rng.standard_normal(10_000).astype(np.float32)
    honest = _print({"w": weights})
    assert fingerprints_agree(honest, _print({"w": other_cpu}), fingerprint.DEFAULT_REL_L2)
    assert not fingerprints_agree(honest, _print({"w": other_cpu}), 0.0)
    assert not fingerprints_agree(honest, _print({"w": skipped_step}), 1e-5)


def test_fewer_values_or_another_name_never_agree() -> None:
    weights = _weights(1, 300)
    shorter = {name: t[:-1] for name, t in weights.items()}
    assert fingerprint_rel_l2(_print(weights), _print(shorter)) == math.inf
    renamed = {"other": weights["layer.weight"], "layer.bias": weights["layer.bias"]}
    assert _print(renamed).values_sha256 != _print(weights).values_sha256


def test_the_sdk_refuses_values_that_are_not_finite_numbers() -> None:
    with pytest.raises(ValueError, match="'w' holds a value that is not finite"):
        sdk.tensor_fingerprint({"w": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="not numeric"):
        sdk.tensor_fingerprint({"w": np.array(["a"])})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"values_sha256": "X" * 64}, "values_sha256"),
        ({"count": -1}, "count"),
        ({"count": True}, "count"),
        ({"norm": math.inf}, "norm"),
        ({"norm": -1.0}, "norm"),
        ({"sketch": (0.0,) * 3}, "64 numbers"),
        ({"sketch": (math.nan,) * 64}, "sketch"),
    ],
)
def test_a_malformed_fingerprint_is_refused(change: dict[str, object], message: str) -> None:
    good = _print(_weights(2, 100))
    with pytest.raises(InputError, match=message):
        dataclasses.replace(good, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize("tolerance", [-1e-9, 0.2, math.nan])
def test_a_tolerance_outside_0_to_01_is_refused(tolerance: float) -> None:
    good = _print(_weights(2, 100))
    with pytest.raises(InputError, match="rel_l2_max"):
        fingerprints_agree(good, good, tolerance)


def test_results_agree_by_fingerprint_within_the_jobs_tolerance() -> None:
    weights = _weights(3, 2000)
    honest = _print(weights)
    other_kind = _print({n: t.astype(np.float64) * (1 + 5e-7) for n, t in weights.items()})
    skipped = _print({n: t.astype(np.float64) + 1e-3 for n, t in weights.items()})
    digests = {"cheat": "c", "d1": "a", "d2": "b"}
    owners = {"cheat": "mallory", "d1": "bob", "d2": "dave"}
    prints = {"cheat": skipped, "d1": honest, "d2": other_kind}
    by_digest = trust.judge_results(digests, owners, 2, 3)
    assert by_digest.judgement is trust.Judgement.UNDECIDED  # three digests, no quorum
    verdict = trust.judge_results(
        digests, owners, 2, 3, fingerprints_by_device=prints, rel_l2_max=1e-5
    )
    assert verdict.judgement is trust.Judgement.VERIFIED
    assert verdict.digest == "a"
    assert verdict.honest == {"d1", "d2"}
    assert verdict.caught == {"cheat"}
    one_owner = trust.judge_results(
        digests,
        {"cheat": "mallory", "d1": "bob", "d2": "bob"},
        2,
        4,
        fingerprints_by_device=prints,
        rel_l2_max=1e-5,
    )
    assert one_owner.judgement is trust.Judgement.NEEDS_REPLICA  # bob cannot verify bob


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=500), max_size=30),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_a_replay_segment_joins_two_checkpoints_and_advances(gaps: list[int], draw: float) -> None:
    steps = list(np.cumsum(gaps).tolist())
    segment = fingerprint.replay_segment(steps, draw)
    if all(step == 0 for step in steps):
        assert segment is None
        return
    assert segment is not None
    start_step = 0 if segment.start is None else steps[segment.start]
    assert segment.steps == steps[segment.end] - start_step > 0
    assert segment.start is None or segment.start == segment.end - 1


def test_every_segment_is_drawn_with_the_same_chance() -> None:
    steps = [100, 200, 200, 300, 350]  # a pause checkpoint repeated step 200
    drawn = [fingerprint.replay_segment(steps, (i + 0.5) / 400) for i in range(400)]
    ends = [segment.end for segment in drawn if segment is not None]
    assert sorted(set(ends)) == [0, 1, 3, 4]  # the empty segment 1 -> 2 is never replayed
    assert all(ends.count(end) == 100 for end in set(ends))
    assert drawn[0] == fingerprint.ReplaySegment(None, 0, 100)


@pytest.mark.parametrize(("steps", "draw"), [([1, -1], 0.5), ([1], 1.0), ([1], math.nan)])
def test_a_bad_replay_choice_is_refused(steps: list[int], draw: float) -> None:
    with pytest.raises(InputError):
        fingerprint.replay_segment(steps, draw)


def test_a_segment_whose_start_cannot_be_resumed_is_never_drawn() -> None:
    steps = [100, 200, 300]
    startable = [False, True, True]  # checkpoint 0's blob was pruned
    drawn = {fingerprint.replay_segment(steps, (i + 0.5) / 300, startable) for i in range(300)}
    assert drawn == {
        fingerprint.ReplaySegment(None, 0, 100),  # the beginning can always be resumed
        fingerprint.ReplaySegment(1, 2, 100),
    }
    assert fingerprint.replay_segment([100], 0.5, [False]) == fingerprint.ReplaySegment(
        None, 0, 100
    )
    assert fingerprint.replay_segment([0, 100], 0.5, [False, False]) is None
    with pytest.raises(InputError, match="startable"):
        fingerprint.replay_segment(steps, 0.5, [True])
