"""``heatgrid mining report | settle | address | payouts``: accounting and owner payouts.

Wiring only: the work is in :mod:`heatgrid.coordinator.mining_report`,
:mod:`heatgrid.coordinator.mining_settlements` and :mod:`heatgrid.coordinator.mining_payouts`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from heatgrid.cli._database import AsJson, DatabaseUrl, DataDir, now_ts, open_session, utc_text
from heatgrid.cli._tables import print_table
from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["add_payout_commands"]

DEFAULT_WINDOW_S = 86_400.0
"""The report's default window: the last day [s]."""

DEFAULT_FEE_FRACTION = 0.02
"""The operator's default fee on mining earnings [-]."""

DEFAULT_MIN_PAYOUT_SAT = 100_000
"""Smallest balance paid out by default [sat] (0.001 BTC: on-chain fees make less wasteful)."""

_DEFAULT_DIFFICULTY = 1.5e14  # MarketSnapshot's; kept here so that `--help` imports no numpy
_DEFAULT_SUBSIDY_BTC = 3.125
_DEFAULT_FEES_BTC_PER_BLOCK = 0.02

Network = Annotated[
    str,
    typer.Option(
        "--network",
        envvar="HEATGRID_BITCOIN_NETWORK",
        help="Bitcoin network of payouts: mainnet, testnet, signet or regtest.",
    ),
]
Difficulty = Annotated[
    float | None,
    typer.Option(
        "--difficulty",
        min=1.0,
        help=f"Network difficulty for economics' revenue model (report default: "
        f"{_DEFAULT_DIFFICULTY:g}).",
        show_default=False,
    ),
]
Subsidy = Annotated[float, typer.Option("--subsidy-btc", min=0.0, help="Block subsidy \\[BTC].")]
Fees = Annotated[
    float, typer.Option("--fees-btc-per-block", min=0.0, help="Mean fees per block \\[BTC].")
]


def _owner_id(session: Session, owner_name: str) -> int:
    from sqlalchemy import select  # noqa: PLC0415 - keeps `--help` fast

    from heatgrid.coordinator.db.models import Account  # noqa: PLC0415

    owner = session.scalars(select(Account).where(Account.name == owner_name)).first()
    if owner is None or owner.role != "owner":
        raise InputError(f"owner {owner_name!r}: no owner account of that name")
    return owner.id


def report(
    *,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this owner's devices (default: all).")
    ] = None,
    window_s: Annotated[
        float, typer.Option("--window-s", min=1.0, help="Window of work and hashrate \\[s].")
    ] = DEFAULT_WINDOW_S,
    until_ts: Annotated[
        float | None,
        typer.Option("--until-ts", help="End of the window \\[POSIX s] (default: now)."),
    ] = None,
    difficulty: Difficulty = None,
    subsidy_btc: Subsidy = _DEFAULT_SUBSIDY_BTC,
    fees_btc_per_block: Fees = _DEFAULT_FEES_BTC_PER_BLOCK,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show accepted work, rejects, hashrate, blocks and earnings per device and owner."""
    from heatgrid.coordinator.mining_report import mining_report  # noqa: PLC0415
    from heatgrid.core.economics import MarketSnapshot  # noqa: PLC0415

    market = MarketSnapshot(
        difficulty=difficulty or _DEFAULT_DIFFICULTY,
        subsidy_btc=subsidy_btc,
        fees_btc_per_block=fees_btc_per_block,
        as_of=MarketSnapshot.as_of if difficulty is None else "given",
    )
    with open_session(database_url, data_dir) as session:
        found = mining_report(
            session,
            owner_id=None if owner is None else _owner_id(session, owner),
            until_ts=now_ts() if until_ts is None else until_ts,
            window_s=window_s,
            market=market,
        )
    if as_json:
        typer.echo(json.dumps(asdict(found)))
        return
    typer.echo(
        f"window {utc_text(found.since_ts)} to {utc_text(found.until_ts)} "
        f"({found.window_s:g} s); hashrate = accepted work x 2^32 / window; "
        f"hashprice {found.hashprice_sat_per_th_day:.2f} sat per TH/s per day "
        f"(difficulty {market.difficulty:g})"
    )
    print_table(
        (
            "device_id",
            "owner",
            "name",
            "shares",
            "work (diff-1)",
            "TH/s",
            "rated TH/s",
            "rejected",
            "blocks",
            "credited sat",
            "expected sat",
        ),
        [
            (
                row.device_id,
                row.owner_name,
                row.name,
                str(row.accepted_shares),
                f"{row.work_diff1:.6g}",
                f"{row.hashrate_hs / 1e12:.3f}",
                "-" if row.rated_hashrate_ths is None else f"{row.rated_hashrate_ths:g}",
                ", ".join(f"{reason} {count}" for reason, count in sorted(row.rejected.items()))
                or "-",
                str(row.blocks_found),
                str(row.credited_sat),
                f"{row.expected_sat:.0f}",
            )
            for row in found.devices
        ],
        ids={"device_id"},
        title="devices",
    )
    print_table(
        (
            "owner",
            "devices",
            "work (diff-1)",
            "TH/s",
            "blocks",
            "credited sat",
            "paid sat",
            "balance sat",
            "payout address",
        ),
        [
            (
                row.owner_name,
                str(row.device_count),
                f"{row.work_diff1:.6g}",
                f"{row.hashrate_hs / 1e12:.3f}",
                str(row.blocks_found),
                str(row.credited_sat),
                str(row.paid_sat),
                str(row.balance_sat),
                row.payout_address or "-",
            )
            for row in found.owners
        ],
        ids={"payout address"},
        title="owners",
    )


def settle(
    *,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="fpps (at --hashprice-sat-per-th-day, or the hashprice of --difficulty) or "
            "pro_rata (of --pool-paid-sat).",
        ),
    ],
    hashprice_sat_per_th_day: Annotated[
        float | None,
        typer.Option(
            "--hashprice-sat-per-th-day",
            min=0.0,
            help="FPPS rate \\[sat per TH/s per day] (what 1 TH/s earns in a day).",
            show_default=False,
        ),
    ] = None,
    difficulty: Difficulty = None,
    subsidy_btc: Subsidy = _DEFAULT_SUBSIDY_BTC,
    fees_btc_per_block: Fees = _DEFAULT_FEES_BTC_PER_BLOCK,
    pool_paid_sat: Annotated[
        int | None,
        typer.Option(
            "--pool-paid-sat",
            min=0,
            help="pro_rata: what the pool paid the account for the unsettled shares \\[sat].",
            show_default=False,
        ),
    ] = None,
    fee_fraction: Annotated[
        float, typer.Option("--fee-fraction", min=0.0, max=1.0, help="The operator's fee \\[-].")
    ] = DEFAULT_FEE_FRACTION,
    until_ts: Annotated[
        float | None,
        typer.Option(
            "--until-ts", help="Settle shares accepted before this \\[POSIX s] (default: now)."
        ),
    ] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Credit every unsettled share to its owner in the ledger, minus the operator's fee."""
    from heatgrid.coordinator.mining_settlements import settle as run  # noqa: PLC0415

    if scheme == "fpps" and hashprice_sat_per_th_day is None:
        if difficulty is None:
            raise InputError(
                "--scheme fpps needs --hashprice-sat-per-th-day, or --difficulty (with "
                "--subsidy-btc and --fees-btc-per-block) to compute it"
            )
        from heatgrid.mining.payouts import hashprice_sat_per_th_day as price  # noqa: PLC0415

        hashprice_sat_per_th_day = price(difficulty, subsidy_btc, fees_btc_per_block)
    with open_session(database_url, data_dir) as session:
        result = run(
            session,
            scheme=scheme,
            until_ts=now_ts() if until_ts is None else until_ts,
            fee_fraction=fee_fraction,
            now_ts=now_ts(),
            hashprice_sat_per_th_day=hashprice_sat_per_th_day,
            pool_paid_sat=pool_paid_sat,
        )
    if result is None:
        raise InputError("no unsettled shares before --until-ts: nothing to settle")
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    typer.echo(
        f"settlement {result.settlement_id} ({result.scheme}): {result.share_count} shares, "
        f"{result.work_diff1:.6g} diff-1 work, gross {result.gross_sat} sat, fee "
        f"{result.fee_sat} sat, credited {result.gross_sat - result.fee_sat} sat to "
        f"{len(result.owner_credits_sat)} owners"
    )


def address(
    *,
    owner: Annotated[str, typer.Argument(help="The owner account's name.")],
    bitcoin_address: Annotated[str, typer.Argument(metavar="ADDRESS", help="Bitcoin address.")],
    network: Network = "mainnet",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Register an owner's payout address, checked for the network."""
    from heatgrid.coordinator.mining_payouts import set_payout_address  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        row = set_payout_address(
            session, _owner_id(session, owner), bitcoin_address, network, now_ts=now_ts()
        )
        typer.echo(f"{owner}: payouts go to {row.address} ({row.network})")


_payouts = typer.Typer(
    help="Make a batch of owner payouts as a `bitcoin-cli sendmany` amounts file.",
    invoke_without_command=True,
)


@_payouts.callback()
def payouts(
    ctx: typer.Context,
    *,
    min_sat: Annotated[
        int, typer.Option("--min-sat", min=1, help="Pay owners owed at least this \\[sat].")
    ] = DEFAULT_MIN_PAYOUT_SAT,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the amounts map here (default: print it)."),
    ] = None,
    network: Network = "mainnet",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Make a batch of owners owed at least --min-sat, as {address: amount_btc} for sendmany.

    Pay it with `bitcoin-cli sendmany "" "$(cat FILE)"`, then record the transaction with
    `heatgrid mining payouts mark-paid BATCH --txid TXID`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from heatgrid.coordinator.mining_payouts import create_batch, sendmany_json  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        result = create_batch(session, network=network, min_sat=min_sat, now_ts=now_ts())
    amounts = sendmany_json(result.items)
    if output is None:
        typer.echo(amounts)
    else:
        output.write_text(amounts + "\n", encoding="utf-8")
    typer.echo(
        f"batch {result.batch.id}: {len(result.items)} owners, {result.batch.total_sat} sat"
        + (f" -> {output}" if output is not None else "")
        + "".join(f"\nleft out owner {owner}: {why}" for owner, why in result.skipped.items()),
        err=True,
    )


@_payouts.command("mark-paid")
def mark_paid(
    *,
    batch_id: Annotated[int, typer.Argument(metavar="BATCH", help="The batch's number.")],
    txid: Annotated[str, typer.Option("--txid", help="The transaction that paid it.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record the transaction that paid a batch; owners' balances move to paid_out once."""
    from heatgrid.coordinator.mining_payouts import mark_paid as mark  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        batch, changed = mark(session, batch_id, txid, now_ts=now_ts())
    state = "marked paid" if changed else "was already paid"
    typer.echo(f"batch {batch.id} {state} by {batch.txid} ({batch.total_sat} sat)")


@_payouts.command("cancel")
def cancel(
    *,
    batch_id: Annotated[int, typer.Argument(metavar="BATCH", help="The batch's number.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Cancel a pending batch that was never paid; its owners go in the next one."""
    from heatgrid.coordinator.mining_payouts import cancel_batch  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        batch = cancel_batch(session, batch_id)
    typer.echo(f"batch {batch.id} cancelled ({batch.total_sat} sat stay owed)")


def add_payout_commands(group: typer.Typer) -> None:
    """Add ``report``, ``settle``, ``address`` and ``payouts`` to the ``mining`` group."""
    group.command("report")(report)
    group.command("settle")(settle)
    group.command("address")(address)
    group.add_typer(_payouts, name="payouts")
