"""A checkpoint's training step and tensor fingerprint, from the task in the real sandbox to the
runner's checkpoint directory (``N.mark.json`` beside ``N.ckpt``), where the agent reads them to
upload with the checkpoint; a malformed fingerprint stops the task with a clear message."""

from __future__ import annotations

import json

from heatgrid.jobs.runner import MARK_SUFFIX
from heatgrid.jobs.sdk import tensor_fingerprint
from heatgrid.protocol.jobs import CheckpointMark

_TRAINING = """
    import numpy as np

    def main(ctx):
        weights = {"w": np.zeros(50, dtype=np.float32)}
        for step in (100, 200, 300):
            weights["w"] += 1.0
            ctx.checkpoint(
                {"step": step}, step=step, fingerprint=ctx.tensor_fingerprint(weights)
            )
        return {"steps": 300}
"""


def test_each_checkpoint_keeps_its_step_and_fingerprint_beside_it(jobs) -> None:
    runner = jobs.runner(jobs.write(_TRAINING))
    outcome = runner.run()
    assert outcome.state == "completed", outcome.message
    assert outcome.checkpoint_seq == 3
    marks = sorted(path.name for path in runner.checkpoint_dir.glob(f"*{MARK_SUFFIX}"))
    assert marks == [f"2{MARK_SUFFIX}", f"3{MARK_SUFFIX}"]  # pruned with their checkpoints
    mark = CheckpointMark.model_validate_json(
        (runner.checkpoint_dir / f"3{MARK_SUFFIX}").read_text()
    )
    assert mark.step == 300
    assert mark.fingerprint is not None
    import numpy as np  # noqa: PLC0415 - as the job computed it, in the sandbox

    expected = tensor_fingerprint({"w": np.full(50, 3.0, dtype=np.float32)})
    assert json.loads(mark.fingerprint.model_dump_json()) == expected


def test_a_malformed_fingerprint_stops_the_task(jobs) -> None:
    outcome = jobs.run(
        """
        def main(ctx):
            ctx.checkpoint({}, step=1, fingerprint={"values_sha256": "0" * 64, "count": 1,
                                                    "norm": 1.0, "sketch": [1.0]})
            return {}
        """
    )
    assert outcome.state == "killed"
    assert "checkpoint 1: a malformed step or fingerprint" in outcome.message
    assert "sketch" in outcome.message
