"""Where heatgrid's CPU per training step goes: two ways of running a job, interleaved.

Run as ``python bench/_jobs_ablation.py --a VARIANT --b VARIANT [--processes 8] [--slices 8]
[--slice-s 1] [--every 1400] [--out FILE]``. Like the interleaved phase of ``bench_jobs``, it
starts a fresh process of each variant (``--processes`` times), both training
``examples/digits`` open-ended, each in a cgroup of its own, and lets them run in turn for
``--slice-s`` (the other frozen by the cgroup freezer), ``--slices`` pairs, the order swapped
every pair; per slice pair the CPU per step of B over A, per process pair their median, and
over the process pairs the geometric mean with a 95 % interval (Student's t).

Unlike ``bench_jobs``, every variant's CPU time is measured the same way, inside the training
process: the job's ``main`` is wrapped (``abl_job.py``, written next to ``job.py``) so that each
``ctx.progress`` call records ``(time.monotonic(), step, time.process_time())`` first. For the
runner the task cgroup's CPU, read on the host at each report (the benchmark's measure), is
compared with it over the same slices (``cgroup_over_inproc``).

Variants (a ``_ck`` suffix: the job checkpoints every ``--every`` steps, else never):

- ``plain``: ``bench/_jobs_plain.py``'s bare context in a plain Python process (the benchmark's
  baseline); ``plain_clean``: with the sandbox's environment and ``-B -s``; ``plain_sid``: in a
  session of its own (as the sandbox's ``setsid``: a scheduler autogroup of its own where the
  kernel has them); ``plain_clean_sid``: both;
- ``sdk``: heatgrid's bootstrap and SDK (``heatgrid.jobs._bootstrap``), no sandbox, the sandbox's
  environment, a session of its own, its reports read and dropped by a thread here;
- ``bwrap``: the same in the bubblewrap sandbox (:func:`heatgrid.jobs.sandbox.sandbox_command`);
- ``runner``: the whole :class:`heatgrid.jobs.runner.TaskRunner` (sandbox, task cgroup, the
  supervision loop, the checkpoint thread), frozen through its cgroup.

Needs the ``ml`` extra, bubblewrap and cgroups (root on cgroup v1), like ``bench_jobs``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_jobs import _slice_rate  # bench/ is on the path when this file runs as a script
from heatgrid.jobs import sandbox
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.cgroups import TaskCgroup, create_task_cgroup
from heatgrid.jobs.runner import RunLimits, TaskRunner
from heatgrid.jobs.sdk import CHECKPOINT_DIR, CONTROL_DIR, TASK_FILE
from heatgrid.protocol.jobs import ArtifactRef, TaskRun, TaskRunProgress

_BENCH_DIR = Path(__file__).resolve().parent
_EXAMPLE = _BENCH_DIR.parent / "examples" / "digits"
_NEVER = 10**9
_BOOTSTRAP = ["-B", "-s", "-m", "heatgrid.jobs._bootstrap"]
_SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
_WRAPPER = '''"""The job's main, recording (monotonic, step, process CPU) at each progress call."""
import json
import os
import time

import job as _job


def main(ctx):
    reports = []
    original = ctx.progress

    def progress(fraction, metrics=None):
        step = float((metrics or {}).get("step", 0.0))
        reports.append((time.monotonic(), step, time.process_time()))
        original(fraction, metrics)

    ctx.progress = progress
    result = _job.main(ctx)
    threads = len(os.listdir("/proc/self/task"))
    text = json.dumps({"reports": reports, "result": result, "threads": threads})
    (ctx.output_dir / "reports.json").write_text(text)
    return result
'''


def _make_job(root: Path) -> Path:
    """Copy the example with the recording wrapper as its entry point; return the copy."""
    code = root / "job-source"
    shutil.copytree(_EXAMPLE, code)
    (code / "abl_job.py").write_text(_WRAPPER)
    manifest = (code / "job.toml").read_text()
    (code / "job.toml").write_text(manifest.replace('"job:main"', '"abl_job:main"'))
    return code


def _prepare(job_source: Path, job_dir: Path, params: dict[str, object]) -> None:
    """Lay out a job directory as the runner does (code, task file, checkpoints, outputs)."""
    shutil.copytree(job_source, job_dir / "code")
    control = job_dir / CONTROL_DIR
    (control / CHECKPOINT_DIR).mkdir(parents=True)
    (job_dir / "outputs").mkdir()
    (job_dir / "inputs").mkdir()
    task = {
        "task_index": 0,
        "params": params,
        "device": "cpu",
        "entry_point": "abl_job:main",
        "inputs": [],
        "checkpoint_seq": None,
        "stop_step": None,
        "max_file_bytes": 256 << 20,
    }
    (control / TASK_FILE).write_text(json.dumps(task))


class _Side:
    """One training process of a variant: started, frozen and thawed, stopped, read."""

    def __init__(
        self,
        variant: str,
        job_source: Path,
        work: Path,
        params: dict[str, object],
        ref: ArtifactRef,
    ) -> None:
        self.kind = variant
        self.work = work
        self.started = threading.Event()
        self.host_reports: list[tuple[float, float, float]] = []
        work.mkdir(parents=True)
        if variant == "runner":
            self._start_runner(params, ref)
            return
        self.cgroup: TaskCgroup = create_task_cgroup(
            f"bench-ablation-{os.getpid()}-{work.name}", memory_bytes=1 << 30, max_processes=64
        )
        if variant.startswith("plain"):
            self._start_plain(variant, job_source, params)
        else:
            self._start_bootstrap(variant, job_source, params)

    def _start_runner(self, params: dict[str, object], ref: ArtifactRef) -> None:
        def on_progress(progress: TaskRunProgress) -> None:
            cgroup = self.runner.cgroup
            cpu_s = (cgroup.cpu_s() if cgroup is not None else None) or math.nan
            step = float(progress.metrics.get("step", 0.0))
            self.host_reports.append((time.monotonic(), step, cpu_s))
            self.started.set()

        self.runner = TaskRunner(
            artifact_path(self.work.parent / "store", ref.sha256),
            TaskRun(artifact=ref, params=params),
            checkpoint_dir=self.work / "checkpoints",
            output_dir=self.work / "outputs",
            limits=RunLimits(
                memory_bytes=1 << 30, disk_bytes=256 << 20, max_processes=64, pause_grace_s=30.0
            ),
            work_root=self.work / "work",
            on_progress=on_progress,
        )
        self.thread = threading.Thread(target=self.runner.run)
        self.thread.start()

    def _start_plain(self, variant: str, job_source: Path, params: dict[str, object]) -> None:
        env, flags = dict(os.environ), []
        if "clean" in variant:
            env, flags = dict(_SANDBOX_ENV), ["-B", "-s"]
        self.process = subprocess.Popen(
            [
                sys.executable,
                *flags,
                __file__,
                "--child-plain",
                str(job_source),
                json.dumps(params),
            ],
            stdout=subprocess.PIPE,
            env=env,
            start_new_session="sid" in variant,
        )
        for procs_file in self.cgroup.procs_files:  # it is importing: it trains in the cgroup
            procs_file.write_text(str(self.process.pid))

        def wait_training() -> None:
            assert self.process.stdout is not None
            if json.loads(self.process.stdout.readline() or b"{}").get("training"):
                self.started.set()

        self.thread = threading.Thread(target=wait_training)
        self.thread.start()

    def _start_bootstrap(self, variant: str, job_source: Path, params: dict[str, object]) -> None:
        self.job_dir = self.work / "job"
        _prepare(job_source, self.job_dir, params)
        control_read, self.control_write = os.pipe()
        report_read, report_write = os.pipe()
        fds = [str(control_read), str(report_write)]
        if variant == "bwrap":
            sandbox.write_sandbox_etc(self.work / "etc")
            command = sandbox.sandbox_command(
                bwrap=sandbox.find_bwrap(),
                procs_files=self.cgroup.procs_files,
                job_dir=self.job_dir,
                etc_dir=self.work / "etc",
                tmp_bytes=256 << 20,
                argv=["{python}", *_BOOTSTRAP, sandbox.SANDBOX_JOB_ROOT, *fds],
                env={},
            )
            env: dict[str, str] = {}
        elif variant == "sdk":
            command = [sys.executable, *_BOOTSTRAP, str(self.job_dir), *fds]
            src = str(Path(sandbox.__file__).resolve().parents[2])
            env = _SANDBOX_ENV | {"PYTHONPATH": src}
        else:
            raise SystemExit(f"unknown variant {variant!r}")
        self.process = subprocess.Popen(
            command,
            env=env,
            pass_fds=(control_read, report_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        if variant == "sdk":
            for procs_file in self.cgroup.procs_files:
                procs_file.write_text(str(self.process.pid))
        os.close(control_read)
        os.close(report_write)

        def read_reports() -> None:
            while chunk := os.read(report_read, 65536):
                if b'"progress"' in chunk:
                    self.started.set()
            os.close(report_read)

        self.thread = threading.Thread(target=read_reports)
        self.thread.start()

    def freeze(self) -> None:
        """Stop every process of this side."""
        self._cgroup().freeze()

    def thaw(self) -> None:
        """Let this side run."""
        self._cgroup().thaw()

    def _cgroup(self) -> TaskCgroup:
        if self.kind == "runner":
            assert self.runner.cgroup is not None
            return self.runner.cgroup
        return self.cgroup

    def stop(self) -> dict[str, Any]:
        """Ask the job to pause (it returns from ``main``); return what the wrapper recorded."""
        self.thaw()
        if self.kind == "runner":
            self.runner.request_pause()
            self.thread.join()
            return dict(json.loads((self.work / "outputs" / "reports.json").read_text()))
        if self.kind.startswith("plain"):
            self.process.terminate()  # its context's should_pause() turns true
            out, _ = self.process.communicate(timeout=120)
            path = Path(out.decode().strip().splitlines()[-1])
        else:
            os.write(self.control_write, b'{"type":"pause"}\n')
            self.process.wait(timeout=120)
            os.close(self.control_write)
            path = self.job_dir / "outputs" / "reports.json"
        self.thread.join()
        self.cgroup.remove()
        recorded = dict(json.loads(path.read_text()))
        if self.kind.startswith("plain"):
            shutil.rmtree(path.parent, ignore_errors=True)
        return recorded


def _slice_cpu(
    reports: list[tuple[float, float, float]], start: float, end: float
) -> tuple[float, float] | None:
    """(CPU s per step, steps per s) inside a slice, as ``bench_jobs`` reads its reports."""
    rate = _slice_rate(reports, start, end)
    return None if rate is None else (rate[1], rate[0])


def _variant(name: str, every: int) -> tuple[str, dict[str, object]]:
    kind = name.removesuffix("_ck")
    params: dict[str, object] = {"epochs": 100_000, "threads": 1, "seed": 0}
    return kind, params | {"checkpoint_every": every if name.endswith("_ck") else _NEVER}


def _one_pair(
    args: argparse.Namespace, index: int, job_source: Path, root: Path, ref: ArtifactRef
) -> dict[str, Any]:
    """Start a process of each variant, alternate them, stop them; return the pair's ratios."""
    sides: dict[str, _Side] = {}
    for label, name in (("a", args.a), ("b", args.b)):
        kind, params = _variant(name, args.every)
        sides[label] = _Side(kind, job_source, root / f"pair-{index}-{label}", params, ref)
    slices: list[tuple[str, float, float, float]] = []
    try:
        for side in sides.values():
            if not side.started.wait(300):
                raise RuntimeError(f"{side.kind} did not start training")
            side.freeze()
        for pair in range(args.slices):
            for who in ("a", "b") if (pair + index) % 2 == 0 else ("b", "a"):
                start = time.monotonic()
                sides[who].thaw()
                time.sleep(args.slice_s)
                sides[who].freeze()
                slices.append((who, start, time.monotonic(), os.getloadavg()[0]))
    finally:
        data = {label: side.stop() for label, side in sides.items()}
    ratios: list[float] = []
    rates: list[float] = []
    for first, second in zip(slices[::2], slices[1::2], strict=True):
        got = {
            who: _slice_cpu(data[who]["reports"], start, end)
            for who, start, end, _ in (first, second)
        }
        a, b = got["a"], got["b"]
        if a is not None and b is not None:
            ratios.append(b[0] / a[0])
            rates.append(b[1] / a[1])
    bias: list[float] = []  # the runner's cgroup CPU (read on the host) over the in-process CPU
    for label, side in sides.items():
        for who, start, end, _ in slices:
            inside = _slice_cpu(data[label]["reports"], start, end)
            host = _slice_cpu(side.host_reports, start, end)
            if who == label and inside is not None and host is not None:
                bias.append(host[0] / inside[0])
    return {
        "a": args.a,
        "b": args.b,
        "process_pair": index,
        "cpu_b_over_a": statistics.median(ratios),
        "rate_b_over_a": statistics.median(rates),
        "cpu_ratios": [round(ratio, 4) for ratio in ratios],
        "cgroup_over_inproc": statistics.median(bias) if bias else None,
        "threads": [data[label].get("threads") for label in "ab"],
        "load_average_1_min": [round(piece[3], 2) for piece in slices],
    }


def _child_plain(job_source: Path, params: dict[str, Any]) -> None:
    """The plain side: the wrapper with the baseline's bare context; stops on SIGTERM."""
    sys.path.insert(0, str(_BENCH_DIR))
    from _jobs_plain import PlainContext  # noqa: PLC0415 - the benchmark's own baseline

    class _Context(PlainContext):
        def progress(self, fraction: float, metrics: Any = None) -> None:
            if not self.reports:  # once: training has started
                self.reports.append((0.0, 0.0, 0.0))
                print(json.dumps({"training": True}), flush=True)

    sys.path.insert(0, str(job_source))
    wrapper = importlib.import_module("abl_job")
    out = Path(tempfile.mkdtemp(prefix="bench-ablation-plain-"))
    ctx = _Context(params, None, out)
    signal.signal(signal.SIGTERM, lambda *_: setattr(ctx, "stop", True))
    wrapper.main(ctx)
    print(out / "reports.json", flush=True)


def main() -> None:
    """Compare two variants over fresh process pairs; print and append the results as JSON."""
    if sys.argv[1:2] == ["--child-plain"]:
        _child_plain(Path(sys.argv[2]), json.loads(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", required=True)
    parser.add_argument("--b", required=True)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--slice-s", type=float, default=1.0)
    parser.add_argument("--every", type=int, default=1400)
    parser.add_argument("--out", default="bench-jobs-ablation.jsonl")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes must be 2 or more (the interval is over process pairs)")
    medians: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as scratch:
        root = Path(scratch)
        job_source = _make_job(root)
        ref = pack_job(job_source, root / "pairs" / "store")
        for index in range(args.processes):
            row = _one_pair(args, index, job_source, root / "pairs", ref)
            medians.append(row["cpu_b_over_a"])
            _emit(args.out, row)
    logs = [math.log(ratio) for ratio in medians]
    mean = statistics.fmean(logs)
    half = (
        _T_975[min(len(logs) - 1, len(_T_975)) - 1] * statistics.stdev(logs) / math.sqrt(len(logs))
    )
    _emit(
        args.out,
        {
            "a": args.a,
            "b": args.b,
            "process_pairs": len(medians),
            "cpu_b_over_a": math.exp(mean),
            "cpu_b_over_a_ci95": [math.exp(mean - half), math.exp(mean + half)],
            "load_average_1_min_end": os.getloadavg()[0],
        },
    )


def _emit(out: str, row: dict[str, Any]) -> None:
    text = json.dumps(row)
    print(text, flush=True)
    with open(out, "a", encoding="utf-8") as stream:
        stream.write(text + "\n")


if __name__ == "__main__":
    main()
