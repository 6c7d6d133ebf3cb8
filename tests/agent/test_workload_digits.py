"""The PyTorch example on heaters: it pauses in a warm room, migrates, and still learns.

Two in-process agents (real daemons, real sandbox) and the real coordinator, as in
``test_workload.py``. ``examples/digits`` starts on the first heater; once it has uploaded a
checkpoint, that room turns warm: the task is asked to pause, checkpoints, is handed back and
resumes on the second heater from the checkpoint taken when it paused, then completes with a
test accuracy of at least 0.95. Skipped where PyTorch or scikit-learn is not installed (the
``ml`` extra: ``pip install torch==2.13.0``, then ``pip install heatgrid[ml]``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
from tests.agent.jobs_fleet import COLD_C, WARM_C, Coordinator, agent, pack, until

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("sandbox_ready"),
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("sklearn") is None,
        reason="PyTorch and scikit-learn are not installed (the ml extra: torch==2.13.0 CPU)",
    ),
]


async def _scenario(root: Path) -> None:
    artifact = pack(EXAMPLE, root / "artifacts")
    async with Coordinator(root) as coordinator:
        # 40 epochs (1,800 steps): still running when the room turns warm on a slow machine,
        # where the heater uploads only its newest checkpoint and so lags behind the job
        (task_id,) = await coordinator.submit(artifact, [{"epochs": 40}])
        async with (
            agent(coordinator, root, "a", hand_back_after_s=1.0) as first,
            agent(coordinator, root, "b", room_temp_c=WARM_C) as second,  # starts on "a"
        ):
            await until(lambda: coordinator.task(task_id)["checkpoint_seq"] >= 1, "a checkpoint")
            second.room_temp_c[0] = COLD_C
            first.room_temp_c[0] = WARM_C
            await until(lambda: first.workload.finished, "the first heater handed the task back")
            await until(lambda: second.workload.finished, "the task ended on the second heater")
        task = coordinator.task(task_id)
    (handed,) = first.workload.finished
    assert handed.reported == "handed back"
    paused = handed.outcomes[-1]
    assert paused.state == "paused", paused
    result = json.loads(task["result"])
    assert task["state"] == "completed", task
    assert result["test_accuracy"] >= 0.95, result
    assert result["resumed_from_step"] >= paused.metrics["step"], "no step lost at the pause"
    assert second.workload.finished[0].reported == "completed"


def test_digits_pauses_in_a_warm_room_and_completes_on_another_heater(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_scenario(tmp_path), 500.0))
