"""Mining settlements: a payout run credits unsettled shares to their owners in the ledger.

One run, in one database transaction:

1. inserts its ``mining_settlements`` row (on SQLite the first write takes the write lock);
2. marks every unsettled share accepted before ``until_ts`` with its id, in one ``UPDATE …
   WHERE settlement_id IS NULL`` — a concurrent run on PostgreSQL waits for the rows this run
   locked and then skips them, so each share is settled exactly once;
3. sums the work it marked per device, computes the gross (FPPS: work at the hashprice;
   pro rata: what the pool paid), takes the operator's fee and splits the rest per device by
   work (exact, in satoshi);
4. posts one ledger transaction in unit ``sat``, keyed ``mining:settlement:<id>``:
   ``pool`` −gross, ``platform`` +fee, ``owner:<id>`` +credit for each owner;
5. commits. A run that finds no unsettled work rolls back and returns None.

Shares the pool refused (``upstream_accepted`` false) are never settled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from heatgrid.coordinator import ledger
from heatgrid.coordinator.db.models import (
    Device,
    MiningSettlement,
    MiningSettlementCredit,
    MiningShare,
)
from heatgrid.coordinator.errors import InvalidError
from heatgrid.mining.payouts import fpps_gross_sat, split_with_fee

__all__ = [
    "PLATFORM_ACCOUNT",
    "POOL_ACCOUNT",
    "SAT",
    "SCHEMES",
    "SettlementResult",
    "settle",
]

SAT = "sat"
"""The ledger unit of mining money: satoshi."""

POOL_ACCOUNT = "pool"
"""Ledger account of the pool the network mines into; its balance is minus what it earned us."""

PLATFORM_ACCOUNT = "platform"
"""Ledger account of the operator's fees."""

SCHEMES = ("fpps", "pro_rata")
"""Payout schemes: FPPS at a hashprice, or pro rata on what the pool paid."""

Scheme = Literal["fpps", "pro_rata"]


@dataclass(frozen=True)
class SettlementResult:
    """What a settlement run did.

    Attributes
    ----------
    settlement_id : int
        Its row.
    scheme : str
        ``fpps`` or ``pro_rata``.
    until_ts : float
        It covers shares accepted before this [POSIX s].
    share_count : int
        Shares it settled.
    work_diff1 : float
        Their work [difficulty-1 shares].
    gross_sat, fee_sat : int
        What the work earned, and the operator's fee [sat].
    owner_credits_sat : dict
        Owner account id → credit [sat]; with the fee they add up to the gross.
    device_credits_sat : dict
        Device id → credit [sat].
    """

    settlement_id: int
    scheme: str
    until_ts: float
    share_count: int
    work_diff1: float
    gross_sat: int
    fee_sat: int
    owner_credits_sat: dict[int, int]
    device_credits_sat: dict[str, int]


def _parameters(
    scheme: str,
    fee_fraction: float,
    hashprice_sat_per_th_day: float | None,
    pool_paid_sat: int | None,
) -> dict[str, Any]:
    if scheme not in SCHEMES:
        raise InvalidError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if not (math.isfinite(fee_fraction) and 0.0 <= fee_fraction <= 1.0):
        raise InvalidError(f"fee_fraction must be between 0 and 1, got {fee_fraction!r}")
    if scheme == "fpps":
        if hashprice_sat_per_th_day is None or pool_paid_sat is not None:
            raise InvalidError("fpps needs hashprice_sat_per_th_day and no pool_paid_sat")
        if not (math.isfinite(hashprice_sat_per_th_day) and hashprice_sat_per_th_day >= 0.0):
            raise InvalidError(
                f"hashprice_sat_per_th_day must be finite and >= 0, got {hashprice_sat_per_th_day}"
            )
        return {"fee_fraction": fee_fraction, "hashprice_sat_per_th_day": hashprice_sat_per_th_day}
    if pool_paid_sat is None or hashprice_sat_per_th_day is not None:
        raise InvalidError("pro_rata needs pool_paid_sat and no hashprice_sat_per_th_day")
    if pool_paid_sat < 0:
        raise InvalidError(f"pool_paid_sat must be >= 0, got {pool_paid_sat}")
    return {"fee_fraction": fee_fraction, "pool_paid_sat": pool_paid_sat}


def settle(
    session: Session,
    *,
    scheme: str,
    until_ts: float,
    fee_fraction: float,
    now_ts: float,
    hashprice_sat_per_th_day: float | None = None,
    pool_paid_sat: int | None = None,
) -> SettlementResult | None:
    """Settle every unsettled share accepted before ``until_ts`` and commit.

    Parameters
    ----------
    scheme : str
        ``fpps`` (needs ``hashprice_sat_per_th_day`` [sat per TH/s per day]) or ``pro_rata``
        (needs ``pool_paid_sat``: what the pool paid the account for these shares [sat]).
    until_ts : float
        Shares accepted before this are settled [POSIX s].
    fee_fraction : float
        The operator's fee [-], 0 to 1.
    now_ts : float
        The clock [POSIX s].

    Returns
    -------
    SettlementResult or None
        None (and nothing written) when no unsettled share was found.

    Raises
    ------
    heatgrid.coordinator.errors.InvalidError
        On a parameter that does not fit the scheme.
    """
    parameters = _parameters(scheme, fee_fraction, hashprice_sat_per_th_day, pool_paid_sat)
    if not math.isfinite(until_ts):
        raise InvalidError(f"until_ts must be finite, got {until_ts!r}")
    settlement = MiningSettlement(
        scheme=scheme,
        created_ts=now_ts,
        until_ts=until_ts,
        work_diff1=0.0,
        gross_sat=0,
        fee_sat=0,
        parameters=parameters,
    )
    session.add(settlement)
    session.flush()
    session.execute(
        update(MiningShare)
        .where(
            MiningShare.settlement_id.is_(None),
            MiningShare.accepted_ts < until_ts,
            or_(MiningShare.upstream_accepted.is_(None), MiningShare.upstream_accepted.is_(True)),
        )
        .values(settlement_id=settlement.id)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            MiningShare.device_id,
            Device.owner_id,
            func.count(),
            func.sum(MiningShare.difficulty),
        )
        .join(Device, Device.id == MiningShare.device_id)
        .where(MiningShare.settlement_id == settlement.id)
        .group_by(MiningShare.device_id, Device.owner_id)
        .order_by(MiningShare.device_id)
    ).all()
    if not rows:
        session.rollback()
        return None
    work = {str(device_id): float(total) for device_id, _, _, total in rows}
    owners = {str(device_id): int(owner_id) for device_id, owner_id, _, _ in rows}
    counts = {str(device_id): int(count) for device_id, _, count, _ in rows}
    work_diff1 = math.fsum(work.values())
    gross_sat = (
        fpps_gross_sat(work_diff1, hashprice_sat_per_th_day)
        if hashprice_sat_per_th_day is not None
        else int(pool_paid_sat or 0)
    )
    split = split_with_fee(gross_sat, fee_fraction, work)
    device_credits = {str(device): int(amount) for device, amount in split.credits_sat.items()}
    owner_credits: dict[int, int] = {}
    for device_id, amount in device_credits.items():
        owner_credits[owners[device_id]] = owner_credits.get(owners[device_id], 0) + amount
    ledger.post(
        session,
        key=f"mining:settlement:{settlement.id}",
        kind="mining_settlement",
        postings=[
            ledger.Posting(POOL_ACCOUNT, SAT, -gross_sat),
            ledger.Posting(PLATFORM_ACCOUNT, SAT, split.fee_sat),
            *(
                ledger.Posting(f"owner:{owner_id}", SAT, amount)
                for owner_id, amount in sorted(owner_credits.items())
            ),
        ],
        now_ts=now_ts,
    )
    session.execute(
        insert(MiningSettlementCredit),
        [
            {
                "settlement_id": settlement.id,
                "device_id": device_id,
                "owner_id": owners[device_id],
                "share_count": counts[device_id],
                "work_diff1": work[device_id],
                "credited_sat": device_credits[device_id],
            }
            for device_id in work
        ],
    )
    settlement.work_diff1 = work_diff1
    settlement.gross_sat = gross_sat
    settlement.fee_sat = split.fee_sat
    session.commit()
    return SettlementResult(
        settlement_id=settlement.id,
        scheme=scheme,
        until_ts=until_ts,
        share_count=sum(counts.values()),
        work_diff1=work_diff1,
        gross_sat=gross_sat,
        fee_sat=split.fee_sat,
        owner_credits_sat=owner_credits,
        device_credits_sat=device_credits,
    )
