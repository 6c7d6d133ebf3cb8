"""The double-entry ledger: energy delivered and money owed, in integers that always balance.

Every transaction is a set of entries whose amounts sum to zero in each unit: ``"j"`` (joules
of electricity a device burned for a job), ``"micro_eur"`` (millionths of a euro) and
``"sat"`` (satoshi a heater's mining earned, :mod:`heatgrid.coordinator.mining_settlements`).
A task attempt is settled once, under the key ``attempt:<task>:<n>``; posting the same key
again does nothing, so a retried request or a second coordinator process cannot pay twice.

Settling an attempt of ``E`` joules at the job's price ``p`` [EUR/kWh]:

* energy: ``device:<id>`` −E, ``job:<id>`` +E;
* money: ``submitter:<id>`` −cost, ``owner:<id>`` +share, ``platform`` +(cost − share), where
  ``cost = round(E · p / 3.6)`` micro-euros and ``share = round(cost · owner_share)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.models import LedgerEntry, LedgerTransaction
from heatgrid.coordinator.pages import PageRequest, encode_cursor

__all__ = [
    "BALANCE_CURSOR_KINDS",
    "MICRO_EUR_PER_EUR",
    "Posting",
    "account_balances",
    "attempt_cost_micro_eur",
    "balance_page",
    "post",
    "post_attempt",
    "unbalanced_transactions",
]

MICRO_EUR_PER_EUR = 1_000_000
_J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Posting:
    """One entry to post: ``amount`` of ``unit`` on ``account`` (negative: a debit)."""

    account: str
    unit: str
    amount: int


def attempt_cost_micro_eur(energy_j: int, price_eur_per_kwh: float) -> int:
    """Return what ``energy_j`` [J] costs at ``price_eur_per_kwh`` [EUR/kWh], in micro-euros."""
    return round(energy_j / _J_PER_KWH * price_eur_per_kwh * MICRO_EUR_PER_EUR)


def post_attempt(
    session: Session,
    *,
    task_id: str,
    attempt: int,
    job_id: str,
    submitter_id: int,
    device_id: str,
    energy_j: int,
    credits: Sequence[Posting],
    now_ts: float,
) -> bool:
    """Settle attempt ``attempt`` of ``task_id`` once: its energy, and its cost to ``credits``.

    ``device:<id>`` gives ``energy_j`` [J] to ``job:<id>``; ``submitter:<id>`` pays what
    ``credits`` receive [micro-EUR] (the owner and the platform, or a held account). Returns
    what :func:`post` returns.
    """
    cost = sum(credit.amount for credit in credits)
    return post(
        session,
        key=f"attempt:{task_id}:{attempt}",
        kind="task_attempt",
        postings=[
            Posting(f"device:{device_id}", "j", -energy_j),
            Posting(f"job:{job_id}", "j", energy_j),
            Posting(f"submitter:{submitter_id}", "micro_eur", -cost),
            *credits,
        ],
        now_ts=now_ts,
        job_id=job_id,
        task_id=task_id,
        device_id=device_id,
    )


def post(
    session: Session,
    *,
    key: str,
    kind: str,
    postings: Sequence[Posting],
    now_ts: float,
    job_id: str | None = None,
    task_id: str | None = None,
    device_id: str | None = None,
) -> bool:
    """Add a balanced transaction to the session unless ``key`` was posted before.

    Returns
    -------
    bool
        True if it was added, False if a transaction with ``key`` already exists.

    Raises
    ------
    ValueError
        If the postings do not sum to zero in each unit (a programming error).
    """
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.unit] = totals.get(posting.unit, 0) + posting.amount
    if any(total != 0 for total in totals.values()):
        raise ValueError(f"ledger transaction {key!r} does not balance: {totals}")
    values = {
        "key": key,
        "kind": kind,
        "job_id": job_id,
        "task_id": task_id,
        "device_id": device_id,
        "created_ts": now_ts,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(LedgerTransaction)
        .values(values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(LedgerTransaction.id)
    )
    transaction_id = session.execute(statement).scalar_one_or_none()
    if transaction_id is None:
        return False
    entries = [
        {
            "transaction_id": transaction_id,
            "account": posting.account,
            "unit": posting.unit,
            "amount": posting.amount,
        }
        for posting in postings
        if posting.amount != 0
    ]
    if entries:
        session.execute(insert(LedgerEntry), entries)  # one multi-row INSERT
    return True


def account_balances(session: Session, prefix: str = "") -> dict[tuple[str, str], int]:
    """Return the balance of every account whose name starts with ``prefix``, per unit.

    Returns
    -------
    dict
        ``{(account, unit): amount}``.
    """
    rows = session.execute(
        select(LedgerEntry.account, LedgerEntry.unit, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account.startswith(prefix, autoescape=True))
        .group_by(LedgerEntry.account, LedgerEntry.unit)
        .order_by(LedgerEntry.account, LedgerEntry.unit)
    )
    return {(account, unit): int(total) for account, unit, total in rows}


BALANCE_CURSOR_KINDS = (str, str)
"""Types of the sort key (account, unit) in a cursor of :func:`balance_page`."""


def balance_page(
    session: Session, account: str | None, page: PageRequest
) -> tuple[list[tuple[str, str, int]], str | None]:
    """Return a page of balances, by account then unit, of one account or (None) of all.

    Returns
    -------
    tuple of (list, str or None)
        ``(account, unit, amount)`` rows, and the cursor of the next page (None after the last).
    """
    query = select(LedgerEntry.account, LedgerEntry.unit, func.sum(LedgerEntry.amount))
    if account is not None:
        query = query.where(LedgerEntry.account == account)
    if page.after is not None:
        after_account, after_unit = page.after
        query = query.where(
            or_(
                LedgerEntry.account > after_account,
                and_(LedgerEntry.account == after_account, LedgerEntry.unit > after_unit),
            )
        )
    rows = [
        (str(name), str(unit), int(total))
        for name, unit, total in session.execute(
            query.group_by(LedgerEntry.account, LedgerEntry.unit)
            .order_by(LedgerEntry.account, LedgerEntry.unit)
            .limit(page.limit + 1)
        )
    ]
    if len(rows) <= page.limit:
        return rows, None
    last = rows[page.limit - 1]
    return rows[: page.limit], encode_cursor(last[:2])


def unbalanced_transactions(session: Session) -> list[int]:
    """Return the ids of transactions whose entries do not sum to zero in some unit."""
    rows = session.execute(
        select(LedgerEntry.transaction_id)
        .group_by(LedgerEntry.transaction_id, LedgerEntry.unit)
        .having(func.sum(LedgerEntry.amount) != 0)
    )
    return sorted({int(row[0]) for row in rows})
