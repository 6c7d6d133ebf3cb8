"""End to end: a heater that skips training steps is caught by heaters of other owners.

Real parts only, as in ``test_verification_e2e.py``: the coordinator app over SQLite with
``verify_results``, three in-process agent daemons of three owners with CPU heaters, and the
PyTorch example ``examples/digits`` in the bubblewrap sandbox (deterministic on one CPU: the
same parameters give the same weights digest). The cheat's agent trains half the epochs it was
leased (it halves ``epochs`` in every lease it receives) and hands in what its runner returns:
a real model and digest, of less work. The job declares a tolerance (``verify_rel_l2``), so
results are compared by the tensor fingerprint each carries. Its result is held and
replicated on the honest heaters, whose fingerprints agree; the task is verified with the full
training, the cheat is quarantined and its held credit forfeited, the honest owners are paid,
and the ledger balances. Skipped where PyTorch or scikit-learn is not installed (the ``ml``
extra, which CI installs).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
from tests.agent.jobs_fleet import Coordinator, agent, pack, until

from heatgrid.agent.client import CoordinatorClient
from heatgrid.core.fingerprint import TensorFingerprint, fingerprint_rel_l2, fingerprints_agree
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import TensorFingerprintBody

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("sandbox_ready"),
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("sklearn") is None,
        reason="PyTorch and scikit-learn are not installed (the ml extra: torch==2.13.0 CPU)",
    ),
]

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits"
EPOCHS = 6
OWNERS = ("mallory", "bob", "dave")
VERIFY_REL_L2 = 1e-5  # as examples/digits/job.toml declares


class SkippingClient(CoordinatorClient):
    """A modified agent: it runs every leased task with half its ``epochs``."""

    async def claim(self, device_id: str, token: str, request: v1.ClaimRequest) -> v1.ClaimResponse:
        """Take the leases, and halve the training each asks for."""
        answer = await super().claim(device_id, token, request)
        leases = [
            lease.model_copy(update={"task_input": {**lease.task_input, "epochs": EPOCHS // 2}})
            for lease in answer.leases
        ]
        return answer.model_copy(update={"leases": leases})


async def _scenario(root: Path) -> None:
    artifact = pack(EXAMPLE, root / "artifacts")
    async with Coordinator(root, owners=OWNERS, verify_results=True) as coordinator:
        (task_id,) = await coordinator.submit(
            artifact, [{"epochs": EPOCHS}], verify_rel_l2=VERIFY_REL_L2
        )

        def state() -> str:
            return str(coordinator.task(task_id)["state"])

        async with agent(
            coordinator, root, "mallory", owner="mallory", client_class=SkippingClient
        ):
            await until(lambda: state() == "reported", "the cheat reported its short training")
        async with (
            agent(coordinator, root, "bob", owner="bob"),
            agent(coordinator, root, "dave", owner="dave"),
        ):
            await until(lambda: state() not in {"reported", "verifying"}, "the task was judged")
        task = coordinator.task(task_id)
        devices = dict(
            coordinator.query(
                "SELECT accounts.name, devices.id FROM devices "
                "JOIN accounts ON accounts.id = devices.owner_id"
            )
        )
        attempts = coordinator.query(
            "SELECT device_id, verdict, result FROM task_attempts WHERE result IS NOT NULL"
        )
        quarantine = coordinator.query(
            "SELECT quarantine_reason FROM devices WHERE id = ?", devices["mallory"]
        )[0][0]
        closed = coordinator.query(
            "SELECT kind, device_id FROM ledger_transactions WHERE kind LIKE 'result_%'"
        )
        marks = coordinator.query(
            "SELECT device_id, step, fingerprint FROM checkpoints WHERE task_id = ?", task_id
        )
        unbalanced = coordinator.query(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, unit "
            "HAVING SUM(amount) != 0"
        )

    assert task["state"] == "verified", task
    result = json.loads(task["result"])
    results = {device_id: json.loads(text) for device_id, _, text in attempts}
    short = results[devices["mallory"]]
    assert short["steps"] * 2 == result["steps"]  # the cheat really trained half the steps
    assert short["weights_sha256"] != result["weights_sha256"]
    # replicas were compared by their tensor fingerprints within the job's tolerance
    agreed = TensorFingerprintBody.model_validate(result["tensor_fingerprint"]).core()
    skipped = TensorFingerprintBody.model_validate(short["tensor_fingerprint"]).core()
    assert not fingerprints_agree(skipped, agreed, VERIFY_REL_L2)
    assert fingerprint_rel_l2(skipped, agreed) > 100 * VERIFY_REL_L2
    assert result["test_accuracy"] >= 0.9, result
    honest = {devices["bob"], devices["dave"]}
    assert {results[d]["weights_sha256"] for d in honest if d in results} == {
        result["weights_sha256"]
    }
    verdicts = {device_id: verdict for device_id, verdict, _ in attempts}
    assert verdicts[devices["mallory"]] == "caught"
    assert quarantine is not None
    assert "wrong result" in quarantine
    forfeited = {device_id for kind, device_id in closed if kind == "result_caught"}
    paid = {device_id for kind, device_id in closed if kind == "result_verified"}
    assert forfeited == {devices["mallory"]}
    assert paid == honest
    assert unbalanced == []
    # every checkpoint came with its step and the fingerprint of the weights it saved; where
    # two honest devices saved the same step, their tensors agree (what a segment replay checks)
    assert marks
    assert all(step is not None and fp is not None for _, step, fp in marks)
    by_step: dict[int, dict[str, TensorFingerprint]] = {}
    for device_id, step, fp in marks:
        body = json.loads(fp) if isinstance(fp, str) else fp
        by_step.setdefault(step, {})[device_id] = TensorFingerprintBody.model_validate(body).core()
    shared = [prints for prints in by_step.values() if honest <= set(prints)]
    assert shared, by_step.keys()
    for prints in shared:
        assert fingerprints_agree(prints[devices["bob"]], prints[devices["dave"]], VERIFY_REL_L2)


def test_a_heater_that_skips_training_steps_is_caught_and_the_task_verified(
    tmp_path: Path,
) -> None:
    asyncio.run(asyncio.wait_for(_scenario(tmp_path), 500.0))
