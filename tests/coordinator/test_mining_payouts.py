"""``heatgrid mining``: settle, register addresses, batch payouts for sendmany, mark them paid."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.cli.main import main
from heatgrid.coordinator import ledger
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import LedgerEntry, PayoutBatch
from heatgrid.coordinator.mining_payouts import mark_paid

from .conftest import T0_TS, Coordinator
from .mining_data import Miner, enroll_miners, insert_shares

_ALICE_ADDRESS = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
_BOB_ADDRESS = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
_TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


@pytest.fixture
def miners(coordinator: Coordinator) -> list[Miner]:
    """alice: two heaters, bob: one, carol: one (who never registers an address)."""
    return enroll_miners(coordinator, {"alice": 2, "bob": 1, "carol": 1})


@pytest.fixture
def sessions(coordinator: Coordinator) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(coordinator.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _cli(coordinator: Coordinator, *args: str) -> int:
    return main(["mining", *args, "--database-url", coordinator.database_url])


def _words(text: str) -> str:
    """``text`` with its line wrapping undone (the CLI wraps errors at the terminal width)."""
    return " ".join(text.split())


def _sat(session: Session) -> dict[str, int]:
    return {
        account: amount
        for (account, unit), amount in ledger.account_balances(session).items()
        if unit == "sat"
    }


def _mine_and_settle(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
    pool_paid_sat: int = 1_000_000,
) -> dict[str, object]:
    with sessions() as session:
        for miner, shares in zip(miners, (400, 200, 300, 100), strict=True):
            insert_shares(session, miner.device_id, [8192.0] * shares, start_ts=T0_TS)
    capsys.readouterr()
    assert (
        _cli(
            coordinator,
            "settle",
            "--scheme",
            "pro_rata",
            "--pool-paid-sat",
            str(pool_paid_sat),
            "--fee-fraction",
            "0.03",
            "--json",
        )
        == 0
    )
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_settle_then_pay_owners_above_the_threshold_with_a_sendmany_file(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    alice, _, bob, carol = miners
    result = _mine_and_settle(coordinator, miners, sessions, capsys)
    assert result["gross_sat"] == 1_000_000
    assert result["fee_sat"] == 30_000
    # 970,000 sat split 600 : 300 : 100 shares.
    credits = {int(k): v for k, v in result["owner_credits_sat"].items()}  # type: ignore[attr-defined]
    assert credits == {alice.owner_id: 582_000, bob.owner_id: 291_000, carol.owner_id: 97_000}

    assert _cli(coordinator, "address", "alice", _ALICE_ADDRESS.upper()) == 0
    assert _cli(coordinator, "address", "bob", _BOB_ADDRESS) == 0
    capsys.readouterr()
    batch_file = tmp_path / "batch.json"
    assert _cli(coordinator, "payouts", "--min-sat", "200000", "--output", str(batch_file)) == 0
    assert "batch 1: 2 owners, 873000 sat" in _words(capsys.readouterr().err)
    # carol (97,000 sat) is under the threshold; nobody over it lacks an address.
    text = batch_file.read_text()
    assert text == f'{{"{_BOB_ADDRESS}": 0.00291000, "{_ALICE_ADDRESS}": 0.00582000}}\n'
    amounts = json.loads(text, parse_float=Decimal)
    assert amounts == {_ALICE_ADDRESS: Decimal("0.00582"), _BOB_ADDRESS: Decimal("0.00291")}

    # A second batch while this one is pending would pay the same balances twice.
    assert _cli(coordinator, "payouts", "--min-sat", "1") == 2
    assert "batch 1 is still pending" in _words(capsys.readouterr().err)

    with sessions() as session:
        before = _sat(session)
        assert before[f"owner:{alice.owner_id}"] == 582_000  # nothing moves before it is paid
    assert _cli(coordinator, "payouts", "mark-paid", "1", "--txid", _TXID) == 0
    assert "batch 1 marked paid" in _words(capsys.readouterr().out)
    with sessions() as session:
        after = _sat(session)
        entries = session.scalar(select(func.count()).select_from(LedgerEntry))
        assert ledger.unbalanced_transactions(session) == []
    assert after[f"owner:{alice.owner_id}"] == 0
    assert after[f"owner:{bob.owner_id}"] == 0
    assert after[f"owner:{carol.owner_id}"] == 97_000
    assert after["paid_out"] == 873_000
    assert sum(after.values()) == 0

    # Idempotent: the same txid again changes nothing; another txid is refused.
    assert _cli(coordinator, "payouts", "mark-paid", "1", "--txid", _TXID.upper()) == 0
    assert "was already paid" in _words(capsys.readouterr().out)
    assert _cli(coordinator, "payouts", "mark-paid", "1", "--txid", "ab" * 32) == 2
    assert f"already paid by {_TXID}" in _words(capsys.readouterr().err)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries

    # The report shows what was paid.
    assert _cli(coordinator, "report", "--json", "--until-ts", str(T0_TS + 3600.0)) == 0
    owners = {row["owner_name"]: row for row in json.loads(capsys.readouterr().out)["owners"]}
    assert owners["alice"]["paid_sat"] == 582_000
    assert owners["alice"]["credited_sat"] == 582_000
    assert owners["alice"]["balance_sat"] == 0
    assert owners["carol"]["balance_sat"] == 97_000
    assert owners["bob"]["payout_address"] == _BOB_ADDRESS


def test_owners_over_the_threshold_without_an_address_are_left_out_and_named(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, _, bob, _ = miners
    _mine_and_settle(coordinator, miners, sessions, capsys)
    assert _cli(coordinator, "address", "alice", _ALICE_ADDRESS) == 0
    capsys.readouterr()
    assert _cli(coordinator, "payouts", "--min-sat", "200000") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {_ALICE_ADDRESS: 0.00582}
    assert f"left out owner {bob.owner_id}: no payout address" in _words(captured.err)
    # Nobody left to pay: a clear refusal, not an empty file.
    assert _cli(coordinator, "payouts", "mark-paid", "1", "--txid", _TXID) == 0
    capsys.readouterr()
    assert _cli(coordinator, "payouts", "--min-sat", "200000") == 2
    assert "no owner is owed at least 200000 sat" in _words(capsys.readouterr().err)
    with sessions() as session:
        assert _sat(session)[f"owner:{alice.owner_id}"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("address", "alice", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"), "bad checksum"),
        (
            ("address", "alice", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
            "testnet",
        ),
        (("address", "alice", _ALICE_ADDRESS, "--network", "testnet"), "mainnet"),
        (("address", "nobody", _ALICE_ADDRESS), "no owner account"),
        (("settle", "--scheme", "fpps"), "needs --hashprice-sat-per-th-day"),
        (("settle", "--scheme", "pplns", "--pool-paid-sat", "5"), "scheme must be one of"),
        (("settle", "--scheme", "pro_rata", "--pool-paid-sat", "5"), "nothing to settle"),
        (("payouts", "mark-paid", "1", "--txid", "nope"), "64 hex digits"),
        (("payouts", "mark-paid", "7", "--txid", _TXID), "no such batch"),
        (("payouts", "--network", "litecoin"), "network must be one of mainnet, testnet"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    coordinator: Coordinator,
    miners: list[Miner],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    assert _cli(coordinator, *args) == 2
    captured = capsys.readouterr()
    assert message in _words(captured.err)
    assert "Traceback" not in captured.err + captured.out


def test_the_fpps_rate_comes_from_the_difficulty_through_core_economics(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with sessions() as session:
        # 14 TH/s for a day: 14e12 · 86400 / 2**32 diff-1 shares, in shares of 65536.
        insert_shares(session, miners[0].device_id, [65_536.0] * 4297, start_ts=T0_TS)
    capsys.readouterr()
    assert (
        _cli(
            coordinator,
            "settle",
            "--scheme",
            "fpps",
            "--difficulty",
            "1.5e14",
            "--fee-fraction",
            "0",
            "--until-ts",
            str(T0_TS + 86_400.0),
            "--json",
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    # Economics' hashprice at difficulty 1.5e14, 3.125 BTC + 0.02 BTC: 42.18 sat per TH/s-day.
    assert result["gross_sat"] == pytest.approx(14 * 42.18, abs=1.0)


def test_two_marks_at_the_same_time_move_the_money_once(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _mine_and_settle(coordinator, miners, sessions, capsys)
    assert _cli(coordinator, "address", "alice", _ALICE_ADDRESS) == 0
    assert _cli(coordinator, "payouts", "--min-sat", "1") == 0
    outcomes: list[bool] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        with sessions() as session:
            barrier.wait()
            outcomes.append(mark_paid(session, 1, _TXID, now_ts=T0_TS + 10.0)[1])

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, True]
    with sessions() as session:
        assert _sat(session)["paid_out"] == 582_000
        assert session.get(PayoutBatch, 1).state == "paid"  # type: ignore[union-attr]
        assert ledger.unbalanced_transactions(session) == []


def test_a_pending_batch_can_be_cancelled_and_a_paid_one_cannot(
    coordinator: Coordinator,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _mine_and_settle(coordinator, miners, sessions, capsys)
    assert _cli(coordinator, "address", "alice", _ALICE_ADDRESS) == 0
    assert _cli(coordinator, "payouts", "--min-sat", "1") == 0
    capsys.readouterr()
    assert _cli(coordinator, "payouts", "cancel", "1") == 0
    assert "batch 1 cancelled (582000 sat stay owed)" in _words(capsys.readouterr().out)
    assert _cli(coordinator, "payouts", "--min-sat", "1") == 0
    assert json.loads(capsys.readouterr().out) == {_ALICE_ADDRESS: 0.00582}
    # The cancelled batch cannot be paid; its number is not reused.
    assert _cli(coordinator, "payouts", "mark-paid", "1", "--txid", _TXID) == 2
    assert "batch 1 was cancelled" in _words(capsys.readouterr().err)
    assert _cli(coordinator, "payouts", "mark-paid", "2", "--txid", _TXID) == 0
    assert _cli(coordinator, "payouts", "cancel", "2") == 2
    assert "was paid by" in _words(capsys.readouterr().err)
    with sessions() as session:
        assert _sat(session)["paid_out"] == 582_000
