"""Train a small PyTorch network on scikit-learn's bundled digits (8x8 images, no download).

A heatgrid job: ``main(ctx)`` trains for ``epochs`` epochs, saves a checkpoint every
``checkpoint_every`` steps and whenever the heater asks it to pause, and resumes from the
newest checkpoint. Training is deterministic on a given CPU: the same seed gives the same final
weights whether or not the run was interrupted and resumed (the digest in the result is over
the tensors' values, not a file).

Parameters (``ctx.params``, all optional): ``epochs`` (30), ``batch_size`` (32), ``lr`` (0.02),
``hidden`` (128), ``seed`` (0), ``checkpoint_every`` (100 steps), ``threads`` (1).

Progress reports carry ``step``, ``loss`` and ``checkpoint_s``: the time this run has spent in
its checkpoints (saving the state, its fingerprint, ``ctx.checkpoint``) [s], what checkpoints
cost the training.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from typing import TYPE_CHECKING, Any, cast

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

if TYPE_CHECKING:  # the job runs without heatgrid installed; only the type checker reads it
    from heatgrid.jobs.sdk import JobContext


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train, dtype=torch.long),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test, dtype=torch.long),
    )


def _model(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def weights_sha256(model: nn.Module) -> str:
    """Return the SHA-256 over the model's tensor values (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _save(
    model: nn.Module, optimizer: torch.optim.Optimizer, generator_state: torch.Tensor, step: int
) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator_state,
            "step": step,
        },
        buffer,
    )
    return buffer.getvalue()


def _load(
    ctx: JobContext,
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> int:
    """Load a checkpoint's state and return its step; say what was loaded (``ctx.restored``).

    A segment replay's start is checked by it: the state must be the one the heater that
    saved the checkpoint claimed. A context without ``restored`` checks nothing.
    """
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    step = int(state["step"])
    restored = getattr(ctx, "restored", None)
    if restored is not None:
        restored(step=step, fingerprint=ctx.tensor_fingerprint(model.state_dict()))
    return step


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def main(ctx: JobContext) -> dict[str, Any] | None:
    """Train (or resume training) the network and return its test accuracy and weights digest.

    Parameters
    ----------
    ctx : JobContext
        The task's parameters, device, checkpoints, progress, pause requests and output
        directory.

    Returns
    -------
    dict or None
        ``test_accuracy``, ``weights_sha256``, ``tensor_fingerprint`` (of the final weights),
        ``steps``, ``resumed_from_step`` and ``torch_threads`` (the intra-op threads it ran
        with); None when paused (after a checkpoint).
    """
    # deterministic cuBLAS on a GPU (torch.use_deterministic_algorithms requires it there)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    p = ctx.params
    epochs, batch_size = int(p.get("epochs", 30)), int(p.get("batch_size", 32))
    seed, every = int(p.get("seed", 0)), int(p.get("checkpoint_every", 100))
    torch.set_num_threads(int(p.get("threads", 1)))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    device = torch.device(ctx.device)
    x_train, y_train, x_test, y_test = (t.to(device) for t in _data(seed))
    model = _model(int(p.get("hidden", 128))).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(p.get("lr", 0.02)), momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    batches = (len(x_train) + batch_size - 1) // batch_size
    total_steps, step, resumed_from = epochs * batches, 0, None
    # a segment replay stops here (verification); a context without one runs to the end
    stop_step = getattr(ctx, "stop_step", None)

    saved = ctx.restore()
    if saved is not None:
        state = torch.load(io.BytesIO(cast(bytes, saved)), map_location=device, weights_only=True)
        step = resumed_from = _load(ctx, state, model, optimizer, generator)

    # One permutation of the training set per epoch, drawn at the epoch's start. A checkpoint
    # keeps the generator as it was before the current epoch's draw, so a resume draws the
    # same permutation again and the run continues exactly as it would have.
    epoch_generator = generator.get_state()
    order = None

    checkpoint_s = 0.0  # this run's time in checkpoints [s], reported with the progress

    def checkpoint() -> None:
        nonlocal checkpoint_s
        started = time.perf_counter()
        at_boundary = step % batches == 0
        ctx.checkpoint(
            _save(
                model, optimizer, generator.get_state() if at_boundary else epoch_generator, step
            ),
            step=step,  # with the weights' fingerprint: a replay of the segment is checked by it
            fingerprint=ctx.tensor_fingerprint(model.state_dict()),
        )
        checkpoint_s += time.perf_counter() - started

    while step < total_steps:
        if ctx.should_pause():
            checkpoint()
            return None
        if order is None or step % batches == 0:
            epoch_generator = generator.get_state()
            order = torch.randperm(len(x_train), generator=generator).to(device)
        index = order[(step % batches) * batch_size : (step % batches + 1) * batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(x_train[index]), y_train[index])
        loss.backward()
        optimizer.step()
        step += 1
        if step % every == 0 or step in {total_steps, stop_step}:
            checkpoint()  # at a segment replay's stop step too: then should_pause() says stop
        if step % 10 == 0 or step == total_steps:
            metrics = {"step": step, "loss": loss.item(), "checkpoint_s": checkpoint_s}
            ctx.progress(step / total_steps, metrics)
    accuracy = _accuracy(model, x_test, y_test)
    (ctx.output_dir / "metrics.txt").write_text(f"test_accuracy {accuracy:.4f}\n")
    torch.save(model.state_dict(), ctx.output_dir / "model.pt")
    return {
        "test_accuracy": accuracy,
        "weights_sha256": weights_sha256(model),
        # compared by verification within job.toml's verify_rel_l2 (other CPU kinds round
        # differently in the last bits; a run that skipped a step is far off)
        "tensor_fingerprint": ctx.tensor_fingerprint(model.state_dict()),
        "steps": step,
        "resumed_from_step": resumed_from,
        "torch_threads": torch.get_num_threads(),
    }
