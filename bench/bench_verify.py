"""Verification overhead and cheats paid for, adaptive replication against triple replication.

A fleet of devices (one owner each) runs a stream of deterministic tasks; 1 % of the devices
cheat (return a made-up digest) on every result (``always``) or on one result in ten
(``sporadic``), replicas of other devices' results included, or only on their own results and
never on a replica, which a device can tell from its lease (``..._honest_on_replicas``). Both
policies run on the same fleet, the same tasks and the same random draws, with the rules of
:mod:`heatgrid.core.trust` that the coordinator and the simulator share:

- ``adaptive``: a task runs on one device; :func:`~heatgrid.core.trust.needs_replica` decides,
  from the device's reputation, whether it is spot-checked (then it wants 2 agreeing owners),
  :func:`~heatgrid.core.trust.judge_results` asks for replicas on devices of other owners until
  a quorum agrees (at most 4 results); as in the coordinator, only a passed check drawn for a
  device's own result raises its reputation (:func:`~heatgrid.core.trust.after_check`; an
  agreeing replica is paid for itself and earns nothing more), caught devices are
  quarantined, and a result that is not checked is held until a spot check drawn for a later
  result of its device passes (agreeing as another device's replica releases nothing), or
  forfeited when the device is caught (:func:`~heatgrid.core.trust.held_fate`);
  ``adaptive_replicas_release`` is the same with the former rule, where a replica's agreement
  raised its device's reputation and released its held credit too.
- ``triple``: every task runs on three devices of different owners and wants 2 agreeing.

Each fleet runs twice: *new* (every device starts without a record, so the run includes the
ramp to trust: about 2,470 results of its own per device at the defaults) and *trusted*
(every device, cheats included, starts at the floor: the cheat that behaved until trusted).
The overhead goal (<= 5 % of compute once trusted) is judged on the trusted run, and the extra
executions are split into spot-check replicas, replicas of devices not yet trusted, and tie-break
replicas after a disagreement. *Ramp to the floor* runs a small fleet of honest devices (50,
so that each runs thousands of results) and counts the results of its own a device runs
before its spot-check rate reaches the floor, under the rule and under the former one where an
agreeing replica raised its reputation too (a cheat honest until trusted, and honest on every
replica, ramps like them). *Exposure* follows many cheating devices, each trusted, until
each is caught (each device also runs replicas of other devices' results, as many as the
floor's share of its own), and counts the cheated results paid before the catch; the goal "no
cheat unpaid-for beyond one spot-check interval" holds *on average* when that is at most one
interval (1 / floor results); its share beyond one interval is set against
:func:`~heatgrid.core.trust.paid_cheats_probability`, the tail that no hold removes. The same
draws are also run with the former rules (replicas release held credit; an unchecked result
paid after ``1 / floor`` more results of its device) for comparison. With *clawback* (on by
default in the coordinator, ``serve --clawback-window-s``), the same exposure draws are counted
again as if, at each catch, the device's results paid unchecked and reported within the window were
taken back (:func:`~heatgrid.core.trust.clawback_due`); the bench counts results, so
``--result-interval-s`` (one an hour) turns the window (``--clawback-window-s``, 90 days) into
results.
The Freivalds check of a hardware challenge is timed against the matrix product it checks
(numpy, same run). *Training* (``_verify_training``) runs training tasks checked by a segment
replay, with and without the start check, against a whole replica and triple replication, for
a cheat that skips one segment and one that also swaps that segment's start blob.
Usage: ``python bench/bench_verify.py --out PATH [--devices N] [--tasks N]
[--training-tasks N] [--clawback-window-s S] [--result-interval-s S]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from _verify_training import training_fleets
from heatgrid.core import trust

_CHEAT_FRACTION = 0.01
_MAX_RESULTS = 4
_GOAL_OVERHEAD = 0.05
_NEVER_S = 1e18  # the bench counts results, not seconds: no hold reaches the time limit
_RESULT_INTERVAL_S = 3_600.0  # exposure with clawback: a trusted device reports hourly
_CLAWBACK_WINDOW_S = trust.DEFAULT_CLAWBACK_WINDOW_S  # the coordinator's default: 90 days


@dataclass(frozen=True)
class _Cheat:
    """How the cheating devices cheat, and which rule releases held credit."""

    rate: float  # share of its results a cheating device makes up
    honest_on_replicas: bool = False  # it never cheats on a replica (it can tell one)
    replicas_release: bool = False  # the former rule: an agreeing replica releases, raises


_CHEATS = {
    "always": _Cheat(1.0),
    "sporadic": _Cheat(0.1),
    "always_honest_on_replicas": _Cheat(1.0, honest_on_replicas=True),
    "sporadic_honest_on_replicas": _Cheat(0.1, honest_on_replicas=True),
}


@dataclass
class _Fleet:
    """The devices' reputations, holds and fates under one policy."""

    cheats: np.ndarray
    cheat_rate: float
    honest_on_replicas: bool
    replicas_release: bool
    floor: float
    reputation: list[trust.Reputation]
    quarantined: np.ndarray
    held: list[list[tuple[float, bool]]]  # per device: (reported at, cheated)
    paid_cheated: np.ndarray  # per device: cheated results paid
    executions: int = 0
    replicas: dict[str, int] = field(
        default_factory=lambda: {"spot_check": 0, "not_yet_trusted": 0, "tie_break": 0}
    )
    forfeited_cheated: int = 0
    wrong_accepted: int = 0
    undecided: int = 0
    own_results: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    at_floor_after: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def new(cls, cheats: np.ndarray, cheat: _Cheat, floor: float, start: int) -> _Fleet:
        count = len(cheats)
        return cls(
            cheats,
            cheat.rate,
            cheat.honest_on_replicas,
            cheat.replicas_release,
            floor,
            [trust.Reputation("deterministic", start)] * count,
            np.zeros(count, dtype=bool),
            [[] for _ in range(count)],
            np.zeros(count, dtype=np.int64),
            own_results=np.zeros(count, dtype=np.int64),
            at_floor_after=np.full(count, -1, dtype=np.int64),  # own results, -1: not yet
        )


def trusted_reputation(floor: float) -> int:
    """Return the consecutive verified results at which the spot-check rate reaches ``floor``."""
    half = trust.DEFAULT_HALF_RATE_RESULTS
    return max(0, math.ceil(half * (1.0 / floor - 1.0) - 1e-9))


def _digest(
    fleet: _Fleet, device: int, task: int, rng: np.random.Generator, *, replica: bool
) -> str:
    fleet.executions += 1
    lies = fleet.cheats[device] and rng.random() < fleet.cheat_rate
    if lies and not (replica and fleet.honest_on_replicas):
        return f"made-up-{task}-{device}"
    return f"true-{task}"


def _pick(fleet: _Fleet, rng: np.random.Generator, exclude: set[int]) -> int:
    while True:
        device = int(rng.integers(len(fleet.cheats)))
        if not fleet.quarantined[device] and device not in exclude:
            return device


def _settle(
    fleet: _Fleet, device: int, *, caught: bool, check_ts: float | None, now: float
) -> None:
    """Apply the coordinator's hold rule to the device's unchecked held results."""
    kept = []
    for reported_ts, cheated in fleet.held[device]:
        fate = trust.held_fate(
            reported_ts,
            caught=caught,
            passed_check_reported_ts=check_ts,
            now_ts=now,
            hold_limit_s=_NEVER_S,
        )
        if fate is trust.HoldFate.PAY:
            fleet.paid_cheated[device] += cheated
        elif fate is trust.HoldFate.FORFEIT:
            fleet.forfeited_cheated += cheated
        else:
            kept.append((reported_ts, cheated))
    fleet.held[device] = kept


def _run_task(fleet: _Fleet, task: int, rng: np.random.Generator, policy: str) -> None:
    first = _pick(fleet, rng, set())
    fleet.own_results[first] += 1
    if policy == "triple":
        quorum, runs, kind = 2, 3, "spot_check"
    else:
        rep = fleet.reputation[first]
        trusted = trust.spot_check_rate(rep, fleet.floor) <= fleet.floor
        checked = trust.needs_replica(rep, float(rng.random()), floor=fleet.floor)
        quorum, runs = (2, 2) if checked else (1, 1)
        kind = "spot_check" if trusted else "not_yet_trusted"
    devices = [first]
    while len(devices) < runs:
        devices.append(_pick(fleet, rng, set(devices)))
    fleet.replicas[kind] += runs - 1
    digests = {str(d): _digest(fleet, d, task, rng, replica=d != first) for d in devices}
    owners = {name: name for name in digests}  # one owner per device
    verdict = trust.judge_results(digests, owners, quorum, _MAX_RESULTS)
    while verdict.judgement is trust.Judgement.NEEDS_REPLICA:
        extra = _pick(fleet, rng, {int(d) for d in digests})
        fleet.replicas["tie_break"] += 1
        digests[str(extra)] = _digest(fleet, extra, task, rng, replica=True)
        owners[str(extra)] = str(extra)
        verdict = trust.judge_results(digests, owners, quorum, _MAX_RESULTS)
    if verdict.judgement is trust.Judgement.UNDECIDED:
        fleet.undecided += 1
        return
    fleet.wrong_accepted += verdict.digest != f"true-{task}"
    now = float(task)
    for name in verdict.caught:  # checked and wrong: quarantined, forfeits all it holds
        device = int(name)
        fleet.quarantined[device] = True
        fleet.forfeited_cheated += 1
        _settle(fleet, device, caught=True, check_ts=None, now=now)
    for name in verdict.honest:
        device = int(name)
        cheated = digests[name] != f"true-{task}"
        if quorum == 1:  # unchecked: held until a later check of the device passes
            fleet.held[device].append((now, cheated))
            continue
        # A replica's device knew it was one: it earns nothing beyond its own pay
        # (trust.passed_drawn_check), except under the former rule.
        checked_as = trust.CheckedAs.OWN if device == first else trust.CheckedAs.REPLICA
        if fleet.replicas_release:
            checked_as = trust.CheckedAs.OWN
        fleet.reputation[device] = trust.after_check(fleet.reputation[device], checked_as, True)
        at_floor = trust.spot_check_rate(fleet.reputation[device], fleet.floor) <= fleet.floor
        if at_floor and fleet.at_floor_after[device] < 0:
            fleet.at_floor_after[device] = fleet.own_results[device]
        fleet.paid_cheated[device] += cheated  # agreed by a quorum of owners: paid now
        if trust.passed_drawn_check(checked_as, True):
            _settle(fleet, device, caught=False, check_ts=now, now=now)


def _run(
    policy: str, cheat: _Cheat, floor: float, start: int, args: argparse.Namespace
) -> dict[str, float]:
    cheats = np.random.default_rng(args.seed).random(args.devices) < _CHEAT_FRACTION
    fleet = _Fleet.new(cheats, cheat, floor, start)
    rng = np.random.default_rng(args.seed + 1)
    half_executions = 0
    for task in range(args.tasks):
        if task == args.tasks // 2:
            half_executions = fleet.executions
        _run_task(fleet, task, rng, policy)
    second_half = args.tasks - args.tasks // 2
    caught = fleet.quarantined & cheats
    still_held = sum(cheated for device in range(args.devices) for _, cheated in fleet.held[device])
    rates = np.array([trust.spot_check_rate(rep, floor) for rep in fleet.reputation])
    reached = ~cheats & (fleet.at_floor_after >= 0)
    return {
        "cheating_devices": int(cheats.sum()),
        "cheating_devices_quarantined": int(caught.sum()),
        "cheating_devices_undetected_share": float(1.0 - caught.sum() / max(1, cheats.sum())),
        "honest_devices_quarantined": int((fleet.quarantined & ~cheats).sum()),
        "executions_per_task": fleet.executions / args.tasks,
        "overhead": fleet.executions / args.tasks - 1.0,
        "overhead_second_half": (fleet.executions - half_executions) / second_half - 1.0,
        "overhead_by_cause": {name: count / args.tasks for name, count in fleet.replicas.items()},
        "cheated_results_paid": int(fleet.paid_cheated.sum()),
        "cheated_results_paid_to_caught_devices": int(fleet.paid_cheated[caught].sum()),
        "cheated_results_forfeited": fleet.forfeited_cheated,
        "cheated_results_still_held": int(still_held),
        "wrong_digests_accepted": fleet.wrong_accepted,
        "undecided_tasks": fleet.undecided,
        "spot_check_rate_at_end_mean_honest_devices": float(rates[~cheats].mean()),
        "own_results_to_reach_the_floor_mean_honest_devices": (
            float(fleet.at_floor_after[reached].mean()) if reached.any() else None
        ),
        "honest_devices_at_the_floor_share": float(reached.sum() / max(1, (~cheats).sum())),
    }


@dataclass(frozen=True)
class _Clawback:
    """The clawback an exposure run applies at each catch (:func:`trust.clawback_due`).

    The bench counts results; ``result_interval_s`` turns a device's result index into the
    time it reported it (one result an hour by default), so that ``window_s`` is the setting.
    """

    window_s: float
    result_interval_s: float

    def kept(self, released: list[tuple[float, bool]], caught_index: int) -> tuple[int, int]:
        """Return the cheated results still paid after the catch, and honest ones taken back."""
        kept_cheated = taken_honest = 0
        for index, cheated in released:
            due = trust.clawback_due(
                index * self.result_interval_s,
                checked=False,  # released by a later check, never checked itself
                caught_ts=caught_index * self.result_interval_s,
                clawback_window_s=self.window_s,
            )
            kept_cheated += cheated and not due
            taken_honest += due and not cheated
        return kept_cheated, taken_honest


def _exposure(
    cheat: _Cheat,
    floor: float,
    devices: int,
    seed: int,
    hold_results: int | None,
    *,
    clawback: _Clawback | None = None,
) -> dict[str, float]:
    """Follow trusted cheating devices until caught; count cheated results paid before.

    Before each of its own results a device runs, with the floor's probability, a replica of
    another device's result (once trusted, the fleet runs about that share of replicas, spread
    over its devices); a cheat caught on a replica is caught. ``hold_results`` None: the
    coordinator's rule (:func:`trust.held_fate`: held until a later passed check drawn for
    the device's own result; with ``cheat.replicas_release``, the former rule where an
    agreeing replica released it too); else the older rule (paid once ``hold_results`` later
    results came). With ``clawback`` (the coordinator's rule only), the same draws also count
    what the device keeps once its unchecked results released within the window are taken
    back at the catch: off and on are the same cheats, the same draws.
    """
    rng = np.random.default_rng(seed)
    paid = np.zeros(devices, dtype=np.int64)
    kept = np.zeros(devices, dtype=np.int64)
    honest_taken = np.zeros(devices, dtype=np.int64)
    results = np.zeros(devices, dtype=np.int64)
    rep = trust.Reputation("deterministic", trusted_reputation(floor))
    for device in range(devices):
        held: list[tuple[float, bool]] = []
        released: list[tuple[float, bool]] = []  # paid unchecked: (result index, cheated)
        index = 0
        while True:
            replica_lies = bool(rng.random() < cheat.rate) and not cheat.honest_on_replicas
            if rng.random() < floor:  # it runs a replica, compared with another owner's
                if replica_lies:
                    break  # caught on the replica: everything still held is forfeited
                if cheat.replicas_release and hold_results is None:
                    paid[device] += sum(c for _, c in held)
                    released += held
                    held = []
            cheated = bool(rng.random() < cheat.rate)
            checked = trust.needs_replica(rep, float(rng.random()), floor=floor)
            if checked and cheated:  # caught: everything still held is forfeited
                break
            if hold_results is not None:
                if not checked:
                    held.append((float(index), cheated))
                paid[device] += sum(c for ts, c in held if ts <= index - hold_results)
                held = [(ts, c) for ts, c in held if ts > index - hold_results]
            elif checked:  # passed: what came before it is paid, this one too
                paying = [
                    (ts, c)
                    for ts, c in held
                    if trust.held_fate(
                        ts,
                        caught=False,
                        passed_check_reported_ts=float(index),
                        now_ts=float(index),
                        hold_limit_s=_NEVER_S,
                    )
                    is trust.HoldFate.PAY
                ]
                paid[device] += cheated + sum(c for _, c in paying)
                released += paying
                held = []
            else:
                held.append((float(index), cheated))
            index += 1
        results[device] = index + 1
        if clawback is not None:
            kept[device], honest_taken[device] = clawback.kept(released, index)
    interval = 1.0 / floor
    beyond = math.floor(interval) + 1  # more cheated results than one interval
    with_clawback = {}
    if clawback is not None:
        with_clawback = {
            "clawback_window_s": clawback.window_s,
            "clawback_result_interval_s": clawback.result_interval_s,
            "clawback_window_results": clawback.window_s / clawback.result_interval_s,
            "cheated_results_kept_after_clawback_mean": float(kept.mean()),
            "cheated_results_kept_after_clawback_p90": float(np.percentile(kept, 90)),
            "cheated_results_kept_after_clawback_max": int(kept.max()),
            "share_of_devices_kept_beyond_one_interval_after_clawback": float(
                (kept >= beyond).mean()
            ),
            # keeping m needs its first m cheated results unchecked, then W more results
            # (the window) without a catch, each a catch with probability >= rate * floor
            "expected_share_kept_beyond_one_interval_after_clawback_at_most": (
                (1.0 - floor) ** beyond
                * (1.0 - cheat.rate * floor) ** (clawback.window_s / clawback.result_interval_s)
                if cheat.rate > 0.0
                else 0.0
            ),
            "honest_results_of_caught_devices_taken_back_mean": float(honest_taken.mean()),
        }
    return {
        "cheating_devices": devices,
        "results_until_caught_mean": float(results.mean()),
        "cheated_results_paid_before_caught_mean": float(paid.mean()),
        "cheated_results_paid_before_caught_p90": float(np.percentile(paid, 90)),
        "cheated_results_paid_before_caught_max": int(paid.max()),
        "expected_paid_before_caught_without_replicas": (1.0 - cheat.rate) * (1.0 - floor) / floor,
        "share_of_devices_paid_beyond_one_interval": float((paid >= beyond).mean()),
        "expected_share_paid_beyond_one_interval_without_replicas": (
            trust.paid_cheats_probability(cheat.rate, floor, beyond)
        ),
        **with_clawback,
    }


def _freivalds_vs_product(n: int, repeats: int = 5) -> dict[str, float]:
    a, b = trust.challenge_matrices(7, n)
    best_product = best_check = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        c = a @ b
        best_product = min(best_product, time.perf_counter() - start)
        start = time.perf_counter()
        assert trust.freivalds_check(a, b, c)
        best_check = min(best_check, time.perf_counter() - start)
    return {
        "n": n,
        "product_s": best_product,
        "freivalds_check_s": best_check,
        "ratio_check_vs_product": best_check / best_product,
    }


def _fleet(cheat: _Cheat, floor: float, start: int, args: argparse.Namespace) -> dict[str, object]:
    adaptive = _run("adaptive", cheat, floor, start, args)
    triple = _run("triple", cheat, floor, start, args)
    assert isinstance(adaptive["overhead"], float)
    fleet: dict[str, object] = {
        "adaptive": adaptive,
        "triple": triple,
        "ratio_overhead_adaptive_vs_triple": adaptive["overhead"] / triple["overhead"],
    }
    if cheat.honest_on_replicas:  # where the former rule differs
        former = dataclasses.replace(cheat, replicas_release=True)
        fleet["adaptive_replicas_release"] = _run("adaptive", former, floor, start, args)
    return fleet


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--exposure-devices", type=int, default=2_000)
    parser.add_argument("--floor", type=float, default=trust.DEFAULT_SPOT_CHECK_FLOOR)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--training-tasks", type=int, default=20_000)
    parser.add_argument("--ramp-tasks", type=int, default=200_000)
    parser.add_argument("--clawback-window-s", type=float, default=_CLAWBACK_WINDOW_S)
    parser.add_argument("--result-interval-s", type=float, default=_RESULT_INTERVAL_S)
    args = parser.parse_args()
    floor = args.floor
    interval = 1.0 / floor
    clawback = _Clawback(args.clawback_window_s, args.result_interval_s)
    fleets = {}
    for name, cheat in _CHEATS.items():
        new = _fleet(cheat, floor, 0, args)
        trusted = _fleet(cheat, floor, trusted_reputation(floor), args)
        exposure = _exposure(
            cheat, floor, args.exposure_devices, args.seed + 2, None, clawback=clawback
        )
        replicas_release = _exposure(
            dataclasses.replace(cheat, replicas_release=True),
            floor,
            args.exposure_devices,
            args.seed + 2,
            None,
        )
        former = _exposure(cheat, floor, args.exposure_devices, args.seed + 2, math.ceil(interval))
        paid_mean = exposure["cheated_results_paid_before_caught_mean"]
        assert isinstance(trusted["adaptive"], dict)
        fleets[name] = {
            "cheat_rate": cheat.rate,
            "honest_on_replicas": cheat.honest_on_replicas,
            "new_fleet": new,
            "trusted_fleet": trusted,
            "overhead_once_trusted": trusted["adaptive"]["overhead"],
            "goal_overhead_met": trusted["adaptive"]["overhead"] <= _GOAL_OVERHEAD,
            "exposure": exposure,
            "exposure_former_rule_replicas_release": replicas_release,
            "exposure_former_rule_hold_results": former,
            "goal_cheat_paid_within_one_interval_met": paid_mean <= interval,
            "goal_every_cheat_paid_within_one_interval_met": (
                exposure["share_of_devices_paid_beyond_one_interval"] == 0.0
            ),
            "goal_every_cheat_paid_within_one_interval_met_with_clawback": (
                exposure["share_of_devices_kept_beyond_one_interval_after_clawback"] == 0.0
            ),
        }
    # The ramp: own results a device (an honest one, or a cheat honest until trusted) runs
    # before its spot-check rate reaches the floor, now and under the former rule where its
    # agreeing replicas raised its reputation too; a small fleet, so that each device runs
    # thousands of results.
    ramp_args = argparse.Namespace(**{**vars(args), "devices": 50, "tasks": args.ramp_tasks})
    ramp = {
        name: _run("adaptive", _Cheat(0.0, replicas_release=former), floor, 0, ramp_args)
        for name, former in (("now", False), ("former_rule_replicas_raise", True))
    }
    result = {
        "benchmark": "verify",
        "what": "verification overhead (extra executions per task, tasks of equal compute) and "
        "cheated results paid, adaptive replication (core.trust rules) vs triple replication "
        "on the same fleet; exposure: cheated results a trusted cheat is paid before caught",
        "devices": args.devices,
        "tasks": args.tasks,
        "cheating_device_fraction": _CHEAT_FRACTION,
        "spot_check_floor": floor,
        "spot_check_interval_results": interval,
        "trusted_reputation": trusted_reputation(floor),
        "hold_rule": "unchecked results held until a spot check drawn for a later result of "
        "the device passes (an agreeing replica it ran releases nothing)",
        "reputation_rule": "only a passed spot check drawn for the device's own result raises "
        "its reputation; an agreeing replica it ran leaves it unchanged; any disagreement "
        "resets it",
        "baseline": "triple replication, 2 of 3 owners agree, same run",
        "fleets": fleets,
        "ramp_to_the_floor": {
            "devices": 50,
            "tasks": args.ramp_tasks,
            "own_results_to_reach_the_floor_mean": {
                name: run["own_results_to_reach_the_floor_mean_honest_devices"]
                for name, run in ramp.items()
            },
            "devices_at_the_floor_share": {
                name: run["honest_devices_at_the_floor_share"] for name, run in ramp.items()
            },
            "overhead": {name: run["overhead"] for name, run in ramp.items()},
        },
        "goal_overhead_once_trusted": _GOAL_OVERHEAD,
        "goal_cheat_paid_before_caught_mean_at_most": interval,
        "clawback": {
            "window_s": clawback.window_s,
            "result_interval_s": clawback.result_interval_s,
            "rule": "on a catch, the device's results paid unchecked (released by a later "
            "passed check) and reported within the window are taken back from its owner "
            "(core.trust.clawback_due); exposure counts with it off and on, same draws",
        },
        "undetected_probability_sporadic_after_1000_results": trust.undetected_probability(
            0.1, floor, 1000
        ),
        "challenge": _freivalds_vs_product(1024),
        "training": training_fleets(
            floor, trusted_reputation(floor), args.devices, args.training_tasks, args.seed
        ),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1_min": os.getloadavg()[0],
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "w", encoding="utf-8") as stream:
        stream.write(text + "\n")


if __name__ == "__main__":
    main()
