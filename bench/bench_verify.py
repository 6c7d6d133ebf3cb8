"""Verification overhead and cheats paid for, adaptive replication against triple replication.

A fleet of devices (one owner each) runs a stream of deterministic tasks; 1 % of the devices
cheat (return a made-up digest) on every result (``always``) or on one result in ten
(``sporadic``). Both policies run on the same fleet, the same tasks and the same random draws,
with the rules of :mod:`heatgrid.core.trust` that the coordinator and the simulator share:

- ``adaptive``: a task runs on one device; :func:`~heatgrid.core.trust.needs_replica` decides,
  from the device's reputation, whether it is spot-checked (then it wants 2 agreeing owners),
  :func:`~heatgrid.core.trust.judge_results` asks for replicas on devices of other owners until
  a quorum agrees (at most 4 results); agreeing devices gain reputation, caught ones are
  quarantined and lose their held credit. A result that is not checked is paid only after a
  hold of one spot-check interval (1 / floor of the device's later results) during which a
  caught device forfeits it.
- ``triple``: every task runs on three devices of different owners and wants 2 agreeing.

Reported per policy: overhead (extra executions per task) over the whole run and over its
second half (devices trusted by then), cheated results paid for, wrong digests accepted, and the
ratio of the adaptive overhead to the triple one. The Freivalds check of a hardware challenge is
timed against the matrix product it checks (numpy, same run). Usage:
``python bench/bench_verify.py --out PATH [--devices N] [--tasks N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from heatgrid.core import trust

_CHEAT_FRACTION = 0.01
_MAX_RESULTS = 4
_GOAL_OVERHEAD = 0.05


@dataclass
class _Fleet:
    """The devices' reputations, holds and fates under one policy."""

    cheats: np.ndarray
    cheat_rate: float
    reputation: list[trust.Reputation]
    quarantined: np.ndarray
    held: list[list[tuple[int, bool]]] = field(default_factory=list)  # (release at, cheated)
    executions: int = 0
    paid_cheated: int = 0
    forfeited_cheated: int = 0
    wrong_accepted: int = 0
    undecided: int = 0

    @classmethod
    def new(cls, cheats: np.ndarray, cheat_rate: float) -> _Fleet:
        count = len(cheats)
        return cls(
            cheats,
            cheat_rate,
            [trust.Reputation("deterministic")] * count,
            np.zeros(count, dtype=bool),
            [[] for _ in range(count)],
        )


def _digest(fleet: _Fleet, device: int, task: int, rng: np.random.Generator) -> str:
    fleet.executions += 1
    if fleet.cheats[device] and rng.random() < fleet.cheat_rate:
        return f"made-up-{task}-{device}"
    return f"true-{task}"


def _pick(fleet: _Fleet, rng: np.random.Generator, exclude: set[int]) -> int:
    while True:
        device = int(rng.integers(len(fleet.cheats)))
        if not fleet.quarantined[device] and device not in exclude:
            return device


def _release(fleet: _Fleet, device: int, results_seen: int) -> None:
    """Pay the device's holds whose interval has passed."""
    kept = []
    for release_at, cheated in fleet.held[device]:
        if results_seen >= release_at:
            fleet.paid_cheated += cheated
        else:
            kept.append((release_at, cheated))
    fleet.held[device] = kept


def _run_task(
    fleet: _Fleet, task: int, rng: np.random.Generator, policy: str, seen: np.ndarray
) -> None:
    first = _pick(fleet, rng, set())
    if policy == "triple":
        quorum, runs = 2, 3
    else:
        checked = trust.needs_replica(fleet.reputation[first], float(rng.random()))
        quorum, runs = (2, 2) if checked else (1, 1)
    devices = [first]
    while len(devices) < runs:
        devices.append(_pick(fleet, rng, set(devices)))
    digests = {str(d): _digest(fleet, d, task, rng) for d in devices}
    owners = {name: name for name in digests}  # one owner per device
    verdict = trust.judge_results(digests, owners, quorum, _MAX_RESULTS)
    while verdict.judgement is trust.Judgement.NEEDS_REPLICA:
        extra = _pick(fleet, rng, {int(d) for d in digests})
        digests[str(extra)] = _digest(fleet, extra, task, rng)
        owners[str(extra)] = str(extra)
        verdict = trust.judge_results(digests, owners, quorum, _MAX_RESULTS)
    if verdict.judgement is trust.Judgement.UNDECIDED:
        fleet.undecided += 1
        return
    fleet.wrong_accepted += verdict.digest != f"true-{task}"
    for name in verdict.caught:
        device = int(name)
        fleet.quarantined[device] = True
        fleet.forfeited_cheated += sum(cheated for _, cheated in fleet.held[device])
        fleet.held[device] = []
    for name in verdict.honest:
        device = int(name)
        fleet.reputation[device] = trust.after_result(fleet.reputation[device], True)
        seen[device] += 1
        _release(fleet, device, int(seen[device]))
        cheated = digests[name] != f"true-{task}"
        if quorum == 1:  # unchecked: held for one spot-check interval of the device's results
            hold = math.ceil(1.0 / trust.DEFAULT_SPOT_CHECK_FLOOR)
            fleet.held[device].append((int(seen[device]) + hold, cheated))
        else:
            fleet.paid_cheated += cheated  # agreed by a quorum of owners: paid now


def _run(policy: str, cheat_rate: float, devices: int, tasks: int, seed: int) -> dict[str, float]:
    cheats = np.random.default_rng(seed).random(devices) < _CHEAT_FRACTION
    fleet = _Fleet.new(cheats, cheat_rate)
    rng = np.random.default_rng(seed + 1)
    seen = np.zeros(devices, dtype=np.int64)
    half_executions = 0
    for task in range(tasks):
        if task == tasks // 2:
            half_executions = fleet.executions
        _run_task(fleet, task, rng, policy, seen)
    for device in range(devices):  # the run ends: what is still held is paid out
        _release(fleet, device, 1 << 62)
    second_half = tasks - tasks // 2
    cheated_total = fleet.paid_cheated + fleet.forfeited_cheated
    return {
        "cheating_devices": int(cheats.sum()),
        "cheating_devices_quarantined": int((fleet.quarantined & cheats).sum()),
        "honest_devices_quarantined": int((fleet.quarantined & ~cheats).sum()),
        "executions_per_task": fleet.executions / tasks,
        "overhead": fleet.executions / tasks - 1.0,
        "overhead_second_half": (fleet.executions - half_executions) / second_half - 1.0,
        "cheated_results_paid": fleet.paid_cheated,
        "cheated_results_forfeited": fleet.forfeited_cheated,
        "cheated_results_paid_share": fleet.paid_cheated / cheated_total if cheated_total else 0.0,
        "wrong_digests_accepted": fleet.wrong_accepted,
        "undecided_tasks": fleet.undecided,
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


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fleets = {}
    for name, cheat_rate in (("always", 1.0), ("sporadic", 0.1)):
        adaptive = _run("adaptive", cheat_rate, args.devices, args.tasks, args.seed)
        triple = _run("triple", cheat_rate, args.devices, args.tasks, args.seed)
        fleets[name] = {
            "cheat_rate": cheat_rate,
            "adaptive": adaptive,
            "triple": triple,
            "ratio_overhead_adaptive_vs_triple": adaptive["overhead"] / triple["overhead"],
            "ratio_second_half_overhead_adaptive_vs_triple": (
                adaptive["overhead_second_half"] / triple["overhead_second_half"]
            ),
            "goal_overhead_met": adaptive["overhead_second_half"] <= _GOAL_OVERHEAD,
        }
    result = {
        "benchmark": "verify",
        "what": "verification overhead (extra executions per task) and cheated results paid, "
        "adaptive replication (core.trust rules) vs triple replication on the same fleet",
        "devices": args.devices,
        "tasks": args.tasks,
        "cheating_device_fraction": _CHEAT_FRACTION,
        "spot_check_floor": trust.DEFAULT_SPOT_CHECK_FLOOR,
        "hold_results": math.ceil(1.0 / trust.DEFAULT_SPOT_CHECK_FLOOR),
        "baseline": "triple replication, 2 of 3 owners agree, same run",
        "fleets": fleets,
        "goal_overhead_once_trusted": _GOAL_OVERHEAD,
        "challenge": _freivalds_vs_product(1024),
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
