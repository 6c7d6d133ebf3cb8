"""A checkpoint's training step and tensor fingerprint, from the task in the real sandbox to the
runner's checkpoint directory (``N.mark.json`` beside ``N.ckpt``), where the agent reads them to
upload with the checkpoint; a malformed fingerprint stops the task with a clear message. The
same for the state a resumed task restored (``N.restored.json``, from ``ctx.restored``)."""

from __future__ import annotations

import json

from heatgrid.jobs.runner import MARK_SUFFIX, RESTORED_SUFFIX
from heatgrid.jobs.sdk import encode_checkpoint, tensor_fingerprint
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


_RESUMING = """
    import numpy as np

    def main(ctx):
        state = ctx.restore()
        weights = {"w": np.full(50, float(state["step"]), dtype=np.float32)}
        ctx.restored(step=state["step"], fingerprint=ctx.tensor_fingerprint(weights))
        ctx.restored(step=0, fingerprint=ctx.tensor_fingerprint(weights))  # once counts
        ctx.checkpoint({"step": 200}, step=200, fingerprint=ctx.tensor_fingerprint(weights))
        return {"steps": 200}
"""


def test_the_state_a_task_restored_is_kept_beside_the_checkpoint_it_came_from(jobs) -> None:
    """``ctx.restored`` of a run that resumed from checkpoint 7: ``7.restored.json`` (the
    agent sends it with the result; a segment replay's start is checked by it)."""
    runner = jobs.runner(jobs.write(_RESUMING))
    runner.checkpoint_dir.mkdir(parents=True)
    (runner.checkpoint_dir / "7.ckpt").write_bytes(encode_checkpoint({"step": 100}))
    outcome = runner.run()
    assert outcome.state == "completed", outcome.message
    assert outcome.checkpoint_seq == 8
    mark = CheckpointMark.model_validate_json(
        (runner.checkpoint_dir / f"7{RESTORED_SUFFIX}").read_text()
    )
    assert mark.step == 100
    import numpy as np  # noqa: PLC0415 - as the job computed it, in the sandbox

    expected = tensor_fingerprint({"w": np.full(50, 100.0, dtype=np.float32)})
    assert mark.fingerprint is not None
    assert json.loads(mark.fingerprint.model_dump_json()) == expected
    assert sorted(path.name for path in runner.checkpoint_dir.glob(f"*{RESTORED_SUFFIX}")) == [
        f"7{RESTORED_SUFFIX}"
    ]


def test_a_restored_state_without_its_fingerprint_stops_the_task(jobs) -> None:
    runner = jobs.runner(
        jobs.write(
            """
            def main(ctx):
                ctx.restore()
                ctx._send({"type": "restored", "step": 100})  # past the SDK's own checks
                return {}
            """
        )
    )
    runner.checkpoint_dir.mkdir(parents=True)
    (runner.checkpoint_dir / "1.ckpt").write_bytes(encode_checkpoint({"step": 100}))
    outcome = runner.run()
    assert outcome.state == "killed"
    assert "restored state: the step and the fingerprint are needed" in outcome.message
