"""End to end: a heater that tampers with its results is caught by heaters of other owners.

Real parts only: the coordinator app over SQLite on a loopback port with ``verify_results``,
three in-process agent daemons of three owners with CPU heaters, and the ``examples/sweep``
job (deterministic: the same seed gives the same ``hits`` anywhere) running in the bubblewrap
sandbox. One agent's coordinator client adds one to every ``hits`` its runner returns. The
cheat reports first; its results are held and replicated on the honest heaters. At the end
every task is verified with the true ``hits``, the cheat is quarantined, unpaid and its held
credit forfeited, the honest owners are paid, and the ledger balances.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from tests.agent.jobs_fleet import Coordinator, agent, pack, until

from heatgrid.agent.client import CoordinatorClient
from heatgrid.protocol import v1

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sandbox_ready")]

EXAMPLE = Path(__file__).parents[2] / "examples" / "sweep"
SAMPLES, CHUNK = 400_000, 100_000
SEEDS = (21, 22)
OWNERS = ("mallory", "bob", "dave")


class TamperingClient(CoordinatorClient):
    """A modified agent: it reports one more ``hits`` than its job runner computed."""

    async def complete(
        self, device_id: str, token: str, task_id: str, report: v1.TaskCompletion
    ) -> v1.TaskStatus:
        """Hand in a tampered result."""
        result = dict(report.result)
        result["hits"] = int(str(result["hits"])) + 1
        tampered = report.model_copy(update={"result": result})
        return await super().complete(device_id, token, task_id, tampered)


def _expected_hits(seed: int) -> int:
    generator = np.random.Generator(np.random.PCG64(seed))
    hits = 0
    for _ in range(SAMPLES // CHUNK):
        points = generator.random((CHUNK, 2))
        hits += int(np.count_nonzero((points**2).sum(axis=1) <= 1.0))
    return hits


async def _scenario(root: Path) -> None:
    artifact = pack(EXAMPLE, root / "artifacts")
    params = [{"seed": seed, "samples": SAMPLES, "chunk": CHUNK} for seed in SEEDS]
    async with Coordinator(root, owners=OWNERS, verify_results=True) as coordinator:
        task_ids = await coordinator.submit(artifact, params)

        def states() -> list[str]:
            return [str(coordinator.task(task_id)["state"]) for task_id in task_ids]

        def job_state() -> str:
            return str(coordinator.query("SELECT state FROM jobs")[0][0])

        async with agent(
            coordinator, root, "mallory", owner="mallory", client_class=TamperingClient
        ):
            await until(lambda: "reported" in states(), "the cheat reported a result")
            async with (
                agent(coordinator, root, "bob", owner="bob"),
                agent(coordinator, root, "dave", owner="dave"),
            ):
                await until(lambda: job_state() != "running", "the job ended")
        tasks = [coordinator.task(task_id) for task_id in task_ids]
        devices = dict(
            coordinator.query(
                "SELECT accounts.name, devices.id FROM devices "
                "JOIN accounts ON accounts.id = devices.owner_id"
            )
        )
        owner_ids = dict(coordinator.query("SELECT name, id FROM accounts"))
        verdicts = coordinator.query("SELECT device_id, verdict FROM task_attempts")
        quarantine = coordinator.query(
            "SELECT quarantine_reason FROM devices WHERE id = ?", devices["mallory"]
        )[0][0]
        balances = dict(
            coordinator.query(
                "SELECT account, SUM(amount) FROM ledger_entries WHERE unit = 'micro_eur' "
                "GROUP BY account"
            )
        )
        closed = coordinator.query(
            "SELECT kind, device_id FROM ledger_transactions WHERE kind LIKE 'result_%'"
        )
        unbalanced = coordinator.query(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, unit "
            "HAVING SUM(amount) != 0"
        )

    assert job_state() == "completed"
    assert [task["state"] for task in tasks] == ["verified", "verified"]
    assert [json.loads(task["result"])["hits"] for task in tasks] == [
        _expected_hits(seed) for seed in SEEDS
    ]
    assert quarantine is not None
    assert "wrong result" in quarantine
    cheat = {verdict for device_id, verdict in verdicts if device_id == devices["mallory"]}
    assert cheat == {"caught"}
    honest = {verdict for device_id, verdict in verdicts if device_id != devices["mallory"]}
    assert honest <= {"verified", None}  # None: an attempt that never reported
    assert unbalanced == []
    assert balances.get(f"owner:{owner_ids['mallory']}", 0) == 0
    assert balances.get(f"held:owner:{owner_ids['mallory']}", 0) == 0
    # the CPU heaters burn a few joules per task: a micro-euro or less, so the postings are
    # compared, not the sums
    paid = {device_id for kind, device_id in closed if kind == "result_verified"}
    forfeited = {device_id for kind, device_id in closed if kind == "result_caught"}
    assert paid == {devices["bob"], devices["dave"]}
    assert forfeited == {devices["mallory"]}
    assert all(balances.get(f"held:owner:{owner}", 0) == 0 for owner in owner_ids.values())


def test_a_tampering_heater_is_caught_and_the_job_completes_with_true_results(
    tmp_path: Path,
) -> None:
    asyncio.run(asyncio.wait_for(_scenario(tmp_path), 300.0))
