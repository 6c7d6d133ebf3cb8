"""The job SDK: the ``ctx`` that a job's ``main(ctx)`` receives.

A job is a directory whose ``job.py`` defines ``main(ctx)``::

    def main(ctx):
        state = ctx.restore() or {"step": 0}
        while state["step"] < 1000:
            if ctx.should_pause():
                ctx.checkpoint(state)
                return None
            state["step"] += 1
            ctx.progress(state["step"] / 1000, {"step": state["step"]})
        return {"answer": 42}

The context talks to the runner on the host through two pipes (no network): JSON lines go
out (progress, checkpoints, the result) and come in (a request to pause). Checkpoints are files
in the job directory that the runner copies out of the sandbox and keeps.

This module runs inside the sandbox: standard library only, and imports nothing of heatgrid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CHECKPOINT_DIR",
    "CONTROL_DIR",
    "FINGERPRINT_KEY",
    "MAX_REPORT_BYTES",
    "RESTORE_FILE",
    "TASK_FILE",
    "JobContext",
    "decode_checkpoint",
    "encode_checkpoint",
    "tensor_fingerprint",
]

CONTROL_DIR: Final = ".heatgrid"
"""Directory, in the job directory, that the runner and the SDK share."""

TASK_FILE: Final = "task.json"
"""File in :data:`CONTROL_DIR` that describes the task (index, params, device, inputs)."""

RESTORE_FILE: Final = "restore.ckpt"
"""File in :data:`CONTROL_DIR` holding the checkpoint to resume from, if any."""

CHECKPOINT_DIR: Final = "checkpoints"
"""Directory in :data:`CONTROL_DIR` where the SDK writes checkpoints for the runner."""

MAX_REPORT_BYTES: Final = 256 * 1024
"""Longest report line a task may send [bytes]; the runner stops a task that sends more."""

FINGERPRINT_KEY: Final = "tensor_fingerprint"
"""Key of a result (a JSON object) that holds the fingerprint its replicas are compared by."""

_SKETCH_SIZE = 64  # heatgrid.core.fingerprint.SKETCH_SIZE (this module imports no heatgrid)
_SKETCH_NONZEROS = 4  # heatgrid.core.fingerprint.SKETCH_NONZEROS
_SKETCH_SEED = 0x6865617467726964  # heatgrid.core.fingerprint.SKETCH_SEED
_SKETCH_CHUNK = 1 << 20
_SKETCH_BATCH = 1 << 16
"""Chunks smaller than this many values are sketched together (up to this many at once)."""
_MAGIC_BYTES = b"HGCK1B\n"
_MAGIC_PICKLE = b"HGCK1P\n"
_MAX_METRICS = 64
_KEEP_CHECKPOINTS = 2
_CLOCK_EVERY_CALLS = 16
"""``should_pause`` reads the clock (to send a held progress report once due) on its first call
after a ``progress`` call and then every this many calls: a job calls it every step, and a clock
read there cost 2 µs of a 0.4 ms training step (0.5 %), where a step's own ``progress`` call
reads the clock anyway."""
_PROGRESS_INTERVAL_S = 0.1
"""Least time between two progress reports sent to the runner [s]: a job may report every few
steps; the runner (and the coordinator behind it) needs a few a second. A report that comes
sooner is held and sent with the next one due, a checkpoint, or the end."""


def encode_checkpoint(state: object) -> bytes:
    """Return the bytes a checkpoint of ``state`` is stored as (bytes as is, else pickled)."""
    return b"".join(_encoded_parts(state))


def _encoded_parts(state: object) -> tuple[bytes, bytes | bytearray | memoryview]:
    """Return the header and the body of the checkpoint of ``state`` (the body not copied)."""
    if isinstance(state, memoryview):  # as bytes, whatever its item format
        return _MAGIC_BYTES, state.cast("B") if state.c_contiguous else state.tobytes()
    if isinstance(state, bytes | bytearray):
        return _MAGIC_BYTES, state
    return _MAGIC_PICKLE, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def decode_checkpoint(blob: bytes) -> object:
    """Return the state that :func:`encode_checkpoint` encoded into ``blob``."""
    if blob.startswith(_MAGIC_BYTES):
        return blob[len(_MAGIC_BYTES) :]
    if blob.startswith(_MAGIC_PICKLE):
        return pickle.loads(blob[len(_MAGIC_PICKLE) :])
    raise ValueError("not a heatgrid checkpoint (unknown header)")


def tensor_fingerprint(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Return the fingerprint of tensors' values that verification compares (a JSON object).

    ``tensors`` maps names to tensors: PyTorch tensors (a ``state_dict()``), numpy arrays or
    nested lists of numbers. The fingerprint (see :mod:`heatgrid.core.fingerprint`) holds
    ``values_sha256`` (SHA-256 over each tensor's name, dtype, shape and bytes, in name order),
    ``count`` (values), ``norm`` (their L2 norm, float64) and ``sketch`` (64 numbers: each value
    at position ``i`` of the name-ordered flattened tensors is added, with a sign drawn by a
    seeded hash of ``i``, into 4 distinct of 64 buckets, scaled by 1/2), so that
    ``||sketch(x) - sketch(y)||`` estimates ``||x - y||``. It needs numpy (PyTorch jobs have it).

    Raises
    ------
    ValueError
        A tensor holds a value that is not a finite number, or is not numeric.
    """
    import numpy as np  # noqa: PLC0415 - only jobs that fingerprint need numpy

    digest = hashlib.sha256()
    sketch = np.zeros(_SKETCH_SIZE, dtype=np.float64)
    squares, offset = 0.0, 0
    waiting: list[Any] = []  # chunks of consecutive positions, sketched together
    waiting_from = waiting_size = 0
    for name in sorted(tensors):
        value = tensors[name]
        if hasattr(value, "detach"):  # a torch tensor, without importing torch
            value = value.detach().cpu().contiguous().numpy()
        array = np.ascontiguousarray(np.asarray(value))
        if array.dtype.kind not in "biuf":
            raise ValueError(f"tensor_fingerprint: {name!r} is not numeric ({array.dtype})")
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        flat = array.reshape(-1)
        digest.update(flat.view(np.uint8).data)  # the bytes in place, no copy
        for start in range(0, flat.size, _SKETCH_CHUNK):
            chunk = flat[start : start + _SKETCH_CHUNK].astype(np.float64)
            if not np.all(np.isfinite(chunk)):
                raise ValueError(f"tensor_fingerprint: {name!r} holds a value that is not finite")
            # numpy's own pairwise sum, not np.dot: BLAS sums in an order that depends on the
            # machine and its threads, and OpenBLAS's threads spin on after each call (at a
            # checkpoint a second a 26 k-value model took 5 ms and 13 ms of another core's CPU)
            squares += float(np.add.reduce(chunk * chunk))
            if chunk.size >= _SKETCH_BATCH:  # large enough to go alone (not copied)
                if waiting:
                    _sketch_chunks(np, sketch, waiting, waiting_from)
                    waiting, waiting_size = [], 0
                _sketch_chunks(np, sketch, [chunk], offset + start)
                continue
            if not waiting:
                waiting_from = offset + start
            waiting.append(chunk)
            waiting_size += chunk.size
            if waiting_size >= _SKETCH_BATCH:
                _sketch_chunks(np, sketch, waiting, waiting_from)
                waiting, waiting_size = [], 0
        offset += flat.size
    if waiting:
        _sketch_chunks(np, sketch, waiting, waiting_from)
    norm = math.sqrt(squares)
    if not math.isfinite(norm):
        raise ValueError("tensor_fingerprint: the values' norm overflows a float64")
    return {
        "values_sha256": digest.hexdigest(),
        "count": offset,
        "norm": norm,
        "sketch": [float(x) for x in sketch],
    }


def _sketch_chunks(np: Any, sketch: Any, chunks: list[Any], first_index: int) -> None:
    """Add the sketch of each chunk (in order) to ``sketch``; they hold positions ``first_index…``.

    Value ``i`` goes into buckets ``(b + t * 16) % 64`` for ``t`` in 0..3, where ``b`` is the
    low 6 bits of the (splitmix64) hash of ``i``, with sign ``+1`` where bit ``63 - t`` of the
    hash is set. One pass over the values: each chunk's are summed by (sign bits, ``b``),
    16 x 64 sums, which the chunk's four signed, rotated bucket sets are then made of, and
    each chunk's sketch is added to ``sketch`` in turn. Small chunks (a model's small tensors,
    up to ``_SKETCH_BATCH`` values in all) go through each of these steps together, so that a
    model of many small tensors pays the fixed cost of these numpy calls once, not once per
    tensor (the digits example's six tensors: most of its fingerprint's time was that fixed
    cost); the sums are the same as chunk by chunk, to the bit.
    """
    sizes = [chunk.size for chunk in chunks]
    values = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    z = np.arange(first_index, first_index + values.size, dtype=np.uint64)
    z *= np.uint64(0x9E3779B97F4A7C15)
    z += np.uint64(_SKETCH_SEED)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    bucket_bits = _SKETCH_SIZE.bit_length() - 1
    key = z >> np.uint64(64 - _SKETCH_NONZEROS)  # the sign bits: bit 63 - t is bit 3 - t here
    key <<= np.uint64(bucket_bits)
    key |= z & np.uint64(_SKETCH_SIZE - 1)
    patterns = 1 << _SKETCH_NONZEROS
    cells = patterns * _SKETCH_SIZE
    key = key.astype(np.intp)
    if len(chunks) > 1:  # each chunk's sums in cells of their own
        key += np.repeat(np.arange(len(chunks), dtype=np.intp) * cells, sizes)
    sums = np.bincount(key, weights=values, minlength=len(chunks) * cells).reshape(
        len(chunks), patterns, _SKETCH_SIZE
    )
    stride = _SKETCH_SIZE // _SKETCH_NONZEROS
    out = np.zeros((len(chunks), _SKETCH_SIZE), dtype=np.float64)
    for t in range(_SKETCH_NONZEROS):
        positive = (np.arange(patterns) >> (_SKETCH_NONZEROS - 1 - t)) & 1 == 1
        signs = np.where(positive, 1.0, -1.0)[:, np.newaxis]
        out += np.roll(np.add.reduce(signs * sums, axis=1), t * stride, axis=1)
    out /= math.sqrt(_SKETCH_NONZEROS)
    for chunk_sketch in out:
        sketch += chunk_sketch


class JobContext:
    """What a job's ``main(ctx)`` gets: its task, its files, and the runner's ear.

    Attributes
    ----------
    task_index : int
        The task's number within its job, from 0.
    params : dict
        The task's parameters (one point of a sweep); empty when the job has none.
    inputs : dict of str to Path
        The job's input files by name, as local paths (read them, do not write them).
    device : str
        ``"cpu"``, or ``"cuda"`` when the task was given a GPU.
    output_dir : Path
        Where to write results worth keeping; the runner collects every file in it.
    work_dir : Path
        The job directory (writable, private; the job's code is in ``work_dir / "code"``).
    stop_step : int or None
        The training step this run stops at (a segment replay: verification resumes another
        heater's checkpoint and checks the tensors it reaches at that step); None: run to the
        end. Once a checkpoint at or past it is saved, :meth:`should_pause` is True.
    """

    def __init__(self, job_root: Path, control_fd: int, report_fd: int) -> None:
        self.work_dir = job_root
        control = job_root / CONTROL_DIR
        task: dict[str, Any] = json.loads((control / TASK_FILE).read_text(encoding="utf-8"))
        self.task_index: int = int(task["task_index"])
        self.params: dict[str, Any] = dict(task["params"])
        self.device: str = str(task["device"])
        self.inputs: dict[str, Path] = {
            name: job_root / "inputs" / name for name in task.get("inputs", [])
        }
        self.output_dir = job_root / "outputs"
        self.output_dir.mkdir(exist_ok=True)
        self._control = control
        self._checkpoint_dir = control / CHECKPOINT_DIR
        self._checkpoint_dir.mkdir(exist_ok=True)
        stop = task.get("stop_step")
        self.stop_step: int | None = None if stop is None else int(stop)
        self._seq: int = int(task.get("checkpoint_seq") or 0)
        self._latest: Path | None = control / RESTORE_FILE if self._seq else None
        self._report_fd = report_fd
        os.set_blocking(control_fd, True)
        # the thread reads its own copy of the descriptor: had it read ``control_fd``, a number
        # the caller may close and the process reuse for another file, it could take that
        # file's lines (so could a second context's thread in one process)
        watch_fd = os.dup(control_fd)
        self._pause_requested = False
        self._calls_to_clock = 0
        self._progress_sent = -math.inf
        self._held: dict[str, object] | None = None
        self.pause_seen = False
        threading.Thread(
            target=self._watch_control, args=(watch_fd,), name="heatgrid-pause-watcher", daemon=True
        ).start()

    def restore(self) -> object | None:
        """Return the state of the newest checkpoint, or None when the task starts afresh."""
        if self._latest is None:
            return None
        return decode_checkpoint(self._latest.read_bytes())

    def restored(self, *, step: int, fingerprint: Mapping[str, Any]) -> None:
        """Say what the state :meth:`restore` returned holds, once the job has loaded it.

        ``step`` is the training step it was saved after and ``fingerprint`` the
        :meth:`tensor_fingerprint` of its tensors as loaded (``model.state_dict()``). A segment
        replay's start is checked by them: the checkpoint another heater saved must hold the
        state its mark claims (a checkpoint swapped for another state is caught).

        Raises
        ------
        ValueError
            No checkpoint was restored (the task started afresh), or ``step`` is negative.
        """
        if not self._seq or self._latest != self._control / RESTORE_FILE:
            raise ValueError("ctx.restored: no checkpoint was restored (the task started afresh)")
        if int(step) < 0:
            raise ValueError(f"ctx.restored: step must be 0 or more, got {step!r}")
        self._send({"type": "restored", "step": int(step), "fingerprint": dict(fingerprint)})

    def checkpoint(
        self,
        state: object,
        *,
        step: int | None = None,
        fingerprint: Mapping[str, Any] | None = None,
    ) -> int:
        """Save ``state`` (bytes, or any picklable object) as the task's newest checkpoint.

        A training job passes the ``step`` the state was saved after and the
        :meth:`tensor_fingerprint` of its tensors: verification may replay the segment between
        two checkpoints on another heater and compare the tensors it reaches with these.

        Returns
        -------
        int
            The checkpoint's number, counting from 1 over the task's whole life.
        """
        parts = _encoded_parts(state)
        self._seq += 1
        final = self._checkpoint_dir / f"{self._seq}.ckpt"
        partial = self._checkpoint_dir / f"{self._seq}.partial"
        digest, size = hashlib.sha256(), 0
        # no fsync here: this file only lives as long as the run; the runner copies it out
        # and makes its copy durable, on the host, while the task trains on
        with partial.open("wb") as file:
            for part in parts:
                size += file.write(part)
                digest.update(part)
        partial.replace(final)
        self._latest = final
        self.flush()
        message: dict[str, object] = {
            "type": "checkpoint",
            "seq": self._seq,
            "size_bytes": size,
            "sha256": digest.hexdigest(),
        }
        if step is not None:
            message["step"] = int(step)
            if self.stop_step is not None and int(step) >= self.stop_step:
                self._pause_requested = True  # a replay's segment is done: stop here
        if fingerprint is not None:
            message["fingerprint"] = dict(fingerprint)
        self._send(message)
        for old in self._checkpoint_dir.glob("*.ckpt"):
            if old.stem.isdigit() and int(old.stem) <= self._seq - _KEEP_CHECKPOINTS:
                old.unlink(missing_ok=True)
        return self._seq

    def tensor_fingerprint(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """Return :func:`tensor_fingerprint` of ``tensors`` (e.g. ``model.state_dict()``).

        Put it in the result under :data:`FINGERPRINT_KEY` (``"tensor_fingerprint"``): a job
        that declares ``verify_rel_l2`` then has its replicas compared by it, within that
        relative L2, rather than by the result's exact digest.
        """
        return tensor_fingerprint(tensors)

    def progress(self, fraction: float, metrics: Mapping[str, float] | None = None) -> None:
        """Report the share of the task done (0 to 1) and the job's own numbers (loss …).

        Call it as often as you like: at most ten reports a second reach the runner (a report
        that comes sooner is held, and sent with the next one due, the next checkpoint, or at
        the end, or by ``should_pause`` once it is due; the one with fraction 1 goes at once).
        """
        fraction = float(fraction)
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"ctx.progress: fraction must be between 0 and 1, got {fraction!r}")
        clean: dict[str, float] = {}
        for name, value in (metrics or {}).items():
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"ctx.progress: metric {name!r} is not finite: {value!r}")
            clean[str(name)[:100]] = number
        if len(clean) > _MAX_METRICS:
            raise ValueError(f"ctx.progress: at most {_MAX_METRICS} metrics, got {len(clean)}")
        self._held = {"type": "progress", "fraction": fraction, "metrics": clean}
        self._calls_to_clock = 0  # the next should_pause looks whether this one is due
        now = time.monotonic()
        if fraction == 1.0 or now - self._progress_sent >= _PROGRESS_INTERVAL_S:
            self._progress_sent = now
            self.flush()

    def flush(self) -> None:
        """Send the progress report held back, if any (the bootstrap calls it at the end)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held)

    def should_pause(self) -> bool:
        """Return True once the runner asks the task to stop: checkpoint, then return.

        Also True once a checkpoint at or past :attr:`stop_step` was saved (a segment replay).
        Cheap enough to call every step: it reads a flag, which a thread of the context sets
        as soon as the runner's request arrives (the thread sleeps in a read of the pipe until
        then: no wake-ups). A progress report held back goes out from here once due (a job
        waiting here still shows its progress): looked at on the first call after each
        ``progress`` call, then every 16 calls.
        """
        if self._pause_requested:
            self.pause_seen = True
            return True
        if self._held is not None:
            self._calls_to_clock -= 1
            if self._calls_to_clock < 0:
                self._calls_to_clock = _CLOCK_EVERY_CALLS - 1
                now = time.monotonic()
                if now - self._progress_sent >= _PROGRESS_INTERVAL_S:
                    self._progress_sent = now
                    self.flush()
        return False

    def _watch_control(self, fd: int) -> None:
        """Read the runner's control pipe until it ends; note a pause request (a thread).

        ``fd`` is the thread's own descriptor of the pipe, closed when the pipe ends.
        """
        try:
            self._read_control(fd)
        finally:
            os.close(fd)

    def _read_control(self, fd: int) -> None:
        inbox = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # nothing more can be read from it
                return
            if not chunk:
                return
            inbox += chunk
            *lines, inbox = inbox.split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:  # not from the runner, which writes JSON lines
                    continue
                if isinstance(message, dict) and message.get("type") == "pause":
                    self._pause_requested = True

    def _send(self, message: Mapping[str, object]) -> None:
        line = json.dumps(message, allow_nan=False, separators=(",", ":")).encode() + b"\n"
        if len(line) > MAX_REPORT_BYTES:
            raise ValueError(f"a report to the runner is over {MAX_REPORT_BYTES} bytes")
        view = memoryview(line)
        while view:
            view = view[os.write(self._report_fd, view) :]
