"""End to end: a heater that skips training steps is caught by heaters of other owners.

Real parts only, as in ``test_verification_e2e.py``: the coordinator app over SQLite with
``verify_results``, three in-process agent daemons of three owners with CPU heaters, and the
PyTorch example ``examples/digits`` in the bubblewrap sandbox (deterministic on one CPU: the
same parameters give the same weights digest). The job declares a tolerance (``verify_rel_l2``)
and its checkpoints carry their step and fingerprint, so a checked result is verified by a
*segment replay*: a heater of another owner resumes from one of the original's checkpoints,
trains to the step of the next (``ctx.stop_step``) and reports the fingerprint there, which is
compared with the original's checkpoint. The coordinator draws the segment with a secure
generator; the tests fix the draw.

Two cheats. One trains half the epochs it was leased (it halves ``epochs`` in every lease) and
hands in a real model of less work: the *tail* (from its last checkpoint to the task's end)
catches it. The other runs a modified job that skips the updates of steps 220 to 229 and still
counts them: the replay of the segment that holds them catches it. The job checkpoints every
30 steps, so a replayer trains about 30 steps, not the task's 270. Which checkpoints a heater
uploads depends on timing (it sends the newest), so the test finds the draw that lands on that
segment; late steps, because only the newest three blobs are kept to resume from. Either way
the cheat is quarantined and forfeits its held credit, the replayers are paid, the task runs
again from the start on honest heaters and is verified, and the ledger balances. Skipped where
PyTorch or scikit-learn is not installed (the ``ml`` extra, which CI installs).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.agent.jobs_fleet import Coordinator, agent, pack, until

from heatgrid.agent.client import CoordinatorClient
from heatgrid.coordinator import housekeeping, verification
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.core.fingerprint import (
    ReplaySegment,
    TensorFingerprint,
    fingerprint_rel_l2,
    fingerprints_agree,
    replay_segment,
)
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import MAX_ARTIFACT_BYTES, TensorFingerprintBody

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
STEPS = 270  # 6 epochs of 45 batches
EVERY = 30  # a checkpoint every 30 steps: a heater uploads the newest, so some may be skipped
OWNERS = ("mallory", "bob", "dave")
VERIFY_REL_L2 = 1e-5  # as examples/digits/job.toml declares
TAIL_DRAW = 0.99  # the last segment: from the last checkpoint to the end of the task
SKIPPED = (220, 230)  # the modified job skips the updates of these steps
REPLAY_SEGMENT = replay_segment
DROP_SPENT = housekeeping.drop_spent_checkpoints


@pytest.fixture(autouse=True)
def _keep_spent_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep (every 0.5 s here) removes a verified task's checkpoints, whose marks the
    tests read once it is verified: it removes them at the scenario's end instead."""
    monkeypatch.setattr(housekeeping, "drop_spent_checkpoints", lambda *_, **__: 0)


def _drop_spent(coordinator: Coordinator) -> int:
    """Remove the spent checkpoints as the sweep does; return how many."""
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            return DROP_SPENT(session, coordinator.app.state.checkpoint_store)
    finally:
        engine.dispose()


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


def segment_skipping_client(root: Path) -> type[CoordinatorClient]:
    """Return a modified agent's client: it runs a job that skips steps 220 to 229's updates."""
    job = root / "skipping-job"
    job.mkdir()
    for path in EXAMPLE.iterdir():
        if path.is_file():
            (job / path.name).write_bytes(path.read_bytes())
    code = (job / "job.py").read_text()
    honest = "        optimizer.step()\n        step += 1\n"
    assert honest in code
    skipping = (
        f"        if not {SKIPPED[0]} <= step < {SKIPPED[1]}:\n"
        "            optimizer.step()\n        step += 1\n"
    )
    (job / "job.py").write_text(code.replace(honest, skipping))
    ref = pack_job(job, root / "skipping-artifacts")
    path = artifact_path(root / "skipping-artifacts", ref.sha256)

    class SegmentSkippingClient(CoordinatorClient):
        """Swaps the leased job for its own, which skips ten updates after step 220."""

        async def claim(
            self, device_id: str, token: str, request: v1.ClaimRequest
        ) -> v1.ClaimResponse:
            """Take the leases, and run the modified job in each."""
            answer = await super().claim(device_id, token, request)
            leases = [lease.model_copy(update={"artifact": ref}) for lease in answer.leases]
            return answer.model_copy(update={"leases": leases})

        async def fetch_artifact(
            self,
            sha256: str,
            dest_dir: Path,
            *,
            token: str | None = None,
            max_bytes: int = MAX_ARTIFACT_BYTES,
        ) -> Path:
            """Hand out the modified job's artifact."""
            if sha256 == ref.sha256:
                return path
            return await super().fetch_artifact(sha256, dest_dir, token=token, max_bytes=max_bytes)

    return SegmentSkippingClient


def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def _attempts(coordinator: Coordinator, task_id: str) -> list[tuple[str, str | None, Any, Any]]:
    """Return each reported attempt's device, verdict, result and start mark, in order."""
    rows = coordinator.query(
        "SELECT device_id, verdict, result, start_mark FROM task_attempts "
        "WHERE task_id = ? AND result IS NOT NULL ORDER BY attempt",
        task_id,
    )
    return [
        (device_id, verdict, _json(text), _json(mark)) for device_id, verdict, text, mark in rows
    ]


async def _scenario(root: Path, cheat: type[CoordinatorClient]) -> dict[str, Any]:
    """Run the cheat alone until it reported, then two honest heaters; check the common end."""
    artifact = pack(EXAMPLE, root / "artifacts")
    async with Coordinator(root, owners=OWNERS, verify_results=True) as coordinator:
        (task_id,) = await coordinator.submit(
            artifact, [{"epochs": EPOCHS, "checkpoint_every": EVERY}], verify_rel_l2=VERIFY_REL_L2
        )

        def state() -> str:
            return str(coordinator.task(task_id)["state"])

        async with agent(coordinator, root, "mallory", owner="mallory", client_class=cheat):
            await until(lambda: state() == "reported", "the cheat reported its result")
        async with (
            agent(coordinator, root, "bob", owner="bob"),
            agent(coordinator, root, "dave", owner="dave"),
        ):
            await until(lambda: state() == "verified", "the task was verified")
        task = coordinator.task(task_id)
        devices = dict(
            coordinator.query(
                "SELECT accounts.name, devices.id FROM devices "
                "JOIN accounts ON accounts.id = devices.owner_id"
            )
        )
        attempts = _attempts(coordinator, task_id)
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
        held_micro_eur = coordinator.query(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries "
            "WHERE account LIKE 'held:%' AND unit = 'micro_eur'"
        )[0][0]
        dropped = _drop_spent(coordinator)  # verified: no replay or resume needs them
        left = coordinator.query("SELECT seq FROM checkpoints WHERE task_id = ?", task_id)
        blobs = list((root / "checkpoints" / task_id).glob("*.ckpt"))

    assert task["state"] == "verified", task
    result = json.loads(task["result"])
    assert result["steps"] == STEPS
    assert result["test_accuracy"] >= 0.9, result
    honest = {devices["bob"], devices["dave"]}
    cheated = [run for run in attempts if run[0] == devices["mallory"]]
    assert [verdict for _, verdict, _, _ in cheated] == ["caught"]
    # the replays of the cheat's result were checked against each other: both paid
    assert [verdict for _, verdict, _, _ in attempts[1:3]] == ["verified", "verified"]
    assert {device for device, _, _, _ in attempts[1:3]} == honest
    # the rerun from scratch is checked or not as the spot-check draw of its device's
    # reputation falls (core.trust.needs_replica). Checked: it and its replica agree and are
    # paid. Unchecked: it verifies its task alone and its credit stays held until a later
    # check of its device passes (core.trust.held_fate), so the held account still has it.
    reruns = attempts[3:]
    assert reruns
    assert {device for device, _, _, _ in reruns} <= honest
    if len(reruns) == 1:
        assert reruns[0][1] == "held", reruns
        assert held_micro_eur > 0
    else:
        assert [verdict for _, verdict, _, _ in reruns] == ["verified"] * len(reruns), reruns
        assert held_micro_eur == 0
    # every whole result of an honest heater is the agreed one
    assert {
        run["weights_sha256"]
        for device, _, run, _ in attempts
        if device in honest and "weights_sha256" in run
    } == {result["weights_sha256"]}
    assert quarantine is not None
    assert "wrong result" in quarantine
    assert "replayed" in quarantine
    forfeited = {device_id for kind, device_id in closed if kind == "result_caught"}
    paid = {device_id for kind, device_id in closed if kind == "result_verified"}
    assert forfeited == {devices["mallory"]}
    assert paid == honest
    assert unbalanced == []
    assert (dropped, left, blobs) == (len(marks), [], [])
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
    # each replayer said what it restored from the cheat's checkpoint (ctx.restored): its
    # mark there (the cheat's blobs are its own states; its results are what is wrong)
    for _, _, _, start in attempts[1:3]:
        assert start is not None
        restored = TensorFingerprintBody.model_validate(start["fingerprint"]).core()
        claimed = by_step[start["step"]][devices["mallory"]]
        assert restored.values_sha256 == claimed.values_sha256  # a restore is exact
    return {
        "result": result,
        "cheated": cheated[0][2],
        "replays": [run for device, _, run, _ in attempts[1:3]],  # the first round's replayers
        "by_step": by_step,
        "mallory": devices["mallory"],
    }


def test_a_heater_that_stops_training_early_is_caught_by_the_tail_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verification, "_replay_draw", lambda: TAIL_DRAW)
    seen = asyncio.run(asyncio.wait_for(_scenario(tmp_path, SkippingClient), 500.0))
    short, result = seen["cheated"], seen["result"]
    assert short["steps"] * 2 == result["steps"]  # the cheat really trained half the steps
    assert short["weights_sha256"] != result["weights_sha256"]
    agreed = TensorFingerprintBody.model_validate(result["tensor_fingerprint"]).core()
    skipped = TensorFingerprintBody.model_validate(short["tensor_fingerprint"]).core()
    assert not fingerprints_agree(skipped, agreed, VERIFY_REL_L2)
    assert fingerprint_rel_l2(skipped, agreed) > 100 * VERIFY_REL_L2
    # the tail replays resumed from the cheat's last checkpoint and ran to the task's end
    assert [run["steps"] for run in seen["replays"]] == [STEPS, STEPS]
    assert [run["resumed_from_step"] for run in seen["replays"]] == [STEPS // 2, STEPS // 2]


def test_a_heater_that_skips_steps_inside_a_segment_is_caught_by_replaying_that_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[int, int]] = []

    def covering_the_skip(
        steps: Sequence[int], draw: float, startable: Sequence[bool] | None = None
    ) -> ReplaySegment | None:
        """The real rule, with the draw that lands on the segment holding steps 220 to 229.

        Which checkpoints a heater uploads depends on timing (it sends the newest), so the
        chain (and the draw that picks a given segment) is not known in advance.
        """
        for i in range(400):
            segment = REPLAY_SEGMENT(steps, (i + 0.5) / 400, startable)
            start = 0 if segment is None or segment.start is None else steps[segment.start]
            if segment is not None and start <= SKIPPED[0] and steps[segment.end] >= SKIPPED[1]:
                drawn.append((start, steps[segment.end]))
                return segment
        return REPLAY_SEGMENT(steps, draw, startable)

    monkeypatch.setattr(verification.fingerprint, "replay_segment", covering_the_skip)
    seen = asyncio.run(
        asyncio.wait_for(_scenario(tmp_path, segment_skipping_client(tmp_path)), 500.0)
    )
    cheated = seen["cheated"]
    assert cheated["steps"] == STEPS  # it claims the whole training
    assert cheated["weights_sha256"] != seen["result"]["weights_sha256"]
    # each replayer ran one segment of the cheat's chain, not the task, and reported its end
    assert drawn, "no segment that can be replayed holds the skipped steps"
    start, stop = drawn[0]
    assert stop - start < STEPS
    assert [sorted(run) for run in seen["replays"]] == [["replay_step", "tensor_fingerprint"]] * 2
    assert [run["replay_step"] for run in seen["replays"]] == [stop, stop]
    replayed = [
        TensorFingerprintBody.model_validate(run["tensor_fingerprint"]).core()
        for run in seen["replays"]
    ]
    claimed = seen["by_step"][stop][seen["mallory"]]
    assert all(not fingerprints_agree(claimed, mine, VERIFY_REL_L2) for mine in replayed)
    assert fingerprints_agree(replayed[0], replayed[1], VERIFY_REL_L2)
