"""core.trust: Freivalds challenges, reputation, k-of-n agreement, tensor comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core import trust
from heatgrid.core.errors import InputError

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def test_challenge_matrices_are_deterministic_per_seed() -> None:
    a1, b1 = trust.challenge_matrices(7, 32)
    a2, b2 = trust.challenge_matrices(7, 32)
    a3, _ = trust.challenge_matrices(8, 32)
    assert a1.dtype == np.float32
    assert a1.shape == (32, 32)
    assert np.array_equal(a1, a2)
    assert np.array_equal(b1, b2)
    assert not np.array_equal(a1, a3)
    assert not np.array_equal(a1, b1)
    assert np.all(np.abs(a1) <= 1.0)
    a64, _ = trust.challenge_matrices(7, 4, np.float64)
    assert a64.dtype == np.float64


@settings(max_examples=25, deadline=None)
@given(seed=_SEEDS, n=st.integers(min_value=1, max_value=96))
def test_an_honest_float32_product_passes(seed: int, n: int) -> None:
    a, b = trust.challenge_matrices(seed, n)
    assert trust.freivalds_check(a, b, a @ b, rounds=10, seed=seed + 1)


@settings(max_examples=15, deadline=None)
@given(seed=_SEEDS, n=st.integers(min_value=32, max_value=96))
def test_a_float16_product_returned_as_float32_is_rejected(seed: int, n: int) -> None:
    a, b = trust.challenge_matrices(seed, n)
    c16 = (a.astype(np.float16) @ b.astype(np.float16)).astype(np.float32)
    assert not trust.freivalds_check(a, b, c16, rounds=10, seed=seed + 1)


@settings(max_examples=25, deadline=None)
@given(
    seed=_SEEDS,
    n=st.integers(min_value=2, max_value=64),
    data=st.data(),
    delta=st.floats(min_value=1e-3, max_value=10.0),
    negative=st.booleans(),
)
def test_one_wrong_entry_is_caught(
    seed: int, n: int, data: st.DataObject, delta: float, negative: bool
) -> None:
    a, b = trust.challenge_matrices(seed, n)
    c = a @ b
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1))
    c[i, j] += np.float32(-delta if negative else delta)
    # a wrong entry escapes a round with probability 1/2: 40 rounds miss it with 2**-40
    assert not trust.freivalds_check(a, b, c, rounds=40, seed=seed + 1)


def test_a_zero_matrix_and_malformed_answers_are_rejected() -> None:
    a, b = trust.challenge_matrices(3, 48)
    assert trust.freivalds_check(a, b, a @ b)
    assert not trust.freivalds_check(a, b, np.zeros_like(a))
    nan = a @ b
    nan[0, 0] = np.nan
    assert not trust.freivalds_check(a, b, nan)
    assert not trust.freivalds_check(a, b, (a @ b)[:, :-1])
    assert not trust.freivalds_check(a, b, np.full(a.shape, "x"))


def test_the_default_tolerance_sits_between_float32_and_float16_residuals() -> None:
    # honest float32 residuals measured below 1.7 sqrt(n) u; float16 ones near 1e-3
    assert trust.freivalds_default_rtol(1024) == pytest.approx(8 * 32 * 2.0**-24)
    assert trust.freivalds_default_rtol(16384) < 1e-4


def test_bad_challenge_input_is_named() -> None:
    a, b = trust.challenge_matrices(1, 4)
    with pytest.raises(InputError, match="n must be"):
        trust.challenge_matrices(1, 0)
    with pytest.raises(InputError, match="dtype"):
        trust.challenge_matrices(1, 4, np.int32)
    with pytest.raises(InputError, match="seed"):
        trust.challenge_matrices(-1, 4)
    with pytest.raises(InputError, match="a must be a non-empty square"):
        trust.freivalds_check(a[:, :2], b, a @ b)
    with pytest.raises(InputError, match="same shape"):
        trust.freivalds_check(a, b[:2, :2], a @ b)
    with pytest.raises(InputError, match="rounds"):
        trust.freivalds_check(a, b, a @ b, rounds=0)
    with pytest.raises(InputError, match="rtol"):
        trust.freivalds_check(a, b, a @ b, rtol=-1.0)
    inf = a.copy()
    inf[0, 0] = np.inf
    with pytest.raises(InputError, match="a must hold finite"):
        trust.freivalds_check(inf, b, a @ b)


@given(
    flops=st.floats(min_value=1e6, max_value=1e16),
    target_s=st.floats(min_value=1e-3, max_value=10.0),
)
def test_the_challenge_size_fits_the_target_time(flops: float, target_s: float) -> None:
    n = trust.challenge_size_n(flops, target_s, min_n=1)
    assert 2.0 * n**3 <= flops * target_s * (1 + 1e-12) or n == 1
    assert 2.0 * (n + 1) ** 3 > flops * target_s
    assert trust.challenge_passes_time(2.0 * n**3 / flops, n, flops)


def test_a_gpu_sized_challenge_is_a_few_thousand_wide() -> None:
    # 60 TFLOP/s for half a second: (1.5e13)^(1/3) = 24,662
    assert trust.challenge_size_n(60e12, 0.5) == 24662
    assert trust.challenge_size_n(1.0, 1.0) == 16


@given(
    n=st.integers(min_value=16, max_value=30000),
    claimed=st.floats(min_value=1e12, max_value=1e15),
    slowdown=st.floats(min_value=10.0, max_value=1000.0),
    elapsed_s=st.floats(min_value=0.0, max_value=1e3),
    later_s=st.floats(min_value=0.0, max_value=1e3),
)
def test_a_cpu_posing_as_a_gpu_is_too_slow(
    n: int, claimed: float, slowdown: float, elapsed_s: float, later_s: float
) -> None:
    ideal_s = 2.0 * n**3 / claimed
    assert trust.challenge_passes_time(ideal_s, n, claimed, slack=3.0)
    assert not trust.challenge_passes_time(ideal_s * slowdown, n, claimed, slack=3.0)
    # monotone: an answer that passes would also pass sooner
    if trust.challenge_passes_time(elapsed_s + later_s, n, claimed):
        assert trust.challenge_passes_time(elapsed_s, n, claimed)


def test_bad_timing_input_is_named() -> None:
    with pytest.raises(InputError, match="elapsed_s"):
        trust.challenge_passes_time(-1.0, 16, 1e12)
    with pytest.raises(InputError, match="slack must be at least 1"):
        trust.challenge_passes_time(1.0, 16, 1e12, slack=0.5)
    with pytest.raises(InputError, match="claimed_flops_per_s"):
        trust.challenge_size_n(0.0, 1.0)
    with pytest.raises(InputError, match="target_s"):
        trust.challenge_size_n(1e12, float("nan"))


_REPS = st.builds(trust.Reputation, st.just("train"), st.integers(min_value=0, max_value=10_000))


@given(rep=_REPS, floor=st.floats(min_value=0.001, max_value=1.0), half=st.integers(1, 100))
def test_the_spot_check_rate_falls_with_a_run_and_stays_above_the_floor(
    rep: trust.Reputation, floor: float, half: int
) -> None:
    rate = trust.spot_check_rate(rep, floor, half)
    own = trust.CheckedAs.OWN
    nxt = trust.spot_check_rate(trust.after_check(rep, own, agreed=True), floor, half)
    assert floor <= rate <= 1.0
    assert nxt <= rate
    reset = trust.after_check(rep, own, agreed=False)
    assert reset.consecutive_verified == 0
    assert reset.job_kind == "train"
    assert trust.spot_check_rate(reset, floor, half) == 1.0


@given(
    rep=_REPS,
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    quorum=st.integers(2, 10),
    floor=st.floats(min_value=0.001, max_value=1.0),
)
def test_a_rounds_quorum_is_the_jobs_when_drawn_else_one(
    rep: trust.Reputation, draw: float, quorum: int, floor: float
) -> None:
    got = trust.round_quorum(rep, draw, quorum, floor=floor)
    assert got == (quorum if trust.needs_replica(rep, draw, floor) else 1)


def test_a_round_allows_one_tie_break_beyond_its_quorum_at_least() -> None:
    assert trust.results_allowed(2, 3) == 3
    assert trust.results_allowed(3, 3) == 4
    assert trust.results_allowed(1, 3) == 3
    with pytest.raises(InputError, match="quorum"):
        trust.round_quorum(trust.Reputation("k"), 0.5, 1)
    with pytest.raises(InputError, match="max_results"):
        trust.results_allowed(2, 0)


_CHECKS = st.lists(st.tuples(st.sampled_from(trust.CheckedAs), st.booleans()), max_size=40)


@given(rep=_REPS, checks=_CHECKS)
def test_only_passed_checks_of_its_own_results_raise_a_devices_reputation(
    rep: trust.Reputation, checks: list[tuple[trust.CheckedAs, bool]]
) -> None:
    """A device can tell a replica from its lease: a cheat honest on every replica it runs
    must not lower its own spot-check rate by them. The count is the number of passed own
    checks since the last disagreement (own or replica), and the same rule releases held
    credit (``passed_drawn_check``)."""
    after = rep
    for checked_as, agreed in checks:
        before = after
        after = trust.after_check(after, checked_as, agreed)
        if not agreed:
            assert after.consecutive_verified == 0
        elif checked_as is trust.CheckedAs.REPLICA:
            assert after == before
        else:
            assert after.consecutive_verified == before.consecutive_verified + 1
        assert trust.passed_drawn_check(checked_as, agreed) == (
            agreed and checked_as is trust.CheckedAs.OWN
        )
    last_caught = max((i for i, (_, agreed) in enumerate(checks) if not agreed), default=None)
    since = checks if last_caught is None else checks[last_caught + 1 :]
    base = rep.consecutive_verified if last_caught is None else 0
    own = sum(1 for checked_as, _ in since if checked_as is trust.CheckedAs.OWN)
    assert after.consecutive_verified == base + own
    assert after.job_kind == rep.job_kind
    honest_replicas = [(trust.CheckedAs.REPLICA, True)] * len(checks)
    replicas_only = rep
    for checked_as, agreed in honest_replicas:
        replicas_only = trust.after_check(replicas_only, checked_as, agreed)
    assert trust.spot_check_rate(replicas_only) == trust.spot_check_rate(rep)


def test_the_rate_rule_in_numbers() -> None:
    rep = trust.Reputation("sweep")
    assert trust.spot_check_rate(rep) == 1.0
    for _ in range(10):
        rep = trust.after_check(rep, trust.CheckedAs.OWN, agreed=True)
    assert trust.spot_check_rate(rep) == pytest.approx(0.5)
    assert trust.spot_check_rate(trust.Reputation("sweep", 190), floor=0.05) == pytest.approx(0.05)
    assert trust.spot_check_rate(trust.Reputation("sweep", 10**6), floor=0.05) == 0.05
    floor = trust.DEFAULT_SPOT_CHECK_FLOOR
    assert trust.spot_check_rate(trust.Reputation("sweep", 213)) == pytest.approx(floor, rel=0.01)
    assert trust.spot_check_rate(trust.Reputation("sweep", 10**6)) == floor


@given(rep=_REPS, draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_replica_is_needed_exactly_below_the_rate(rep: trust.Reputation, draw: float) -> None:
    assert trust.needs_replica(rep, draw) == (draw < trust.spot_check_rate(rep))
    assert trust.needs_replica(trust.Reputation("train"), draw)


def test_bad_reputation_input_is_named() -> None:
    with pytest.raises(InputError, match="consecutive_verified"):
        trust.Reputation("train", -1)
    with pytest.raises(InputError, match="floor must be at most 1"):
        trust.spot_check_rate(trust.Reputation("train"), floor=2.0)
    with pytest.raises(InputError, match="draw"):
        trust.needs_replica(trust.Reputation("train"), 1.0)
    with pytest.raises(InputError, match="cheat_rate"):
        trust.undetected_probability(1.5, 0.1, 3)
    with pytest.raises(InputError, match="results"):
        trust.undetected_probability(0.5, 0.1, -3)


@settings(max_examples=10, deadline=None)
@given(
    cheat=st.floats(min_value=0.0, max_value=1.0),
    check=st.floats(min_value=0.0, max_value=1.0),
    results=st.integers(min_value=0, max_value=60),
    seed=_SEEDS,
)
def test_undetected_probability_matches_a_monte_carlo_estimate(
    cheat: float, check: float, results: int, seed: int
) -> None:
    trials = 20_000
    rng = np.random.default_rng(seed)
    cheated = rng.random((trials, results)) < cheat
    checked = rng.random((trials, results)) < check
    survived = np.mean(~np.any(cheated & checked, axis=1))
    p = trust.undetected_probability(cheat, check, results)
    # five standard errors of the estimate, plus a little for p near 0 or 1
    assert abs(survived - p) <= 5.0 * np.sqrt(p * (1.0 - p) / trials) + 1e-3


def test_undetected_probability_at_the_floor() -> None:
    # a device cheating on 10 % of results, checked at 5 %, survives 100 results 60 % of the time
    assert trust.undetected_probability(0.1, 0.05, 100) == pytest.approx(0.995**100)
    assert trust.undetected_probability(0.0, 0.05, 100) == 1.0
    assert trust.undetected_probability(1.0, 1.0, 1) == 0.0


def test_two_owners_agreeing_verify_a_result() -> None:
    owners = {"d1": "alice", "d2": "bob", "d3": "carol"}
    assert trust.agreement({"d1": "x", "d2": "x", "d3": "y"}, owners, 2) == "x"
    assert trust.agreement({"d1": "x", "d2": "y", "d3": "z"}, owners, 2) is None
    assert trust.agreement({"d1": "x", "d2": "x", "d3": "x"}, owners, 3) == "x"
    assert trust.agreement({"d1": "x"}, owners, 1) == "x"
    assert trust.agreement({}, owners, 1) is None


def test_colluding_devices_of_one_owner_never_verify_each_other() -> None:
    owners = {"m1": "mallory", "m2": "mallory", "m3": "mallory", "h1": "honest"}
    wrong = {"m1": "bad", "m2": "bad", "m3": "bad", "h1": "good"}
    assert trust.agreement(wrong, owners, 2) is None
    assert trust.agreement({"m1": "bad", "m2": "bad"}, owners, 2) is None
    # one honest device of another owner agreeing with one of mallory's is a quorum of two
    assert trust.agreement({"m1": "good", "h1": "good"}, owners, 2) == "good"


@given(
    digests=st.dictionaries(
        st.sampled_from([f"d{i}" for i in range(8)]), st.sampled_from("abc"), max_size=8
    ),
    owner_of=st.lists(st.sampled_from(["o1", "o2", "o3"]), min_size=8, max_size=8),
    k=st.integers(min_value=1, max_value=4),
)
def test_an_agreed_digest_has_k_distinct_owners(
    digests: dict[str, str], owner_of: list[str], k: int
) -> None:
    owners = {f"d{i}": owner for i, owner in enumerate(owner_of)}
    agreed = trust.agreement(digests, owners, k)
    if agreed is not None:
        assert len({owners[d] for d, digest in digests.items() if digest == agreed}) >= k
    else:
        counts = [
            len({owners[d] for d, x in digests.items() if x == digest})
            for digest in set(digests.values())
        ]
        assert sum(c >= k for c in counts) != 1


def test_bad_agreement_input_is_named() -> None:
    with pytest.raises(InputError, match="owner of device"):
        trust.agreement({"d1": "x", "d9": "x"}, {"d1": "alice"}, 1)
    with pytest.raises(InputError, match="k must be"):
        trust.agreement({}, {}, 0)


_TENSORS = st.integers(min_value=1, max_value=200).flatmap(
    lambda size: st.tuples(
        st.lists(st.floats(-1e6, 1e6), min_size=size, max_size=size),
        st.lists(st.floats(-1e6, 1e6), min_size=size, max_size=size),
    )
)


@given(pair=_TENSORS)
def test_relative_l2_is_a_symmetric_bounded_distance(pair: tuple[list[float], list[float]]) -> None:
    a = np.array(pair[0], dtype=np.float32)
    b = np.array(pair[1], dtype=np.float32)
    d = trust.relative_l2(a, b)
    assert trust.relative_l2(a, a) == 0.0
    assert d == trust.relative_l2(b, a)
    assert 0.0 <= d <= 2.0 + 1e-12
    assert trust.tensors_agree(a, a.copy(), exact=True)
    assert trust.tensors_agree(a, a.astype(np.float64), exact=False)


def test_replay_tolerances_match_the_measured_drifts() -> None:
    rng = np.random.default_rng(5)
    weights = rng.standard_normal(10_000).astype(np.float32)
    other_cpu = weights * (1 + np.float32(5e-7) * rng.standard_normal(10_000).astype(np.float32))
    skipped_step = weights + np.float32(8e-4) * rng.standard_normal(10_000).astype(np.float32)
    assert trust.tensors_agree(other_cpu, weights, exact=False)
    assert not trust.tensors_agree(other_cpu, weights, exact=True)
    assert not trust.tensors_agree(skipped_step, weights, exact=False)
    assert trust.relative_l2(skipped_step, weights) == pytest.approx(8e-4, rel=0.05)


def test_exact_agreement_is_by_bits_dtype_and_shape() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert trust.tensors_agree(a, np.asfortranarray(a), exact=True)
    assert not trust.tensors_agree(a, a.astype(np.float64), exact=True)
    assert not trust.tensors_agree(a, a.reshape(3, 2), exact=True)
    assert not trust.tensors_agree(a, a.reshape(3, 2), exact=False)
    b = a.copy()
    b[1, 2] = np.nextafter(b[1, 2], np.float32(100))
    assert not trust.tensors_agree(a, b, exact=True)
    assert trust.tensors_agree(a, b, exact=False)


def test_zeros_huge_values_and_nan() -> None:
    zero = np.zeros(4)
    assert trust.relative_l2(zero, zero) == 0.0
    assert trust.relative_l2(zero, np.ones(4)) == 1.0
    huge = np.full(4, 1e300)
    assert trust.relative_l2(huge, huge * (1 + 1e-9)) == pytest.approx(1e-9, rel=1e-3)
    nan = np.array([1.0, np.nan])
    assert np.isnan(trust.relative_l2(nan, nan))
    assert not trust.tensors_agree(nan, nan, exact=False)
    assert trust.tensors_agree(nan, nan.copy(), exact=True)


def test_bad_tensor_input_is_named() -> None:
    with pytest.raises(InputError, match="same shape"):
        trust.relative_l2(np.zeros(2), np.zeros(3))
    with pytest.raises(InputError, match="a must hold integer or float"):
        trust.relative_l2(np.array(["x"]), np.zeros(1))
    with pytest.raises(InputError, match="rtol"):
        trust.tensors_agree(np.zeros(1), np.zeros(1), exact=False, rtol=-1.0)


def test_integer_tensors_are_compared_without_overflow() -> None:
    low = np.array([-128, 0], dtype=np.int8)
    high = np.array([127, 0], dtype=np.int8)
    assert trust.relative_l2(low, high) == pytest.approx(255 / 128)
    assert trust.tensors_agree(low, low.copy(), exact=True)
    with pytest.raises(InputError, match="b must hold integer or float"):
        trust.relative_l2(low, np.array([1j, 0j]))


def test_a_trusted_result_alone_is_verified_and_a_spot_check_wants_a_replica() -> None:
    owners = {"d1": "alice", "d2": "bob", "d3": "carol"}
    alone = trust.judge_results({"d1": "x"}, owners, quorum=1, max_results=3)
    assert alone == trust.Verdict(trust.Judgement.VERIFIED, "x", frozenset({"d1"}))
    checked = trust.judge_results({"d1": "x"}, owners, quorum=2, max_results=3)
    assert checked.judgement is trust.Judgement.NEEDS_REPLICA
    disputed = trust.judge_results({"d1": "x", "d2": "y"}, owners, quorum=2, max_results=3)
    assert disputed.judgement is trust.Judgement.NEEDS_REPLICA
    broken = trust.judge_results({"d1": "x", "d2": "y", "d3": "x"}, owners, quorum=2, max_results=3)
    assert broken == trust.Verdict(
        trust.Judgement.VERIFIED, "x", frozenset({"d1", "d3"}), frozenset({"d2"})
    )


def test_a_tie_at_the_last_allowed_result_is_undecided() -> None:
    owners = {"d1": "alice", "d2": "bob"}
    verdict = trust.judge_results({"d1": "x", "d2": "y"}, owners, quorum=2, max_results=2)
    assert verdict == trust.Verdict(trust.Judgement.UNDECIDED)


def test_one_owner_cannot_outvote_an_honest_device_alone() -> None:
    owners = {"m1": "mallory", "m2": "mallory", "m3": "mallory", "h1": "alice"}
    digests = {"m1": "bad", "m2": "bad", "m3": "bad", "h1": "good"}
    verdict = trust.judge_results(digests, owners, quorum=2, max_results=5)
    assert verdict.judgement is trust.Judgement.NEEDS_REPLICA
    digests["h2"], owners["h2"] = "good", "bob"
    verdict = trust.judge_results(digests, owners, quorum=2, max_results=5)
    assert verdict.digest == "good"
    assert verdict.caught == {"m1", "m2", "m3"}


@given(
    st.dictionaries(
        st.sampled_from([f"d{i}" for i in range(6)]),
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"])),
        min_size=1,
    ),
    st.integers(1, 3),
    st.integers(0, 3),
)
def test_a_verdict_splits_the_devices_and_has_a_quorum_of_owners(
    results: dict[str, tuple[str, str]], quorum: int, extra: int
) -> None:
    owners = {device: owner for device, (owner, _) in results.items()}
    digests = {device: digest for device, (_, digest) in results.items()}
    verdict = trust.judge_results(digests, owners, quorum, quorum + extra)
    if verdict.judgement is trust.Judgement.VERIFIED:
        assert verdict.honest | verdict.caught == set(digests)
        assert not verdict.honest & verdict.caught
        assert len({owners[d] for d in verdict.honest}) >= quorum
        assert all(digests[d] == verdict.digest for d in verdict.honest)
    else:
        assert verdict.digest is None
        assert not verdict.honest
        assert not verdict.caught
        expected = (
            trust.Judgement.NEEDS_REPLICA
            if len(digests) < quorum + extra
            else trust.Judgement.UNDECIDED
        )
        assert verdict.judgement is expected


def test_bad_judgement_input_is_named() -> None:
    with pytest.raises(InputError, match="max_results"):
        trust.judge_results({"d1": "x"}, {"d1": "a"}, quorum=2, max_results=1)
    with pytest.raises(InputError, match="quorum"):
        trust.judge_results({"d1": "x"}, {"d1": "a"}, quorum=0, max_results=1)


_DAY_S = 86_400.0


def test_held_fate_pays_only_after_a_later_passed_check_and_forfeits_when_caught() -> None:
    fate = trust.held_fate
    assert fate(10.0, caught=False, passed_check_reported_ts=None, now_ts=11.0) is (
        trust.HoldFate.HELD
    )
    assert fate(10.0, caught=False, passed_check_reported_ts=11.0, now_ts=12.0) is (
        trust.HoldFate.PAY
    )
    # a check of a result reported before (or with) this one does not cover it
    for check_ts in (9.0, 10.0):
        assert fate(10.0, caught=False, passed_check_reported_ts=check_ts, now_ts=12.0) is (
            trust.HoldFate.HELD
        )
    assert fate(10.0, caught=True, passed_check_reported_ts=11.0, now_ts=12.0) is (
        trust.HoldFate.FORFEIT
    )
    limit_s = 3 * _DAY_S
    kept = fate(
        10.0,
        caught=False,
        passed_check_reported_ts=None,
        now_ts=9.0 + limit_s,
        hold_limit_s=limit_s,
    )
    refunded = fate(
        10.0,
        caught=False,
        passed_check_reported_ts=None,
        now_ts=10.0 + limit_s,
        hold_limit_s=limit_s,
    )
    assert (kept, refunded) == (trust.HoldFate.HELD, trust.HoldFate.REFUND)
    with pytest.raises(InputError, match="hold_limit_s"):
        fate(10.0, caught=False, passed_check_reported_ts=None, now_ts=11.0, hold_limit_s=0.0)
    with pytest.raises(InputError, match="reported_ts"):
        fate(float("nan"), caught=False, passed_check_reported_ts=None, now_ts=11.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=30),
)
def test_a_caught_device_forfeits_everything_since_its_last_passed_check(
    results: list[tuple[bool, bool]], gap_s: int
) -> None:
    """Replay one device's results (checked?, cheated?) through held_fate, as the coordinator.

    Whatever the order, credit is conserved (each result is held, paid or forfeited), no
    result is paid before a later result of the device passed its check, and at the catch
    every result after the last passed check is forfeited.
    """
    held: list[tuple[float, bool]] = []  # (reported_ts, cheated)
    paid: list[tuple[float, bool]] = []
    forfeited: list[tuple[float, bool]] = []
    last_passed_ts: float | None = None
    for index, (checked, cheated) in enumerate(results):
        now_ts = float(index * gap_s)
        if not checked:
            held.append((now_ts, cheated))
            continue
        caught = cheated
        if not caught:
            last_passed_ts = now_ts
            paid.append((now_ts, cheated))  # a checked result is paid when it agrees
        else:
            forfeited.append((now_ts, cheated))
        for reported_ts, was_cheated in list(held):
            fate = trust.held_fate(
                reported_ts,
                caught=caught,
                passed_check_reported_ts=None if caught else now_ts,
                now_ts=now_ts,
            )
            assert fate is not trust.HoldFate.REFUND  # far within the 14-day limit
            if fate is not trust.HoldFate.HELD:
                held.remove((reported_ts, was_cheated))
                (paid if fate is trust.HoldFate.PAY else forfeited).append(
                    (reported_ts, was_cheated)
                )
        if caught:  # everything after the last passed check is forfeited, nothing stays held
            after = [float(i * gap_s) for i in range(index + 1)]
            after = [ts for ts in after if last_passed_ts is None or ts > last_passed_ts]
            assert held == []
            assert sorted(ts for ts, _ in forfeited) == after
            break
    assert len(held) + len(paid) + len(forfeited) == index + 1  # credit is conserved
    for reported_ts, _ in paid:  # paid: the last passed check came at or after it
        assert last_passed_ts is not None
        assert reported_ts <= last_passed_ts
    assert all(last_passed_ts is None or ts > last_passed_ts for ts, _ in held)


def test_a_replay_verdict_refutes_the_original_only_when_the_replayers_agree_against_it() -> None:
    owners = {"original": "alice", "r1": "bob", "r2": "dave"}
    agree = trust.judge_results({"original": "a", "r1": "a"}, owners, 2, 3)
    assert trust.replay_judgement(agree, "original") is trust.Judgement.VERIFIED
    split = trust.judge_results({"original": "a", "r1": "b"}, owners, 2, 3)
    assert trust.replay_judgement(split, "original") is trust.Judgement.NEEDS_REPLICA
    refuted = trust.judge_results({"original": "a", "r1": "b", "r2": "b"}, owners, 2, 3)
    assert refuted.caught == {"original"}
    assert trust.replay_judgement(refuted, "original") is trust.Judgement.REFUTED
    liar = trust.judge_results({"original": "a", "r1": "b", "r2": "a"}, owners, 2, 3)
    assert liar.caught == {"r1"}  # a dishonest replayer is caught by the next replay
    assert trust.replay_judgement(liar, "original") is trust.Judgement.VERIFIED
    tie = trust.judge_results({"original": "a", "r1": "b", "r2": "c"}, owners, 2, 3)
    assert trust.replay_judgement(tie, "original") is trust.Judgement.UNDECIDED


def _paid_before_caught(cheat_rate: float, floor: float, rng: np.random.Generator) -> int:
    """Play held_fate for one trusted cheat until it is caught; return its cheated results paid."""
    held: list[tuple[float, bool]] = []
    paid = 0
    index = 0
    while True:
        cheated = bool(rng.random() < cheat_rate)
        checked = bool(rng.random() < floor)
        if checked and cheated:
            return paid
        if checked:
            fates = [
                trust.held_fate(ts, caught=False, passed_check_reported_ts=index, now_ts=index)
                for ts, _ in held
            ]
            assert all(fate is trust.HoldFate.PAY for fate in fates)
            paid += sum(c for _, c in held)
            held = []
        else:
            held.append((float(index), cheated))
        index += 1


@pytest.mark.parametrize(("cheat_rate", "floor"), [(0.1, 0.045), (0.5, 0.2), (0.02, 0.1)])
def test_paid_cheats_probability_is_the_tail_of_held_fate_played_out(
    cheat_rate: float, floor: float
) -> None:
    """The closed form against the rule played result by result (4,000 cheats each)."""
    rng = np.random.default_rng(17)
    paid = np.array([_paid_before_caught(cheat_rate, floor, rng) for _ in range(4_000)])
    for cheated in (1, round(1 / floor), round(2 / floor)):
        expected = trust.paid_cheats_probability(cheat_rate, floor, cheated)
        measured = float((paid >= cheated).mean())
        assert abs(measured - expected) < 4.0 * np.sqrt(expected * (1 - expected) / 4_000) + 1e-3
    assert abs(paid.mean() - (1 - cheat_rate) * (1 - floor) / floor) < 0.1 / floor


def test_paid_cheats_probability_edges() -> None:
    assert trust.paid_cheats_probability(0.1, 0.045, 0) == 1.0
    assert trust.paid_cheats_probability(1.0, 0.045, 1) == 0.0  # caught at its first check
    assert trust.paid_cheats_probability(0.0, 0.045, 1) == 0.0  # never cheats
    beyond = trust.paid_cheats_probability(0.1, 0.045, 23)  # more than one interval (22.2)
    assert beyond == pytest.approx(0.312, abs=0.001)
    with pytest.raises(InputError, match="spot_check_rate"):
        trust.paid_cheats_probability(0.1, 0.0, 1)
    with pytest.raises(InputError, match="cheated"):
        trust.paid_cheats_probability(0.1, 0.5, -1)


@settings(max_examples=300)
@given(
    reported_ts=st.floats(-1e9, 1e9, allow_nan=False),
    caught_ts=st.floats(-1e9, 1e9, allow_nan=False),
    window_s=st.floats(0.0, 1e9, allow_nan=False),
    checked=st.booleans(),
)
def test_clawback_takes_back_only_unchecked_results_reported_within_the_window(
    reported_ts: float, caught_ts: float, window_s: float, checked: bool
) -> None:
    due = trust.clawback_due(
        reported_ts, checked=checked, caught_ts=caught_ts, clawback_window_s=window_s
    )
    if checked or window_s == 0.0:  # a checked result, or clawback off: never
        assert not due
    else:
        assert due == (caught_ts - window_s <= reported_ts <= caught_ts)
    if due:  # a longer window takes back at least as much
        wider = trust.clawback_due(
            reported_ts, checked=checked, caught_ts=caught_ts, clawback_window_s=2 * window_s
        )
        assert wider


def test_clawback_due_edges_and_bad_input() -> None:
    due = trust.clawback_due
    assert due(100.0, checked=False, caught_ts=200.0, clawback_window_s=100.0)  # on the edge
    assert not due(99.9, checked=False, caught_ts=200.0, clawback_window_s=100.0)
    assert not due(200.1, checked=False, caught_ts=200.0, clawback_window_s=100.0)  # after it
    assert not due(150.0, checked=True, caught_ts=200.0, clawback_window_s=100.0)
    assert not due(150.0, checked=False, caught_ts=200.0, clawback_window_s=0.0)  # off
    for window in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="clawback_window_s"):
            due(150.0, checked=False, caught_ts=200.0, clawback_window_s=window)
    with pytest.raises(InputError, match="reported_ts"):
        due(float("nan"), checked=False, caught_ts=200.0, clawback_window_s=1.0)


@settings(max_examples=300)
@given(
    due=st.lists(st.integers(0, 10**9), max_size=30),
    available=st.integers(-(10**10), 10**10),
)
def test_clawback_never_takes_more_than_the_owners_balance(due: list[int], available: int) -> None:
    taken = trust.clawback_amounts(due, available)
    assert len(taken) == len(due)
    assert all(0 <= part <= want for part, want in zip(taken, due, strict=True))
    assert sum(taken) == min(sum(due), max(available, 0))
    short = [
        index for index, (part, want) in enumerate(zip(taken, due, strict=True)) if part < want
    ]
    if short:  # taken in order: everything before the first one short was taken whole
        assert all(taken[i] == due[i] for i in range(short[0]))
        assert all(part == 0 for part in taken[short[0] + 1 :])


def test_clawback_amounts_bad_input() -> None:
    with pytest.raises(InputError, match=r"due\[1\]"):
        trust.clawback_amounts([1, -1], 10)
    with pytest.raises(InputError, match="available"):
        trust.clawback_amounts([1], 1.5)  # type: ignore[arg-type]


def _paid_with_clawback(
    cheat_rate: float, floor: float, window: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Play held_fate and clawback_due for one trusted cheat until caught (a result a second).

    Returns the cheated results it was paid before the catch, and those it keeps after it.
    """
    held: list[tuple[float, bool]] = []
    paid: list[tuple[float, bool]] = []  # unchecked results released by a later passed check
    index = 0
    while True:
        cheated = bool(rng.random() < cheat_rate)
        checked = bool(rng.random() < floor)
        if checked and cheated:
            kept = [
                c
                for ts, c in paid
                if not trust.clawback_due(
                    ts, checked=False, caught_ts=float(index), clawback_window_s=float(window)
                )
            ]
            return sum(c for _, c in paid), sum(kept)
        if checked:
            paid.extend(held)
            held = []
        else:
            held.append((float(index), cheated))
        index += 1


def test_clawback_over_the_cheats_whole_life_leaves_it_nothing_and_off_changes_nothing() -> None:
    """A window longer than any cheat's life takes back every cheated result it was paid."""
    rng = np.random.default_rng(17)
    runs = [_paid_with_clawback(0.1, 0.045, 10**9, rng) for _ in range(500)]
    assert sum(paid for paid, _ in runs) > 0  # the hold alone let cheated results through
    assert all(kept == 0 for _, kept in runs)
    rng = np.random.default_rng(17)
    off = [_paid_with_clawback(0.1, 0.045, 0, rng) for _ in range(500)]
    assert off == [(paid, paid) for paid, _ in runs]  # same draws: off keeps what was paid


def test_the_default_clawback_window_closes_the_tail_at_one_result_an_hour() -> None:
    """90 days at one result an hour: the bound on a 1-in-10 cheat keeping more than one
    spot-check interval (the bench's) is below 0.01 %; at 30 days it is above 1 %."""
    floor = trust.DEFAULT_SPOT_CHECK_FLOOR
    beyond = int(1.0 / floor) + 1

    def bound(window_s: float) -> float:
        return (1.0 - floor) ** beyond * (1.0 - 0.1 * floor) ** (window_s / 3_600.0)

    assert trust.DEFAULT_CLAWBACK_WINDOW_S == 90 * 86_400.0
    assert bound(trust.DEFAULT_CLAWBACK_WINDOW_S) < 1e-4
    assert bound(30 * 86_400.0) > 1e-2
