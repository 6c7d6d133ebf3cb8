"""The example jobs in examples/, run end to end through run-local and the runner's sandbox.

digits: the final weights (a digest over tensor values) are the same through run-local, in a
plain Python process without heatgrid, and after a pause and a resume from a checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heatgrid.cli.main import main
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.runner import RunLimits, TaskRunner
from heatgrid.protocol.jobs import TaskRun, TaskRunOutcome, TaskRunProgress

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.usefixtures("sandbox_ready")


def _run_local(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code = main(["jobs", "run-local", *args, "--state-dir", str(tmp_path / "state"), "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0, body
    return body


def _interrupted_then_resumed(
    tmp_path: Path, job_dir: Path, params: dict[str, object], pause_when: str, at: float
) -> tuple[TaskRunOutcome, TaskRunOutcome]:
    """Run a task, pause it once its metric ``pause_when`` reaches ``at``, then resume it."""
    ref = pack_job(job_dir, tmp_path / "store")

    def runner() -> TaskRunner:
        return TaskRunner(
            artifact_path(tmp_path / "store", ref.sha256),
            TaskRun(artifact=ref, params=params),
            checkpoint_dir=tmp_path / "checkpoints",
            output_dir=tmp_path / "outputs",
            limits=RunLimits(memory_bytes=1 << 30, disk_bytes=256 << 20, max_processes=64),
            work_root=tmp_path / "work",
        )

    first = runner()

    def pause(progress: TaskRunProgress) -> None:
        if progress.metrics.get(pause_when, 0.0) >= at:
            first.request_pause()

    first.on_progress = pause
    paused = first.run()
    return paused, runner().run()


PLAIN_RUN = """
import json, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import job

class Ctx:  # the least a job needs, with no heatgrid at all: no checkpoints, no pausing
    params, device, task_index, inputs = {}, "cpu", 0, {}
    output_dir = Path(sys.argv[2])
    def restore(self): return None
    def should_pause(self): return False
    def checkpoint(self, state, step=None, fingerprint=None): return 0
    def tensor_fingerprint(self, tensors): return None  # (what verification compares)
    def progress(self, fraction, metrics=None): pass

print(json.dumps(job.main(Ctx())))
"""


def _without_heatgrid(job_dir: Path, out_dir: Path) -> str:
    """Run the job's main in a plain Python process; return its weights digest."""
    out_dir.mkdir(parents=True)
    answer = subprocess.run(
        [sys.executable, "-c", PLAIN_RUN, str(job_dir), str(out_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=out_dir,
    )
    return str(json.loads(answer.stdout.splitlines()[-1])["weights_sha256"])


def test_the_sweep_gives_a_checkable_result(tmp_path, capsys) -> None:
    job = EXAMPLES / "sweep"
    body = _run_local(
        tmp_path, capsys, str(job), "--param-grid", str(job / "grid.json"), "--task", "1"
    )
    result = body["result"]
    assert (result["seed"], result["samples"]) == (0, 4_000_000)
    points = np.random.Generator(np.random.PCG64(0)).random((4_000_000, 2))
    assert result["hits"] == int(np.count_nonzero((points**2).sum(axis=1) <= 1.0))
    assert abs(result["pi_estimate"] - math.pi) < 5 * result["standard_error"]
    paused, resumed = _interrupted_then_resumed(  # paused at the first report of 200
        tmp_path, job, {"seed": 0, "samples": 4_000_000, "chunk": 20_000}, "samples", 1
    )
    assert paused.state == "paused", paused.message
    assert resumed.state == "completed", resumed.message
    assert resumed.result == result  # the same hits, though drawn in other chunks


@pytest.mark.slow
def test_digits_trains_and_resumes_to_the_same_weights(tmp_path, capsys) -> None:
    missing = [name for name in ("torch", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        if os.environ.get("HEATGRID_REQUIRE_SERVICES"):
            pytest.fail(f"the ml extra is required here (HEATGRID_REQUIRE_SERVICES=1): {missing}")
        pytest.skip(f"the ml extra is not installed (pip install heatgrid[ml]): {missing}")
    job = EXAMPLES / "digits"
    straight = _run_local(tmp_path / "straight", capsys, str(job))
    assert straight["state"] == "completed"
    result = straight["result"]
    assert result["test_accuracy"] >= 0.95
    assert result["resumed_from_step"] is None
    assert {output["path"] for output in straight["outputs"]} == {"metrics.txt", "model.pt"}
    assert straight["checkpoint_seq"] >= 10
    assert _without_heatgrid(job, tmp_path / "plain") == result["weights_sha256"]
    paused, resumed = _interrupted_then_resumed(tmp_path / "interrupted", job, {}, "step", 400)
    assert paused.state == "paused", paused.message
    assert resumed.state == "completed", resumed.message
    assert resumed.result is not None
    assert resumed.result["resumed_from_step"] >= 400
    assert resumed.result["weights_sha256"] == result["weights_sha256"]
    assert resumed.result["test_accuracy"] == result["test_accuracy"]
