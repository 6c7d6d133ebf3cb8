"""Mining settlements on SQLite and PostgreSQL: owners credited once per share, ledger balanced."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator import ledger
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import (
    LedgerEntry,
    MiningSettlement,
    MiningSettlementCredit,
    MiningShare,
)
from heatgrid.coordinator.errors import InvalidError
from heatgrid.coordinator.mining_settlements import SAT, SettlementResult, settle

from .conftest import T0_TS, Coordinator
from .mining_data import Miner, enroll_miners, insert_shares

# Vardiff keeps an S9 (14 TH/s) near one share per 10 s: difficulty ≈ 14e12 · 10 / 2**32.
_S9_DIFFICULTY = 32_768.0
_HASHPRICE_SAT_PER_TH_DAY = 42.18  # about late November 2025


@pytest.fixture
def miners(coordinator: Coordinator) -> list[Miner]:
    """Three ASIC heaters: two of alice's, one of bob's."""
    return enroll_miners(coordinator, {"alice": 2, "bob": 1})


@pytest.fixture
def sessions(coordinator: Coordinator) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(coordinator.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _sat_balances(session: Session) -> dict[str, int]:
    return {
        account: amount
        for (account, unit), amount in ledger.account_balances(session).items()
        if unit == SAT
    }


def _assert_balanced(session: Session) -> None:
    assert ledger.unbalanced_transactions(session) == []
    totals = session.execute(
        select(LedgerEntry.unit, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.unit)
    ).all()
    assert all(int(total) == 0 for _, total in totals)


def test_fpps_credits_each_owner_their_work_at_the_hashprice_minus_the_fee(
    miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, alice_2, bob = miners
    with sessions() as session:
        insert_shares(session, alice_1.device_id, [_S9_DIFFICULTY] * 360, start_ts=T0_TS)
        insert_shares(session, alice_2.device_id, [_S9_DIFFICULTY / 2] * 360, start_ts=T0_TS)
        insert_shares(session, bob.device_id, [_S9_DIFFICULTY] * 720, start_ts=T0_TS)
        # A share after the cut-off and one the pool refused are not settled.
        insert_shares(session, bob.device_id, [_S9_DIFFICULTY], start_ts=T0_TS + 7200.0)
        insert_shares(
            session, bob.device_id, [_S9_DIFFICULTY], start_ts=T0_TS, upstream_accepted=False
        )
        result = settle(
            session,
            scheme="fpps",
            until_ts=T0_TS + 3600.0 * 2,
            fee_fraction=0.02,
            hashprice_sat_per_th_day=_HASHPRICE_SAT_PER_TH_DAY,
            now_ts=T0_TS + 7300.0,
        )
        assert result is not None
        work_diff1 = _S9_DIFFICULTY * (360 + 180 + 720)
        assert result.work_diff1 == work_diff1
        assert result.share_count == 360 * 3 + 360
        # 1260 · 32768 diff-1 shares ≈ 14 TH/s for 3 h ≈ 0.1 TH/s-days.
        th_days = work_diff1 * 2**32 / 1e12 / 86_400
        assert result.gross_sat == math.floor(th_days * _HASHPRICE_SAT_PER_TH_DAY)
        assert result.fee_sat == round(result.gross_sat * 0.02)
        assert result.fee_sat + sum(result.owner_credits_sat.values()) == result.gross_sat
        # bob did 720 of the 1260 diff-32768 share equivalents.
        net = result.gross_sat - result.fee_sat
        assert abs(result.owner_credits_sat[bob.owner_id] - net * 720 / 1260) <= 1
        assert result.owner_credits_sat[alice_1.owner_id] == (
            result.device_credits_sat[alice_1.device_id]
            + result.device_credits_sat[alice_2.device_id]
        )
        balances = _sat_balances(session)
        assert balances["pool"] == -result.gross_sat
        assert balances["platform"] == result.fee_sat
        assert balances[f"owner:{bob.owner_id}"] == result.owner_credits_sat[bob.owner_id]
        _assert_balanced(session)
        unsettled = session.scalars(
            select(MiningShare.accepted_ts).where(MiningShare.settlement_id.is_(None))
        ).all()
        assert sorted(unsettled) == [T0_TS, T0_TS + 7200.0]
        # Nothing left to settle before the cut-off: a second run does nothing.
        again = settle(
            session,
            scheme="fpps",
            until_ts=T0_TS + 7200.0,
            fee_fraction=0.02,
            hashprice_sat_per_th_day=_HASHPRICE_SAT_PER_TH_DAY,
            now_ts=T0_TS + 7400.0,
        )
        assert again is None
        assert session.scalar(select(func.count()).select_from(MiningSettlement)) == 1


def test_pro_rata_splits_what_the_pool_paid_by_work(
    miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, _, bob = miners
    with sessions() as session:
        insert_shares(session, alice_1.device_id, [1024.0] * 10, start_ts=T0_TS)
        insert_shares(session, bob.device_id, [2048.0] * 10, start_ts=T0_TS)
        result = settle(
            session,
            scheme="pro_rata",
            until_ts=T0_TS + 3600.0,
            fee_fraction=0.05,
            pool_paid_sat=30_001,
            now_ts=T0_TS + 3600.0,
        )
        assert result is not None
        assert result.gross_sat == 30_001
        assert result.fee_sat == 1500
        # 28,501 sat split 1 : 2.
        assert result.owner_credits_sat == {alice_1.owner_id: 9500, bob.owner_id: 19001}
        _assert_balanced(session)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "pplns", "hashprice_sat_per_th_day": 42.0}, "scheme must be one of"),
        ({"scheme": "fpps"}, "fpps needs hashprice_sat_per_th_day"),
        ({"scheme": "fpps", "pool_paid_sat": 5}, "fpps needs"),
        ({"scheme": "pro_rata", "pool_paid_sat": -1}, "pool_paid_sat must be >= 0"),
        ({"scheme": "fpps", "hashprice_sat_per_th_day": math.nan}, "hashprice_sat_per_th_day"),
        ({"scheme": "fpps", "hashprice_sat_per_th_day": 1.0, "fee_fraction": 2.0}, "fee_fraction"),
    ],
)
def test_bad_settlement_parameters_are_refused_by_name(
    sessions: sessionmaker[Session], kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"until_ts": T0_TS, "fee_fraction": 0.02, "now_ts": T0_TS}
    arguments.update(kwargs)
    with sessions() as session, pytest.raises(InvalidError, match=message):
        settle(session, **arguments)  # type: ignore[arg-type]


def test_two_runs_at_the_same_time_settle_each_share_exactly_once(
    miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        for index, miner in enumerate(miners):
            insert_shares(session, miner.device_id, [4096.0 * (index + 1)] * 400, start_ts=T0_TS)
    results: list[SettlementResult | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            with sessions() as session:
                barrier.wait()
                results.append(
                    settle(
                        session,
                        scheme="fpps",
                        until_ts=T0_TS + 86_400.0,
                        fee_fraction=0.02,
                        hashprice_sat_per_th_day=_HASHPRICE_SAT_PER_TH_DAY,
                        now_ts=T0_TS + 86_400.0,
                    )
                )
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    done = [result for result in results if result is not None]
    assert done  # one run at least found the shares
    assert sum(result.share_count for result in done) == 1200
    assert math.fsum(result.work_diff1 for result in done) == 4096.0 * 400 * (1 + 2 + 3)
    with sessions() as session:
        assert session.scalar(select(func.count()).where(MiningShare.settlement_id.is_(None))) == 0
        credited = session.scalar(select(func.sum(MiningSettlementCredit.share_count)))
        assert credited == 1200
        assert _sat_balances(session)["pool"] == -sum(result.gross_sat for result in done)
        _assert_balanced(session)


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shares=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.floats(min_value=2**-16, max_value=1e6),
            st.sampled_from([True, None, False]),
        ),
        min_size=0,
        max_size=40,
    ),
    fee_fraction=st.floats(min_value=0.0, max_value=1.0),
    scheme=st.sampled_from(["fpps", "pro_rata"]),
    amount=st.floats(min_value=0.0, max_value=1e6),
)
def test_the_ledger_balances_after_every_settlement_of_any_share_set(
    *,
    miners: list[Miner],
    sessions: sessionmaker[Session],
    shares: list[tuple[int, float, bool | None]],
    fee_fraction: float,
    scheme: str,
    amount: float,
) -> None:
    with sessions() as session:
        before = session.scalar(select(func.count()).where(MiningShare.settlement_id.isnot(None)))
        for device, difficulty, upstream in shares:
            insert_shares(
                session,
                miners[device].device_id,
                [difficulty],
                start_ts=T0_TS,
                upstream_accepted=upstream,
            )
        settleable = sum(1 for _, _, upstream in shares if upstream is not False)
        result = settle(
            session,
            scheme=scheme,
            until_ts=T0_TS + 1.0,
            fee_fraction=fee_fraction,
            hashprice_sat_per_th_day=amount if scheme == "fpps" else None,
            pool_paid_sat=round(amount) if scheme == "pro_rata" else None,
            now_ts=T0_TS + 2.0,
        )
        _assert_balanced(session)
        after = session.scalar(select(func.count()).where(MiningShare.settlement_id.isnot(None)))
        assert after == before + settleable
        if result is None:
            assert settleable == 0
            return
        assert result.share_count == settleable
        assert result.fee_sat + sum(result.owner_credits_sat.values()) == result.gross_sat
        assert sum(result.device_credits_sat.values()) == result.gross_sat - result.fee_sat
        # Every settled share belongs to exactly one settlement, whose credits count it.
        credited = session.scalar(select(func.sum(MiningSettlementCredit.share_count)))
        assert credited == after
        balances = _sat_balances(session)
        gross_total = session.scalar(select(func.sum(MiningSettlement.gross_sat)))
        assert balances.get("pool", 0) == -int(gross_total or 0)
