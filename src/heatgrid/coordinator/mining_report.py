"""The mining report: accepted work, rejects, hashrate, blocks and earnings per device and owner.

Work, rejects, blocks and hashrate cover a window ``[until_ts − window_s, until_ts)``; the
hashrate is the window's accepted work times ``2**32`` over ``window_s`` (a device that mined
only part of the window shows its average over all of it). Rejects are counted per whole UTC
hour (as the proxy stores them), so the window's first hour counts whole. Earnings are all
time: what settlements credited (after the operator's fee), what was paid out, and the balance.

Each device's measured earnings are set beside what :mod:`heatgrid.core.economics` (the model
``heatgrid economics`` and the simulator use) predicts at a market snapshot: for the work that
was settled (``expected_sat``, before the fee), and over the window for the measured and for
the rated hashrate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.models import (
    Account,
    Device,
    LedgerEntry,
    LedgerTransaction,
    MiningReject,
    MiningSettlementCredit,
    MiningShare,
    PayoutAddress,
)
from heatgrid.coordinator.errors import InvalidError
from heatgrid.core.economics import MarketSnapshot, mining_revenue_btc
from heatgrid.mining.payouts import SAT_PER_BTC, hashprice_sat_per_th_day, hashrate_hs
from heatgrid.protocol import v1

__all__ = [
    "MINING_DEVICE_KINDS",
    "DeviceMining",
    "MiningReport",
    "OwnerMining",
    "device_mining",
    "mining_report",
]

MINING_DEVICE_KINDS = ("asic", "rack")
"""Device kinds listed even before their first share."""

_HOUR_S = 3600.0
_TH_DAY_DIFF1 = 1e12 * 86_400.0 / 2**32  # difficulty-1 shares of 1 TH/s for a day


@dataclass
class DeviceMining:
    """One device's mining (window figures, then all-time earnings).

    Attributes
    ----------
    accepted_shares, work_diff1, blocks_found : int, float, int
        Shares accepted in the window, their work [difficulty-1 shares], and blocks found.
    hashrate_hs : float
        Estimated hashrate over the window [H/s].
    rated_hashrate_ths : float or None
        The hardware's rated hashrate [TH/s], from enrollment.
    rejected : dict
        Rejected shares in the window by reason.
    settled_work_diff1, credited_sat : float, int
        All the work settled so far [difficulty-1 shares] and the owner's credit for it [sat].
    expected_sat : float
        What economics predicts for the settled work at the market snapshot, before fees [sat].
    expected_window_sat, expected_window_sat_at_rated : float, float or None
        Economics' revenue over the window at the measured and at the rated hashrate [sat].
    """

    device_id: str
    name: str
    kind: str
    owner_id: int
    owner_name: str
    accepted_shares: int = 0
    work_diff1: float = 0.0
    hashrate_hs: float = 0.0
    rated_hashrate_ths: float | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    blocks_found: int = 0
    settled_work_diff1: float = 0.0
    credited_sat: int = 0
    expected_sat: float = 0.0
    expected_window_sat: float = 0.0
    expected_window_sat_at_rated: float | None = None


@dataclass
class OwnerMining:
    """One owner's mining: the sums over their devices, and their sat ledger account.

    ``credited_sat`` is what settlements credited, ``paid_sat`` what payouts sent,
    ``balance_sat`` what is owed to them now [sat].
    """

    owner_id: int
    owner_name: str
    device_count: int = 0
    accepted_shares: int = 0
    work_diff1: float = 0.0
    hashrate_hs: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    blocks_found: int = 0
    credited_sat: int = 0
    paid_sat: int = 0
    balance_sat: int = 0
    payout_address: str | None = None


@dataclass
class MiningReport:
    """The report: its window, the market it compares with, devices and owners."""

    since_ts: float
    until_ts: float
    window_s: float
    market: MarketSnapshot
    hashprice_sat_per_th_day: float
    devices: list[DeviceMining]
    owners: list[OwnerMining]


def _rated_ths(device: Device) -> float | None:
    value = device.hardware.get("hashrate_ths") if isinstance(device.hardware, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def mining_report(
    session: Session,
    *,
    owner_id: int | None,
    until_ts: float,
    window_s: float,
    market: MarketSnapshot,
) -> MiningReport:
    """Return the mining report of one owner's devices, or (``owner_id`` None) of every device.

    Parameters
    ----------
    until_ts : float
        End of the window [POSIX s].
    window_s : float
        Its length [s], > 0.
    market : MarketSnapshot
        Difficulty, subsidy and fees that economics' prediction uses.
    """
    if not (math.isfinite(window_s) and window_s > 0.0):
        raise InvalidError(f"window_s must be > 0, got {window_s!r}")
    if not math.isfinite(until_ts):
        raise InvalidError(f"until_ts must be finite, got {until_ts!r}")
    since_ts = until_ts - window_s
    hashprice = hashprice_sat_per_th_day(
        market.difficulty, market.subsidy_btc, market.fees_btc_per_block
    )
    devices = _devices(session, owner_id, since_ts, until_ts)
    for row in devices.values():
        row.hashrate_hs = hashrate_hs(row.work_diff1, window_s)
        row.expected_sat = row.settled_work_diff1 / _TH_DAY_DIFF1 * hashprice
        row.expected_window_sat = row.work_diff1 / _TH_DAY_DIFF1 * hashprice
        if row.rated_hashrate_ths is not None:
            row.expected_window_sat_at_rated = SAT_PER_BTC * mining_revenue_btc(
                row.rated_hashrate_ths,
                window_s,
                market.difficulty,
                market.subsidy_btc,
                market.fees_btc_per_block,
            )
    owners = _owners(session, owner_id, devices.values())
    return MiningReport(
        since_ts=since_ts,
        until_ts=until_ts,
        window_s=window_s,
        market=market,
        hashprice_sat_per_th_day=hashprice,
        devices=sorted(devices.values(), key=lambda row: (row.owner_name, row.name, row.device_id)),
        owners=sorted(owners.values(), key=lambda row: row.owner_name),
    )


def _devices(
    session: Session, owner_id: int | None, since_ts: float, until_ts: float
) -> dict[str, DeviceMining]:
    mine = [] if owner_id is None else [Device.owner_id == owner_id]
    shares = session.execute(
        select(
            MiningShare.device_id,
            func.count(),
            func.sum(MiningShare.difficulty),
            func.count(MiningShare.block_hash),
        )
        .join(Device, Device.id == MiningShare.device_id)
        .where(*mine, MiningShare.accepted_ts >= since_ts, MiningShare.accepted_ts < until_ts)
        .group_by(MiningShare.device_id)
    ).all()
    first_hour_ts = math.floor(since_ts / _HOUR_S) * _HOUR_S
    rejects = session.execute(
        select(MiningReject.device_id, MiningReject.reason, func.sum(MiningReject.count))
        .join(Device, Device.id == MiningReject.device_id)
        .where(
            *mine,
            MiningReject.hour_start_ts >= first_hour_ts,
            MiningReject.hour_start_ts < until_ts,
        )
        .group_by(MiningReject.device_id, MiningReject.reason)
    ).all()
    credits = session.execute(
        select(
            MiningSettlementCredit.device_id,
            func.sum(MiningSettlementCredit.work_diff1),
            func.sum(MiningSettlementCredit.credited_sat),
        )
        .join(Device, Device.id == MiningSettlementCredit.device_id)
        .where(*mine)
        .group_by(MiningSettlementCredit.device_id)
    ).all()
    active = {str(row[0]) for row in (*shares, *rejects, *credits)}
    found = session.execute(
        select(Device, Account.name)
        .join(Account, Account.id == Device.owner_id)
        .where(*mine, Device.kind.in_(MINING_DEVICE_KINDS) | Device.id.in_(active))
    ).all()
    rows = {
        device.id: DeviceMining(
            device_id=device.id,
            name=device.name,
            kind=device.kind,
            owner_id=device.owner_id,
            owner_name=str(owner_name),
            rated_hashrate_ths=_rated_ths(device),
        )
        for device, owner_name in found
    }
    for device_id, count, work, blocks in shares:
        row = rows[str(device_id)]
        row.accepted_shares, row.work_diff1, row.blocks_found = int(count), float(work), int(blocks)
    for device_id, reason, count in rejects:
        rows[str(device_id)].rejected[str(reason)] = int(count)
    for device_id, work, credited in credits:
        row = rows[str(device_id)]
        row.settled_work_diff1, row.credited_sat = float(work), int(credited)
    return rows


def _owners(
    session: Session, owner_id: int | None, devices: Iterable[DeviceMining]
) -> dict[int, OwnerMining]:
    query = select(Account.id, Account.name).where(Account.role == "owner")
    if owner_id is not None:
        query = select(Account.id, Account.name).where(Account.id == owner_id)
    owners = {
        int(account_id): OwnerMining(owner_id=int(account_id), owner_name=str(name))
        for account_id, name in session.execute(query)
    }
    for device in devices:
        owner = owners.get(device.owner_id)
        if owner is None:
            continue
        owner.device_count += 1
        owner.accepted_shares += device.accepted_shares
        owner.work_diff1 += device.work_diff1
        owner.hashrate_hs += device.hashrate_hs
        owner.blocks_found += device.blocks_found
        for reason, count in device.rejected.items():
            owner.rejected[reason] = owner.rejected.get(reason, 0) + count
    accounts = {f"owner:{account_id}": account_id for account_id in owners}
    money = session.execute(
        select(LedgerEntry.account, LedgerTransaction.kind, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.unit == "sat", LedgerEntry.account.in_(accounts))
        .group_by(LedgerEntry.account, LedgerTransaction.kind)
    ).all()
    for account, kind, amount in money:
        owner = owners[accounts[str(account)]]
        owner.balance_sat += int(amount)
        if kind == "mining_settlement":
            owner.credited_sat += int(amount)
        elif kind == "mining_payout":
            owner.paid_sat -= int(amount)
    addresses = session.execute(
        select(PayoutAddress.owner_id, PayoutAddress.address).where(
            PayoutAddress.owner_id.in_(owners)
        )
    ).all()
    for account_id, address in addresses:
        owners[int(account_id)].payout_address = str(address)
    return owners


DEVICE_HASHRATE_WINDOW_S = 3600.0
"""Window of the hashrate a device's agent is told [s]."""


def device_mining(session: Session, device_id: str, *, now_ts: float) -> v1.DeviceMining:
    """Return one device's all-time accepted work and credit, and its last hour's hashrate."""
    count, work, blocks = session.execute(
        select(
            func.count(), func.sum(MiningShare.difficulty), func.count(MiningShare.block_hash)
        ).where(MiningShare.device_id == device_id)
    ).one()
    recent = session.scalar(
        select(func.sum(MiningShare.difficulty)).where(
            MiningShare.device_id == device_id,
            MiningShare.accepted_ts >= now_ts - DEVICE_HASHRATE_WINDOW_S,
            MiningShare.accepted_ts < now_ts,
        )
    )
    credited = session.scalar(
        select(func.sum(MiningSettlementCredit.credited_sat)).where(
            MiningSettlementCredit.device_id == device_id
        )
    )
    return v1.DeviceMining(
        accepted_shares=int(count),
        accepted_work_diff1=float(work or 0.0),
        hashrate_hs=hashrate_hs(float(recent or 0.0), DEVICE_HASHRATE_WINDOW_S),
        window_s=DEVICE_HASHRATE_WINDOW_S,
        blocks_found=int(blocks),
        credited_sat=int(credited or 0),
        as_of_ts=now_ts,
    )
