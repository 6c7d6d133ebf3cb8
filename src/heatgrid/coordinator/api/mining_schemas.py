"""Request and answer bodies of the mining report and payout-address routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from heatgrid.protocol.values import Text

__all__ = [
    "DeviceMiningInfo",
    "MarketInfo",
    "MiningReportInfo",
    "OwnerMiningInfo",
    "PayoutAddressInfo",
    "PayoutAddressRequest",
]


class _Answer(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class PayoutAddressRequest(BaseModel):
    """An owner's Bitcoin payout address, for the coordinator's network."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    address: Annotated[Text, StringConstraints(min_length=1, max_length=200)]


class PayoutAddressInfo(_Answer):
    """A registered payout address (lower case for bech32) and the network it is for."""

    owner_id: int
    address: str
    network: str
    updated_ts: float


class MarketInfo(_Answer):
    """The market snapshot the report's predictions use (``heatgrid economics``'s defaults)."""

    difficulty: float
    subsidy_btc: float
    fees_btc_per_block: float
    as_of: str


class DeviceMiningInfo(_Answer):
    """One device: window figures and all-time earnings.

    Work is in difficulty-1 shares, hashrate in H/s, money in sat; see
    :class:`heatgrid.coordinator.mining_report.DeviceMining`.
    """

    device_id: str
    name: str
    kind: str
    owner_id: int
    owner_name: str
    accepted_shares: int
    work_diff1: float
    hashrate_hs: float
    rated_hashrate_ths: float | None
    rejected: dict[str, int]
    blocks_found: int
    settled_work_diff1: float
    credited_sat: int
    expected_sat: float
    expected_window_sat: float
    expected_window_sat_at_rated: float | None


class OwnerMiningInfo(_Answer):
    """One owner: sums over their devices and their ``sat`` account [sat]."""

    owner_id: int
    owner_name: str
    device_count: int
    accepted_shares: int
    work_diff1: float
    hashrate_hs: float
    rejected: dict[str, int]
    blocks_found: int
    credited_sat: int
    paid_sat: int
    balance_sat: int
    payout_address: str | None


class MiningReportInfo(_Answer):
    """The mining report over ``[since_ts, until_ts)`` [POSIX s]."""

    since_ts: float
    until_ts: float
    window_s: float
    market: MarketInfo
    hashprice_sat_per_th_day: float
    devices: list[DeviceMiningInfo]
    owners: list[OwnerMiningInfo]
