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
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from heatgrid.coordinator.db.engine import json_rows, json_rows_source
from heatgrid.coordinator.db.models import (
    Device,
    Job,
    LedgerEntry,
    LedgerTransaction,
    TaskAttempt,
)
from heatgrid.coordinator.pages import PageRequest, encode_cursor

__all__ = [
    "BALANCE_CURSOR_KINDS",
    "CLAWBACK_KIND",
    "CLAWBACK_REVERSED_KIND",
    "MICRO_EUR_PER_EUR",
    "Posting",
    "Transaction",
    "account_balance",
    "account_balances",
    "attempt_cost_micro_eur",
    "attempt_transaction",
    "balance_page",
    "held_account",
    "post",
    "post_many",
    "settle_attempt",
    "unbalanced_transactions",
]

MICRO_EUR_PER_EUR = 1_000_000
CLAWBACK_KIND = "result_clawed_back"
"""Kind of the transaction that takes a caught device's unchecked pay back (clawback)."""
CLAWBACK_REVERSED_KIND = "result_clawback_reversed"
"""Kind of the transaction that gives a clawback back when the operator releases the device."""
_J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Posting:
    """One entry to post: ``amount`` of ``unit`` on ``account`` (negative: a debit)."""

    account: str
    unit: str
    amount: int


@dataclass(frozen=True)
class Transaction:
    """A balanced transaction to post under ``key`` (at most once), and what it is about."""

    key: str
    kind: str
    postings: Sequence[Posting]
    job_id: str | None = None
    task_id: str | None = None
    device_id: str | None = None


def attempt_cost_micro_eur(energy_j: int, price_eur_per_kwh: float) -> int:
    """Return what ``energy_j`` [J] costs at ``price_eur_per_kwh`` [EUR/kWh], in micro-euros."""
    return round(energy_j / _J_PER_KWH * price_eur_per_kwh * MICRO_EUR_PER_EUR)


def held_account(owner_id: int) -> str:
    """Return the ledger account that holds an owner's unverified credit."""
    return f"held:owner:{owner_id}"


def attempt_transaction(
    *,
    task_id: str,
    attempt: int,
    job_id: str,
    submitter_id: int,
    device_id: str,
    owner_id: int,
    energy_j: float,
    price_eur_per_kwh: float,
    owner_share: float,
    held: bool = False,
) -> Transaction:
    """Return the settlement of attempt ``attempt`` of ``task_id`` (the module's rule).

    ``energy_j`` [J] is rounded to whole joules; ``price_eur_per_kwh`` [EUR/kWh] is the job's
    price, ``owner_share`` the heater owner's fraction of the cost [1]. ``held``: the whole cost
    goes to the owner's :func:`held_account` until the result is verified, not to the owner
    and the platform.
    """
    joules = round(energy_j)
    cost = attempt_cost_micro_eur(joules, price_eur_per_kwh)
    share = round(cost * owner_share)
    credits = (
        [Posting(held_account(owner_id), "micro_eur", cost)]
        if held
        else [
            Posting(f"owner:{owner_id}", "micro_eur", share),
            Posting("platform", "micro_eur", cost - share),
        ]
    )
    return Transaction(
        key=f"attempt:{task_id}:{attempt}",
        kind="task_attempt",
        postings=[
            Posting(f"device:{device_id}", "j", -joules),
            Posting(f"job:{job_id}", "j", joules),
            Posting(f"submitter:{submitter_id}", "micro_eur", -cost),
            *credits,
        ],
        job_id=job_id,
        task_id=task_id,
        device_id=device_id,
    )


def settle_attempt(
    session: Session,
    attempt: TaskAttempt,
    *,
    job_id: str,
    energy_j: float,
    now_ts: float,
    held: bool = False,
) -> None:
    """Post the settlement of ``attempt`` of a task of job ``job_id`` (:func:`attempt_transaction`).

    ``energy_j`` [J] is what the attempt is paid for; ``held``: into the owner's held account.
    """
    job = session.get_one(Job, job_id)
    device = session.get_one(Device, attempt.device_id)
    transaction = attempt_transaction(
        task_id=attempt.task_id,
        attempt=attempt.attempt,
        job_id=job.id,
        submitter_id=job.submitter_id,
        device_id=device.id,
        owner_id=device.owner_id,
        energy_j=energy_j,
        price_eur_per_kwh=job.price_eur_per_kwh,
        owner_share=job.owner_share,
        held=held,
    )
    post_many(session, [transaction], now_ts=now_ts)


def _check_balanced(key: str, postings: Sequence[Posting]) -> None:
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.unit] = totals.get(posting.unit, 0) + posting.amount
    if any(total != 0 for total in totals.values()):
        raise ValueError(f"ledger transaction {key!r} does not balance: {totals}")


# PostgreSQL: the rows as one JSON parameter (``db.engine.json_rows_source``), so the
# statement's text is the same whatever the number of rows: psycopg parses it once and
# prepares it, where a multi-row ``VALUES`` of hundreds of placeholders is longer than
# psycopg caches and is parsed anew for every batch (a third of a served batch completion's
# CPU, measured with py-spy), and the rows are encoded in C (an array parameter per column,
# as before, was dumped element by element in Python: about 0.8 ms of a batch of 32
# settlements' 160 entries).
_PG_ENTRIES = text(
    "INSERT INTO ledger_entries (transaction_id, account, unit, amount) SELECT e.* FROM "
    + json_rows_source(
        "rows",
        "e",
        "transaction_id INTEGER, account VARCHAR, unit VARCHAR, amount BIGINT",
        jsonb=True,
    )
)
# post_many: the transactions not posted before and the entries of those (joined on the key,
# in the order given) in one round trip; the statement answers the keys it added.
_PG_POST = text(
    "WITH added AS (INSERT INTO ledger_transactions (key, kind, job_id, task_id, device_id, "
    "created_ts) SELECT t.* FROM "
    + json_rows_source(
        "transactions",
        "t",
        "key VARCHAR, kind VARCHAR, job_id VARCHAR, task_id VARCHAR, device_id VARCHAR, "
        "created_ts DOUBLE PRECISION",
        jsonb=True,
    )
    + " ON CONFLICT (key) DO NOTHING RETURNING id, key), "
    "entries AS (INSERT INTO ledger_entries (transaction_id, account, unit, amount) "
    "SELECT added.id, e.account, e.unit, e.amount FROM "
    + json_rows_source(
        "entries",
        "e",
        "key VARCHAR, account VARCHAR, unit VARCHAR, amount BIGINT",
        ordinality=True,
        jsonb=True,
    )
    + " JOIN added ON added.key = e.key ORDER BY e_json.n) "
    "SELECT key FROM added"
)


def _on_postgresql(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def _insert_entries(session: Session, entries: list[dict[str, Any]]) -> None:
    """Insert ledger entries in one statement.

    PostgreSQL: ``INSERT … SELECT`` of :func:`.db.engine.json_rows_source`. Elsewhere an
    executemany with ``RETURNING``, sent as one multi-row ``INSERT`` (without it, a
    statement per row).
    """
    if not entries:
        return
    if _on_postgresql(session):
        session.execute(_PG_ENTRIES, {"rows": json_rows(entries)})
        return
    table = cast(Table, LedgerEntry.__table__)
    session.execute(insert(table).returning(table.c.id), entries)


def _dialect_insert(session: Session) -> Any:
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert


def post_many(session: Session, transactions: Sequence[Transaction], *, now_ts: float) -> set[str]:
    """Add balanced transactions to the session, each unless its key was posted before.

    Two statements whatever their number: one multi-row ``INSERT … ON CONFLICT DO NOTHING
    RETURNING`` of the transactions, one multi-row ``INSERT`` of the new ones' entries; on
    PostgreSQL one, both inserts in data-modifying CTEs (``_PG_POST``).

    Returns
    -------
    set of str
        The keys that were added (the others existed already).

    Raises
    ------
    ValueError
        If a transaction's postings do not sum to zero in each unit, or two share a key.
    """
    if not transactions:
        return set()
    by_key = {transaction.key: transaction for transaction in transactions}
    if len(by_key) != len(transactions):
        raise ValueError("ledger transactions of one post_many share a key")
    for transaction in transactions:
        _check_balanced(transaction.key, transaction.postings)
    rows = [
        {
            "key": transaction.key,
            "kind": transaction.kind,
            "job_id": transaction.job_id,
            "task_id": transaction.task_id,
            "device_id": transaction.device_id,
            "created_ts": now_ts,
        }
        for transaction in transactions
    ]
    if _on_postgresql(session):
        entries = [
            {
                "key": transaction.key,
                "account": posting.account,
                "unit": posting.unit,
                "amount": posting.amount,
            }
            for transaction in sorted(transactions, key=lambda transaction: transaction.key)
            for posting in transaction.postings
            if posting.amount != 0
        ]
        posted = session.execute(
            _PG_POST, {"transactions": json_rows(rows), "entries": json_rows(entries)}
        ).scalars()
        return {str(key) for key in posted}
    # executemany of one INSERT … RETURNING: SQLAlchemy sends it as one multi-row statement
    # ("insertmanyvalues"), compiled once and cached, unlike .values([...]).
    table = cast(Table, LedgerTransaction.__table__)
    statement = (
        _dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.id, table.c.key)
    )
    inserted = session.execute(statement, rows).all()
    added = {str(key): int(transaction_id) for transaction_id, key in inserted}
    entries = [
        {
            "transaction_id": transaction_id,
            "account": posting.account,
            "unit": posting.unit,
            "amount": posting.amount,
        }
        for key, transaction_id in sorted(added.items())
        for posting in by_key[key].postings
        if posting.amount != 0
    ]
    _insert_entries(session, entries)
    return set(added)


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
    _check_balanced(key, postings)
    values = {
        "key": key,
        "kind": kind,
        "job_id": job_id,
        "task_id": task_id,
        "device_id": device_id,
        "created_ts": now_ts,
    }
    statement = (
        _dialect_insert(session)(LedgerTransaction)
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
    _insert_entries(session, entries)
    return True


def account_balance(session: Session, account: str, unit: str) -> int:
    """Return the balance of one ledger account in one unit (0 when it has no entry)."""
    total = session.scalar(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.account == account, LedgerEntry.unit == unit
        )
    )
    return int(total or 0)


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
