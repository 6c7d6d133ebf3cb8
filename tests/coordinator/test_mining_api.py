"""The mining report and payout addresses over the API: each owner sees only their own."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.agent.client import CoordinatorClient
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningReject
from heatgrid.coordinator.mining_settlements import settle
from heatgrid.coordinator.settings import Settings
from heatgrid.core.economics import MarketSnapshot, mining_revenue_btc
from heatgrid.core.errors import InputError
from heatgrid.protocol import v1

from .conftest import T0_TS, Coordinator
from .mining_data import Miner, enroll_miners, insert_shares

_DIFFICULTY = 32_768.0  # an S9 at one share per 10 s
_GENESIS_ADDRESS = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"


@pytest.fixture
def miners(coordinator: Coordinator) -> list[Miner]:
    return enroll_miners(coordinator, {"alice": 2, "bob": 1})


@pytest.fixture
def sessions(coordinator: Coordinator) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(coordinator.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _mine_an_hour(sessions: sessionmaker[Session], miners: list[Miner]) -> None:
    """alice's first heater: 360 shares (14 TH/s for an hour), 2 blocks, 5 stale rejects;
    her second: half; bob's: 360 shares the previous hour, outside a 1-hour window."""
    alice_1, alice_2, bob = miners
    with sessions() as session:
        insert_shares(
            session, alice_1.device_id, [_DIFFICULTY] * 360, start_ts=T0_TS, block_every=180
        )
        insert_shares(session, alice_2.device_id, [_DIFFICULTY] * 180, start_ts=T0_TS)
        insert_shares(session, bob.device_id, [_DIFFICULTY] * 360, start_ts=T0_TS - 3600.0)
        session.add_all(
            [
                MiningReject(
                    device_id=alice_1.device_id, reason="stale", hour_start_ts=T0_TS, count=5
                ),
                MiningReject(
                    device_id=alice_1.device_id, reason="duplicate", hour_start_ts=T0_TS, count=1
                ),
                MiningReject(
                    device_id=bob.device_id,
                    reason="low_difficulty",
                    hour_start_ts=T0_TS - 3600.0,
                    count=7,
                ),
            ]
        )
        session.commit()


def _report(coordinator: Coordinator, key: str, **params: float) -> dict[str, object]:
    answer = coordinator.client.get(
        "/v1/mining/report", params=params, headers=coordinator.auth(key)
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_an_owner_sees_only_their_devices_and_the_operator_sees_all(
    coordinator: Coordinator, miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, alice_2, bob = miners
    _mine_an_hour(sessions, miners)
    window = {"until_ts": T0_TS + 3600.0, "window_s": 3600.0}
    alice = _report(coordinator, alice_1.owner_key, **window)
    assert {row["device_id"] for row in alice["devices"]} == {  # type: ignore[attr-defined]
        alice_1.device_id,
        alice_2.device_id,
    }
    assert [row["owner_name"] for row in alice["owners"]] == ["alice"]  # type: ignore[attr-defined]
    bobs = _report(coordinator, bob.owner_key, **window)
    assert [row["device_id"] for row in bobs["devices"]] == [bob.device_id]  # type: ignore[attr-defined]
    operator = _report(coordinator, coordinator.operator_key, **window)
    assert {row["device_id"] for row in operator["devices"]} == {  # type: ignore[attr-defined]
        alice_1.device_id,
        alice_2.device_id,
        bob.device_id,
    }
    assert {row["owner_name"] for row in operator["owners"]} == {"alice", "bob"}  # type: ignore[attr-defined]
    # A job submitter has no devices:read scope.
    answer = coordinator.client.get(
        "/v1/mining/report", headers=coordinator.auth(coordinator.submitter_key())
    )
    assert answer.status_code == 403
    assert "devices:read" in answer.json()["detail"]


def test_the_report_counts_work_rejects_hashrate_and_blocks_in_its_window(
    coordinator: Coordinator, miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, alice_2, bob = miners
    _mine_an_hour(sessions, miners)
    body = _report(coordinator, coordinator.operator_key, until_ts=T0_TS + 3600.0, window_s=3600.0)
    devices = {row["device_id"]: row for row in body["devices"]}  # type: ignore[attr-defined]
    first = devices[alice_1.device_id]
    assert first["accepted_shares"] == 360
    assert first["work_diff1"] == 360 * _DIFFICULTY
    # 360 · 32768 · 2**32 hashes in 3600 s ≈ 14 TH/s.
    assert first["hashrate_hs"] == pytest.approx(360 * _DIFFICULTY * 2**32 / 3600.0)
    assert first["hashrate_hs"] == pytest.approx(14.07e12, rel=1e-3)
    assert first["rejected"] == {"stale": 5, "duplicate": 1}
    assert first["blocks_found"] == 2
    assert first["rated_hashrate_ths"] == 14.0
    assert devices[alice_2.device_id]["hashrate_hs"] == pytest.approx(first["hashrate_hs"] / 2)
    assert devices[bob.device_id]["accepted_shares"] == 0  # mined the hour before
    assert devices[bob.device_id]["rejected"] == {}
    owners = {row["owner_name"]: row for row in body["owners"]}  # type: ignore[attr-defined]
    assert owners["alice"]["work_diff1"] == 540 * _DIFFICULTY
    assert owners["alice"]["rejected"] == {"stale": 5, "duplicate": 1}
    assert owners["alice"]["blocks_found"] == 2
    assert owners["alice"]["device_count"] == 2
    # Economics at the market snapshot for the rated and the measured hashrate, in sat.
    market = MarketSnapshot()
    rated_sat = 1e8 * mining_revenue_btc(
        14.0, 3600.0, market.difficulty, market.subsidy_btc, market.fees_btc_per_block
    )
    assert first["expected_window_sat_at_rated"] == pytest.approx(rated_sat)
    assert first["expected_window_sat"] == pytest.approx(rated_sat * 14.07 / 14.0, rel=1e-3)
    # Two hours back, bob's hour is in.
    wider = _report(coordinator, bob.owner_key, until_ts=T0_TS + 3600.0, window_s=7200.0)
    (row,) = wider["devices"]  # type: ignore[misc]
    assert row["accepted_shares"] == 360
    assert row["rejected"] == {"low_difficulty": 7}


def test_earnings_are_credited_per_device_and_compared_with_economics(
    coordinator: Coordinator, miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, alice_2, _ = miners
    _mine_an_hour(sessions, miners)
    market = MarketSnapshot()
    hashprice = 1e8 * mining_revenue_btc(
        1.0, 86_400.0, market.difficulty, market.subsidy_btc, market.fees_btc_per_block
    )
    with sessions() as session:
        result = settle(
            session,
            scheme="fpps",
            until_ts=T0_TS + 3600.0,
            fee_fraction=0.02,
            hashprice_sat_per_th_day=hashprice,
            now_ts=T0_TS + 3600.0,
        )
    assert result is not None
    body = _report(coordinator, alice_1.owner_key, until_ts=T0_TS + 3600.0, window_s=3600.0)
    devices = {row["device_id"]: row for row in body["devices"]}  # type: ignore[attr-defined]
    first = devices[alice_1.device_id]
    assert first["credited_sat"] == result.device_credits_sat[alice_1.device_id]
    assert first["settled_work_diff1"] == 360 * _DIFFICULTY
    # FPPS at economics' hashprice pays what economics predicts (about 25 sat for an S9-hour),
    # less the 2 % fee, to whole satoshi (the gross rounds down, the split to the nearest).
    assert first["expected_sat"] == pytest.approx(24.7, abs=0.1)
    assert abs(first["credited_sat"] - 0.98 * first["expected_sat"]) <= 2.0
    (owner,) = body["owners"]  # type: ignore[misc]
    assert owner["credited_sat"] == result.owner_credits_sat[alice_1.owner_id]
    assert owner["balance_sat"] == owner["credited_sat"]
    assert owner["paid_sat"] == 0
    assert (
        owner["credited_sat"] == first["credited_sat"] + devices[alice_2.device_id]["credited_sat"]
    )
    assert math.isclose(body["hashprice_sat_per_th_day"], hashprice)  # type: ignore[arg-type]


def test_an_owner_registers_a_payout_address_checked_for_the_network(
    coordinator: Coordinator, miners: list[Miner]
) -> None:
    alice = miners[0]
    headers = coordinator.auth(alice.owner_key)
    missing = coordinator.client.get("/v1/mining/payout-address", headers=headers)
    assert missing.status_code == 404
    saved = coordinator.client.put(
        "/v1/mining/payout-address",
        json={"address": "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["address"] == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    assert saved.json()["network"] == "mainnet"
    assert saved.json()["owner_id"] == alice.owner_id
    shown = coordinator.client.get("/v1/mining/payout-address", headers=headers)
    assert shown.json()["address"] == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    # Bob sees his own (none), not alice's.
    bob = coordinator.client.get(
        "/v1/mining/payout-address", headers=coordinator.auth(miners[2].owner_key)
    )
    assert bob.status_code == 404


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "testnet"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bad checksum"),
        ("my wallet", "not a Bitcoin address"),
    ],
)
def test_a_bad_payout_address_is_answered_422_with_the_reason(
    coordinator: Coordinator, miners: list[Miner], address: str, message: str
) -> None:
    answer = coordinator.client.put(
        "/v1/mining/payout-address",
        json={"address": address},
        headers=coordinator.auth(miners[0].owner_key),
    )
    assert answer.status_code == 422
    assert message in answer.json()["detail"]


def test_an_operator_has_no_payout_address_of_their_own(coordinator: Coordinator) -> None:
    answer = coordinator.client.put(
        "/v1/mining/payout-address",
        json={"address": _GENESIS_ADDRESS},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert answer.status_code == 403
    assert "heatgrid mining address" in answer.json()["detail"]


def test_a_device_reads_its_own_mining_through_the_agents_client(
    coordinator: Coordinator, miners: list[Miner], sessions: sessionmaker[Session]
) -> None:
    alice_1, alice_2, bob = miners
    _mine_an_hour(sessions, miners)
    with sessions() as session:
        result = settle(
            session,
            scheme="pro_rata",
            until_ts=T0_TS + 3600.0,
            fee_fraction=0.1,
            pool_paid_sat=100_000,
            now_ts=T0_TS + 3600.0,
        )
    assert result is not None
    coordinator.clock.now_ts = T0_TS + 3600.0

    async def read(device: Miner) -> v1.DeviceMining:
        transport = httpx.ASGITransport(app=coordinator.app)
        async with CoordinatorClient("http://coordinator.test", transport=transport) as client:
            return await client.mining(device.device_id, device.device_token)

    mine = coordinator.client.portal.call(read, alice_1)
    assert mine.accepted_shares == 360
    assert mine.accepted_work_diff1 == 360 * _DIFFICULTY
    assert mine.hashrate_hs == pytest.approx(360 * _DIFFICULTY * 2**32 / 3600.0)
    assert mine.window_s == 3600.0
    assert mine.blocks_found == 2
    assert mine.credited_sat == result.device_credits_sat[alice_1.device_id]
    # bob's heater mined the hour before: all of its work, none of it in the last hour.
    bobs = coordinator.client.portal.call(read, bob)
    assert (bobs.accepted_shares, bobs.hashrate_hs) == (360, 0.0)
    # A device's token reads only its own figures.
    answer = coordinator.client.get(
        f"/v1/mining/devices/{alice_2.device_id}", headers=coordinator.auth(alice_1.device_token)
    )
    assert answer.status_code == 403
    answer = coordinator.client.get(
        f"/v1/mining/devices/{alice_1.device_id}", headers=coordinator.auth(alice_1.owner_key)
    )
    assert answer.status_code == 401


_TESTNET = {
    "rate_limit_per_s": 1e9,
    "rate_limit_burst": 1_000_000,
    "anonymous_rate_limit_per_s": 1e9,
    "anonymous_rate_limit_burst": 1_000_000,
    "bitcoin_network": "testnet",
}


@pytest.mark.parametrize("settings_overrides", [_TESTNET])
def test_a_testnet_coordinator_takes_testnet_addresses_only(
    coordinator: Coordinator, miners: list[Miner]
) -> None:
    headers = coordinator.auth(miners[0].owner_key)
    testnet = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
    answer = coordinator.client.put(
        "/v1/mining/payout-address", json={"address": testnet}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["network"] == "testnet"
    answer = coordinator.client.put(
        "/v1/mining/payout-address", json={"address": _GENESIS_ADDRESS}, headers=headers
    )
    assert answer.status_code == 422
    assert "mainnet address; this coordinator pays on testnet" in answer.json()["detail"]


def test_an_unknown_network_is_refused_when_the_coordinator_starts(database_url: str) -> None:
    with pytest.raises(InputError, match="bitcoin_network must be one of mainnet, testnet"):
        Settings(database_url=database_url, bitcoin_network="litecoin")


@pytest.mark.parametrize(
    "params",
    [
        {"difficulty": 3.8e-297},  # found by schemathesis: an infinite hashprice
        {"window_s": 0.0},
        {"window_s": 1e12},
        {"until_ts": -1.0},
        {"fees_btc_per_block": -0.1},
    ],
)
def test_a_report_query_out_of_range_is_answered_422(
    coordinator: Coordinator, params: dict[str, float]
) -> None:
    answer = coordinator.client.get(
        "/v1/mining/report", params=params, headers=coordinator.auth(coordinator.operator_key)
    )
    assert answer.status_code == 422
    assert next(iter(params)) in answer.text
