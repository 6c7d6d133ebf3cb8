"""Training tasks in the verify benchmark: a segment replay against a whole replica and triple.

A training task runs :data:`TOTAL_STEPS` steps with a checkpoint every :data:`EVERY_STEPS`
(the chain: 8 checkpoints, 9 segments with the tail, as ``examples/digits`` with 270 steps and
a checkpoint every 30). Compute is counted in training steps. 1 % of the devices cheat on
every task, in one segment drawn at random: ``skip`` skips its steps (its marks from there on
follow its own, wrong, trajectory); ``swap`` skips them too but uploads the segment's start
checkpoint with a swapped state whose own continuation reaches the next mark, so a replay
from that blob agrees at the end and only the start mark (what the replayer restored,
``trust.replay_start_agrees``) shows it. Policies, on the same fleet and draws:

- ``segment_replay``: adaptive replication (``trust.needs_replica``); a checked task replays
  one segment drawn by ``fingerprint.replay_segment`` on another owner's device, judged by
  ``trust.judge_results`` and ``trust.replay_judgement`` with the start checked; a
  disagreement replays the same segment again; a refuted task runs again whole and is checked
  again;
- ``segment_replay_no_start_check``: the same without the start check (before it existed);
- ``whole_replica``: adaptive replication, a checked task runs again whole on another owner;
- ``triple``: every task runs whole on three owners' devices, 2 agreeing.

Reported per policy, for a new fleet and a trusted one: verification overhead (steps beyond
one run of each task, over those), checks of cheated results and the share that caught them,
cheated results accepted, and devices quarantined (a cheat also lies when it replays, so it
may be caught as a replayer first). Since a trusted fleet checks few cheated results, the catch
per check is also measured alone (``catch_per_check``): ``checks`` checks of a cheated run by
honest devices, each with its own draws (expected: 1/9 for a segment replay, with the start
checked for a swap; 0 without; 1 for a whole replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heatgrid.core import fingerprint, trust

__all__ = ["EVERY_STEPS", "POLICIES", "TOTAL_STEPS", "training_fleets"]

TOTAL_STEPS = 270
EVERY_STEPS = 30
POLICIES = ("segment_replay", "segment_replay_no_start_check", "whole_replica", "triple")
_CHAIN = list(range(EVERY_STEPS, TOTAL_STEPS, EVERY_STEPS))  # 30 … 240; the tail to 270
_SEGMENTS = len(_CHAIN) + 1
_MAX_RESULTS = 4
_CHEAT_FRACTION = 0.01


@dataclass
class _Fleet:
    cheats: np.ndarray
    reputation: list[trust.Reputation]
    quarantined: np.ndarray
    steps: int = 0
    checks_of_cheats: int = 0
    catching_checks: int = 0
    cheated_accepted: int = 0
    replays: dict[str, int] = field(default_factory=lambda: {"first": 0, "tie_break": 0})


def _pick(fleet: _Fleet, rng: np.random.Generator, exclude: set[int]) -> int:
    while True:
        device = int(rng.integers(len(fleet.cheats)))
        if not fleet.quarantined[device] and device not in exclude:
            return device


def _bounds(segment: fingerprint.ReplaySegment) -> tuple[int, int, int]:
    """Return (index of the segment, its first step, its last step) [steps]."""
    start = 0 if segment.start is None else _CHAIN[segment.start]
    end = TOTAL_STEPS if segment.end == len(_CHAIN) else _CHAIN[segment.end]
    return segment.end, start, end


def _answer(
    fleet: _Fleet,
    device: int,
    drawn: int,
    cheat: tuple[str, int] | None,
    *,
    start_check: bool,
    rng: np.random.Generator,
) -> str:
    """Return what a replayer answers for segment ``drawn`` of a run with ``cheat`` in it."""
    if fleet.cheats[device]:  # a cheating replayer lies too
        return f"lie-{device}-{rng.integers(1 << 30)}"
    if cheat is None or cheat[1] != drawn:
        return "mark"  # the original's mark at the segment's end (later ones: its own path)
    if cheat[0] == "skip":
        return "honest-end"
    return "restored-other-state" if start_check else "mark"  # swap: the end agrees


def _replay_round(
    fleet: _Fleet,
    original: int,
    cheat: tuple[str, int] | None,
    rng: np.random.Generator,
    start_check: bool,
) -> bool:
    """Check one run by segment replay; return True when it stands (False: refuted)."""
    segment = fingerprint.replay_segment([*_CHAIN, _CHAIN[-1] + 1], float(rng.random()))
    assert segment is not None
    drawn, first, last = _bounds(segment)
    answers = {str(original): "mark"}
    owners = {str(original): str(original)}
    verdict = None
    while verdict is None or verdict.judgement is trust.Judgement.NEEDS_REPLICA:
        replayer = _pick(fleet, rng, {int(name) for name in answers})
        fleet.replays["first" if verdict is None else "tie_break"] += 1
        fleet.steps += last - first
        answers[str(replayer)] = _answer(
            fleet, replayer, drawn, cheat, start_check=start_check, rng=rng
        )
        owners[str(replayer)] = str(replayer)
        verdict = trust.judge_results(answers, owners, 2, _MAX_RESULTS)
    for name in verdict.caught:
        fleet.quarantined[int(name)] = True
    judgement = trust.replay_judgement(verdict, str(original))
    return judgement is trust.Judgement.VERIFIED


def _whole_round(
    fleet: _Fleet, original: int, cheat: tuple[str, int] | None, rng: np.random.Generator, runs: int
) -> bool:
    """Check one run by whole replicas (``runs`` in all); return True when it stands."""
    answers = {str(original): "wrong" if cheat is not None else "right"}
    verdict = None
    while verdict is None or verdict.judgement is trust.Judgement.NEEDS_REPLICA:
        replica = _pick(fleet, rng, {int(name) for name in answers})
        fleet.steps += TOTAL_STEPS
        lied = fleet.cheats[replica]
        answers[str(replica)] = f"lie-{replica}" if lied else "right"
        if len(answers) < runs:
            continue
        verdict = trust.judge_results(answers, {n: n for n in answers}, 2, _MAX_RESULTS)
    for name in verdict.caught:
        fleet.quarantined[int(name)] = True
    return str(original) in verdict.honest


def _run_task(
    fleet: _Fleet, policy: str, kind: str, floor: float, rng: np.random.Generator
) -> None:
    """Run one task until a run of it stands; count its steps and what the checks found."""
    while True:
        original = _pick(fleet, rng, set())
        cheat = None
        if fleet.cheats[original]:  # a swap needs a checkpoint at its segment's start
            low = 0 if kind == "skip" else 1
            cheat = (kind, int(rng.integers(low, _SEGMENTS)))
        fleet.steps += TOTAL_STEPS
        rep = fleet.reputation[original]
        checked = policy == "triple" or trust.needs_replica(rep, float(rng.random()), floor=floor)
        if not checked:
            fleet.cheated_accepted += cheat is not None
            return
        if policy == "triple":
            stands = _whole_round(fleet, original, cheat, rng, 3)
        elif policy == "whole_replica":
            stands = _whole_round(fleet, original, cheat, rng, 2)
        else:
            start_check = policy == "segment_replay"
            stands = _replay_round(fleet, original, cheat, rng, start_check)
        if cheat is not None:
            fleet.checks_of_cheats += 1
            fleet.catching_checks += not stands
        fleet.reputation[original] = trust.after_check(rep, trust.CheckedAs.OWN, stands)
        if stands:
            fleet.cheated_accepted += cheat is not None
            return
        fleet.quarantined[original] = True  # refuted or caught: the task runs again whole


def _fleet_run(
    policy: str, kind: str, floor: float, start: int, *, devices: int, tasks: int, seed: int
) -> dict[str, object]:
    cheats = np.random.default_rng(seed).random(devices) < _CHEAT_FRACTION
    fleet = _Fleet(
        cheats, [trust.Reputation("training", start)] * devices, np.zeros(devices, dtype=bool)
    )
    rng = np.random.default_rng(seed + 1)
    for _ in range(tasks):
        _run_task(fleet, policy, kind, floor, rng)
    useful = tasks * TOTAL_STEPS
    return {
        "overhead": (fleet.steps - useful) / useful,
        "replayed_segments": dict(fleet.replays) if policy.startswith("segment") else None,
        "checks_of_cheated_results": fleet.checks_of_cheats,
        "share_of_those_checks_that_caught": fleet.catching_checks / max(1, fleet.checks_of_cheats),
        "cheated_results_accepted": fleet.cheated_accepted,
        "cheating_devices": int(cheats.sum()),
        "cheating_devices_quarantined": int((fleet.quarantined & cheats).sum()),
        "honest_devices_quarantined": int((fleet.quarantined & ~cheats).sum()),
    }


def _catch_per_check(policy: str, kind: str, checks: int, seed: int) -> float:
    """Return the share of ``checks`` checks of a cheated run (honest checkers) that caught it."""
    fleet = _Fleet(
        np.zeros(64, dtype=bool), [trust.Reputation("training", 0)] * 64, np.zeros(64, dtype=bool)
    )
    rng = np.random.default_rng(seed)
    caught = 0
    for _ in range(checks):
        fleet.quarantined[:] = False
        cheat = (kind, int(rng.integers(0 if kind == "skip" else 1, _SEGMENTS)))
        if policy.startswith("segment"):
            start_check = policy == "segment_replay"
            stands = _replay_round(fleet, 0, cheat, rng, start_check)
        else:
            stands = _whole_round(fleet, 0, cheat, rng, 3 if policy == "triple" else 2)
        caught += not stands
    return caught / checks


def training_fleets(
    floor: float, trusted: int, devices: int, tasks: int, seed: int
) -> dict[str, object]:
    """Run every policy on both cheats, for a new fleet and a trusted one; ratios included."""
    found: dict[str, object] = {
        "total_steps": TOTAL_STEPS,
        "checkpoint_every_steps": EVERY_STEPS,
        "segments_with_tail": _SEGMENTS,
        "tasks": tasks,
    }
    found["catch_per_check"] = {
        kind: {policy: _catch_per_check(policy, kind, 20_000, seed) for policy in POLICIES}
        for kind in ("skip", "swap")
    }
    for kind in ("skip", "swap"):
        for fleet_name, start in (("new_fleet", 0), ("trusted_fleet", trusted)):
            runs = {
                policy: _fleet_run(
                    policy, kind, floor, start, devices=devices, tasks=tasks, seed=seed
                )
                for policy in POLICIES
            }
            replay = runs["segment_replay"]["overhead"]
            assert isinstance(replay, float)
            whole, triple = runs["whole_replica"]["overhead"], runs["triple"]["overhead"]
            assert isinstance(whole, float)
            assert isinstance(triple, float)
            found[f"{kind}_{fleet_name}"] = {
                **runs,
                "ratio_overhead_segment_replay_vs_whole_replica": replay / whole,
                "ratio_overhead_segment_replay_vs_triple": replay / triple,
            }
    return found
