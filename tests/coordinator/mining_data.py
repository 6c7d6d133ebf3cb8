"""Mining test data: heaters enrolled through the API, and shares as the proxy stores them."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.models import Account, MiningShare

from .conftest import Coordinator

_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class Miner:
    """An enrolled ASIC heater and its owner."""

    device_id: str
    device_token: str
    owner_id: int
    owner_name: str
    owner_key: str


def enroll_miners(coordinator: Coordinator, counts: dict[str, int]) -> list[Miner]:
    """Enroll ``counts[owner]`` ASIC heaters for each owner (a new owner account each)."""
    miners: list[Miner] = []
    for owner_name, count in counts.items():
        key = coordinator.owner_key(owner_name)
        for index in range(count):
            device_id, token = coordinator.enroll(
                coordinator.enrollment_code(key), name=f"{owner_name} heater {index}"
            )
            miners.append(Miner(device_id, token, 0, owner_name, key))
    from heatgrid.coordinator.db import make_engine, make_session_factory  # noqa: PLC0415

    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            ids = {
                str(name): int(id_)
                for name, id_ in session.execute(select(Account.name, Account.id))
            }
    finally:
        engine.dispose()
    return [
        Miner(m.device_id, m.device_token, ids[m.owner_name], m.owner_name, m.owner_key)
        for m in miners
    ]


def insert_shares(
    session: Session,
    device_id: str,
    difficulties: Iterable[float],
    *,
    start_ts: float,
    interval_s: float = 10.0,
    upstream_accepted: bool | None = True,
    block_every: int = 0,
) -> list[MiningShare]:
    """Store accepted shares of ``device_id`` as the proxy does (one row each), and commit.

    Each share gets a distinct ``share_key`` (the SHA-256 of its unique fields), a job id and
    an acceptance time ``interval_s`` after the previous one; every ``block_every``-th share
    (0: none) also met the network target and carries a block hash.
    """
    rows = []
    for index, difficulty in enumerate(difficulties):
        number = next(_SEQUENCE)
        unique = f"{device_id}:{number}:{secrets.token_hex(8)}".encode()
        block = block_every and (index + 1) % block_every == 0
        rows.append(
            MiningShare(
                share_key=hashlib.sha256(unique).hexdigest(),
                device_id=device_id,
                worker=f"{device_id}.rig",
                job_id=f"{number // 8:x}",
                difficulty=difficulty,
                accepted_ts=start_ts + index * interval_s,
                block_hash=hashlib.sha256(b"block" + unique).hexdigest() if block else None,
                upstream_accepted=upstream_accepted,
            )
        )
    session.add_all(rows)
    session.commit()
    return rows
