"""Jobs on heaters: goodput under preemption, checkpoint overhead and resume latency.

One training job (``examples/digits``, PyTorch on CPU, one thread) runs, in the same run:

- ``plain``: the baseline, the job's ``main`` in a plain Python process with a bare context
  (``bench/_jobs_plain.py``): no sandbox, no cgroup, no runner, no checkpoints;
- ``heatgrid``: the same task through :class:`heatgrid.jobs.runner.TaskRunner`, exactly as the
  agent runs it (artifact checked by hash, bubblewrap sandbox, cgroup limits, the SDK's pipes),
  checkpointing every ``--checkpoint-interval-s`` of training (that many steps at the plain
  run's rate; the checkpoint is saved and hashed, then copied out, hashed and fsynced by the
  runner);
- ``heatgrid_no_checkpoints``: the same without checkpoints (the sandbox's own share);
- ``preempted``: the heatgrid run asked to pause at half its steps (a graceful preemption: it
  checkpoints and exits), then resumed from that checkpoint by a second runner with its own
  work and checkpoint directories (another heater), to the end;
- ``plain resume``: the baseline process started from the same checkpoint;
- ``interleaved``: ``--processes`` times, a fresh plain process and a fresh heatgrid task
  (checkpointing as ``heatgrid``) both started, then run in turn for ``--slice-s`` each,
  ``--slices`` pairs, the other one stopped meanwhile by the cgroup freezer (the plain process
  in a cgroup of its own; the task by the runner's duty 0), the order swapped every pair
  (ABBA). The two slices of a pair are a second or two apart, so a change of the cores' speed
  (neighbours' load, a host's virtual cores) that made whole runs differ by 25 % shifts both
  sides of a pair alike; fresh processes each time, since one process's own speed differs
  from another's by a few per cent for as long as it lives.

``plain`` and ``heatgrid`` alternate ``--repeats`` times and the best of each counts (the
machine is shared); beside it, each repeat's heatgrid run against the plain run just before it
(``paired_*``: medians of the per-pair ratios). Rates are steady training rates: steps between
the first progress report and the last one before the final step over the time between them,
so process start and imports, and the end of the run (the checkpoint at the final step), are
not in them; the steady CPU time per step over the same reports (the plain process's;
the task's cgroup's) is the load-robust twin of the rate. Every run must train with the same
number of torch threads (the job reports it), or the benchmark refuses to compare them.

Reported, each as a ratio against the baseline (and the CPU time of whole runs, which a
busy machine disturbs less than wall-clock rates):

- checkpoint overhead: ``1 - heatgrid rate / plain rate`` (checkpoints, sandbox and cgroup
  together); goal <= 1 %; beside it the checkpoints' own share, measured inside the task (the
  job's ``checkpoint_s`` metric: its time saving the state and fingerprint and in
  ``ctx.checkpoint``, over the same steady window's wall time), which the process pairs'
  spread of a few per cent does not blur;
- resume latency: from the second runner's start until training runs again (its first
  progress report, less the time of the steps it made before the report), against the plain
  process from the same checkpoint; goal <= 10 s plus the checkpoint download (not measured
  here: the checkpoint is a local file; its size is reported);
- goodput (useful steps over wall time) at one preemption per host-hour. The accelerated
  mapping: the preempted run has one preemption in about half a minute of wall time; each
  measured cost of that preemption (pause: ask to checkpoint until every process is gone;
  resume; steps lost and made again) is paid once per 3600 s and the steady overhead all the
  time: ``goodput = (heatgrid rate / plain rate) * (3600 - cost_s) / 3600``; goal >= 98 %.
  The short run's own goodput (one preemption in its wall time, two process starts against
  the baseline's one) is reported too.

The verdicts come from the interleaved slices: per slice pair, the heatgrid slice's steady
rate over the plain slice's (and the plain CPU time per step over the task cgroup's); per pair
of processes, the median of its slice pairs' ratios; over the pairs of processes, the
geometric mean of those medians with a 95 % confidence interval (Student's t on their logs:
the pair of processes is the unit, since its own speed difference is shared by all its
slices). A goal is ``met`` when the whole interval meets it, ``missed`` when the whole
interval misses it, and ``inconclusive`` only when the interval straddles it
(``checkpoint_overhead_verdict``, ``goodput_verdict``; ``*_from_cpu`` from the CPU ratios).
``conclusive`` is true when both rate goals have a verdict; the former rule (load under half
the cores, whole-run paired ratios within 0.02) is ``conclusive_by_spread``.

Usage: ``python bench/bench_jobs.py --out PATH [--epochs N] [--checkpoint-interval-s S]
[--repeats N] [--processes N] [--slices N] [--slice-s S]``. ``--out`` holds the runs measured so far
(``"partial": true``) until the result replaces it. Needs the ``ml`` extra (torch,
scikit-learn), bubblewrap and cgroups.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.cgroups import TaskCgroup, create_task_cgroup
from heatgrid.jobs.runner import RunLimits, TaskRunner, latest_checkpoint
from heatgrid.jobs.sdk import decode_checkpoint
from heatgrid.protocol.jobs import ArtifactRef, TaskRun, TaskRunOutcome, TaskRunProgress

_BENCH_DIR = Path(__file__).resolve().parent
_EXAMPLE = _BENCH_DIR.parent / "examples" / "digits"
_HOUR_S = 3600.0
_GOAL_GOODPUT = 0.98
_GOAL_CHECKPOINT_OVERHEAD = 0.01
_GOAL_RESUME_S = 10.0
_NEVER = 10**9  # a checkpoint interval longer than any run: the baseline checkpoints nothing


@dataclass
class _Run:
    """One run's clock: when it started and ended, and each progress report (time, step)."""

    started: float
    finished: float = 0.0
    reports: list[tuple[float, float, float]] = field(default_factory=list)
    """(time [s], step, CPU time of the training process or the task's cgroup [s])."""
    checkpoint_s: list[float] = field(default_factory=list)
    """The job's own ``checkpoint_s`` metric at each report (heatgrid runs) [s]."""
    result: dict[str, Any] | None = None
    host_cpu_s: float = 0.0
    cpu_s: float = 0.0
    load_average: float = 0.0

    def _window(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The first report and the last one before the final step (or the last one).

        The job checkpoints at its final step before reporting it: under heatgrid a
        checkpoint with its fingerprint, for the plain run's context nothing. That end of the
        run is not steady training (and without checkpoints it would be the only one), so the
        window ends before it; the checkpoints during the run stay in it.
        """
        final_step = self.reports[-1][1]
        before = [report for report in self.reports if report[1] < final_step]
        return self.reports[0], before[-1] if len(before) > 1 else self.reports[-1]

    def steady_steps_per_s(self) -> float:
        """Steps between the first and last report over the time between them [1/s]."""
        (t0, s0, _), (t1, s1, _) = self._window()
        return (s1 - s0) / (t1 - t0)

    def steady_cpu_s_per_step(self) -> float:
        """CPU time between the first and last report over the steps between them [s]."""
        (_, s0, c0), (_, s1, c1) = self._window()
        return (c1 - c0) / (s1 - s0)

    def checkpoint_share(self) -> float:
        """The job's time in its checkpoints over the window's wall time (nan: not reported).

        The checkpoints' own part of the overhead, measured inside the task: saving the state
        and its fingerprint, ``ctx.checkpoint`` writing and hashing it.
        """
        if len(self.checkpoint_s) != len(self.reports):
            return math.nan
        first, last = self._window()
        i0, i1 = self.reports.index(first), self.reports.index(last)
        return (self.checkpoint_s[i1] - self.checkpoint_s[i0]) / (last[0] - first[0])

    def first_report_s(self) -> float:
        """Time from the start to the first progress report [s]."""
        return self.reports[0][0] - self.started


def _plain(params: dict[str, object], restore_file: Path | None = None) -> _Run:
    command = [
        sys.executable,
        str(_BENCH_DIR / "_jobs_plain.py"),
        str(_EXAMPLE),
        json.dumps(params),
    ]
    if restore_file is not None:
        command.append(str(restore_file))
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"the plain run failed: {done.stderr[-2000:]}")
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    return _Run(
        started=started,
        finished=time.monotonic(),
        reports=[(t, s, c) for t, s, c in printed["reports"]],
        result=printed["result"],
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        load_average=os.getloadavg()[0],
    )


@dataclass
class _Heater:
    """One heater's runner directories; runs tasks of the packed example."""

    root: Path
    ref: ArtifactRef
    store: Path

    def runner(
        self, params: dict[str, object], on_progress: Callable[[TaskRunProgress], None]
    ) -> TaskRunner:
        """Return a runner of the task with ``params`` in this heater's directories."""
        return TaskRunner(
            artifact_path(self.store, self.ref.sha256),
            TaskRun(artifact=self.ref, params=params),
            checkpoint_dir=self.root / "checkpoints",
            output_dir=self.root / "outputs",
            limits=RunLimits(
                memory_bytes=1 << 30, disk_bytes=256 << 20, max_processes=64, pause_grace_s=30.0
            ),
            work_root=self.root / "work",
            on_progress=on_progress,
        )

    def run(
        self, params: dict[str, object], pause_at_step: float | None = None
    ) -> tuple[_Run, TaskRunOutcome, float | None]:
        """Run the task; ask it to pause at ``pause_at_step``. Return run, outcome, pause time."""
        clock = _Run(started=0.0)
        asked: list[float] = []
        runner: TaskRunner | None = None

        def on_progress(progress: TaskRunProgress) -> None:
            step = float(progress.metrics.get("step", 0.0))
            now = time.monotonic()
            assert runner is not None
            assert runner.cgroup is not None
            clock.reports.append((now, step, runner.cgroup.cpu_s() or math.nan))
            clock.checkpoint_s.append(float(progress.metrics.get("checkpoint_s", math.nan)))
            if pause_at_step is not None and step >= pause_at_step and not asked:
                asked.append(time.monotonic())
                runner.request_pause()

        runner = self.runner(params, on_progress)
        cpu_before = time.process_time()
        clock.started = time.monotonic()
        outcome = runner.run()
        clock.finished = time.monotonic()
        clock.host_cpu_s = time.process_time() - cpu_before
        clock.cpu_s = outcome.cpu_s + clock.host_cpu_s  # the task's cgroup and the runner
        clock.result = outcome.result
        clock.load_average = os.getloadavg()[0]
        if outcome.state not in {"completed", "paused"}:
            raise RuntimeError(f"the heatgrid run ended {outcome.state}: {outcome.message}")
        return clock, outcome, asked[0] if asked else None


def _steady(runs: list[_Run]) -> float:
    return max(run.steady_steps_per_s() for run in runs)


def _paired(runs: dict[str, list[_Run]], name: str) -> dict[str, Any]:
    """Each repeat's ``name`` run against the plain run just before it: medians of the ratios."""
    pairs = list(zip(runs["plain"], runs[name], strict=True))
    rates = [run.steady_steps_per_s() / plain.steady_steps_per_s() for plain, run in pairs]
    cpu = [run.steady_cpu_s_per_step() / plain.steady_cpu_s_per_step() for plain, run in pairs]
    return {
        "rate_ratios": rates,
        "median_rate_ratio": statistics.median(rates),
        "cpu_s_per_step_ratios": cpu,
        "median_cpu_s_per_step_ratio": statistics.median(cpu),
    }


def _conclusive(runs: dict[str, list[_Run]], paired: dict[str, Any]) -> bool:
    """True when the machine was quiet enough, and the pairs agreed, to resolve 1 %."""
    busiest = max(run.load_average for group in runs.values() for run in group)
    spread = max(paired["rate_ratios"]) - min(paired["rate_ratios"])
    return busiest < (os.cpu_count() or 1) / 2 and spread < 0.02


def _threads(runs: dict[str, list[_Run]]) -> int:
    """The intra-op thread count every run trained with; raise if they differ (unlike work)."""
    found = {int((run.result or {})["torch_threads"]) for group in runs.values() for run in group}
    if len(found) != 1:
        raise RuntimeError(f"the runs trained with different thread counts: {sorted(found)}")
    return found.pop()


def _preempted(
    root: Path, ref: ArtifactRef, store: Path, params: dict[str, object], total_steps: int
) -> dict[str, Any]:
    first = _Heater(root / "heater-a", ref, store)
    run_a, paused, asked = first.run(params, pause_at_step=total_steps / 2)
    if paused.state != "paused" or asked is None:
        raise RuntimeError(f"the preempted run did not pause: {paused.state} {paused.message}")
    found = latest_checkpoint(first.root / "checkpoints")
    assert found is not None, "the paused run left no checkpoint"
    seq, path = found
    second = _Heater(root / "heater-b", ref, store)  # another heater: its own directories
    (second.root / "checkpoints").mkdir(parents=True)
    shutil.copyfile(path, second.root / "checkpoints" / f"{seq}.ckpt")
    run_b, completed, _ = second.run(params)
    assert run_b.result is not None
    resumed_step = float(run_b.result["resumed_from_step"])
    stepped_before_s = (run_b.reports[0][1] - resumed_step) / run_b.steady_steps_per_s()
    raw = root / "restore.bin"
    blob = decode_checkpoint(path.read_bytes())
    assert isinstance(blob, bytes)
    raw.write_bytes(blob)
    plain_resume = _plain(params, raw)
    plain_before_s = (plain_resume.reports[0][1] - resumed_step) / (
        plain_resume.steady_steps_per_s()
    )
    paused_step = max(step for _, step, _ in run_a.reports)
    return {
        "run_a": run_a,
        "run_b": run_b,
        "completed": completed,
        "pause_s": run_a.finished - asked,
        "resume_s": run_b.first_report_s() - stepped_before_s,
        "plain_resume_s": plain_resume.first_report_s() - plain_before_s,
        "steps_lost": max(paused_step - resumed_step, 0.0),
        "resumed_from_step": resumed_step,
        "checkpoint_bytes": path.stat().st_size,
    }


_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t, 97.5 % quantile, for 1 to 10 degrees of freedom (a two-sided 95 % interval)."""


def _mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Return the mean of ``values`` and its 95 % confidence interval (Student's t).

    Past 10 degrees of freedom the quantile for 10 is used (2.228: a little wider than exact).
    """
    if len(values) < 2:
        raise ValueError("a confidence interval needs two values or more")
    mean = statistics.fmean(values)
    half = _T_975[min(len(values) - 1, len(_T_975)) - 1] * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return mean, mean - half, mean + half


def _verdict(low: float, high: float, goal: float) -> str:
    """``met`` when the whole interval is at or over the goal, ``missed`` when it is under."""
    if low >= goal:
        return "met"
    if high < goal:
        return "missed"
    return "inconclusive"


@dataclass
class _Slice:
    """One slice of the interleaved phase: who ran, from when to when, at what load."""

    who: str
    start: float
    end: float
    load_average: float


def _slice_rate(
    reports: list[tuple[float, float, float]], start: float, end: float
) -> tuple[float, float] | None:
    """Return (steps/s, CPU s per step) between the first and last report inside a slice."""
    inside = [report for report in reports if start < report[0] <= end]
    if len(inside) < 3 or inside[-1][1] <= inside[0][1]:
        return None
    (t0, s0, c0), (t1, s1, c1) = inside[0], inside[-1]
    return (s1 - s0) / (t1 - t0), (c1 - c0) / (s1 - s0)


def _interleaved(
    root: Path, ref: ArtifactRef, store: Path, args: argparse.Namespace, every: int
) -> dict[str, Any]:
    """Interleave plain and heatgrid in ``--processes`` fresh pairs of processes; summarize.

    Fresh processes each time: a process's own speed differs from another's running the same
    code by a few per cent for as long as it lives (its memory layout; in A/A runs here, two
    plain processes interleaved 40 times differed by 2 to 3 % of CPU per step, beyond the
    slices' own noise), so the unit of the interval is a pair of processes, not a slice.
    """
    by_process: list[tuple[list[float], list[float]]] = []
    loads: list[float] = []
    for index in range(args.processes):
        slices, plain_reports, heatgrid_reports = _interleaved_once(
            root / f"heater-interleaved-{index}", ref, store, args, every
        )
        by_process.append(_slice_ratios(slices, plain_reports, heatgrid_reports))
        loads += [piece.load_average for piece in slices]
    return _interleaved_summary(by_process, loads, args)


def _interleaved_once(
    heater_root: Path, ref: ArtifactRef, store: Path, args: argparse.Namespace, every: int
) -> tuple[list[_Slice], list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Train plain and heatgrid at once, each stopped while the other runs a slice.

    Both start and import; then, ``--slices`` times, the plain process runs ``--slice-s`` while
    the heatgrid task is frozen (the runner's duty 0: the cgroup freezer, the throttle a
    heater uses), then the other way round, the order swapped every pair (ABBA), and the
    plain process frozen alike in a cgroup of its own. Each pair's two slices are seconds
    apart, so a change of the cores' speed (a neighbour's load, the host's virtual cores)
    shifts both alike; a slice's rate is over the reports inside it. The ratios are each
    pair's heatgrid rate over its plain rate (steps/s; CPU per step: plain over heatgrid, so
    that both read as "share of the plain speed").
    """
    # open-ended: far more steps than the slices train (both stop when asked, at the end);
    # 5000 steps/s is above any rate seen, 45 the digits job's steps per epoch
    steps_needed = 4 * args.slices * args.slice_s * 5000
    epochs = max(int(steps_needed / 45), args.epochs)
    params: dict[str, object] = {"epochs": epochs, "threads": 1, "seed": 0}
    # the baseline in a cgroup of its own too, stopped by the freezer as the task is: in an
    # A/A run here, a plain process so placed and stopped ran 2.4 % [0.04, 4.8] less CPU per
    # step than one stopped by SIGSTOP in the benchmark's cgroup
    plain_cgroup = create_task_cgroup(
        f"bench-plain-{os.getpid()}-{heater_root.name}", memory_bytes=1 << 30, max_processes=64
    )
    plain = subprocess.Popen(
        [
            sys.executable,
            str(_BENCH_DIR / "_jobs_plain.py"),
            str(_EXAMPLE),
            json.dumps(params | {"checkpoint_every": _NEVER}),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for procs_file in plain_cgroup.procs_files:  # it is importing: it trains in the cgroup
        procs_file.write_text(str(plain.pid))
    heater = _Heater(heater_root, ref, store)
    reports: list[tuple[float, float, float]] = []
    runner_box: list[TaskRunner] = []
    started = threading.Event()
    outcome_box: list[TaskRunOutcome | BaseException] = []

    def on_progress(progress: TaskRunProgress) -> None:
        runner = runner_box[0]
        assert runner.cgroup is not None
        step = float(progress.metrics.get("step", 0.0))
        reports.append((time.monotonic(), step, runner.cgroup.cpu_s() or math.nan))
        started.set()

    runner_box.append(heater.runner(params | {"checkpoint_every": every}, on_progress))
    heater_thread = threading.Thread(target=lambda: _run_into(runner_box[0], outcome_box, started))
    heater_thread.start()
    slices: list[_Slice] = []
    try:
        assert plain.stdout is not None
        if json.loads(plain.stdout.readline() or "{}").get("training") is not True:
            raise RuntimeError("the plain run ended before it trained")
        plain_cgroup.freeze()
        if not started.wait(120.0) or outcome_box:
            raise RuntimeError(f"the heatgrid run did not start training: {outcome_box}")
        slices = _alternate(plain_cgroup, runner_box[0], args.slices, args.slice_s)
    finally:
        plain_cgroup.thaw()
        plain.terminate()  # the job sees should_pause() and returns; it prints its reports
        out, _ = plain.communicate(timeout=120)
        plain_cgroup.remove()
        runner_box[0].set_duty(1.0)
        runner_box[0].request_pause()
        heater_thread.join()
    ended = outcome_box[0] if outcome_box else None
    if not isinstance(ended, TaskRunOutcome) or ended.state != "paused":
        raise RuntimeError(f"the interleaved heatgrid run did not pause at the end: {ended}")
    printed = json.loads(out.strip().splitlines()[-1])
    plain_reports = [(t, step, c) for t, step, c in printed["reports"]]
    return slices, plain_reports, reports


def _alternate(
    plain_cgroup: TaskCgroup, runner: TaskRunner, pairs: int, slice_s: float
) -> list[_Slice]:
    """Run ``pairs`` pairs of slices, one side stopped while the other runs (ABBA order)."""
    slices: list[_Slice] = []
    runner.set_duty(0.0)
    for pair in range(pairs):
        order = ("plain", "heatgrid") if pair % 2 == 0 else ("heatgrid", "plain")
        for who in order:
            start = time.monotonic()
            if who == "plain":
                plain_cgroup.thaw()
                time.sleep(slice_s)
                plain_cgroup.freeze()
            else:
                runner.set_duty(1.0)
                time.sleep(slice_s)
                runner.set_duty(0.0)
            slices.append(_Slice(who, start, time.monotonic(), os.getloadavg()[0]))
    return slices


def _run_into(
    runner: TaskRunner, box: list[TaskRunOutcome | BaseException], started: threading.Event
) -> None:
    """Run ``runner`` (in a thread); put its outcome, or what it raised, into ``box``."""
    try:
        box.append(runner.run())
    except BaseException as error:  # the caller raises it again
        box.append(error)
    started.set()


def _slice_ratios(
    slices: list[_Slice],
    plain_reports: list[tuple[float, float, float]],
    heatgrid_reports: list[tuple[float, float, float]],
) -> tuple[list[float], list[float]]:
    """Return each slice pair's (heatgrid over plain rate, plain over heatgrid CPU per step)."""
    rate_ratios: list[float] = []
    cpu_ratios: list[float] = []
    for first, second in zip(slices[::2], slices[1::2], strict=True):
        by_who = {first.who: first, second.who: second}
        plain = _slice_rate(plain_reports, by_who["plain"].start, by_who["plain"].end)
        heat = _slice_rate(heatgrid_reports, by_who["heatgrid"].start, by_who["heatgrid"].end)
        if plain is None or heat is None:
            continue
        rate_ratios.append(heat[0] / plain[0])
        cpu_ratios.append(plain[1] / heat[1])
    if not rate_ratios:
        raise RuntimeError("no slice pair measured: run longer --slice-s")
    return rate_ratios, cpu_ratios


def _process_interval(per_process: list[list[float]]) -> tuple[list[float], float, float, float]:
    """Per process pair, the median of its slices' ratios; their geometric mean and interval.

    Returns (the per-process medians, the geometric mean, its 95 % interval's low and high).
    """
    medians = [statistics.median(ratios) for ratios in per_process]
    mean, low, high = _mean_interval([math.log(ratio) for ratio in medians])
    return medians, math.exp(mean), math.exp(low), math.exp(high)


def _interleaved_summary(
    by_process: list[tuple[list[float], list[float]]], loads: list[float], args: argparse.Namespace
) -> dict[str, Any]:
    """The ratios of every process pair, and their estimate with its 95 % interval."""
    rate_medians, rate, rate_low, rate_high = _process_interval([rate for rate, _ in by_process])
    cpu_medians, cpu, cpu_low, cpu_high = _process_interval([cpu for _, cpu in by_process])
    return {
        "processes": len(by_process),
        "pairs": sum(len(rate) for rate, _ in by_process),
        "slice_s": args.slice_s,
        "rate_ratios": [rate for rate, _ in by_process],
        "rate_ratio_by_process": rate_medians,
        "rate_ratio": rate,
        "rate_ratio_ci95": [rate_low, rate_high],
        "cpu_speed_ratios": [cpu for _, cpu in by_process],
        "cpu_speed_ratio_by_process": cpu_medians,
        "cpu_speed_ratio": cpu,
        "cpu_speed_ratio_ci95": [cpu_low, cpu_high],
        "load_average_1_min_range": [min(loads), max(loads)],
    }


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1_min": os.getloadavg()[0],
    }


def _partial(out: str, runs: dict[str, list[_Run]]) -> None:
    """Write each run measured so far to ``out``, so a run cut short still tells something.

    The full result replaces it at the end; ``"partial": true`` marks this one.
    """
    summary = {
        name: [
            {
                "steady_steps_per_s": run.steady_steps_per_s(),
                "steady_cpu_s_per_step": run.steady_cpu_s_per_step(),
                "wall_s": run.finished - run.started,
                "cpu_s": run.cpu_s,
                "load_average_1_min_after": round(run.load_average, 2),
            }
            for run in group
        ]
        for name, group in runs.items()
    }
    text = json.dumps({"benchmark": "jobs", "partial": True, "runs": summary}, indent=2)
    with open(out, "w", encoding="utf-8") as stream:
        stream.write(text + "\n")
    print(f"bench/jobs: {sum(map(len, runs.values()))} runs measured", file=sys.stderr)


def _repeated(
    root: Path, ref: ArtifactRef, store: Path, args: argparse.Namespace
) -> tuple[dict[str, list[_Run]], list[TaskRunOutcome], int]:
    """Alternate the plain run and the heatgrid runs; return them, outcomes, checkpoint steps.

    After each run, the runs so far are written to ``args.out`` (:func:`_partial`).
    """
    base: dict[str, object] = {"epochs": args.epochs, "threads": 1, "seed": 0}
    runs: dict[str, list[_Run]] = {"plain": [], "heatgrid_no_checkpoints": [], "heatgrid": []}
    outcomes: list[TaskRunOutcome] = []
    every = 0
    for repeat in range(args.repeats):
        runs["plain"].append(_plain(base | {"checkpoint_every": _NEVER}))
        _partial(args.out, runs)
        if not every:  # once per --checkpoint-interval-s of training at the plain rate
            every = max(round(_steady(runs["plain"]) * args.checkpoint_interval_s), 1)
        heater = _Heater(root / f"heater-bare-{repeat}", ref, store)
        runs["heatgrid_no_checkpoints"].append(heater.run(base | {"checkpoint_every": _NEVER})[0])
        _partial(args.out, runs)
        heater = _Heater(root / f"heater-{repeat}", ref, store)
        run, outcome, _ = heater.run(base | {"checkpoint_every": every})
        runs["heatgrid"].append(run)
        outcomes.append(outcome)
        _partial(args.out, runs)
    return runs, outcomes, every


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--checkpoint-interval-s", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--slice-s", type=float, default=1.0)
    args = parser.parse_args()
    if args.processes < 3 or args.slices < 1 or args.slice_s < 0.5:
        parser.error("--processes must be 3 or more, --slices 1 or more, --slice-s 0.5 or more")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as scratch:
        root = Path(scratch)
        store = root / "store"
        ref = pack_job(_EXAMPLE, store)
        runs, outcomes, every = _repeated(root, ref, store, args)
        interleaved = _interleaved(root, ref, store, args, every)
        plains, heatgrids = runs["plain"], runs["heatgrid"]
        plain_rate, heatgrid_rate = _steady(plains), _steady(heatgrids)
        bare_rate = _steady(runs["heatgrid_no_checkpoints"])
        total_steps = int(max(step for _, step, _ in heatgrids[0].reports))
        params = {"epochs": args.epochs, "threads": 1, "seed": 0, "checkpoint_every": every}
        pre = _preempted(root, ref, store, params, total_steps)
    run_a, run_b, completed = pre["run_a"], pre["run_b"], pre["completed"]
    cost_s = pre["pause_s"] + pre["resume_s"] + pre["steps_lost"] / heatgrid_rate
    hour_share = (_HOUR_S - cost_s) / _HOUR_S
    goodput_hour = (heatgrid_rate / plain_rate) * hour_share
    paired, paired_bare = _paired(runs, "heatgrid"), _paired(runs, "heatgrid_no_checkpoints")
    plain_wall_s = min(run.finished - run.started for run in plains)
    preempted_wall_s = (run_a.finished - run_a.started) + (run_b.finished - run_b.started)
    uninterrupted = heatgrids[0].result or {}
    resumed = run_b.result or {}
    checkpoint_overhead = 1.0 - heatgrid_rate / plain_rate
    rate_low, rate_high = interleaved["rate_ratio_ci95"]
    cpu_low, cpu_high = interleaved["cpu_speed_ratio_ci95"]
    overhead_goal_ratio = 1.0 - _GOAL_CHECKPOINT_OVERHEAD
    verdicts = {
        "checkpoint_overhead_verdict": _verdict(rate_low, rate_high, overhead_goal_ratio),
        "checkpoint_overhead_verdict_from_cpu": _verdict(cpu_low, cpu_high, overhead_goal_ratio),
        "goodput_verdict": _verdict(rate_low * hour_share, rate_high * hour_share, _GOAL_GOODPUT),
        "goodput_verdict_from_cpu": _verdict(
            cpu_low * hour_share, cpu_high * hour_share, _GOAL_GOODPUT
        ),
    }
    result = {
        "benchmark": "jobs",
        "what": "examples/digits (PyTorch, CPU, 1 thread) through the agent's runner and "
        "sandbox vs the same training loop in a plain Python process, same run",
        "baseline": "the job's main() in a plain python process: no sandbox, cgroup, runner or "
        "checkpoints (bench/_jobs_plain.py), same parameters, same run",
        "steps": total_steps,
        "epochs": args.epochs,
        "checkpoint_interval_s": args.checkpoint_interval_s,
        "checkpoint_every_steps": every,
        "checkpoints_per_run": outcomes[0].checkpoint_count,
        "checkpoint_bytes": pre["checkpoint_bytes"],
        "repeats": args.repeats,
        "plain_steps_per_s": plain_rate,
        "heatgrid_no_checkpoints_steps_per_s": bare_rate,
        "heatgrid_steps_per_s": heatgrid_rate,
        "ratio_steps_per_s_heatgrid_vs_plain": heatgrid_rate / plain_rate,
        "torch_threads_every_run": _threads(runs),
        "paired_heatgrid_vs_plain": paired,
        "paired_heatgrid_no_checkpoints_vs_plain": paired_bare,
        "paired_is": "each repeat's run against the plain run just before it; rate: steady "
        "steps/s; cpu: steady CPU s per step (plain: its process; heatgrid: the task's cgroup), "
        "which a loaded machine disturbs less than the wall clock",
        "paired_rate_ratio_spread": max(paired["rate_ratios"]) - min(paired["rate_ratios"]),
        "conclusive": all(
            verdicts[name] != "inconclusive"
            for name in ("checkpoint_overhead_verdict", "goodput_verdict")
        ),
        "conclusive_is": "both rate goals have a verdict from the interleaved slices: the 95 % "
        "interval of the interleaved rate ratio lies wholly on one side of each goal",
        "conclusive_by_spread": _conclusive(runs, paired),
        "conclusive_by_spread_is": "the former rule, over the whole runs: the load stayed under "
        "half the cores during every run and their paired rate ratios agree within 0.02",
        "interleaved": interleaved,
        "interleaved_is": "in each of `processes` fresh pairs of processes, plain and heatgrid "
        "trained at once, each in its cgroup, frozen while the other ran a "
        "slice of slice_s, the order swapped every pair of slices; per slice pair: heatgrid "
        "steps/s over plain (rate), plain CPU s per step over heatgrid (cpu_speed); per "
        "process pair the median (*_by_process); the ratio is their geometric mean, with a "
        "95 % Student's t interval over the process pairs",
        "checkpoint_overhead_interleaved": 1.0 - interleaved["rate_ratio"],
        "checkpoint_overhead_interleaved_ci95": [1.0 - rate_high, 1.0 - rate_low],
        "goodput_one_preemption_per_host_hour_interleaved": interleaved["rate_ratio"] * hour_share,
        "goodput_one_preemption_per_host_hour_interleaved_ci95": [
            rate_low * hour_share,
            rate_high * hour_share,
        ],
        **verdicts,
        "verdicts_are": "met: the whole 95 % interval meets the goal; missed: the whole interval "
        "misses it; inconclusive: it straddles the goal. From the interleaved rate ratios "
        "(goodput is a wall-clock measure); *_from_cpu: from the CPU-per-step ratios",
        "goodput_one_preemption_per_host_hour_paired": paired["median_rate_ratio"] * hour_share,
        "goodput_one_preemption_per_host_hour_from_cpu": hour_share
        / paired["median_cpu_s_per_step_ratio"],
        "sandbox_overhead": 1.0 - bare_rate / plain_rate,
        "checkpoint_overhead_vs_heatgrid_without": 1.0 - heatgrid_rate / bare_rate,
        "checkpoint_overhead": checkpoint_overhead,
        "checkpoint_overhead_is": "1 - heatgrid rate / plain rate: checkpoints, sandbox and "
        "cgroup together",
        "checkpoint_time_share": statistics.median(run.checkpoint_share() for run in heatgrids),
        "checkpoint_time_share_is": "the checkpoints' own part of the overhead, measured inside "
        "the task: the job's time in its checkpoints (saving the state and its fingerprint, "
        "ctx.checkpoint writing and hashing it; its checkpoint_s metric) over the steady "
        "window's wall time, median of the heatgrid runs",
        "goal_checkpoint_overhead": _GOAL_CHECKPOINT_OVERHEAD,
        "goal_checkpoint_overhead_met": checkpoint_overhead <= _GOAL_CHECKPOINT_OVERHEAD,
        "plain_first_report_s": min(run.first_report_s() for run in plains),
        "heatgrid_first_report_s": min(run.first_report_s() for run in heatgrids),
        "plain_cpu_s": min(run.cpu_s for run in plains),
        "heatgrid_no_checkpoints_cpu_s": min(run.cpu_s for run in runs["heatgrid_no_checkpoints"]),
        "heatgrid_cpu_s": min(run.cpu_s for run in heatgrids),
        "ratio_cpu_s_heatgrid_vs_plain": min(run.cpu_s for run in heatgrids)
        / min(run.cpu_s for run in plains),
        "cpu_s_is": "CPU time of the whole run, imports included (plain: the process; heatgrid: "
        "the task's cgroup plus the runner's host side): steadier than rates on a busy machine",
        "runner_cpu_share": max(run.host_cpu_s / (run.finished - run.started) for run in heatgrids),
        "runner_cpu_share_is": "CPU time of the runner's host side (supervision, reports, "
        "checkpoint copies) over the run's wall time",
        "pause_s": pre["pause_s"],
        "resume_s": pre["resume_s"],
        "plain_resume_s": pre["plain_resume_s"],
        "ratio_resume_heatgrid_vs_plain": pre["resume_s"] / pre["plain_resume_s"],
        "resume_excludes": "the checkpoint download (the file is copied locally)",
        "goal_resume_s": _GOAL_RESUME_S,
        "goal_resume_met": pre["resume_s"] <= _GOAL_RESUME_S,
        "steps_lost_at_preemption": pre["steps_lost"],
        "resumed_from_step": pre["resumed_from_step"],
        "same_weights_as_uninterrupted": resumed.get("weights_sha256")
        == uninterrupted.get("weights_sha256"),
        "test_accuracy": resumed.get("test_accuracy"),
        "preemption_cost_s": cost_s,
        "goodput_one_preemption_per_host_hour": goodput_hour,
        "goodput_mapping": "each measured preemption cost (pause, resume, steps lost) once per "
        "3600 s of host time, the steady overhead all the time, against the plain rate",
        "goal_goodput": _GOAL_GOODPUT,
        "goal_goodput_met": goodput_hour >= _GOAL_GOODPUT,
        "short_run_preempted_wall_s": preempted_wall_s,
        "short_run_plain_wall_s": plain_wall_s,
        "short_run_goodput_ratio": plain_wall_s / preempted_wall_s,
        "final_state": completed.state,
        "machine": _machine()
        | {
            "load_average_1_min_before": load_before,
            "load_average_1_min_after_each_run": {
                name: [round(run.load_average, 2) for run in group] for name, group in runs.items()
            },
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "w", encoding="utf-8") as stream:
        stream.write(text + "\n")


if __name__ == "__main__":
    main()
