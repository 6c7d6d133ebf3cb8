"""The simulator verifies results as the coordinator does: spot checks, replicas, reputation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from heatgrid.cli.main import main
from heatgrid.core import trust
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import TaskState
from heatgrid.core.scheduling import Claimant
from heatgrid.core.trust import Judgement
from heatgrid.sim import verifier as verifier_module
from heatgrid.sim.engine import run_policy
from heatgrid.sim.fleet import random_streams, sample_fleet
from heatgrid.sim.jobs import Jobs, sample_jobs
from heatgrid.sim.queue import TaskQueue
from heatgrid.sim.results import summarize
from heatgrid.sim.scenario import JobStream, Verification
from heatgrid.sim.verifier import Verifier

from ..contract.drift import drifted
from ..contract.test_fused_engine import _both, _differences, _scenario

STEP_S = 300.0


def _jobs(sizes_j: list[float]) -> Jobs:
    count = len(sizes_j)
    return Jobs(
        arrival_ts=np.zeros(count),
        size_j=np.array(sizes_j, dtype=np.float64),
        priority=np.zeros(count, dtype=np.int64),
        submitter=np.zeros(count, dtype=np.int64),
        cpu_ok=np.ones(count, dtype=np.bool_),
        min_vram_gb=np.zeros(count),
    )


def _queue(sizes_j: list[float], n_devices: int, **settings: int) -> TaskQueue:
    jobs = _jobs(sizes_j)
    verifier = Verifier(Verification(**settings), jobs.submitter, np.random.default_rng(0))
    return TaskQueue(jobs, n_devices, checkpoint_every_j=1e9, verifier=verifier)


def _claimant() -> Claimant:
    return Claimant(device_id="d9", kind="gpu", vram_gb=24.0, has_room=False, max_power_w=1e3)


def _finish(queue: TaskQueue, device: int, power_w: float, now_ts: float) -> float:
    """Run ``device`` at ``power_w`` until its task is done; return the time after it."""
    powers = np.zeros(queue.task_of.size)
    powers[device] = power_w
    while queue.task_of[device] >= 0:
        queue.run(powers, now_ts, STEP_S)
        now_ts += STEP_S
    return now_ts


def test_a_new_devices_result_waits_for_a_replica_on_another_device() -> None:
    queue = _queue([600_000.0], n_devices=3)  # a new fleet: every first result is checked
    queue.arrive(0.0)
    queue.lease(0, 1)
    now = _finish(queue, 1, 1000.0, 0.0)
    assert queue.state[0] is TaskState.REPORTED
    assert math.isnan(queue.done_ts[0])  # not done before its result is verified
    assert queue.progress_j[0] == 0.0  # the replica runs the task from its start
    verifier = queue.verifier
    assert verifier is not None
    assert verifier.checked == 1
    claimant_order = queue.lock_order("fifo", now)
    assert claimant_order == [0]
    assert queue.candidates(_claimant(), claimant_order, 8, device=1) == []  # its own result
    assert [task.task_id for task in queue.candidates(_claimant(), claimant_order, 8, device=2)]
    queue.lease(0, 2)
    assert queue.state[0] is TaskState.VERIFYING
    done = _finish(queue, 2, 1000.0, now)
    assert queue.state[0] is TaskState.VERIFIED
    assert now < queue.done_ts[0] <= done
    assert queue.replica_j == pytest.approx(600_000.0)
    assert verifier.replicas == 1
    assert verifier.reputation(1, 0).consecutive_verified == 1  # its own result passed
    assert verifier.reputation(2, 0).consecutive_verified == 0  # a replica earns nothing


def test_a_trusted_devices_result_is_let_through_unless_drawn() -> None:
    queue = _queue([1000.0] * 400, n_devices=2, trusted_results=1_000)
    verifier = queue.verifier
    assert verifier is not None
    queue.arrive(0.0)
    now = 0.0
    for task in range(400):
        device = task % 2
        queue.lease(task, device)
        now = _finish(queue, device, 1000.0, now)
        if queue.state[task] is TaskState.REPORTED:
            queue.lease(task, 1 - device)
            now = _finish(queue, 1 - device, 1000.0, now)
        assert queue.state[task] is TaskState.VERIFIED
    assert verifier.checked + verifier.unchecked == 400
    # the floor, 4.5 %: 18 of 400 expected, a binomial's 99.9 % range
    assert 5 <= verifier.checked <= 35
    assert queue.replica_j == pytest.approx(1000.0 * verifier.checked)


def test_a_task_restarts_from_scratch_on_a_device_that_did_not_save_its_checkpoint() -> None:
    """A device answers for its whole result: as the coordinator's leases, only the device
    that saved the newest checkpoint resumes from it."""
    jobs = _jobs([3e6])
    verifier = Verifier(Verification(), jobs.submitter, np.random.default_rng(0))
    queue = TaskQueue(jobs, 3, checkpoint_every_j=1e6, verifier=verifier)
    queue.arrive(0.0)
    queue.lease(0, 0)
    queue.run(np.array([5000.0, 0.0, 0.0]), 0.0, STEP_S)  # 1.5 MJ: a checkpoint at 1 MJ
    queue.fail(0, STEP_S)
    assert queue.progress_j[0] == pytest.approx(1e6)
    queue.lease(0, 0)  # the device that saved it resumes
    assert queue.progress_j[0] == pytest.approx(1e6)
    assert queue.restarted_j == 0.0
    queue.fail(0, 2 * STEP_S)
    queue.lease(0, 1)  # another device starts again
    assert queue.progress_j[0] == 0.0
    assert queue.restarted_j == pytest.approx(1e6)
    plain = TaskQueue(jobs, 3, checkpoint_every_j=1e6)
    plain.arrive(0.0)
    plain.lease(0, 0)
    plain.run(np.array([5000.0, 0.0, 0.0]), 0.0, STEP_S)
    plain.fail(0, STEP_S)
    plain.lease(0, 1)  # without verification any device resumes from the checkpoint
    assert plain.progress_j[0] == pytest.approx(1e6)


def test_the_round_quorum_is_cores_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A drifted rule in the simulator shows: every result let through, no replica."""
    monkeypatch.setattr(verifier_module, "trust", drifted(trust, round_quorum=lambda *_, **__: 1))
    queue = _queue([600_000.0], n_devices=2)
    queue.arrive(0.0)
    queue.lease(0, 0)
    _finish(queue, 0, 1000.0, 0.0)
    assert queue.state[0] is TaskState.VERIFIED
    assert queue.replica_j == 0.0


def test_a_verified_result_needs_the_quorum_of_owners() -> None:
    verifier = Verifier(
        Verification(quorum=3), np.zeros(1, dtype=np.int64), np.random.default_rng(0)
    )
    assert verifier.judge(0, 4) is Judgement.NEEDS_REPLICA
    assert verifier.holds_result(0, 4)
    assert verifier.judge(0, 5) is Judgement.NEEDS_REPLICA
    assert verifier.judge(0, 6) is Judgement.VERIFIED
    assert not verifier.holds_result(0, 4)  # the round is over
    assert verifier.reputation(4, 0).consecutive_verified == 1


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"quorum": 1}, "quorum"),
        ({"quorum": 3, "max_results": 2}, "max_results"),
        ({"spot_check_floor": 0.0}, "spot_check_floor"),
        ({"spot_check_floor": math.nan}, "spot_check_floor"),
        ({"half_rate_results": 0}, "half_rate_results"),
        ({"trusted_results": -1}, "trusted_results"),
        ({"trusted_results": True}, "trusted_results"),
    ],
)
def test_bad_verification_settings_are_refused(settings: dict[str, object], name: str) -> None:
    with pytest.raises(InputError, match=name):
        Verification(**settings)  # type: ignore[arg-type]


def test_a_scenarios_verification_must_be_one() -> None:
    with pytest.raises(InputError, match="verification must be a Verification"):
        _scenario(verification={"quorum": 2})


def test_both_engines_verify_alike_and_the_summary_gives_the_cost() -> None:
    scenario = _scenario(
        n_homes=40,
        days=1.0,
        jobs=JobStream(rate_per_h=4.0, median_j=0.05 * 3.6e6),
        verification=Verification(),
    )
    engine, fused = _both(scenario, "heat-aware")
    assert _differences(engine, fused) == []
    assert engine.results_checked > 0
    assert engine.replica_results > 0
    summary = summarize(scenario, engine)
    task_j = engine.heater_task_j + engine.rack_task_j
    extra_j = engine.replica_j + engine.restarted_j
    assert summary["verification_overhead_pct"] == pytest.approx(
        100.0 * extra_j / (task_j - extra_j)
    )
    plain = _scenario(n_homes=40, days=1.0, jobs=JobStream(rate_per_h=4.0, median_j=0.05 * 3.6e6))
    unverified = run_policy(plain, sample_fleet(plain), sample_jobs(plain), "heat-aware")
    assert summarize(plain, unverified)["verification_overhead_pct"] is None
    assert unverified.replica_j == 0.0


def test_the_spot_checks_draw_from_their_own_stream() -> None:
    """Adding the stream left the homes, jobs, departures and claim order as they were."""
    streams = random_streams(7)
    children = np.random.SeedSequence(7).spawn(4)
    for stream, child in zip(streams[:4], children, strict=True):
        assert stream.random() == np.random.default_rng(child).random()
    assert len(streams) == 5


def test_the_cli_verifies_and_refuses_trusted_results_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["simulate", "--homes", "20", "--days", "0.5", "--policy", "heat-aware"]
    assert main([*common, "--verify", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["policies"]["heat-aware"]
    assert summary["results_checked"] is not None
    assert summary["spot_check_share_pct"] is not None
    assert main([*common, "--trusted-results", "5"]) == 2
    assert "--trusted-results needs --verify" in capsys.readouterr().err
    assert main([*common, "--verify", "--trusted-results", "-1"]) == 2
    assert "--trusted-results must be at least 0" in capsys.readouterr().err
