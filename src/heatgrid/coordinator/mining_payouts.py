"""Owner payouts: payout addresses, batches a wallet pays, and marking them paid.

A batch holds every owner whose ``sat`` balance is at least ``min_sat`` and who registered an
address for the coordinator's network; it is written as the amounts map that
``bitcoin-cli sendmany "" '<map>'`` takes (``{address: amount_btc}``, 8 decimals). Nothing
moves in the ledger until the operator records the transaction id: then one transaction, keyed
``mining:payout:<batch>``, moves each owner's amount to ``paid_out``. At most one batch is
pending at a time, so a balance is never put in two batches. Marking a batch paid again with
the same txid does nothing; with another txid it is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from heatgrid.coordinator import ledger
from heatgrid.coordinator.db.models import (
    Account,
    LedgerEntry,
    PayoutAddress,
    PayoutBatch,
    PayoutBatchItem,
)
from heatgrid.coordinator.errors import ConflictError, InvalidError, NotFoundError
from heatgrid.coordinator.mining_settlements import SAT
from heatgrid.core.errors import InputError
from heatgrid.mining.addresses import NETWORKS, check_address
from heatgrid.mining.payouts import SAT_PER_BTC

__all__ = [
    "PAID_OUT_ACCOUNT",
    "BatchResult",
    "batch_items",
    "cancel_batch",
    "create_batch",
    "get_payout_address",
    "mark_paid",
    "sendmany_json",
    "set_payout_address",
]

PAID_OUT_ACCOUNT = "paid_out"
"""Ledger account of what was sent to owners' addresses."""

_TXID = re.compile(r"[0-9a-f]{64}")


def set_payout_address(
    session: Session, owner_id: int, address: str, network: str, *, now_ts: float
) -> PayoutAddress:
    """Check ``address`` for ``network``, store it as the owner's payout address, and commit.

    Raises
    ------
    heatgrid.coordinator.errors.InvalidError
        (422) naming what is wrong with the address.
    """
    try:
        checked = check_address(address, network)
    except InputError as error:
        raise InvalidError(str(error)) from None
    owner = session.get(Account, owner_id)
    if owner is None or owner.role != "owner":
        raise NotFoundError(f"owner {owner_id}: no such owner account")
    row = session.get(PayoutAddress, owner_id)
    if row is None:
        row = PayoutAddress(owner_id=owner_id, address="", network="", updated_ts=now_ts)
        session.add(row)
    row.address, row.network, row.updated_ts = checked.address, checked.network, now_ts
    session.commit()
    return row


def get_payout_address(session: Session, owner_id: int) -> PayoutAddress:
    """Return the owner's payout address (404 if none is registered)."""
    row = session.get(PayoutAddress, owner_id)
    if row is None:
        raise NotFoundError("no payout address registered: PUT /v1/mining/payout-address first")
    return row


@dataclass(frozen=True)
class BatchResult:
    """A batch, its items (owner id → (address, amount [sat])), and the owners left out."""

    batch: PayoutBatch
    items: dict[int, tuple[str, int]]
    skipped: dict[int, str]


def _sat_balances(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.unit == SAT, LedgerEntry.account.startswith("owner:"))
        .group_by(LedgerEntry.account)
    ).all()
    return {int(str(account).split(":", 1)[1]): int(total) for account, total in rows}


def create_batch(session: Session, *, network: str, min_sat: int, now_ts: float) -> BatchResult:
    """Make a pending batch of every owner owed at least ``min_sat`` with an address, and commit.

    Owners above the threshold without an address for ``network`` are left out (``skipped``
    says why).

    Raises
    ------
    heatgrid.coordinator.errors.ConflictError
        While another batch is pending.
    heatgrid.coordinator.errors.InvalidError
        When no owner qualifies, or ``min_sat`` is below 1.
    """
    if min_sat < 1:
        raise InvalidError(f"min_sat must be >= 1, got {min_sat}")
    if network not in NETWORKS:
        raise InvalidError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    pending = session.scalar(select(PayoutBatch.id).where(PayoutBatch.state == "pending"))
    if pending is not None:
        raise ConflictError(
            f"payout batch {pending} is still pending: record its transaction with "
            f"`heatgrid mining payouts mark-paid {pending} --txid TXID` first"
        )
    addresses = {row.owner_id: row for row in session.scalars(select(PayoutAddress))}
    items: dict[int, tuple[str, int]] = {}
    skipped: dict[int, str] = {}
    for owner_id, balance_sat in sorted(_sat_balances(session).items()):
        if balance_sat < min_sat:
            continue
        address = addresses.get(owner_id)
        if address is None:
            skipped[owner_id] = "no payout address"
        elif address.network != network:
            skipped[owner_id] = f"address is for {address.network}, not {network}"
        else:
            items[owner_id] = (address.address, balance_sat)
    if not items:
        raise InvalidError(
            f"no owner is owed at least {min_sat} sat with a {network} payout address"
            + (f" ({len(skipped)} left out: {skipped})" if skipped else "")
        )
    batch = PayoutBatch(
        network=network,
        min_sat=min_sat,
        total_sat=sum(amount for _, amount in items.values()),
        state="pending",
        created_ts=now_ts,
    )
    session.add(batch)
    try:
        session.flush()
    except IntegrityError:  # another process made a pending batch at the same moment
        session.rollback()
        raise ConflictError("another payout batch was just made; try again") from None
    session.add_all(
        PayoutBatchItem(batch_id=batch.id, owner_id=owner_id, address=address, amount_sat=amount)
        for owner_id, (address, amount) in items.items()
    )
    session.commit()
    return BatchResult(batch=batch, items=items, skipped=skipped)


def sendmany_json(items: dict[int, tuple[str, int]]) -> str:
    """Return the ``bitcoin-cli sendmany`` amounts map: ``{"address": 0.00012345, …}`` [BTC]."""
    parts = [
        f"{json.dumps(address)}: {Decimal(amount) / SAT_PER_BTC:.8f}"
        for address, amount in sorted(items.values())
    ]
    return "{" + ", ".join(parts) + "}"


def batch_items(session: Session, batch_id: int) -> tuple[PayoutBatch, dict[int, tuple[str, int]]]:
    """Return a batch and its items (404 if there is no such batch)."""
    batch = session.get(PayoutBatch, batch_id)
    if batch is None:
        raise NotFoundError(f"payout batch {batch_id}: no such batch")
    items = {
        row.owner_id: (row.address, row.amount_sat)
        for row in session.scalars(
            select(PayoutBatchItem).where(PayoutBatchItem.batch_id == batch_id)
        )
    }
    return batch, items


def mark_paid(
    session: Session, batch_id: int, txid: str, *, now_ts: float
) -> tuple[PayoutBatch, bool]:
    """Record that ``txid`` paid the batch, move its amounts to ``paid_out``, and commit.

    Returns
    -------
    tuple of (PayoutBatch, bool)
        The batch, and whether this call marked it (False: it was already paid by ``txid``).

    Raises
    ------
    heatgrid.coordinator.errors.InvalidError
        If ``txid`` is not 64 hex digits.
    heatgrid.coordinator.errors.ConflictError
        If the batch was paid by another transaction.
    """
    txid = txid.strip().lower()
    if not _TXID.fullmatch(txid):
        raise InvalidError(f"txid must be 64 hex digits (a transaction id), got {txid!r}")
    batch, items = batch_items(session, batch_id)
    result = session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.state == "pending")
        .values(state="paid", txid=txid, paid_ts=now_ts)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.rollback()
        session.refresh(batch)
        if batch.state == "cancelled":
            raise ConflictError(f"payout batch {batch_id} was cancelled; it cannot be paid")
        if batch.txid != txid:
            raise ConflictError(f"payout batch {batch_id} was already paid by {batch.txid}")
        return batch, False
    ledger.post(
        session,
        key=f"mining:payout:{batch_id}",
        kind="mining_payout",
        postings=[
            *(
                ledger.Posting(f"owner:{owner_id}", SAT, -amount)
                for owner_id, (_, amount) in sorted(items.items())
            ),
            ledger.Posting(PAID_OUT_ACCOUNT, SAT, sum(amount for _, amount in items.values())),
        ],
        now_ts=now_ts,
    )
    session.commit()
    session.refresh(batch)
    return batch, True


def cancel_batch(session: Session, batch_id: int) -> PayoutBatch:
    """Cancel a pending batch whose transaction was never sent, and commit.

    Nothing moved in the ledger for it, so its owners' balances stay as they are and the next
    batch includes them again. Its number is never reused; cancelling it again does nothing.

    Raises
    ------
    heatgrid.coordinator.errors.ConflictError
        If the batch was already paid.
    """
    batch, _ = batch_items(session, batch_id)
    result = session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.state == "pending")
        .values(state="cancelled")
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.rollback()
        session.refresh(batch)
        if batch.state == "paid":
            raise ConflictError(f"payout batch {batch_id} was paid by {batch.txid}; it stays")
        return batch
    session.commit()
    session.refresh(batch)
    return batch
