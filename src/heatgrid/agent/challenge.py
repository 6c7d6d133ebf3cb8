"""The agent's side of the hardware challenge: compute the chain, commit, show the rows asked.

The chain runs on the device the challenge is about: a CUDA GPU through PyTorch when the
heater computes on one and PyTorch is installed, else the CPU through numpy (float32 BLAS).
Every link is copied to the host and each of its rows hashed; the rows stay in memory until
the reveal (at most :data:`heatgrid.core.challenge.MAX_HOST_BYTES`). The working set is
allocated on the same device (GPU memory, or host memory for a CPU) and filled in one pass,
each block labelled from the contents of its parents read back from the set
(:mod:`heatgrid.core.challenge_space`); it is held until the reveal, when the parents of each
picked block are read back and shown. A device that cannot allocate it gives up. The work runs
in a worker thread, so the room's control loop keeps its ticks.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from heatgrid.agent.client import CoordinatorClient
from heatgrid.core import challenge as rule
from heatgrid.core import challenge_space as space
from heatgrid.protocol import features
from heatgrid.protocol.challenge import (
    ChallengeCommit,
    ChallengeOrder,
    ChallengePlace,
    ChallengeReveal,
    ChallengeSeal,
    ChallengeVerdict,
    RevealedBlock,
    RevealedRow,
)

__all__ = [
    "FEATURES",
    "Solution",
    "answer_challenge",
    "commitment",
    "reveal_blocks",
    "reveal_rows",
    "seal",
    "solve",
]

_log = logging.getLogger(__name__)

FEATURES: Final = frozenset({features.CHALLENGE_STEPS})
"""The challenge features this agent understands (declared in every heartbeat): it computes
``ChallengeOrder.steps`` products per link."""


@dataclasses.dataclass(frozen=True)
class Solution:
    """The computed chain: every link's rows, their digests and the Merkle root.

    ``memory`` is the working set as held (a numpy array, or a PyTorch tensor on the GPU),
    ``memory_levels`` the Merkle tree over its block digests (leaves first) and
    ``memory_root`` its root (None: no set).
    """

    plan: rule.ChallengePlan
    links: list[np.ndarray]
    digests: list[bytes]
    root: bytes
    memory: Any = None
    memory_levels: list[list[bytes]] = dataclasses.field(default_factory=list)
    memory_root: bytes | None = None


def _hold_memory(
    plan: rule.ChallengePlan, on_gpu: bool, stop: Callable[[], bool]
) -> tuple[Any, list[bytes]] | None:
    """Allocate the working set on the device and label it block by block; None if too late.

    Raises :class:`MemoryError` when the device cannot hold it.
    """
    size = rule.memory_block_bytes(plan.memory_bytes)
    torch = _torch() if on_gpu and _cuda_available() else None
    if torch is None:
        held: Any = np.empty(plan.memory_bytes, dtype=np.uint8)
    else:
        try:
            held = torch.empty(plan.memory_bytes, dtype=torch.uint8, device="cuda")
        except torch.cuda.OutOfMemoryError as error:
            raise MemoryError(str(error)) from error
    digests = []
    for index in range(plan.memory_blocks):
        if index % 64 == 0 and stop():
            return None
        parents = [_read_block(held, plan, parent) for parent in space.block_parents(plan, index)]
        block = space.expand(space.label_key(plan, index, parents), size)
        if torch is None:
            held[index * size : (index + 1) * size] = block
        else:
            held[index * size : (index + 1) * size].copy_(torch.from_numpy(block.copy()))
        digests.append(rule.memory_digest(index, block))
    return held, digests


def _read_block(held: Any, plan: rule.ChallengePlan, index: int) -> np.ndarray:
    """Read block ``index`` back from the held working set (a numpy array or a GPU tensor)."""
    size = rule.memory_block_bytes(plan.memory_bytes)
    block = held[index * size : (index + 1) * size]
    return block if isinstance(block, np.ndarray) else block.cpu().numpy()


def _links(
    a: Any,
    b: Any,
    plan: rule.ChallengePlan,
    stop: Callable[[], bool],
    to_host: Callable[[Any], np.ndarray],
) -> list[np.ndarray] | None:
    """Multiply ``a`` by ``b`` ``steps`` times per link; each link's rows copied to the host."""
    out = []
    current = a
    for _ in range(plan.links):
        for _ in range(plan.steps):
            if stop():
                return None
            current = current @ b
        out.append(to_host(current))
    return out


def _numpy_chain(
    a: np.ndarray, b: np.ndarray, plan: rule.ChallengePlan, stop: Callable[[], bool]
) -> list[np.ndarray] | None:
    return _links(a, b, plan, stop, lambda link: link)


def _torch_chain(
    a: np.ndarray, b: np.ndarray, plan: rule.ChallengePlan, stop: Callable[[], bool]
) -> list[np.ndarray] | None:
    """Compute the chain on the first CUDA GPU in float32 proper (TF32 rounds inputs to 10 bits)."""
    torch = _torch()
    if torch is None:  # pragma: no cover - checked by _cuda_available first
        return _numpy_chain(a, b, plan, stop)

    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device("cuda")
    right = torch.from_numpy(b).to(device)
    current = torch.from_numpy(a).to(device)
    return _links(current, right, plan, stop, lambda link: link.cpu().numpy())


def _torch() -> Any:
    """Return PyTorch (an optional extra), or None."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _cuda_available() -> bool:
    torch = _torch()
    return torch is not None and bool(torch.cuda.is_available())


def solve(
    order: ChallengeOrder,
    *,
    give_up_monotonic: float,
    on_gpu: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> Solution | None:
    """Compute the chain and commit to it; None if ``give_up_monotonic`` passes first.

    Parameters
    ----------
    order : ChallengeOrder
        The coordinator's order.
    give_up_monotonic : float
        Monotonic time after which the result cannot meet the deadline [s].
    on_gpu : bool, optional
        Compute on the CUDA GPU (PyTorch) when one is there; else on the CPU.
    monotonic : callable, optional
        The monotonic clock [s].
    """
    plan = rule.ChallengePlan(
        order.seed, order.n, order.links, order.deadline_s, order.memory_bytes, order.steps
    )
    stop = lambda: monotonic() > give_up_monotonic  # noqa: E731
    held: Any = None
    memory_levels: list[list[bytes]] = []
    if plan.memory_bytes:
        try:
            memory = _hold_memory(plan, on_gpu, stop)
        except MemoryError as error:
            _log.error("cannot hold the %d-byte working set: %s", plan.memory_bytes, error)
            return None
        if memory is None:
            return None
        held, memory_digests = memory
        memory_levels = rule.merkle_levels(memory_digests)
    a, b = rule.challenge_inputs(plan)
    chain = _torch_chain if on_gpu and _cuda_available() else _numpy_chain
    links = chain(a, b, plan, stop)
    if links is None:
        return None
    digests = [
        rule.row_digest(link, row, values)
        for link, matrix in enumerate(links)
        for row, values in enumerate(matrix)
    ]
    if monotonic() > give_up_monotonic:
        return None
    memory_root = memory_levels[-1][0] if memory_levels else None
    return Solution(
        plan, links, digests, rule.merkle_root(digests), held, memory_levels, memory_root
    )


def reveal_blocks(
    solution: Solution,
    blocks: Sequence[int],
    read: Callable[[int], np.ndarray] | None = None,
) -> list[RevealedBlock]:
    """Return each picked block with its path, and its parents with their contents and paths.

    ``read`` gives a block's contents (by default read back from the held working set).
    """
    plan = solution.plan
    if solution.memory is None or not solution.memory_levels:
        return []
    picks = [index for index in blocks if 0 <= index < plan.memory_blocks]
    reader = read or (lambda index: _read_block(solution.memory, plan, index))
    shown = space.shown_blocks(plan, picks)
    paths = {
        index: [step.hex() for step in rule.merkle_level_path(solution.memory_levels, index)]
        for index in {*picks, *shown}
    }
    return [
        RevealedBlock(index=index, path_hex=paths[index])
        for index in sorted(set(picks) - set(shown))
    ] + [
        RevealedBlock(
            index=index,
            path_hex=paths[index],
            data_b64=base64.b64encode(np.ascontiguousarray(reader(index)).tobytes()).decode(),
        )
        for index in shown
    ]


def reveal_rows(
    solution: Solution,
    places: Sequence[ChallengePlace],
    blocks: Sequence[int] = (),
    read: Callable[[int], np.ndarray] | None = None,
) -> ChallengeReveal:
    """Return each place's row and the row it came from, with their inclusion paths.

    Each picked block of the working set comes with its path, and its parents with their
    contents, read back from what is held (or by ``read``: see :func:`reveal_blocks`).
    """
    shown = reveal_blocks(solution, blocks, read)
    wanted: list[tuple[int, int]] = []
    for place in places:
        for link in (place.link - 1, place.link):
            if link >= 0 and (link, place.row) not in wanted:
                wanted.append((link, place.row))
    return ChallengeReveal(
        rows=[
            RevealedRow(
                link=link,
                row=row,
                values_b64=base64.b64encode(
                    np.ascontiguousarray(solution.links[link][row], dtype="<f4").tobytes()
                ).decode("ascii"),
                path_hex=[
                    step.hex()
                    for step in rule.merkle_path(
                        solution.digests, rule.leaf_index(solution.plan, link, row)
                    )
                ],
            )
            for link, row in wanted
        ],
        blocks=shown,
    )


def seal(reveal: ChallengeReveal) -> ChallengeSeal | None:
    """Return the seal of the working set's blocks a reveal shows; None when it shows none."""
    contents = [
        (block.index, np.frombuffer(base64.b64decode(block.data_b64), dtype=np.uint8))
        for block in reveal.blocks
        if block.data_b64 is not None
    ]
    if not contents:
        return None
    return ChallengeSeal(blocks_sha256_hex=space.seal_digest(sorted(contents)).hex())


def commitment(solution: Solution | None) -> ChallengeCommit:
    """Return the commitment to a solution (giving up when there is none)."""
    if solution is None:
        return ChallengeCommit(root_hex=None)
    memory_root = solution.memory_root
    return ChallengeCommit(
        root_hex=solution.root.hex(),
        memory_root_hex=None if memory_root is None else memory_root.hex(),
    )


async def answer_challenge(
    client: CoordinatorClient,
    device_id: str,
    token: str,
    order: ChallengeOrder,
    *,
    received_monotonic: float,
    on_gpu: bool = False,
) -> ChallengeVerdict:
    """Play a challenge through: compute in a worker thread, commit, reveal; return the verdict."""
    give_up = received_monotonic + order.deadline_s
    solution = await asyncio.to_thread(solve, order, give_up_monotonic=give_up, on_gpu=on_gpu)
    commit = commitment(solution)
    verdict = await client.commit_challenge(device_id, token, order.challenge_id, commit)
    if solution is not None and verdict.state == "committed" and verdict.check is not None:
        reveal = await asyncio.to_thread(
            reveal_rows, solution, verdict.check.places, verdict.check.blocks
        )
        sealed = seal(reveal)
        if sealed is not None:  # the working set's blocks: sealed at once (timed), shown after
            verdict = await client.seal_challenge(device_id, token, order.challenge_id, sealed)
        if verdict.state == "committed":
            verdict = await client.reveal_challenge(device_id, token, order.challenge_id, reveal)
    level = logging.INFO if verdict.state == "passed" else logging.ERROR
    _log.log(
        level,
        "hardware challenge %s (%d x %d, %d links): %s%s",
        order.challenge_id,
        order.n,
        order.n,
        order.links,
        verdict.state,
        f": {verdict.reason}" if verdict.reason else "",
    )
    return verdict
