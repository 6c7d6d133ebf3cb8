"""The simulated coordinator's verification of results, on :mod:`heatgrid.core.trust`'s rules.

What :mod:`heatgrid.coordinator.verification` does with ``verify_results``, for a fleet whose
devices are all honest: a task's result is *reported*; the round's first result is spot-checked
or let through by :func:`heatgrid.core.trust.round_quorum` (its device's reputation on the job's
kind, a seeded draw), and the round's results are judged by
:func:`heatgrid.core.trust.judge_results` (:func:`~heatgrid.core.trust.results_allowed` of
them at most). A checked result waits for replicas on devices of other owners (a simulated
home owns one heater, a rack is its own owner); once the quorum agrees, the device whose own
result was checked gains reputation (:func:`heatgrid.core.trust.after_check`), a replica's
device none. The task queue (:mod:`heatgrid.sim.queue`) moves the task by the judgement, as
the coordinator's ``core.leasing`` moves it.

A job's kind is its submitter: a customer's jobs share one artifact. The results are all
equal, so no device is caught; the run measures what verification costs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatgrid.core import trust
from heatgrid.core.trust import CheckedAs, Judgement, Reputation
from heatgrid.sim.scenario import Verification

__all__ = ["Verifier"]

_DIGEST = "honest"
"""The digest every device returns: the simulated fleet has no cheats."""


class Verifier:
    """Reputation of every device, and the results each task's round holds.

    Parameters
    ----------
    settings : Verification
        The coordinator's verification settings.
    kind : numpy.ndarray
        Job kind (submitter) of each task, (T,).
    rng : numpy.random.Generator
        The draws of the spot checks, one per round, in the order results are reported.
    """

    def __init__(
        self, settings: Verification, kind: NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        self.settings = settings
        self._kind = kind
        self._rng = rng
        self._streak: dict[tuple[int, int], int] = {}
        """Verified results in a row by (device, kind); absent: ``trusted_results``."""
        self._quorum: dict[int, int] = {}
        """Owners that must agree, per task whose round has a result."""
        self._results: dict[int, list[int]] = {}
        """Devices with a result in the task's round, first one first."""
        self.checked = 0
        """Rounds whose first result was spot-checked [-]."""
        self.unchecked = 0
        """Rounds whose first result was let through unchecked [-]."""
        self.replicas = 0
        """Replica results reported [-]."""

    def holds_result(self, task: int, device: int) -> bool:
        """Whether ``device`` has a result in ``task``'s round (it may not replicate it)."""
        return device in self._results.get(task, ())

    def reputation(self, device: int, task: int) -> Reputation:
        """Return ``device``'s reputation on the kind of ``task``."""
        kind = int(self._kind[task])
        streak = self._streak.get((device, kind), self.settings.trusted_results)
        return Reputation(job_kind=f"s{kind}", consecutive_verified=streak)

    def judge(self, task: int, device: int) -> Judgement:
        """Take ``device``'s result of ``task``; return the judgement of the round's results.

        A verified or undecided round ends (the task is done, or runs again from the start).
        """
        settings = self.settings
        results = self._results.setdefault(task, [])
        results.append(device)
        if task not in self._quorum:
            quorum = trust.round_quorum(
                self.reputation(device, task),
                float(self._rng.random()),
                settings.quorum,
                floor=settings.spot_check_floor,
                half_rate_results=settings.half_rate_results,
            )
            self._quorum[task] = quorum
            if quorum > 1:
                self.checked += 1
            else:
                self.unchecked += 1
        else:
            self.replicas += 1
        quorum = self._quorum[task]
        names = {f"d{d}": d for d in results}
        verdict = trust.judge_results(
            dict.fromkeys(names, _DIGEST),
            {name: f"o{d}" for name, d in names.items()},
            quorum,
            trust.results_allowed(quorum, settings.max_results),
        )
        if verdict.judgement is Judgement.VERIFIED and quorum > 1:
            for name, d in names.items():
                checked_as = CheckedAs.OWN if d == results[0] else CheckedAs.REPLICA
                after = trust.after_check(
                    self.reputation(d, task), checked_as, name in verdict.honest
                )
                self._streak[d, int(self._kind[task])] = after.consecutive_verified
        if verdict.judgement is not Judgement.NEEDS_REPLICA:
            del self._quorum[task], self._results[task]
        return verdict.judgement
