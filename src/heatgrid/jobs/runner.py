"""Run one task of a job in its sandbox, and say how it ended.

The runner unpacks the task's artifact (after checking its hash) into a fresh job directory,
places the newest checkpoint there, starts the task in a bubblewrap sandbox inside a cgroup of
its own, and then, until the task ends:

* reads the task's reports from a pipe (progress, checkpoints, the result) and hands every
  checkpoint to a thread of its own, which copies it out of the sandbox into the host's
  checkpoint directory, checks its hash and fsyncs it (so a checkpoint of any size never
  holds up the rest of this list);
* enforces the limits: memory and processes (the cgroup), running time, and the size of the
  job directory (each file by ``RLIMIT_FSIZE``, the whole directory by watching it:
  :class:`~heatgrid.jobs.disk.DiskUsage` follows inotify events and walks it only now and
  then, so a check costs what the task changed, not how many files it has);
* throttles the task by duty-cycling the cgroup freezer (:meth:`TaskRunner.set_duty`);
* preempts it when asked (:meth:`TaskRunner.request_pause`): the task's ``ctx.should_pause()``
  turns true; if it has not stopped after ``pause_grace_s``, its process gets SIGTERM; after
  ``term_grace_s`` more, every process of the cgroup is killed.

Whatever happens, every process of the task is gone when :meth:`TaskRunner.run` returns, and
the outcome names the state and the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from heatgrid.jobs import sandbox
from heatgrid.jobs.artifact import unpack_artifact
from heatgrid.jobs.cgroups import TaskCgroup, create_task_cgroup, remove_leftover_task_cgroup
from heatgrid.jobs.disk import DiskUsage
from heatgrid.jobs.energy import EnergyMeter
from heatgrid.jobs.manifest import load_manifest
from heatgrid.jobs.requirements import check_requirements
from heatgrid.jobs.sdk import (
    CHECKPOINT_DIR,
    CONTROL_DIR,
    MAX_REPORT_BYTES,
    RESTORE_FILE,
    TASK_FILE,
)
from heatgrid.protocol.jobs import (
    CheckpointMark,
    OutputFile,
    RunState,
    TaskRun,
    TaskRunOutcome,
    TaskRunProgress,
)

__all__ = [
    "DEFAULT_CORE_POWER_W",
    "MARK_SUFFIX",
    "RESTORED_SUFFIX",
    "RunLimits",
    "TaskRunner",
    "forget_leftover_tasks",
    "latest_checkpoint",
]

DEFAULT_CORE_POWER_W: Final = 14.0
"""Electric power of one busy CPU core, for the energy estimate [W].

A stated assumption: the catalog's Ryzen 9 7950X draws 230 W (its PPT limit) over 16 cores,
14.4 W per core; the Core i5-14400, 148 W over 10 cores.
"""

_TICK_S = 0.05
"""How often the supervision loop looks while it kills the task, or where it cannot be woken
by the task's exit (no pidfd) [s]."""
_DISK_CHECK_S = 0.25
"""How often the job directory's size is looked at [s] (the events since the last look; a full
walk only when :class:`~heatgrid.jobs.disk.DiskUsage` says one is due); also the longest the
loop sleeps."""
_LEAST_WAIT_S = 0.001
_DUTY_PERIOD_S = 1.0
MARK_SUFFIX: Final = ".mark.json"
"""Suffix of the file beside checkpoint ``N.ckpt`` that holds its step and fingerprint
(:class:`~heatgrid.protocol.jobs.CheckpointMark`), when the task gave them."""
RESTORED_SUFFIX: Final = ".restored.json"
"""Suffix of the file ``N.restored.json`` that holds the step and fingerprint the task said the
state it restored from checkpoint ``N`` holds (``ctx.restored``; a whole
:class:`~heatgrid.protocol.jobs.CheckpointMark`), kept until the task's directory goes."""

_KEEP_CHECKPOINTS = 2
_CHUNK_BYTES = 1 << 20
_PR_SET_CHILD_SUBREAPER = 36
_BOOTSTRAP = ("{python}", "-B", "-s", "-m", "heatgrid.jobs._bootstrap")
_LOG_FILE = "output.log"
_LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class RunLimits:
    """What one task run may use, and how long preemption waits.

    Attributes
    ----------
    memory_bytes : int
        Memory of every process of the task together, swap included [bytes].
    disk_bytes : int
        Size of the job directory (code, inputs, outputs, checkpoints, scratch) [bytes];
        ``/tmp`` is a tmpfs of the same size, counted as memory.
    max_processes : int
        Processes and threads at once.
    time_s : float or None
        Running time, not counting time frozen [s]; None: no limit.
    pause_grace_s : float
        After asking the task to pause, how long to wait before SIGTERM [s].
    term_grace_s : float
        After SIGTERM, how long to wait before killing every process [s].
    """

    memory_bytes: int = 1 << 30
    disk_bytes: int = 1 << 30
    max_processes: int = 256
    time_s: float | None = None
    pause_grace_s: float = 30.0
    term_grace_s: float = 10.0


@dataclass
class _Loop:
    """The supervision loop's clock and escalation state."""

    started: float
    last_disk: float
    buffer: bytes = b""
    frozen_s: float = 0.0
    frozen_since: float | None = None
    pause_sent: float | None = None
    term_sent: float | None = None

    def frozen_until(self, now: float) -> float:
        """Return the time frozen so far [s], the current freeze included."""
        return self.frozen_s + (now - self.frozen_since if self.frozen_since is not None else 0.0)

    def account(self, now: float) -> None:
        """Close the current freeze (if any) into ``frozen_s``."""
        self.frozen_s = self.frozen_until(now)
        self.frozen_since = None


def _cgroup_name(work: Path) -> str:
    """Return the name of the cgroup of the task whose work directory is ``work``."""
    return f"heatgrid-{work.name}"


def forget_leftover_tasks(work_root: Path) -> int:
    """Remove what runners killed mid-task left under ``work_root``; return how many tasks.

    A runner removes its task's work directory and cgroup when the task ends. One killed
    first (``kill -9`` of the agent, a power cut) leaves both, and the cgroup may still hold
    processes of the task: each is killed, the cgroup removed
    (:func:`heatgrid.jobs.cgroups.remove_leftover_task_cgroup`), then the directory. Call it
    only where no runner is at work under ``work_root`` (the agent, at its start).

    Returns
    -------
    int
        How many leftover tasks had a cgroup still there.
    """
    if not work_root.is_dir():
        return 0
    found = 0
    for work in sorted(work_root.glob("task-*")):
        found += remove_leftover_task_cgroup(_cgroup_name(work))
        shutil.rmtree(work, ignore_errors=True)
    return found


def latest_checkpoint(checkpoint_dir: Path) -> tuple[int, Path] | None:
    """Return (number, path) of the newest checkpoint kept in ``checkpoint_dir``, or None."""
    found = [
        (int(path.stem), path)
        for path in checkpoint_dir.glob("*.ckpt")
        if path.stem.isdigit() and path.is_file()
    ]
    return max(found) if found else None


def _open_inside(root: Path, relative: str) -> int:
    """Open the regular file ``root/relative`` for reading, following no link on the way."""
    parts = relative.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise OSError(f"{relative} is not a regular file")
    return file_fd


def _copy_fd(
    source_fd: int, target: Path, max_bytes: int, *, durable: bool = False
) -> tuple[int, str]:
    """Copy an open file into ``target``; return (size, sha256). Refuse more than max_bytes.

    ``durable``: fsync the copy before returning (a checkpoint, which a power cut must not
    leave half written under its final name).
    """
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(source_fd, "rb") as source, target.open("wb") as sink:
        while chunk := source.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise OSError(f"over {max_bytes} bytes")
            digest.update(chunk)
            sink.write(chunk)
        if durable:
            sink.flush()
            os.fsync(sink.fileno())
    return size, digest.hexdigest()


def _walk_files(root: Path, relative: str = "") -> Iterator[str]:
    """Yield the regular files under ``root`` (relative, ``/``-separated), following no link."""
    try:
        fd = _open_dir_inside(root, relative)
    except OSError:
        return
    try:
        entries = sorted(os.scandir(fd), key=lambda entry: entry.name)
    finally:
        os.close(fd)
    for entry in entries:
        name = f"{relative}/{entry.name}" if relative else entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(root, name)
        elif entry.is_file(follow_symlinks=False):
            yield name


def _open_dir_inside(root: Path, relative: str) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in relative.split("/") if relative else []:
        try:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = next_fd
    return fd


def _become_subreaper() -> None:
    """Adopt this process's orphaned descendants, so that the runner reaps them.

    Bubblewrap's outer process may exit before it reaps the sandbox's init; without this, that
    init would become a zombie of the host's PID 1, which in a container may never reap it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _read_init_pid(info_fd: int) -> int | None:
    """Return the host PID of the sandbox's init from bubblewrap's ``--info-fd``, or None."""
    with os.fdopen(info_fd, "rb") as info:
        text = info.read()
    try:
        pid = json.loads(text)["child-pid"]
    except (ValueError, KeyError, TypeError):
        return None
    return pid if isinstance(pid, int) else None


def _reap(pid: int | None) -> None:
    """Wait for the sandbox's init, adopted by this process once bubblewrap exited."""
    if pid is None:
        return
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not (or not yet) our child, or reaped already
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.01)


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.0f} MiB"


@dataclass(frozen=True)
class _Reported:
    """A checkpoint the task reported, waiting to be copied out of its sandbox."""

    seq: int
    sha256: object
    """The hash the task reported (checked against the copy; anything but a match stops it)."""
    mark: CheckpointMark | None
    """Its step and fingerprint, when the task gave either."""


class _CheckpointKeeper:
    """Copies the checkpoints a task reports out of its sandbox, in a thread of its own.

    The supervision loop hands each report over (:meth:`submit`, which never waits), so that a
    checkpoint of any size never holds up the heat command, a pause request or the limits.
    The thread copies each one into the host's checkpoint directory: its mark first
    (``N.mark.json``, when the task gave a step or fingerprint), then the blob as
    ``N.partial``, hashed and fsynced, renamed to ``N.ckpt`` only when it is complete and
    matches the hash reported; then it prunes blobs and marks older than the newest
    ``_KEEP_CHECKPOINTS`` and calls ``on_kept(N)``.

    At most ``_KEEP_CHECKPOINTS`` reports wait (a bounded queue): the SDK keeps that many files
    in the sandbox, so an older report is of a file already gone there; it is dropped, and the
    newer checkpoint counts (as when a copy finds its file replaced).

    Parameters
    ----------
    job_dir : Path
        The task's job directory on the host (the checkpoints are in its control directory).
    checkpoint_dir : Path
        Host directory the checkpoints are kept in.
    max_bytes : int
        Largest checkpoint copied [bytes]; a larger one is skipped.
    on_kept : callable
        Called (in this thread) with the number of each checkpoint once it is kept.
    on_mismatch : callable
        Called (in this thread) with a message when a checkpoint does not match its hash.
    """

    def __init__(
        self,
        *,
        job_dir: Path,
        checkpoint_dir: Path,
        max_bytes: int,
        on_kept: Callable[[int], None],
        on_mismatch: Callable[[str], None],
    ) -> None:
        self._source_dir = job_dir
        self._checkpoint_dir = checkpoint_dir
        self._max_bytes = max_bytes
        self._on_kept = on_kept
        self._on_mismatch = on_mismatch
        self._waiting: deque[_Reported] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._work, name="checkpoint-keeper", daemon=True)
        self._thread.start()

    def submit(self, reported: _Reported) -> None:
        """Queue ``reported`` for copying; drop the oldest waiting one past the bound."""
        with self._wake:
            self._waiting.append(reported)
            while len(self._waiting) > _KEEP_CHECKPOINTS:
                self._waiting.popleft()
            self._wake.notify()

    def check(self) -> None:
        """Raise the error that stopped the thread (a host-side fault), if any."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Copy what still waits, then end the thread (the task has ended: keep its last)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closing:
                    self._wake.wait()
                if not self._waiting:
                    return
                reported = self._waiting.popleft()
            try:
                self._keep(reported)
            except Exception as error:  # a fault of the host's side: raised again by check()
                self._error = error
                return

    def _keep(self, reported: _Reported) -> None:
        seq, directory = reported.seq, self._checkpoint_dir
        directory.mkdir(parents=True, exist_ok=True)
        mark_path = directory / f"{seq}{MARK_SUFFIX}"
        if reported.mark is not None:  # before the blob shows
            mark_path.write_text(reported.mark.model_dump_json())
        partial = directory / f"{seq}.partial"
        try:
            source = _open_inside(self._source_dir, f"{CONTROL_DIR}/{CHECKPOINT_DIR}/{seq}.ckpt")
            _, sha256 = _copy_fd(source, partial, self._max_bytes, durable=True)
        except OSError:
            partial.unlink(missing_ok=True)
            mark_path.unlink(missing_ok=True)
            return  # replaced by a newer one before it could be read: that one counts
        if sha256 != reported.sha256:
            partial.unlink(missing_ok=True)
            mark_path.unlink(missing_ok=True)
            self._on_mismatch(f"checkpoint {seq} does not match the hash reported")
            return
        partial.replace(directory / f"{seq}.ckpt")
        # blobs and their marks (a mark is written first, so it may have no blob); the mark
        # of the state a run restored stays: it goes with the result
        for path in [*directory.glob("*.ckpt"), *directory.glob(f"*{MARK_SUFFIX}")]:
            number = path.name.split(".", 1)[0]
            if number.isdigit() and int(number) <= seq - _KEEP_CHECKPOINTS:
                path.unlink(missing_ok=True)
        self._on_kept(seq)


class TaskRunner:
    """Runs one task in its sandbox; see the module's description.

    Parameters
    ----------
    artifact_path : Path
        The job's artifact (checked against ``task.artifact`` before anything runs).
    task : TaskRun
        Which task, with its parameters and device.
    checkpoint_dir : Path
        Host directory of the task's checkpoints: the newest is resumed from, new ones land
        here as ``SEQ.ckpt`` (the two newest are kept).
    output_dir : Path
        Host directory the task's output files are copied into when it ends.
    limits : RunLimits
        What the task may use.
    work_root : Path
        Where the task's private job directory is made (and removed afterwards).
    core_power_w : float
        Power of one busy core, for the energy estimate where no meter is readable [W].
    energy_meter : EnergyMeter, optional
        Meters the run's energy (RAPL, NVML, else the estimate); by default one over the
        host's counters with ``core_power_w``.
    on_progress : callable, optional
        Called with each :class:`TaskRunProgress` the task reports (in the runner's thread).
    on_checkpoint : callable, optional
        Called with the number of each checkpoint once it is in ``checkpoint_dir`` (in the
        runner's checkpoint thread, not the one that called :meth:`run`; it must return
        quickly and be thread-safe: the agent only wakes its uploader).
    inputs : mapping of str to Path, optional
        Files fetched outside the sandbox (inputs by URL), copied into the job directory as
        ``inputs/NAME`` (beside, or instead of, the artifact's inputs of the same name).
    """

    def __init__(
        self,
        artifact_path: Path,
        task: TaskRun,
        *,
        checkpoint_dir: Path,
        output_dir: Path,
        limits: RunLimits,
        work_root: Path,
        core_power_w: float = DEFAULT_CORE_POWER_W,
        energy_meter: EnergyMeter | None = None,
        on_progress: Callable[[TaskRunProgress], None] | None = None,
        on_checkpoint: Callable[[int], None] | None = None,
        inputs: Mapping[str, Path] | None = None,
    ) -> None:
        self.artifact_path = artifact_path
        self.task = task
        self.checkpoint_dir = checkpoint_dir
        self.output_dir = output_dir
        self.limits = limits
        self.work_root = work_root
        self.core_power_w = core_power_w
        self.energy_meter = energy_meter or EnergyMeter(core_power_w, gpu=task.device == "cuda")
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        self.inputs = dict(inputs or {})
        self.cgroup: TaskCgroup | None = None
        """The task's cgroup while it runs."""
        self.job_dir: Path | None = None
        """The task's private job directory on the host while it runs (``/job`` inside)."""
        self._lock = threading.Lock()
        self._pause_requested = False
        self._duty = 1.0
        self._progress = TaskRunProgress(fraction=0.0)
        self._checkpoint_seq: int | None = None
        """The newest checkpoint kept (written by the checkpoint thread while the task runs)."""
        self._reported_seq: int | None = None
        """The newest checkpoint the task reported (a later report must have a higher one)."""
        self._keeper: _CheckpointKeeper | None = None
        self._restored_seq: int | None = None
        self._restored_said = False
        self._checkpoint_count = 0
        self._final: dict[str, object] | None = None
        self._stop: tuple[RunState, str] | None = None
        self.log_tail = ""
        """The end of what the task printed (stdout and stderr), once it ended."""
        self._launcher_pid: int | None = None
        self._wake_fd: int | None = None
        """Write end of the pipe that wakes the supervision loop, while it runs."""

    def request_pause(self) -> None:
        """Ask the task to checkpoint and stop (thread-safe); escalates after the grace times."""
        with self._lock:
            self._pause_requested = True
            self._wake()

    def set_duty(self, fraction: float) -> None:
        """Let the task run ``fraction`` (0 to 1) of the time, frozen the rest (thread-safe)."""
        with self._lock:
            self._duty = min(max(float(fraction), 0.0), 1.0)
            self._wake()

    def _wake(self) -> None:
        """Wake the supervision loop now (the caller holds the lock, so the pipe is open)."""
        if self._wake_fd is not None:
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is waiting already
                os.write(self._wake_fd, b"\0")

    def run(self) -> TaskRunOutcome:
        """Run the task to its end; return its outcome. Every process of it is gone after.

        Raises
        ------
        ArtifactError
            The artifact is corrupt, tampered with or too large (nothing ran).
        InputError
            Its ``job.toml`` is bad, or this Python lacks a package it requires
            (:class:`~heatgrid.jobs.requirements.RequirementsNotMetError`; nothing ran).
        CgroupUnavailableError, SandboxUnavailableError
            The host cannot limit or sandbox a task (nothing ran).
        """
        bwrap = sandbox.find_bwrap()
        work = self.work_root / f"task-{uuid.uuid4().hex[:12]}"
        job_dir = self.job_dir = work / "job"
        try:
            unpack_artifact(self.artifact_path, self.task.artifact.sha256, job_dir)
            manifest = load_manifest(job_dir / "code")
            check_requirements(manifest.requirements)
            self._prepare(job_dir, work, manifest.entry_point)
            self.cgroup = create_task_cgroup(
                _cgroup_name(work),
                memory_bytes=self.limits.memory_bytes,
                max_processes=self.limits.max_processes,
            )
            try:
                return self._run_sandboxed(bwrap, work, job_dir)
            finally:
                self.cgroup.remove()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _prepare(self, job_dir: Path, work: Path, entry_point: str) -> None:
        control = job_dir / CONTROL_DIR
        (control / CHECKPOINT_DIR).mkdir(parents=True)
        (job_dir / "outputs").mkdir(exist_ok=True)
        (job_dir / "inputs").mkdir(exist_ok=True)
        for name, source in self.inputs.items():
            target = job_dir / "inputs" / name
            target.unlink(missing_ok=True)
            shutil.copyfile(source, target)  # a copy: the task cannot change the heater's
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is not None:
            self._checkpoint_seq = self._reported_seq = self._restored_seq = latest[0]
            shutil.copyfile(latest[1], control / RESTORE_FILE)
        task = {
            "task_index": self.task.task_index,
            "params": self.task.params,
            "device": self.task.device,
            "entry_point": entry_point,
            "inputs": sorted(path.name for path in (job_dir / "inputs").iterdir()),
            "checkpoint_seq": self._checkpoint_seq,
            "stop_step": self.task.stop_step,
            "max_file_bytes": self.limits.disk_bytes,
        }
        (control / TASK_FILE).write_text(json.dumps(task))
        sandbox.write_sandbox_etc(work / "etc")

    def _run_sandboxed(self, bwrap: str, work: Path, job_dir: Path) -> TaskRunOutcome:
        assert self.cgroup is not None
        control_read, control_write = os.pipe()
        report_read, report_write = os.pipe()
        info_read, info_write = os.pipe()
        command = sandbox.sandbox_command(
            bwrap=bwrap,
            procs_files=self.cgroup.procs_files,
            job_dir=job_dir,
            etc_dir=work / "etc",
            tmp_bytes=self.limits.disk_bytes,
            argv=[*_BOOTSTRAP, sandbox.SANDBOX_JOB_ROOT, str(control_read), str(report_write)],
            env={},
            info_fd=info_write,
            gpu=self.task.device == "cuda",
        )
        self.energy_meter.start()
        started = time.monotonic()
        log = (job_dir / CONTROL_DIR / _LOG_FILE).open("wb")
        _become_subreaper()
        try:
            process = subprocess.Popen(
                command,
                env={},
                pass_fds=(control_read, report_write, info_write),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(control_read)
            os.close(report_write)
            os.close(info_write)
            log.close()
        init_pid = _read_init_pid(info_read)
        self._launcher_pid = process.pid
        keeper: _CheckpointKeeper | None = None
        wake: tuple[int, int] | None = None
        try:  # the task runs: whatever fails from here, it is killed in the end
            wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            with self._lock:
                self._wake_fd = wake[1]
            keeper = self._keeper = _CheckpointKeeper(
                job_dir=job_dir,
                checkpoint_dir=self.checkpoint_dir,
                max_bytes=self.limits.disk_bytes,
                on_kept=self._kept,
                on_mismatch=lambda message: self._stop_with("killed", message),
            )
            status, frozen_s = self._supervise(
                process, report_read, control_write, job_dir, wake[0]
            )
        finally:
            with self._lock:
                self._wake_fd = None
            for fd in wake or ():
                os.close(fd)
            os.close(report_read)
            os.close(control_write)
            self.cgroup.kill(self._launcher_pid)
            if process.poll() is None:
                process.kill()
            process.wait()
            _reap(init_pid)
            if keeper is not None:
                keeper.close()  # the checkpoints still being copied, the last one above all
        keeper.check()
        self.log_tail = self._read_log(job_dir)
        wall_s = max(time.monotonic() - started - frozen_s, 0.0)
        return self._outcome(status, self.log_tail, job_dir, wall_s)

    @staticmethod
    def _read_log(job_dir: Path) -> str:
        try:
            fd = _open_inside(job_dir, f"{CONTROL_DIR}/{_LOG_FILE}")
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            file.seek(max(size - _LOG_TAIL_BYTES, 0))
            return file.read().decode(errors="replace")

    def _supervise(
        self,
        process: subprocess.Popen[bytes],
        report_fd: int,
        control_fd: int,
        job_dir: Path,
        wake_fd: int,
    ) -> tuple[int, float]:
        """Follow the task until its sandbox exits; return (exit status, time frozen [s]).

        The loop sleeps until something is due: a report from the task, its exit (a pidfd),
        a request (:meth:`request_pause`, :meth:`set_duty`, a stop: the wake pipe), the next
        edge of the duty cycle, a grace time's or the time limit's end, or the next measure
        of the job directory; never longer than ``_DISK_CHECK_S``.
        """
        assert self.cgroup is not None
        assert self._keeper is not None
        selector = selectors.DefaultSelector()
        selector.register(report_fd, selectors.EVENT_READ)
        selector.register(wake_fd, selectors.EVENT_READ)
        exit_fd = self._watch_exit(process, selector)
        loop = _Loop(started=time.monotonic(), last_disk=time.monotonic())
        disk = DiskUsage(job_dir, now=loop.started)
        wait_s = _TICK_S
        try:
            while True:
                self._keeper.check()
                for key, _ in selector.select(timeout=wait_s):
                    if key.fd == wake_fd:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_fd, 4096)
                    elif key.fd == report_fd and not self._read_reports(report_fd, loop):
                        selector.unregister(report_fd)
                status = process.poll()
                if status is not None:
                    self.cgroup.kill(
                        self._launcher_pid
                    )  # every writer of the pipe is gone: read what is left
                    os.set_blocking(report_fd, False)
                    with contextlib.suppress(BlockingIOError):
                        while self._read_reports(report_fd, loop):
                            pass
                    loop.account(time.monotonic())
                    return status, loop.frozen_s
                now = time.monotonic()
                with self._lock:
                    pause, duty = self._pause_requested, self._duty
                if self._stop is not None:
                    self.cgroup.kill(self._launcher_pid)
                elif not self._over_limit(loop, now, disk):
                    if pause:
                        self._preempt(loop, now, control_fd)
                    else:
                        self._duty_cycle(loop, now, duty)
                wait_s = self._wait_s(loop, now, pause, duty) if exit_fd is not None else _TICK_S
        finally:
            disk.close()
            selector.close()
            if exit_fd is not None:
                os.close(exit_fd)

    @staticmethod
    def _watch_exit(
        process: subprocess.Popen[bytes], selector: selectors.BaseSelector
    ) -> int | None:
        """Register a pidfd of the sandbox's launcher (readable once it exits), or return None.

        Without one (Linux before 5.3), the loop looks every ``_TICK_S`` instead.
        """
        try:
            exit_fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            return None
        selector.register(exit_fd, selectors.EVENT_READ)
        return exit_fd

    def _wait_s(self, loop: _Loop, now: float, pause: bool, duty: float) -> float:
        """Return how long the loop may sleep before something is due [s]."""
        if self._stop is not None:
            return _TICK_S  # killing: look again soon
        due = [loop.last_disk + _DISK_CHECK_S]
        limit_s = self.limits.time_s
        if limit_s is not None and loop.frozen_since is None:
            due.append(loop.started + loop.frozen_s + limit_s)
        if pause:
            if loop.term_sent is not None:
                due.append(loop.term_sent + self.limits.term_grace_s)
            elif loop.pause_sent is not None:
                due.append(loop.pause_sent + self.limits.pause_grace_s)
        elif duty < 1.0:
            position, edge = now % _DUTY_PERIOD_S, duty * _DUTY_PERIOD_S
            due.append(now + (edge - position if position < edge else _DUTY_PERIOD_S - position))
        ahead = [moment - now for moment in due if moment > now]
        if len(ahead) < len(due):  # something is due already (or overdue: being killed)
            return _TICK_S if loop.term_sent is not None else _LEAST_WAIT_S
        return min(*ahead, _DISK_CHECK_S)

    def _read_reports(self, report_fd: int, loop: _Loop) -> bool:
        """Read and handle what the task reported; return False at the end of the pipe."""
        chunk = os.read(report_fd, 65536)
        if not chunk:
            return False
        loop.buffer += chunk
        *lines, loop.buffer = loop.buffer.split(b"\n")
        for line in lines:
            self._handle(line)
        if len(loop.buffer) > MAX_REPORT_BYTES:
            loop.buffer = b""
            self._stop_with("killed", "the task sent a report line over the size limit")
        return True

    def _over_limit(self, loop: _Loop, now: float, disk: DiskUsage) -> bool:
        """Stop the task if it is over its time or disk limit; return True if it is."""
        limit_s = self.limits.time_s
        if limit_s is not None and now - loop.started - loop.frozen_until(now) > limit_s:
            self._stop_with("out_of_time", f"the task ran longer than its limit of {limit_s:g} s")
            return True
        if now - loop.last_disk > _DISK_CHECK_S:
            loop.last_disk = now
            used = disk.used_bytes(now)
            if used > self.limits.disk_bytes:
                self._stop_with(
                    "out_of_disk",
                    f"the job directory grew to {_mib(used)}, over its limit of "
                    f"{_mib(self.limits.disk_bytes)}",
                )
                return True
        return False

    def _preempt(self, loop: _Loop, now: float, control_fd: int) -> None:
        """Ask the task to pause; SIGTERM after the grace time; kill everything after the next."""
        assert self.cgroup is not None
        if loop.frozen_since is not None:
            self.cgroup.thaw()
            loop.account(now)
        if loop.pause_sent is None:
            loop.pause_sent = now
            with contextlib.suppress(BrokenPipeError):
                os.write(control_fd, b'{"type":"pause"}\n')
        elif loop.term_sent is None and now - loop.pause_sent > self.limits.pause_grace_s:
            loop.term_sent = now
            self._terminate()
        elif loop.term_sent is not None and now - loop.term_sent > self.limits.term_grace_s:
            self.cgroup.kill(self._launcher_pid)

    def _duty_cycle(self, loop: _Loop, now: float, duty: float) -> None:
        """Freeze the task for the part of each period its duty leaves out."""
        assert self.cgroup is not None
        want_frozen = duty < 1.0 and (now % _DUTY_PERIOD_S) >= duty * _DUTY_PERIOD_S
        if want_frozen and loop.frozen_since is None:
            self.cgroup.freeze()
            loop.frozen_since = now
        elif not want_frozen and loop.frozen_since is not None:
            self.cgroup.thaw()
            loop.account(now)

    def _terminate(self) -> None:
        """Send SIGTERM to the task's processes, not to the sandbox's init (it would kill all)."""
        assert self.cgroup is not None
        for pid in self.cgroup.pids():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name not in {"bwrap", "sh"}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _stop_with(self, state: RunState, message: str) -> None:
        """Stop the task with ``state`` and ``message`` (the first reason counts; thread-safe)."""
        with self._lock:
            if self._stop is None:
                self._stop = (state, message)
                self._wake()

    def _kept(self, seq: int) -> None:
        """Count checkpoint ``seq`` as kept (called by the checkpoint thread)."""
        self._checkpoint_seq = seq
        self._checkpoint_count += 1
        if self.on_checkpoint is not None:
            self.on_checkpoint(seq)

    def _handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            self._stop_with("killed", "the task sent a report the runner cannot read")
            return
        if kind == "progress":
            try:
                self._progress = TaskRunProgress(
                    fraction=message["fraction"], metrics=message["metrics"]
                )
            except (ValueError, KeyError):
                self._stop_with("killed", "the task sent a malformed progress report")
                return
            if self.on_progress is not None:
                self.on_progress(self._progress)
        elif kind == "checkpoint":
            self._collect_checkpoint(message)
        elif kind == "restored":
            self._collect_restored(message)
        elif kind in {"result", "paused", "error"}:
            self._final = message

    def _collect_restored(self, message: dict[str, object]) -> None:
        """Keep what the task said of the state it restored, beside the checkpoints."""
        seq = self._restored_seq
        if seq is None:
            self._stop_with("killed", "the task reported a restored state but restored none")
            return
        try:
            mark = CheckpointMark.model_validate(
                {key: message.get(key) for key in ("step", "fingerprint")}, strict=False
            )
        except ValidationError as error:
            self._stop_with("killed", f"restored state: a malformed step or fingerprint: {error}")
            return
        if mark.step is None or mark.fingerprint is None:
            self._stop_with("killed", "restored state: the step and the fingerprint are needed")
            return
        if self._restored_said:  # once per run: the state it started from
            return
        self._restored_said = True
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.checkpoint_dir / f"{seq}{RESTORED_SUFFIX}").write_text(mark.model_dump_json())

    def _collect_checkpoint(self, message: dict[str, object]) -> None:
        """Check a checkpoint's report and hand it to the checkpoint thread (which copies it)."""
        assert self._keeper is not None
        seq = message.get("seq")
        if not isinstance(seq, int) or seq <= (self._reported_seq or 0):
            self._stop_with("killed", f"the task reported checkpoint {seq!r} out of order")
            return
        try:
            mark = CheckpointMark.model_validate(
                {key: message[key] for key in ("step", "fingerprint") if key in message},
                strict=False,
            )
        except ValidationError as error:
            self._stop_with("killed", f"checkpoint {seq}: a malformed step or fingerprint: {error}")
            return
        self._reported_seq = seq
        given = mark.step is not None or mark.fingerprint is not None
        self._keeper.submit(_Reported(seq, message.get("sha256"), mark if given else None))

    def _collect_outputs(self, job_dir: Path) -> list[OutputFile]:
        outputs: list[OutputFile] = []
        root = job_dir / "outputs"
        for relative in _walk_files(root):
            target = self.output_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = _open_inside(root, relative)
                size, sha256 = _copy_fd(fd, target, self.limits.disk_bytes)
            except OSError:
                continue
            outputs.append(OutputFile(path=relative, size_bytes=size, sha256=sha256))
        return outputs

    def _outcome(self, status: int, stderr: str, job_dir: Path, wall_s: float) -> TaskRunOutcome:
        assert self.cgroup is not None
        state, message, result = self._verdict(status, stderr)
        cpu_s = self.cgroup.cpu_s() or 0.0
        energy = self.energy_meter.finish(cpu_s)
        return TaskRunOutcome(
            state=state,
            message=message,
            result=result,
            fraction=self._progress.fraction,
            metrics=self._progress.metrics,
            checkpoint_seq=self._checkpoint_seq,
            checkpoint_count=self._checkpoint_count,
            outputs=self._collect_outputs(job_dir),
            cpu_s=cpu_s,
            wall_s=wall_s,
            energy_j=energy.energy_j,
            energy_method=energy.method,
        )

    def _resume_note(self) -> str:
        if self._checkpoint_seq is None:
            return "it saved no checkpoint, so it will start over"
        return f"it resumes from checkpoint {self._checkpoint_seq}"

    def _verdict(self, status: int, stderr: str) -> tuple[RunState, str, dict[str, object] | None]:
        assert self.cgroup is not None
        final = self._final or {}
        if self._stop is not None:
            return self._stop[0], f"{self._stop[1]}; {self._resume_note()}", None
        if self.cgroup.oom_killed():
            return (
                "out_of_memory",
                f"the task went over its memory limit of {_mib(self.limits.memory_bytes)} and "
                f"was killed; {self._resume_note()}",
                None,
            )
        return self._verdict_from_report(final, status, stderr)

    def _verdict_from_report(
        self, final: dict[str, object], status: int, stderr: str
    ) -> tuple[RunState, str, dict[str, object] | None]:
        assert self.cgroup is not None
        kind = final.get("type")
        if kind == "result" and status == 0:
            result = final.get("result")
            return "completed", "completed", result if isinstance(result, dict) else {}
        if kind == "paused":
            return "paused", f"paused when asked; {self._resume_note()}", None
        if self._pause_requested:
            return (
                "paused",
                "did not stop within its grace time when asked to pause, and was stopped; "
                + self._resume_note(),
                None,
            )
        if kind == "error":
            text = str(final.get("message", ""))
            if final.get("kind") == "file_too_large":
                return "out_of_disk", f"{text}; {self._resume_note()}", None
            if self.cgroup.pids_limit_hit():
                text = (
                    f"the task hit its limit of {self.limits.max_processes} processes "
                    f"(a fork bomb?): {text}"
                )
            return "failed", text, None
        return "failed", self._crash_message(status, stderr), None

    def _crash_message(self, status: int, stderr: str) -> str:
        assert self.cgroup is not None
        if status == 125:
            return f"the sandbox could not join its cgroup: {stderr.strip()[-500:]}"
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = str(-status)
            how = f"was killed by {name}"
        else:
            how = f"exited with status {status}"
        if self.cgroup.pids_limit_hit():
            how += f" after hitting its limit of {self.limits.max_processes} processes"
        tail = stderr.strip()[-1000:]
        detail = f"; it printed: {tail}" if tail else ""
        return f"the task's process {how} without a result{detail}"
