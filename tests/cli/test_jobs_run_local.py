"""``heatgrid jobs run-local``: one task through the agent's runner and sandbox, no coordinator."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from heatgrid.cli.main import main
from heatgrid.jobs.energy import RaplReader

pytestmark = pytest.mark.usefixtures("sandbox_ready")

STEPS = """
import time

def main(ctx):
    state = ctx.restore() or {"step": 0, "started_from": 0}
    state["started_from"] = state["step"]
    while state["step"] < 100:
        if ctx.should_pause():
            ctx.checkpoint(state)
            return None
        state["step"] += 1
        if state["step"] % 10 == 0:
            ctx.checkpoint(state)
        ctx.progress(state["step"] / 100, {"step": state["step"]})
        time.sleep(0.03)
    (ctx.output_dir / "report.txt").write_text(f"{state['step']} steps\\n")
    return {"steps": state["step"], "started_from": state["started_from"], **ctx.params}
"""


def _job(tmp_path: Path, source: str, toml: str = "") -> Path:
    job = tmp_path / "job"
    job.mkdir(exist_ok=True)
    (job / "job.py").write_text(textwrap.dedent(source))
    if toml:
        (job / "job.toml").write_text(toml)
    return job


def _run(tmp_path: Path, *args: str) -> int:
    return main(["jobs", "run-local", *args, "--state-dir", str(tmp_path / "state")])


def test_run_local_prints_state_outputs_checkpoints_and_energy(tmp_path, capsys) -> None:
    job = _job(tmp_path, STEPS)
    assert _run(tmp_path, str(job)) == 0
    text = capsys.readouterr().out
    assert text.startswith("completed\n")  # the state, not "completed: completed"
    assert "progress: 100% (step=100)" in text
    assert 'result: {"steps": 100, "started_from": 0}' in text
    assert "checkpoints: 10 saved this run, newest #10" in text
    assert "report.txt (10 bytes)" in text
    assert "of CPU; energy about" in text
    # metered where this host's RAPL counters are readable, else the stated estimate
    assert (
        "metered: the CPU packages' RAPL" if RaplReader().available else "14 W per busy core"
    ) in text


def test_run_local_pauses_and_a_second_run_resumes(tmp_path, capsys) -> None:
    job = _job(tmp_path, STEPS)
    assert _run(tmp_path, str(job), "--pause-after", "0.5s", "--json") == 0
    paused = json.loads(capsys.readouterr().out)
    assert paused["state"] == "paused"
    assert paused["message"].startswith("paused when asked; it resumes from checkpoint")
    assert _run(tmp_path, str(job), "--json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["state"] == "completed", done["message"]
    assert done["result"]["steps"] == 100
    assert done["result"]["started_from"] == paused["metrics"].get("step", 0)
    assert done["outputs"][0]["path"] == "report.txt"
    assert _run(tmp_path, str(job), "--json", "--fresh") == 0
    assert json.loads(capsys.readouterr().out)["result"]["started_from"] == 0


def test_run_local_gives_a_task_its_point_of_the_grid(tmp_path, capsys) -> None:
    job = _job(tmp_path, "def main(ctx):\n    return {'params': ctx.params, 'i': ctx.task_index}\n")
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"lr": [0.1, 0.01], "seed": [1, 2]}))
    assert _run(tmp_path, str(job), "--param-grid", str(grid), "--task", "3", "--json") == 0
    assert json.loads(capsys.readouterr().out)["result"] == {
        "params": {"lr": 0.01, "seed": 2},
        "i": 3,
    }


def test_run_local_keeps_the_sandbox(tmp_path, capsys) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    secret = tmp_path / "agent-token"
    secret.write_text("SECRET")
    source = f"""
    import socket

    def main(ctx):
        out = {{}}
        try:
            socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=2)
            out["connect"] = "connected"
        except OSError as error:
            out["connect"] = str(error)
        try:
            out["secret"] = open({str(secret)!r}).read()
        except OSError as error:
            out["secret"] = type(error).__name__
        return out
    """
    try:
        assert _run(tmp_path, str(_job(tmp_path, source)), "--json") == 0
    finally:
        server.close()
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["connect"] != "connected"
    assert result["secret"] == "FileNotFoundError"


def test_a_failing_task_exits_1_with_its_error(tmp_path, capsys) -> None:
    job = _job(tmp_path, "def main(ctx):\n    print('about to fail')\n    raise KeyError('lr')\n")
    assert _run(tmp_path, str(job)) == 1
    out = capsys.readouterr().out
    assert "failed: job:main raised" in out
    assert "KeyError: 'lr'" in out


def test_a_task_over_its_memory_limit_is_named(tmp_path, capsys) -> None:
    job = _job(tmp_path, "def main(ctx):\n    hog = bytearray(400 << 20)\n    return {}\n")
    assert _run(tmp_path, str(job), "--memory-limit", "128M", "--json") == 1
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["state"] == "out_of_memory"
    assert "memory limit of 128 MiB" in outcome["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "is not a directory"),
        (["{job}", "--memory-limit", "lots"], "--memory-limit: 'lots' is not a size"),
        (["{job}", "--time-limit", "-3"], "--time-limit: '-3' is not a duration"),
        (["{job}", "--task", "2"], "--task 2: without --param-grid a job has one task, 0"),
        (["{job}", "--param-grid", "{grid}", "--task", "9"], "the grid has tasks 0 to 1"),
        (["{job}", "--param-grid", "{job}/job.py"], "is not JSON"),
        (["{job}", "--input", "nameonly"], "--input: 'nameonly' is not NAME=PATH"),
        (["{job}", "--input", "x={missing}"], "input 'x'"),
        (["{job}", "--device", "tpu"], "--device must be cpu or cuda"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, args, message) -> None:
    job = _job(tmp_path, "def main(ctx):\n    return {}\n")
    grid = tmp_path / "grid.json"
    grid.write_text('[{"a": 1}, {"a": 2}]')
    names = {"job": str(job), "missing": str(tmp_path / "missing"), "grid": str(grid)}
    assert _run(tmp_path, *[arg.format(**names) for arg in args]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_bad_job_toml_exits_2(tmp_path, capsys) -> None:
    job = _job(tmp_path, "def main(ctx):\n    return {}\n", "[resources]\nmemory_mb = -1\n")
    assert _run(tmp_path, str(job)) == 2
    assert "resources.memory_mb" in capsys.readouterr().err


def test_a_job_requiring_a_package_this_python_lacks_exits_2_before_it_runs(
    tmp_path, capsys
) -> None:
    job = _job(
        tmp_path,
        "def main(ctx):\n    (ctx.output_dir / 'ran').write_text('yes')\n    return {}\n",
        'requirements = ["numpy", "heatgrid-test-no-such-package>=2"]\n',
    )
    assert _run(tmp_path, str(job)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the Python that runs tasks here lacks what job.toml requires" in err
    assert "heatgrid-test-no-such-package>=2 (not installed)" in err
    assert not (tmp_path / "state" / "outputs" / "task-0" / "ran").exists()


def test_run_local_says_when_a_job_reported_no_progress(tmp_path, capsys) -> None:
    job = _job(tmp_path, "def main(ctx):\n    return {'ok': 1}\n")
    assert _run(tmp_path, str(job)) == 0
    text = capsys.readouterr().out
    assert text.startswith("completed\n")
    assert "progress: none reported (the job never called ctx.progress)" in text
    assert "progress: 0%" not in text
