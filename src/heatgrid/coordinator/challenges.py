"""Hardware challenges: the coordinator's side of :mod:`heatgrid.core.challenge`, and quarantine.

With ``Settings.hardware_challenges`` on, a CPU or GPU device owes a challenge when it
enrolls, when it reports new hardware, and at random about once per
``Settings.challenge_every_s``. The order rides on a heartbeat's answer; until the device
passes, its claims get no tasks. A device that commits too late, gives up, or shows rows that
are not the products it committed to is quarantined: it gets no tasks until the operator
releases it (and it owes a new challenge). A challenge left unanswered past its deadline
fails without quarantine (its answer may have been lost); three such in a row quarantine.

A device that claims GPU memory owes a second round once it passes this throughput round: a
token chain plus a working set of most of the claimed memory to hold, labelled so that
remaking a block takes the contents of many earlier ones (a proof of space, see
:mod:`heatgrid.core.challenge_space`), in its own challenge so that the time allowed to fill
the set does not loosen the throughput deadline. The blocks picked after the commitment must
be sealed (a digest of what the device will show) within a short deadline, timed from the
picks to the seal by the coordinator's clock, and then shown. The round waits until the
device runs no task (it gets none while it owes the round), so that its memory is free: it
is never sized from what the device says is free, which a cheat would understate.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import new_id
from heatgrid.coordinator.db.models import Device, DeviceChallenge, Task
from heatgrid.coordinator.errors import ConflictError, NotFoundError
from heatgrid.coordinator.settings import Settings
from heatgrid.core import challenge as rule
from heatgrid.core import challenge_space as space
from heatgrid.core.catalog import load_catalog
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import LEASED_STATES
from heatgrid.protocol import features
from heatgrid.protocol.challenge import (
    ChallengeCheck,
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
    "CPU_CORE_FLOPS_PER_S",
    "GPU_FLOOR_FLOPS_PER_S",
    "claimed_flops_per_s",
    "claimed_memory_bytes",
    "commit",
    "issue_due",
    "mark_due",
    "quarantine",
    "release",
    "reveal",
    "seal",
]

CPU_CORE_FLOPS_PER_S = 10.0e9
"""Float32 throughput a CPU heater is held to per core offered [FLOP/s]: a modest share of
what one AVX2 core does in BLAS."""

GPU_FLOOR_FLOPS_PER_S = 5.0e12
"""Float32 throughput a GPU of a model not in the catalog is held to [FLOP/s]."""

_UNANSWERED_LIMIT = 3

_log = logging.getLogger(__name__)


def claimed_flops_per_s(device: Device) -> float | None:
    """Return the float32 throughput the device's hardware claims; None for ASICs (no claim).

    A GPU (or a rack with GPU memory) of a catalog model claims the model's FP32 peak, else
    :data:`GPU_FLOOR_FLOPS_PER_S`; a CPU claims :data:`CPU_CORE_FLOPS_PER_S` per core offered.
    """
    if device.kind == "asic":
        return None
    hardware = device.hardware
    if device.kind == "gpu" or (device.kind == "rack" and hardware.get("vram_gb")):
        model = hardware.get("model")
        if isinstance(model, str) and model.strip():
            try:
                known = load_catalog().find(model)
            except InputError:
                known = None
            if known is not None and known.kind == "gpu" and known.fp32_tflops > 0:
                return known.fp32_tflops * 1e12
        return GPU_FLOOR_FLOPS_PER_S
    cores = hardware.get("cpu_cores")
    return CPU_CORE_FLOPS_PER_S * (cores if isinstance(cores, int) and cores > 0 else 1)


def claimed_memory_bytes(device: Device) -> float:
    """Return the GPU memory the device's hardware claims [bytes]; 0 for none.

    A GPU (or a rack with GPU memory) claims its ``vram_gb``, else its catalog model's.
    """
    if device.kind not in ("gpu", "rack"):
        return 0.0
    hardware = device.hardware
    vram_gb = hardware.get("vram_gb")
    if isinstance(vram_gb, (int, float)) and not isinstance(vram_gb, bool) and vram_gb > 0:
        return float(vram_gb) * 1e9
    model = hardware.get("model")
    if device.kind == "gpu" and isinstance(model, str) and model.strip():
        try:
            known = load_catalog().find(model)
        except InputError:
            known = None
        if known is not None and known.kind == "gpu":
            return known.vram_gb * 1e9
    return 0.0


def mark_due(device: Device, *, now_ts: float) -> None:
    """Owe a challenge from now (enrolled, or new hardware), for devices that can be challenged."""
    if claimed_flops_per_s(device) is not None:
        device.challenge_due_ts = now_ts


def quarantine(device: Device, reason: str, *, now_ts: float) -> None:
    """Quarantine the device: no tasks until the operator releases it."""
    device.quarantined_ts = now_ts
    device.quarantine_reason = reason
    _log.warning("device %s quarantined: %s", device.id, reason)


def release(device: Device, *, now_ts: float) -> None:
    """Lift the device's quarantine; it owes a new challenge before it gets tasks."""
    device.quarantined_ts = None
    device.quarantine_reason = None
    mark_due(device, now_ts=now_ts)


def _plan(found: DeviceChallenge) -> rule.ChallengePlan:
    return rule.ChallengePlan(
        found.seed, found.n, found.links, found.deadline_s, found.memory_bytes or 0, found.steps
    )


def _fail(found: DeviceChallenge, device: Device, reason: str, *, now_ts: float) -> None:
    found.state = "failed"
    found.reason = reason
    found.ended_ts = now_ts
    quarantine(device, f"failed a hardware challenge: {reason}", now_ts=now_ts)


def _open_challenge(session: Session, device: Device) -> DeviceChallenge | None:
    return session.scalars(
        select(DeviceChallenge)
        .where(
            DeviceChallenge.device_id == device.id,
            DeviceChallenge.state.in_(("issued", "committed")),
        )
        .order_by(DeviceChallenge.issued_ts.desc())
        .limit(1)
    ).first()


def _unanswered_in_a_row(session: Session, device: Device) -> int:
    recent = session.scalars(
        select(DeviceChallenge.reason)
        .where(DeviceChallenge.device_id == device.id, DeviceChallenge.state == "failed")
        .order_by(DeviceChallenge.issued_ts.desc())
        .limit(_UNANSWERED_LIMIT)
    ).all()
    count = 0
    for reason in recent:
        if reason != _NO_ANSWER:
            break
        count += 1
    return count


_NO_ANSWER = "no answer by the deadline"


_MEMORY_ROUND_N = 16

_REVEAL_ROOM_BYTES = 256 * 1024
"""Room a reveal needs besides the blocks' contents (paths, rows, JSON) [bytes]."""


def _runs_tasks(session: Session, device: Device) -> bool:
    """Return whether the device holds a lease (a task running on it)."""
    holding = sorted(state.value for state in LEASED_STATES)
    return bool(
        session.scalar(
            select(exists().where(Task.lease_device_id == device.id, Task.state.in_(holding)))
        )
    )


def _memory_round(session: Session, device: Device, settings: Settings) -> bool:
    """Return whether the challenge owed now is the working set's round.

    It is when the device claims memory and has passed the throughput round since it came to
    owe a challenge.
    """
    if settings.challenge_max_memory_bytes <= 0 or claimed_memory_bytes(device) <= 0:
        return False
    latest = session.scalars(
        select(DeviceChallenge)
        .where(DeviceChallenge.device_id == device.id, DeviceChallenge.state == "passed")
        .order_by(DeviceChallenge.issued_ts.desc())
        .limit(1)
    ).first()
    return (
        latest is not None
        and not latest.memory_bytes
        and latest.ended_ts is not None
        and device.challenge_due_ts is not None
        and latest.ended_ts >= device.challenge_due_ts
    )


def _next_plan(
    session: Session, device: Device, settings: Settings, flops: float
) -> rule.ChallengePlan | None:
    """Return the plan of the challenge owed now; None while the memory round must wait."""
    if not _memory_round(session, device, settings):
        return rule.plan_challenge(
            secrets.randbits(32),
            flops,
            target_s=settings.challenge_target_s,
            max_n=settings.challenge_max_n,
        )
    if _runs_tasks(session, device):
        # Its tasks would hold memory the round needs: wait for them to end (it gets no new
        # ones while it owes the round).
        return None
    # The working set gets its own challenge with a token chain, so that the time allowed to
    # fill it does not loosen the throughput challenge's deadline.
    return rule.plan_challenge(
        secrets.randbits(32),
        flops,
        target_s=settings.challenge_target_s,
        max_n=_MEMORY_ROUND_N,
        claimed_memory_bytes=claimed_memory_bytes(device),
        max_memory_bytes=settings.challenge_max_memory_bytes,
    )


def _order(challenge_id: str, plan: rule.ChallengePlan) -> ChallengeOrder:
    return ChallengeOrder(
        challenge_id=challenge_id,
        seed=plan.seed,
        n=plan.n,
        links=plan.links,
        deadline_s=plan.deadline_s,
        memory_bytes=plan.memory_bytes,
        steps=plan.steps,
    )


def _held_back(device: Device, order: ChallengeOrder, flops: float) -> str | None:
    """Return why ``order`` cannot be sent to the device's agent, else None.

    An order whose meaning-changing fields need a feature the agent did not declare
    (:func:`heatgrid.protocol.features.missing_features`) is not sent: an older agent would
    ignore the field, compute another chain and be quarantined though honest. Nor is an
    easier order sent instead: the chain of one product per link is the one a many-core CPU
    answers in time for a big GPU. The device keeps owing the challenge, so it gets no tasks
    (it is not quarantined), until its agent declares the feature.
    """
    needed = features.missing_features(order, device.agent_features)
    if not needed:
        return None
    return (
        f"its hardware claim ({flops / 1e12:.3g} TFLOPS) is unproven: the hardware challenge "
        f"that proves it ({order.links} links of {order.steps} products of {order.n} x {order.n} "
        f"matrices) needs agent features its agent does not declare "
        f"({', '.join(sorted(needed))}); it gets no tasks until its agent is updated and "
        "passes that challenge"
    )


def issue_due(
    session: Session,
    device: Device,
    *,
    now_ts: float,
    settings: Settings,
    draw: float | None = None,
) -> ChallengeOrder | None:
    """Return a challenge for the device if it owes one now; the caller commits.

    ``draw`` is a uniform number in [0, 1) for the random re-check (a secure one by default).
    A challenge still open is not issued twice; one left unanswered past its deadline fails.
    A challenge that needs features the device's agent did not declare (``agent_features``)
    is held back: the device keeps owing it, and ``claim_unproven_reason`` says why.
    """
    flops = claimed_flops_per_s(device)
    if not settings.hardware_challenges or flops is None or device.quarantined_ts is not None:
        return None
    open_challenge = _open_challenge(session, device)
    if open_challenge is not None:
        if now_ts - open_challenge.issued_ts <= open_challenge.deadline_s:
            return None
        if open_challenge.state == "committed":  # committed, then never revealed
            _fail(open_challenge, device, "the rows were not shown", now_ts=now_ts)
            return None
        open_challenge.state, open_challenge.reason = "failed", _NO_ANSWER
        open_challenge.ended_ts = now_ts
        session.flush()
        if _unanswered_in_a_row(session, device) >= _UNANSWERED_LIMIT:
            quarantine(device, f"{_UNANSWERED_LIMIT} hardware challenges unanswered", now_ts=now_ts)
            return None
    value = secrets.SystemRandom().random() if draw is None else draw
    every_s = settings.challenge_every_s
    if (
        device.challenge_due_ts is None
        and every_s > 0
        and value < min(1.0, settings.heartbeat_interval_s / every_s)
    ):
        device.challenge_due_ts = now_ts
    due = device.challenge_due_ts is not None and device.challenge_due_ts <= now_ts
    plan = _next_plan(session, device, settings, flops) if due else None
    order = None if plan is None else _order(new_id(), plan)
    if order is not None:
        device.claim_unproven_reason = _held_back(device, order, flops)
    if order is None or device.claim_unproven_reason is not None:
        return None
    found = DeviceChallenge(
        id=order.challenge_id,
        device_id=device.id,
        seed=order.seed,
        n=order.n,
        links=order.links,
        steps=order.steps,
        deadline_s=order.deadline_s,
        claimed_flops_per_s=flops,
        issued_ts=now_ts,
        committed_ts=None,
        root_hex=None,
        places=None,
        memory_bytes=order.memory_bytes,
        memory_root_hex=None,
        blocks=None,
        state="issued",
        reason=None,
        ended_ts=None,
    )
    session.add(found)
    return order


def _get(session: Session, device: Device, challenge_id: str) -> DeviceChallenge:
    found = None if "\x00" in challenge_id else session.get(DeviceChallenge, challenge_id)
    if found is None or found.device_id != device.id:
        raise NotFoundError(f"challenge {challenge_id}: no such challenge for this device")
    return found


def _verdict(found: DeviceChallenge) -> ChallengeVerdict:
    check = None
    if found.state == "committed" and found.places is not None:
        check = ChallengeCheck(
            places=[ChallengePlace(link=link, row=row) for link, row in found.places],
            blocks=list(found.blocks or []),
        )
    return ChallengeVerdict(
        challenge_id=found.id,
        state=found.state,  # type: ignore[arg-type]  # checked by the database
        reason=found.reason,
        check=check,
    )


def commit(
    session: Session,
    device: Device,
    challenge_id: str,
    body: ChallengeCommit,
    *,
    now_ts: float,
    settings: Settings,
) -> ChallengeVerdict:
    """Take the device's commitment; answer the places to show, or the failure. Commits."""
    found = _get(session, device, challenge_id)
    if found.state != "issued":
        raise ConflictError(f"challenge {challenge_id}: already {found.state}")
    elapsed_s = now_ts - found.issued_ts
    plan = _plan(found)
    if body.root_hex is None:
        held = f" (it was asked to hold {plan.memory_bytes / 2**20:.0f} MiB)" * bool(
            plan.memory_bytes
        )
        _fail(found, device, f"the device gave up before the deadline{held}", now_ts=now_ts)
    elif plan.memory_bytes and body.memory_root_hex is None:
        _fail(found, device, "no commitment to the working set it was asked to hold", now_ts=now_ts)
    elif not rule.passes_deadline(plan, elapsed_s):
        claimed_tflops = found.claimed_flops_per_s / 1e12
        _fail(
            found,
            device,
            f"committed {elapsed_s:.2f} s after the order, deadline {plan.deadline_s:.2f} s: "
            f"slower than the {claimed_tflops:.3g} TFLOPS its hardware claims",
            now_ts=now_ts,
        )
    else:
        rng = secrets.SystemRandom()
        count = min(settings.challenge_rows_checked, plan.rows)
        leaves = rng.sample(range(plan.rows), count)
        found.state = "committed"
        found.committed_ts = now_ts
        found.root_hex = body.root_hex
        found.places = [[leaf // plan.n, leaf % plan.n] for leaf in sorted(leaves)]
        if plan.memory_bytes:
            found.memory_root_hex = body.memory_root_hex
            room = settings.max_body_bytes - _REVEAL_ROOM_BYTES
            blocks = space.memory_picks(
                plan, settings.challenge_rows_checked, max(room, settings.max_body_bytes / 2)
            )
            found.blocks = sorted(rng.sample(range(plan.memory_blocks), blocks))
    session.commit()
    return _verdict(found)


def _row_values(row: RevealedRow, n: int) -> np.ndarray | None:
    try:
        data = base64.b64decode(row.values_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) != 4 * n:
        return None
    return np.frombuffer(data, dtype="<f4")


def _shown_rows(
    found: DeviceChallenge, body: ChallengeReveal
) -> dict[tuple[int, int], np.ndarray] | str:
    """Return the revealed rows by (link, row) once each proves its place, else why not."""
    plan = _plan(found)
    root = bytes.fromhex(found.root_hex or "")
    shown: dict[tuple[int, int], np.ndarray] = {}
    for row in body.rows:
        place = f"row ({row.link}, {row.row})"
        if not (0 <= row.link < plan.links and 0 <= row.row < plan.n):
            return f"{place} is outside the challenge"
        values = _row_values(row, plan.n)
        if values is None:
            return f"{place} is not {plan.n} float32 values in base64"
        digest = rule.row_digest(row.link, row.row, values)
        path = [bytes.fromhex(step) for step in row.path_hex]
        leaf = rule.leaf_index(plan, row.link, row.row)
        if not rule.merkle_verify(root, digest, leaf, plan.rows, path):
            return f"{place} is not the row committed to"
        shown[row.link, row.row] = values
    return shown


def _block_data(block: RevealedBlock, size: int) -> np.ndarray | None:
    try:
        data = base64.b64decode(block.data_b64 or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    return np.frombuffer(data, dtype=np.uint8) if len(data) == size else None


def _shown_parents(
    found: DeviceChallenge, plan: rule.ChallengePlan, shown: dict[int, RevealedBlock]
) -> dict[int, np.ndarray] | str:
    """Return the picks' parents by index once each proves to be the block committed to."""
    root = bytes.fromhex(found.memory_root_hex or "")
    size = rule.memory_block_bytes(plan.memory_bytes)
    contents: dict[int, np.ndarray] = {}
    for index in space.shown_blocks(plan, found.blocks or []):
        block = shown.get(index)
        data = None if block is None else _block_data(block, size)
        if block is None or data is None:
            return f"block {index} of the working set was not shown with its {size} bytes"
        path = [bytes.fromhex(step) for step in block.path_hex]
        digest = rule.memory_digest(index, data)
        if not rule.merkle_verify(root, digest, index, plan.memory_blocks, path):
            return f"block {index} of the working set is not the block committed to"
        contents[index] = data
    return contents


def _check_blocks(found: DeviceChallenge, body: ChallengeReveal) -> str | None:
    """Return why the shown blocks of the working set fail, or None when each checks out.

    Each shown parent must be the block committed to, and the parents must be the blocks
    sealed; each pick, made from its parents' contents, must be the block committed to too.
    """
    if not found.memory_bytes:
        return None
    plan = _plan(found)
    shown = {block.index: block for block in body.blocks}
    contents = _shown_parents(found, plan, shown)
    if isinstance(contents, str):
        return contents
    sealed = space.seal_digest(sorted(contents.items()))
    if found.seal_hex is None or sealed.hex() != found.seal_hex:
        return "the blocks shown are not the ones sealed after the picks (or none were sealed)"
    root = bytes.fromhex(found.memory_root_hex or "")
    for index in found.blocks or []:
        block = shown.get(index)
        if block is None:
            return f"block {index} of the working set was not shown"
        parents = [contents[parent] for parent in space.block_parents(plan, index)]
        made = space.space_block(plan, index, parents)
        path = [bytes.fromhex(step) for step in block.path_hex]
        if not rule.merkle_verify(
            root, rule.memory_digest(index, made), index, plan.memory_blocks, path
        ):
            return (
                f"block {index} of the working set is not the block made from its parents: "
                "the set committed to was not labelled as asked"
            )
    return None


def seal(
    session: Session,
    device: Device,
    challenge_id: str,
    body: ChallengeSeal,
    *,
    now_ts: float,
    settings: Settings,
) -> ChallengeVerdict:
    """Take the seal of the working set's blocks to show, timed from the picks. Commits.

    A seal later than :func:`~heatgrid.core.challenge_space.seal_deadline_s` after the picks
    fails the challenge: remaking blocks that were not held takes longer.
    """
    found = _get(session, device, challenge_id)
    if found.state != "committed" or not found.memory_bytes:
        raise ConflictError(f"challenge {challenge_id}: {found.state}, not waiting for a seal")
    if found.seal_hex is not None:
        raise ConflictError(f"challenge {challenge_id}: already sealed")
    plan = _plan(found)
    deadline_s = space.seal_deadline_s(
        plan, found.blocks or [], slack_s=settings.challenge_reveal_slack_s
    )
    elapsed_s = now_ts - (found.committed_ts or found.issued_ts)
    if elapsed_s > deadline_s:
        _fail(
            found,
            device,
            f"sealed its blocks {elapsed_s:.3f} s after they were picked, deadline "
            f"{deadline_s:.3f} s: it did not hold the {plan.memory_bytes / 2**20:.0f} MiB "
            "working set it committed to (remaking blocks takes longer)",
            now_ts=now_ts,
        )
    else:
        found.sealed_ts = now_ts
        found.seal_hex = body.blocks_sha256_hex
    session.commit()
    return _verdict(found)


def _check_reveal(found: DeviceChallenge, body: ChallengeReveal) -> str | None:
    """Return why the revealed rows or blocks fail, or None when every place checks out."""
    held = _check_blocks(found, body)
    if held is not None:
        return held
    shown = _shown_rows(found, body)
    if isinstance(shown, str):
        return shown
    places = found.places or []
    missing = [
        (link, index)
        for link, index in places
        if (link, index) not in shown or (link > 0 and (link - 1, index) not in shown)
    ]
    if missing:
        link, index = missing[0]
        return f"row ({link}, {index}) or the row it was computed from was not shown"
    if not places:
        return None
    plan = _plan(found)
    a, b = rule.challenge_inputs(plan)
    inputs = [a[index] if link == 0 else shown[link - 1, index] for link, index in places]
    answers = [shown[link, index] for link, index in places]
    good = rule.rows_are_products(np.array(inputs), b, np.array(answers), plan.steps)
    if not np.all(good):
        link, index = places[int(np.argmin(good))]
        return f"row ({link}, {index}) is not the float32 product of its inputs"
    return None


def _waiting_for_rows(session: Session, device: Device, challenge_id: str) -> DeviceChallenge:
    """Return the device's challenge; 409 unless it was committed and waits for its rows."""
    found = _get(session, device, challenge_id)
    if found.state != "committed":
        raise ConflictError(f"challenge {challenge_id}: {found.state}, not waiting for rows")
    return found


def reveal(
    session: Session,
    device: Device,
    challenge_id: str,
    body: ChallengeReveal,
    *,
    now_ts: float,
    settings: Settings,
) -> ChallengeVerdict:
    """Check the shown rows against the commitment and the products; pass or fail. Commits.

    The check (generating the inputs, recomputing the rows: seconds for a big GPU's chain)
    runs outside any transaction, on a detached copy of the challenge, so that it holds no
    database lock; the verdict is written only if the challenge still waits for rows.
    """
    found = _waiting_for_rows(session, device, challenge_id)
    session.expunge(found)
    session.rollback()
    reason = _check_reveal(found, body)
    found = _waiting_for_rows(session, device, challenge_id)
    if reason is None:
        found.state = "passed"
        found.ended_ts = now_ts
        memory_owed = (
            not found.memory_bytes
            and claimed_memory_bytes(device) > 0
            and settings.challenge_max_memory_bytes > 0
        )
        # A throughput round passed by a device that claims memory: the memory round is next.
        device.challenge_due_ts = now_ts if memory_owed else None
        _log.info(
            "device %s passed a hardware challenge (%d x %d, %d links of %d) in %.2f s",
            device.id,
            found.n,
            found.n,
            found.links,
            found.steps,
            (found.committed_ts or now_ts) - found.issued_ts,
        )
    else:
        _fail(found, device, reason, now_ts=now_ts)
    session.commit()
    return _verdict(found)
