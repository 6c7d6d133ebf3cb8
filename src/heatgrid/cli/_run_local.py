"""``heatgrid jobs run-local DIR``: run one task of a job here, exactly as a heater would.

The job is packed into its artifact, checked and unpacked, and its task runs through the very
runner and sandbox (bubblewrap, cgroups) that the agent uses, with no coordinator. Checkpoints
are kept in the state directory, so a second run resumes where the first stopped.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from heatgrid.cli._database import AsJson
from heatgrid.cli._submit_dir import split_inputs
from heatgrid.cli._url_inputs import read_for_packing, split_by_reader
from heatgrid.core.errors import InputError
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.cgroups import CgroupUnavailableError
from heatgrid.jobs.manifest import load_manifest
from heatgrid.jobs.params import load_grid
from heatgrid.jobs.runner import DEFAULT_CORE_POWER_W, RunLimits, TaskRunner
from heatgrid.jobs.sandbox import SandboxUnavailableError
from heatgrid.protocol.jobs import TaskRun, TaskRunOutcome

__all__ = ["parse_duration_s", "parse_size_bytes", "run_local"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_DURATION_UNITS = {"": 1.0, "S": 1.0, "M": 60.0, "H": 3600.0}
_J_PER_WH = 3600.0


def parse_size_bytes(text: str, option: str) -> int:
    """Return a size such as ``512M``, ``1G``, ``2048K`` or ``1000000`` in bytes (1024-based)."""
    match = _SIZE.match(text)
    if match is None:
        raise InputError(f"{option}: {text!r} is not a size (such as 512M, 2G or 1048576)")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if size <= 0:
        raise InputError(f"{option}: {text!r} must be greater than 0")
    return size


def parse_duration_s(text: str, option: str) -> float:
    """Return a duration such as ``90``, ``90s``, ``10m`` or ``2h`` in seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(f"{option}: {text!r} is not a duration (such as 90s, 10m or 2h)")
    duration_s = float(match.group(1)) * _DURATION_UNITS[match.group(2).upper()]
    if duration_s <= 0:
        raise InputError(f"{option}: {text!r} must be greater than 0")
    return duration_s


def _params(grid_file: Path | None, task_index: int) -> dict[str, object]:
    if grid_file is None:
        if task_index != 0:
            raise InputError(f"--task {task_index}: without --param-grid a job has one task, 0")
        return {}
    grid = load_grid(grid_file)
    if not 0 <= task_index < len(grid):
        raise InputError(f"--task {task_index}: the grid has tasks 0 to {len(grid) - 1}")
    return grid[task_index]


def run_local(
    job_dir: Annotated[Path, typer.Argument(help="The job directory (job.py defines main(ctx)).")],
    *,
    task: Annotated[int, typer.Option("--task", help="Which task of the grid to run.")] = 0,
    param_grid: Annotated[
        Path | None,
        typer.Option(
            "--param-grid",
            help="JSON: a list of parameter objects (one per task), or an object of lists "
            "whose product is the grid.",
        ),
    ] = None,
    input_files: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="An input as NAME=PATH or NAME=URL (repeatable); an s3:// (any fsspec) URL "
            "is read here, an https:// one with #sha256= fetched as a heater would.",
        ),
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="Memory limit, e.g. 512M (job.toml's).")
    ] = None,
    disk_limit: Annotated[
        str | None, typer.Option("--disk-limit", help="Job directory limit, e.g. 1G (job.toml's).")
    ] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time-limit", help="Running-time limit, e.g. 90s, 10m, 2h.")
    ] = None,
    max_processes: Annotated[
        int | None, typer.Option("--max-processes", help="Process limit (job.toml's).")
    ] = None,
    pause_after: Annotated[
        str | None,
        typer.Option("--pause-after", help="Ask the task to pause after this long, as a heater."),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Where artifacts, checkpoints and outputs are kept."),
    ] = Path(".heatgrid-local"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Forget the task's checkpoints; start over.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, or cuda to give it a GPU.")] = "cpu",
    core_power_w: Annotated[
        float,
        typer.Option("--core-power-w", help="Power of one busy CPU core, for the energy [W]."),
    ] = DEFAULT_CORE_POWER_W,
    as_json: AsJson = False,
) -> None:
    """Run one task of a job here, in the sandbox a heater uses; print how it ended."""
    if device not in {"cpu", "cuda"}:
        raise InputError(f"--device must be cpu or cuda, got {device!r}")
    if not (core_power_w > 0 and core_power_w < 1000):
        raise InputError(f"--core-power-w must be between 0 and 1000 W, got {core_power_w}")
    if task < 0:
        raise InputError(f"--task must be 0 or more, got {task}")
    resources = load_manifest(job_dir).resources
    limits = RunLimits(
        memory_bytes=parse_size_bytes(memory_limit, "--memory-limit")
        if memory_limit
        else resources.memory_mb * 2**20,
        disk_bytes=parse_size_bytes(disk_limit, "--disk-limit")
        if disk_limit
        else resources.disk_mb * 2**20,
        max_processes=max_processes if max_processes is not None else resources.max_processes,
        time_s=parse_duration_s(time_limit, "--time-limit") if time_limit else None,
    )
    if limits.max_processes < 4:
        raise InputError(f"--max-processes must be 4 or more, got {limits.max_processes}")
    pause_after_s = parse_duration_s(pause_after, "--pause-after") if pause_after else None
    params = _params(param_grid, task)
    local_inputs, urls = split_inputs(input_files or [], dict(load_manifest(job_dir).inputs))
    read_here, fetched = split_by_reader(urls)
    local_inputs |= read_for_packing(read_here, state_dir / "inputs-read")
    ref = pack_job(job_dir, state_dir / "artifacts", inputs=local_inputs, unpacked=set(urls))
    url_inputs = _fetched_url_inputs(fetched, state_dir, limits.disk_bytes)
    checkpoint_dir = state_dir / "checkpoints" / f"{ref.sha256[:16]}-task-{task}"
    output_dir = state_dir / "outputs" / f"task-{task}"
    if fresh:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    shutil.rmtree(output_dir, ignore_errors=True)
    runner = TaskRunner(
        artifact_path(state_dir / "artifacts", ref.sha256),
        TaskRun(artifact=ref, task_index=task, params=params, device=device),  # type: ignore[arg-type]
        checkpoint_dir=checkpoint_dir,
        output_dir=output_dir,
        limits=limits,
        work_root=state_dir / "work",
        core_power_w=core_power_w,
        inputs=url_inputs,
    )
    timer = threading.Timer(pause_after_s, runner.request_pause) if pause_after_s else None
    if timer is not None:
        timer.start()
    try:
        outcome = _run(runner)
    finally:
        if timer is not None:
            timer.cancel()
    if as_json:
        body = outcome.model_dump(mode="json") | {
            "artifact_sha256": ref.sha256,
            "checkpoint_dir": str(checkpoint_dir),
            "output_dir": str(output_dir),
            "core_power_w": core_power_w,
            "log_tail": runner.log_tail,
        }
        typer.echo(json.dumps(body))
    else:
        _print(outcome, runner.log_tail, checkpoint_dir, output_dir, core_power_w)
    if outcome.state not in {"completed", "paused"}:
        raise typer.Exit(1)


def _fetched_url_inputs(urls: dict[str, str], state_dir: Path, max_bytes: int) -> dict[str, Path]:
    """Fetch the ``http(s)://`` inputs and check their hashes, as a heater would.

    Private addresses are allowed: this is the customer's own machine, not a heater's home.
    """
    if not urls:
        return {}
    from heatgrid.agent.inputs import fetch_inputs  # noqa: PLC0415 - httpx only when needed

    return asyncio.run(
        fetch_inputs(urls, state_dir / "inputs", max_bytes=max_bytes, allow_private=True)
    )


def _run(runner: TaskRunner) -> TaskRunOutcome:
    try:
        return runner.run()
    except (CgroupUnavailableError, SandboxUnavailableError) as error:
        Console(stderr=True).print(
            f"[bold red]error:[/] cannot run a task here: {escape(str(error))}", highlight=False
        )
        raise typer.Exit(1) from error


def _print(
    outcome: TaskRunOutcome,
    log_tail: str,
    checkpoint_dir: Path,
    output_dir: Path,
    core_power_w: float,
) -> None:
    console = Console(highlight=False, soft_wrap=True)
    colour = {"completed": "green", "paused": "yellow"}.get(outcome.state, "red")
    said = "" if outcome.message in {"", outcome.state} else f": {escape(outcome.message)}"
    console.print(f"[bold {colour}]{outcome.state}[/]{said}")
    if outcome.result is not None:
        console.print(f"result: {escape(json.dumps(outcome.result))}")
    metrics = ", ".join(f"{name}={value:g}" for name, value in outcome.metrics.items())
    if outcome.fraction == 0.0 and not metrics:
        console.print("progress: none reported (the job never called ctx.progress)")
    else:
        console.print(
            f"progress: {outcome.fraction:.0%}" + (f" ({escape(metrics)})" if metrics else "")
        )
    if outcome.checkpoint_seq is not None:
        console.print(
            f"checkpoints: {outcome.checkpoint_count} saved this run, newest #"
            f"{outcome.checkpoint_seq} in {checkpoint_dir}"
        )
    else:
        console.print("checkpoints: none")
    for output in outcome.outputs:
        console.print(f"output: {output_dir / output.path} ({output.size_bytes} bytes)")
    how = {
        "rapl": "metered: the CPU packages' RAPL counters, the task's share by CPU time",
        "nvml": "metered: the GPU's energy counter, plus the CPU part",
        "cpu_time_estimate": f"CPU time x {core_power_w:g} W per busy core, an assumption: "
        "set --core-power-w",
    }[outcome.energy_method]
    console.print(
        f"time: {outcome.wall_s:.1f} s running, {outcome.cpu_s:.1f} s of CPU; energy about "
        f"{outcome.energy_j / _J_PER_WH:.3f} Wh ({how})"
    )
    if outcome.state not in {"completed", "paused"} and log_tail.strip():
        console.print("the task printed (last lines):")
        console.print(escape("\n".join(log_tail.strip().splitlines()[-20:])))
