"""The runner's host side: leased tasks run on the heat the room wants (``[jobs]``).

:class:`JobWorkload` implements the daemon's :class:`~heatgrid.agent.daemon.Workload` seam:

* the daemon claims when the room wants heat and a slot is free; :meth:`JobWorkload.start`
  takes each lease and drives it in an asyncio task of its own: it fetches the job's artifact
  named by the lease (``GET /v1/artifacts/{sha256}``, checked by hash; a local
  ``artifact_dir`` first when configured), downloads the task's newest checkpoint when the
  lease names one, and runs
  the task through :class:`heatgrid.jobs.runner.TaskRunner` (bubblewrap, cgroups) in a worker
  thread, never in the control loop;
* each tick the task is a :class:`~heatgrid.core.arbiter.WorkOffer` (worth
  ``task_value_eur_per_kwh``, above mining) and, after the tick, :meth:`JobWorkload.follow`
  turns the arbiter's plan into the runner's throttle: a CPU task runs ``power / max_power`` of
  each second (the cgroup freezer), a GPU task runs freely under the power limit the GPU's
  adapter sets; a device given no power freezes its task at once, and after ``pause_after_s``
  without power (the room is warm) the task is asked to checkpoint and stop. It restarts from
  that checkpoint when heat is wanted again, or is handed back to the coordinator after
  ``hand_back_after_s``, to resume on another heater;
* checkpoints are uploaded as they come (the newest wins when several wait), in chunks
  (``checkpoint_chunk_bytes``): an upload cut short is tried again after a backoff and sends
  only the chunks the coordinator lacks; progress reports
  carry the attempt's energy (the task's cgroup CPU time times ``core_power_w``) and renew the
  lease; the end is reported as a completion or a failure with the runner's message;
* :meth:`JobWorkload.pause_all` (the agent's SIGTERM) checkpoints every running task, uploads
  the checkpoint and hands the task back before the agent exits.

A lease the coordinator says is lost (``stop``) ends the run without a report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from heatgrid.agent.client import (
    ArtifactMismatchError,
    CoordinatorClient,
    CoordinatorRefusedError,
    CoordinatorUnavailableError,
)
from heatgrid.agent.config import JobsSettings
from heatgrid.agent.devices.base import HeatDevice
from heatgrid.agent.devices.duty_cycle import duty_for_power
from heatgrid.agent.inputs import fetch_inputs
from heatgrid.core.arbiter import DevicePlan, WorkOffer
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import hands_back, pauses
from heatgrid.core.task_energy import EnergyMethod
from heatgrid.jobs.artifact import ArtifactError, artifact_path, unpack_artifact
from heatgrid.jobs.cgroups import CgroupUnavailableError
from heatgrid.jobs.energy import EnergyMeter
from heatgrid.jobs.manifest import load_manifest
from heatgrid.jobs.runner import (
    MARK_SUFFIX,
    RESTORED_SUFFIX,
    RunLimits,
    TaskRunner,
    forget_leftover_tasks,
    latest_checkpoint,
)
from heatgrid.jobs.sandbox import SandboxUnavailableError
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import (
    FINGERPRINT_KEY,
    REPLAY_STEP_KEY,
    CheckpointMark,
    TaskRun,
    TaskRunOutcome,
)

__all__ = ["JobWorkload", "TaskSlot", "task_run"]

_log = logging.getLogger(__name__)

_CANNOT_RUN = (
    ArtifactError,
    ArtifactMismatchError,
    InputError,
    CgroupUnavailableError,
    SandboxUnavailableError,
    OSError,
)
_MAX_ERROR_CHARS = 2000
_UPLOAD_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class TaskSlot:
    """One leased task on this heater and where it stands.

    Attributes
    ----------
    lease : TaskLease
        The lease, as claimed.
    run : TaskRun or None
        The task, from the lease; None when this heater cannot run it (see ``problem``).
    problem : str or None
        Why it cannot run here.
    state : str
        ``waiting`` (for heat or its artifact), ``running``, ``paused``, or ``ended``.
    powered : bool
        True while the arbiter gives the task's device power.
    unpowered_since_ts : float or None
        Since when its device has had no power [POSIX s]; None while it has.
    device_id : str or None
        The device the arbiter runs it on.
    energy_done_j : float
        Energy of this attempt's finished runs [J].
    energy_method : str
        How ``energy_done_j`` was found: the runs' meter (``rapl``, ``nvml``) when every run
        of the attempt was metered the same way and its account was the one kept, else
        ``cpu_time_estimate``.
    uploaded_seq : int
        Newest local checkpoint number uploaded (0: none).
    stored_seq : int or None
        The coordinator's number of the task's newest checkpoint (None: none yet).
    outcomes : list of TaskRunOutcome
        Every run of this attempt on this heater, in order.
    reported : str or None
        How it was reported to the coordinator: ``completed``, ``failed``, ``handed back``,
        ``lost``; None while it runs.
    """

    lease: v1.TaskLease
    run: TaskRun | None
    problem: str | None = None
    state: str = "waiting"
    powered: bool = False
    unpowered_since_ts: float | None = None
    device_id: str | None = None
    energy_done_j: float = 0.0
    energy_method: EnergyMethod = "cpu_time_estimate"
    uploaded_seq: int = 0
    stored_seq: int | None = None
    outcomes: list[TaskRunOutcome] = field(default_factory=list)
    reported: str | None = None
    runner: TaskRunner | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    checkpointed: asyncio.Event = field(default_factory=asyncio.Event)
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)
    stopping: bool = False
    lost: bool = False
    energy_reported_j: float = 0.0
    power_sample: tuple[float, float] | None = None

    @property
    def task_id(self) -> str:
        """The task's id (also its work id for the arbiter)."""
        return self.lease.task_id

    def energy_j(self, j_per_cpu_s: float) -> float:
        """Energy this attempt burned so far [J], never decreasing (``j_per_cpu_s`` [J/s])."""
        live_j = 0.0
        runner = self.runner
        if runner is not None and runner.cgroup is not None:
            with contextlib.suppress(OSError):
                live_j = (runner.cgroup.cpu_s() or 0.0) * j_per_cpu_s
        self.energy_reported_j = max(self.energy_reported_j, self.energy_done_j + live_j)
        return self.energy_reported_j


def task_run(lease: v1.TaskLease) -> tuple[TaskRun | None, str | None]:
    """Return the task a lease asks to run, or None and why this heater cannot run it.

    A lease with an ``artifact`` runs that packed job with ``task_input`` as its parameters;
    one without names its artifact inside ``task_input`` (a :class:`TaskRun` as JSON). The
    device is ``cpu`` until the job's ``job.toml`` asks for GPU memory.
    """
    try:
        if lease.artifact is not None:
            run = TaskRun.model_validate(
                {
                    "artifact": lease.artifact.model_dump(),
                    "task_index": lease.task_index,
                    "params": dict(lease.task_input),
                    "stop_step": lease.stop_step,
                },
                strict=False,
            )
        else:
            run = TaskRun.model_validate(
                {**lease.task_input, "stop_step": lease.stop_step}, strict=False
            )
    except ValidationError as error:
        problem = str(error).replace("\n", "; ")[:500]
        return None, f"the lease names no job artifact this heater can run: {problem}"
    return run, None


class JobWorkload:
    """Runs leased tasks in the sandbox, throttled by the room's heat command.

    Parameters
    ----------
    settings : JobsSettings
        ``[jobs]``.
    client : CoordinatorClient
        The coordinator.
    identity : callable
        Returns ``(device_id, device_token)`` of this heater, or None before enrollment.
    devices : mapping of str to HeatDevice
        The heater's devices by name (their capability gives the throttle).
    clock : callable
        Returns the present, POSIX UTC [s] (the room's clock).
    clock_speed : float
        Seconds of ``clock`` per second of wall time [-]: 1, or an accelerated clock's speed. A
        task's CPU-seconds are wall time; its energy is counted in the clock's seconds, as the
        room that the heater warms counts it.
    """

    def __init__(
        self,
        settings: JobsSettings,
        *,
        client: CoordinatorClient,
        identity: Callable[[], tuple[str, str] | None],
        devices: Mapping[str, HeatDevice],
        clock: Callable[[], float],
        clock_speed: float = 1.0,
    ) -> None:
        self.settings = settings
        self._j_per_cpu_s = settings.core_power_w * clock_speed
        """A task's energy per CPU-second [J/s]: ``core_power_w`` over the seconds of ``clock``,
        ``clock_speed`` of them per second of wall time (1 but on an accelerated clock)."""
        self._clock_speed = clock_speed
        self._client = client
        self._identity = identity
        self._devices = devices
        self._clock = clock
        self.slots: dict[str, TaskSlot] = {}
        """Tasks held now, by task id."""
        self.finished: list[TaskSlot] = []
        """Tasks that ended here (reported or lost), oldest first."""
        self._drivers: set[asyncio.Task[None]] = set()
        self._closing = False
        compute = [d for d in devices.values() if d.capability.kind in {"cpu", "gpu"}]
        self._capacity = min(settings.max_tasks, len(compute))
        self._has_gpu = any(d.capability.kind == "gpu" for d in compute)
        self._has_cpu = any(d.capability.kind == "cpu" for d in compute)
        self._forget_leftovers()

    def _forget_leftovers(self) -> None:
        """Remove what a previous agent left (killed mid-task): cgroups, job directories, files.

        Its leases lapse at the coordinator, and a task claimed again is restored from the
        coordinator's checkpoint; fetched artifacts are kept (they are checked by hash). A
        task's cgroup is removed with whatever process of it is still alive.
        """
        work_root = self.settings.dir / "work"
        try:
            left = forget_leftover_tasks(work_root)
        except (OSError, RuntimeError) as error:  # never keeps the agent from starting
            _log.warning("could not remove a task a previous agent left: %s", error)
        else:
            if left:
                _log.info("removed %d task cgroup(s) a previous agent left", left)
        for name in ("work", "manifests", "tasks"):
            shutil.rmtree(self.settings.dir / name, ignore_errors=True)

    # ------------------------------------------------------------------ the daemon's seam

    def free_slots(self) -> int:
        """Return how many more tasks it can run now (one per compute device at most)."""
        return 0 if self._closing else max(self._capacity - len(self.slots), 0)

    def offers(self, now_ts: float) -> list[WorkOffer]:
        """Return every held task (running, frozen or paused) as work for the arbiter."""
        offers = []
        for slot in self.slots.values():
            if slot.run is None or slot.state == "ended":
                continue
            gpu = slot.run.device == "cuda"
            offers.append(
                WorkOffer(
                    work_id=slot.task_id,
                    value_eur_per_kwh=self.settings.task_value_eur_per_kwh,
                    device_kinds=("gpu",) if gpu else ("cpu",),
                    exclusive=True,
                )
            )
        return offers

    def follow(self, plans: Sequence[DevicePlan], now_ts: float) -> None:
        """Turn a tick's plan into each task's throttle; pause tasks left without heat.

        Called by the daemon after each tick. It only sets flags (thread-safe) and never
        waits, so the control loop is never held up by a task.
        """
        by_work = {plan.work_id: plan for plan in plans if plan.work_id is not None}
        for slot in self.slots.values():
            plan = by_work.get(slot.task_id)
            powered = plan is not None and plan.power_w > 0.0
            slot.powered = powered
            duty = 0.0
            if plan is not None and powered:
                slot.device_id = plan.device_id
                slot.unpowered_since_ts = None
                duty = self._duty(plan)
                slot.wake.set()
            elif slot.unpowered_since_ts is None:
                slot.unpowered_since_ts = now_ts
            runner = slot.runner
            if runner is None:
                continue
            runner.set_duty(duty)
            since_ts = slot.unpowered_since_ts
            unpowered_s = 0.0 if since_ts is None else now_ts - since_ts
            if pauses(unpowered_s, self.settings.pause_after_s) and not slot.stopping:
                _log.info("task %s: the room wants no heat; asking it to pause", slot.task_id)
                slot.stopping = True
                runner.request_pause()

    def task_power_w(self, device_id: str) -> float:
        """Return the power the tasks on ``device_id`` draw now, above its idle power [W].

        The rate of their cgroups' CPU time since the previous call, times ``core_power_w``:
        an estimate, for a device whose adapter reads its power from a model (a CPU without
        RAPL counters), whose own workers are stopped while a task heats it.
        """
        now = time.monotonic()
        total_w = 0.0
        for slot in self.slots.values():
            if slot.device_id != device_id or slot.runner is None:
                continue
            energy_j = slot.energy_j(self._j_per_cpu_s)
            last = slot.power_sample
            slot.power_sample = (now, energy_j)
            if last is not None and now > last[0]:
                total_w += max(energy_j - last[1], 0.0) / ((now - last[0]) * self._clock_speed)
        return total_w

    async def start(self, lease: v1.TaskLease) -> None:
        """Take a lease: drive the task in its own asyncio task (returns at once)."""
        run, problem = task_run(lease)
        if run is None:
            _log.error("task %s: cannot run here: %s", lease.task_id, problem)
        slot = TaskSlot(
            lease=lease,
            run=run,
            problem=problem,
            unpowered_since_ts=self._clock(),
            stored_seq=lease.checkpoint_seq,
        )
        self.slots[lease.task_id] = slot
        driver = asyncio.create_task(self._drive(slot), name=f"task-{lease.task_id}")
        self._drivers.add(driver)
        driver.add_done_callback(self._drivers.discard)

    async def pause_all(self) -> None:
        """Checkpoint every running task, upload it, hand the task back; then return."""
        self._closing = True
        for slot in self.slots.values():
            slot.stopping = True
            if slot.runner is not None:
                slot.runner.request_pause()
            slot.wake.set()
        if self._drivers:
            await asyncio.gather(*self._drivers, return_exceptions=True)

    # ------------------------------------------------------------------ one task

    def _duty(self, plan: DevicePlan) -> float:
        """Return the share of each second the task runs for its device's planned power.

        A GPU whose adapter holds the board's power limit runs its task all the time (the
        limit is the throttle); one whose limit cannot be set, and a CPU, are duty-cycled by
        the cgroup freezer, which no process of the task can escape.
        """
        device = self._devices.get(plan.device_id)
        if device is None:
            return 1.0
        capability = device.capability
        if capability.kind == "gpu":
            if getattr(device, "limit_control", True):
                return 1.0
            idle_w = float(getattr(device, "idle_power_w", 0.0))
            return duty_for_power(plan.power_w, idle_w, capability.max_power_w)
        return min(max(plan.power_w / capability.max_power_w, 0.0), 1.0)

    def _task_dir(self, slot: TaskSlot) -> Path:
        return self.settings.dir / "tasks" / slot.task_id

    async def _drive(self, slot: TaskSlot) -> None:
        try:
            await self._drive_inner(slot)
        except Exception as error:  # a bug here must not leave the task held for ever
            _log.exception("task %s: the runner's host side failed", slot.task_id)
            await self._report_failure(slot, f"the heater's runner failed: {error!r}")
        finally:
            self._end(slot)

    async def _drive_inner(self, slot: TaskSlot) -> None:
        prepared = await self._prepare(slot)
        if prepared is None:
            return
        archive, limits, inputs = prepared
        while not slot.lost:
            if not await self._wait_for_heat(slot):
                await self._hand_back(slot, self._back_reason(slot))
                return
            outcome = await self._run_once(slot, archive, limits, inputs)
            if outcome is None or slot.lost or not await self._after_run(slot, outcome):
                return

    async def _prepare(self, slot: TaskSlot) -> tuple[Path, RunLimits, dict[str, Path]] | None:
        """Fetch and check the artifact and inputs, read the limits, restore the checkpoint.

        Returns None when the task ended here (reported).
        """
        if slot.run is None:
            await self._report_failure(slot, slot.problem or "not a job task")
            return None
        try:
            archive = await self._artifact(slot.run)
            limits, gpu_memory_gb = await asyncio.to_thread(self._limits, archive, slot.run)
            if gpu_memory_gb > 0.0:
                if not self._has_gpu:
                    await self._report_failure(slot, "the task needs a GPU; this heater has none")
                    return None
                slot.run = slot.run.model_copy(update={"device": "cuda"})
            elif not self._has_cpu:
                await self._hand_back(
                    slot, "the task runs on a CPU; this heater heats with a GPU", counted=True
                )
                return None
            inputs = await fetch_inputs(
                slot.lease.input_urls,
                self.settings.dir / "inputs",
                max_bytes=limits.disk_bytes,
                allow_private=self.settings.allow_private_inputs,
            )
            await self._restore(slot)
        except CoordinatorUnavailableError as error:
            await self._hand_back(slot, f"could not prepare the task here: {error}", counted=True)
            return None
        except _CANNOT_RUN as error:
            await self._report_failure(slot, f"the heater cannot run this task: {error}")
            return None
        return archive, limits, inputs

    async def _after_run(self, slot: TaskSlot, outcome: TaskRunOutcome) -> bool:
        """Report how a run ended; return True when the task waits here to run again."""
        await self._upload_newest(slot)
        stop_step = slot.lease.stop_step
        if stop_step is not None and outcome.state in {"completed", "paused"}:
            replayed = self._replay_result(slot, stop_step)
            if replayed is not None:  # a segment replay reached its step: report what it has
                await self._report_completion(slot, replayed)
                return False
            if outcome.state == "completed":
                await self._report_failure(
                    slot, f"the job ended without a checkpoint at the replay's step {stop_step}"
                )
                return False
        if outcome.state == "completed":
            await self._report_completion(slot, outcome.result or {})
            return False
        if outcome.state != "paused":
            await self._report_failure(slot, f"{outcome.state}: {outcome.message}")
            return False
        slot.state = "paused"
        _log.info("task %s paused: %s", slot.task_id, outcome.message)
        if self._closing:
            await self._hand_back(slot, "the heater stopped")
            return False
        slot.stopping = False
        return True

    def _back_reason(self, slot: TaskSlot) -> str:
        if self._closing:
            return "the heater stopped before the task could run"
        return f"the room wanted no heat for {self.settings.hand_back_after_s:g} s"

    async def _wait_for_heat(self, slot: TaskSlot) -> bool:
        """Wait until the task's device has power; False when it should be handed back."""
        while not self._closing and not slot.lost:
            if slot.powered:
                return True
            since_ts = slot.unpowered_since_ts
            now_ts = self._clock()
            if since_ts is not None and hands_back(
                now_ts - since_ts, self.settings.hand_back_after_s
            ):
                return False
            slot.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await slot.wake.wait()
        return False

    async def _artifact(self, run: TaskRun) -> Path:
        sha256 = run.artifact.sha256
        if self.settings.artifact_dir is not None:
            local = artifact_path(self.settings.artifact_dir, sha256)
            if local.is_file():
                return local
        _, token = self._require_identity()
        return await self._client.fetch_artifact(
            sha256, self.settings.dir / "artifacts", token=token
        )

    def _limits(self, archive: Path, run: TaskRun) -> tuple[RunLimits, float]:
        """Check the artifact and read its ``job.toml``: the task's limits and GPU memory [GB]."""
        root = self.settings.dir / "manifests"
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            unpack_artifact(archive, run.artifact.sha256, Path(scratch) / "job")
            resources = load_manifest(Path(scratch) / "job" / "code").resources
        limits = RunLimits(
            memory_bytes=resources.memory_mb << 20,
            disk_bytes=resources.disk_mb << 20,
            max_processes=resources.max_processes,
            pause_grace_s=self.settings.pause_grace_s,
            term_grace_s=self.settings.term_grace_s,
        )
        return limits, resources.gpu_memory_gb

    async def _restore(self, slot: TaskSlot) -> None:
        """Put the lease's checkpoint in the task's checkpoint directory (and nothing else)."""
        checkpoints = self._task_dir(slot) / "checkpoints"
        seq = slot.lease.checkpoint_seq
        have = latest_checkpoint(checkpoints) if checkpoints.exists() else None
        if seq is None or (have is not None and have[0] == seq):
            if seq is None:
                shutil.rmtree(checkpoints, ignore_errors=True)
            slot.uploaded_seq = seq or 0
            return
        device_id, token = self._require_identity()
        blob = await self._client.get_checkpoint(device_id, token, slot.task_id, seq)
        shutil.rmtree(checkpoints, ignore_errors=True)
        checkpoints.mkdir(parents=True)
        await asyncio.to_thread((checkpoints / f"{seq}.ckpt").write_bytes, blob)
        slot.uploaded_seq = seq
        _log.info("task %s resumes from checkpoint %d (%d bytes)", slot.task_id, seq, len(blob))

    def _require_identity(self) -> tuple[str, str]:
        identity = self._identity()
        if identity is None:
            raise CoordinatorUnavailableError("this heater is not enrolled")
        return identity

    async def _run_once(
        self, slot: TaskSlot, archive: Path, limits: RunLimits, inputs: dict[str, Path]
    ) -> TaskRunOutcome | None:
        """Run the task until it ends or pauses, uploading and reporting meanwhile."""
        assert slot.run is not None
        loop = asyncio.get_running_loop()
        task_dir = self._task_dir(slot)

        def checkpointed(_seq: int) -> None:
            loop.call_soon_threadsafe(slot.checkpointed.set)

        runner = TaskRunner(
            archive,
            slot.run,
            checkpoint_dir=task_dir / "checkpoints",
            output_dir=task_dir / "outputs",
            limits=limits,
            work_root=self.settings.dir / "work",
            core_power_w=self._j_per_cpu_s,
            energy_meter=EnergyMeter(
                self._j_per_cpu_s,
                gpu=slot.run.device == "cuda",
                metered=self._clock_speed == 1.0,
            ),
            on_checkpoint=checkpointed,
            inputs=inputs,
        )
        runner.set_duty(0.0 if not slot.powered else 1.0)
        if slot.stopping or self._closing:
            runner.request_pause()
        slot.runner, slot.state = runner, "running"
        _log.info("task %s: running (attempt %d)", slot.task_id, slot.lease.attempt)
        run = asyncio.create_task(asyncio.to_thread(runner.run))
        helpers = [
            asyncio.create_task(self._uploader(slot)),
            asyncio.create_task(self._reporter(slot)),
        ]
        done_j = slot.energy_done_j
        outcome: TaskRunOutcome | None = None
        try:
            outcome = await asyncio.shield(run)
        except _CANNOT_RUN as error:
            problem = f"the heater cannot run this task: {error}"
        finally:
            # not in the middle of an upload: a commit sent and then abandoned would remove,
            # at the coordinator, the chunks the next upload of the task counts on
            async with slot.sending:
                for helper in helpers:
                    helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            slot.energy_done_j = slot.energy_j(self._j_per_cpu_s)
            slot.runner = None
        if outcome is None:
            await self._report_failure(slot, problem)
            return None
        agrees = not slot.outcomes or slot.energy_method == outcome.energy_method
        slot.outcomes.append(outcome)
        # the run's own account (metered, or its cgroup's CPU time), never less than reported
        metered_j = done_j + outcome.energy_j
        kept = metered_j >= slot.energy_reported_j
        slot.energy_method = outcome.energy_method if kept and agrees else "cpu_time_estimate"
        slot.energy_done_j = max(metered_j, slot.energy_reported_j)
        slot.energy_reported_j = slot.energy_done_j
        return outcome

    async def _uploader(self, slot: TaskSlot) -> None:
        """Upload each new checkpoint; after a failed upload, try again after a backoff."""
        failures = 0
        while True:
            if failures:
                delay_s = _UPLOAD_RETRY_S[min(failures, len(_UPLOAD_RETRY_S)) - 1]
                with contextlib.suppress(TimeoutError):  # or at once for a newer checkpoint
                    await asyncio.wait_for(slot.checkpointed.wait(), delay_s)
            else:
                await slot.checkpointed.wait()
            slot.checkpointed.clear()
            failures = 0 if await self._upload_newest(slot) else failures + 1

    async def _upload_newest(self, slot: TaskSlot) -> bool:
        """Upload the newest local checkpoint if it is newer than the last one uploaded.

        It goes in chunks of ``checkpoint_chunk_bytes``, from a link to the file that the
        runner's pruning does not remove; a call after one cut short sends only the chunks the
        coordinator lacks. Returns False when the coordinator could not be reached (try again).
        """
        task_dir = self._task_dir(slot)
        checkpoints = task_dir / "checkpoints"
        newest = latest_checkpoint(checkpoints) if checkpoints.exists() else None
        if newest is None or newest[0] <= slot.uploaded_seq or slot.lost:
            return True
        seq, path = newest
        staged = task_dir / "uploading" / f"{seq}.ckpt"
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.unlink(missing_ok=True)
            os.link(path, staged)
            mark = _read_mark(path.with_suffix(MARK_SUFFIX))
        except FileNotFoundError:  # pruned by a newer one: that one's turn comes
            slot.checkpointed.set()
            return True
        try:
            device_id, token = self._require_identity()
            async with slot.sending:  # energies reach the coordinator in the order measured
                receipt = await self._client.upload_checkpoint(
                    slot.task_id,
                    staged,
                    attempt=slot.lease.attempt,
                    energy_j=slot.energy_j(self._j_per_cpu_s),
                    device_id=device_id,
                    token=token,
                    chunk_bytes=self.settings.checkpoint_chunk_bytes,
                    mark=mark,
                )
        except CoordinatorUnavailableError as error:
            _log.warning("task %s: checkpoint %d not uploaded yet: %s", slot.task_id, seq, error)
            return False
        except CoordinatorRefusedError as error:
            self._lose(slot, f"checkpoint upload refused: {error}")
            return True
        for old in staged.parent.glob("*.ckpt"):
            if old.stem.isdigit() and int(old.stem) <= seq:
                old.unlink(missing_ok=True)
        slot.uploaded_seq, slot.stored_seq = seq, receipt.seq
        _log.info(
            "task %s: checkpoint %d uploaded as the task's checkpoint %d (%d bytes)",
            slot.task_id,
            seq,
            receipt.seq,
            receipt.size_bytes,
        )
        return True

    async def _reporter(self, slot: TaskSlot) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_interval_s)
            try:
                device_id, token = self._require_identity()
                async with slot.sending:
                    energy_j = slot.energy_j(self._j_per_cpu_s)
                    status = await self._client.progress(
                        device_id,
                        token,
                        slot.task_id,
                        v1.TaskProgress(attempt=slot.lease.attempt, energy_j=energy_j),
                    )
            except CoordinatorUnavailableError as error:
                _log.warning("task %s: progress not reported: %s", slot.task_id, error)
                continue
            except CoordinatorRefusedError as error:
                self._lose(slot, f"progress refused: {error}")
                return
            if status.stop:
                self._lose(slot, f"the coordinator says stop (the task is {status.state})")
                return

    def _lose(self, slot: TaskSlot, why: str) -> None:
        """Give up a lost lease: stop the run and report nothing more."""
        _log.warning("task %s: %s; stopping it", slot.task_id, why)
        slot.lost, slot.reported = True, "lost"
        if slot.runner is not None:
            slot.runner.request_pause()
        slot.wake.set()

    async def _report(
        self, slot: TaskSlot, what: str, send: Callable[[str, str], Awaitable[v1.TaskStatus]]
    ) -> None:
        if slot.lost:
            return
        for delay_s in (0.0, 1.0, 2.0, 4.0, 8.0):
            await asyncio.sleep(delay_s)
            try:
                device_id, token = self._require_identity()
                await send(device_id, token)
            except CoordinatorUnavailableError as error:
                _log.warning("task %s: %s not reported yet: %s", slot.task_id, what, error)
                continue
            except CoordinatorRefusedError as error:
                _log.warning("task %s: %s refused: %s", slot.task_id, what, error)
                slot.reported = "lost"
                return
            slot.reported = what
            return
        _log.error(
            "task %s: %s never reached the coordinator; its lease lapses", slot.task_id, what
        )

    def _replay_result(self, slot: TaskSlot, stop_step: int) -> dict[str, object] | None:
        """Return a segment replay's result: the fingerprint of its checkpoint at ``stop_step``.

        None when the newest checkpoint is not at that step or carries no fingerprint.
        """
        checkpoints = self._task_dir(slot) / "checkpoints"
        newest = latest_checkpoint(checkpoints) if checkpoints.exists() else None
        if newest is None:
            return None
        mark = _read_mark(newest[1].with_suffix(MARK_SUFFIX))
        if mark is None or mark.step != stop_step or mark.fingerprint is None:
            return None
        return {
            REPLAY_STEP_KEY: stop_step,
            FINGERPRINT_KEY: mark.fingerprint.model_dump(mode="json"),
        }

    def _start_mark(self, slot: TaskSlot) -> CheckpointMark | None:
        """Return what the job said of the state it restored from the lease's checkpoint.

        None when the lease started afresh or the job did not say (``ctx.restored``); a
        later resume here, from this heater's own checkpoint, does not replace it.
        """
        seq = slot.lease.checkpoint_seq
        if seq is None:
            return None
        return _read_mark(self._task_dir(slot) / "checkpoints" / f"{seq}{RESTORED_SUFFIX}")

    async def _report_completion(self, slot: TaskSlot, result: dict[str, object]) -> None:
        energy_j = slot.energy_j(self._j_per_cpu_s)
        report = v1.TaskCompletion(
            attempt=slot.lease.attempt,
            energy_j=energy_j,
            energy_method=slot.energy_method,
            result=result,
            start_mark=self._start_mark(slot),
        )
        _log.info("task %s completed: %s", slot.task_id, result)
        await self._report(
            slot,
            "completed",
            lambda device_id, token: self._client.complete(device_id, token, slot.task_id, report),
        )

    async def _report_failure(self, slot: TaskSlot, message: str, *, what: str = "failed") -> None:
        energy_j = slot.energy_j(self._j_per_cpu_s)
        report = v1.TaskFailure(
            attempt=slot.lease.attempt,
            energy_j=energy_j,
            energy_method=slot.energy_method,
            error=message.strip()[:_MAX_ERROR_CHARS] or "failed",
        )
        log = _log.info if what == "handed back" else _log.error
        log("task %s %s: %s", slot.task_id, what, message)
        await self._report(
            slot,
            what,
            lambda device_id, token: self._client.fail(device_id, token, slot.task_id, report),
        )

    async def _hand_back(self, slot: TaskSlot, message: str, *, counted: bool = False) -> None:
        """Give the task back so that another heater resumes it from its newest checkpoint.

        A hand-back on purpose (the room is warm, the heater stops) does not count against the
        job's attempts; one because this heater cannot run the task (``counted``) is reported
        as a failed attempt, so that a task no heater can run ends in the dead letter.
        """
        await self._upload_newest(slot)
        seq = slot.stored_seq
        where = "from the start" if seq is None else f"from the task's checkpoint {seq}"
        reason = f"{message}; another heater resumes it {where}"
        if counted:
            await self._report_failure(slot, f"handed back: {reason}", what="handed back")
            return
        report = v1.TaskHandBack(
            attempt=slot.lease.attempt,
            energy_j=slot.energy_j(self._j_per_cpu_s),
            energy_method=slot.energy_method,
            reason=reason[:_MAX_ERROR_CHARS],
        )
        _log.info("task %s handed back: %s", slot.task_id, reason)
        await self._report(
            slot,
            "handed back",
            lambda device_id, token: self._client.hand_back(device_id, token, slot.task_id, report),
        )

    def _end(self, slot: TaskSlot) -> None:
        slot.state = "ended"
        self.slots.pop(slot.task_id, None)
        self.finished.append(slot)
        if slot.reported in {"completed", "failed"}:
            shutil.rmtree(self._task_dir(slot), ignore_errors=True)


def _read_mark(path: Path) -> CheckpointMark | None:
    """Return the step and fingerprint the runner kept beside a checkpoint, or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return CheckpointMark.model_validate_json(text)  # the runner checked it when it wrote it
