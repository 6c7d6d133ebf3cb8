"""Routes for mining accounting: the report, owners' payout addresses, a device's own figures.

An owner sees only their own devices and account; the operator sees every one; a device's
token reads only that device's figures (its agent shows them in Home Assistant).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from heatgrid.coordinator.api.deps import (
    NowTs,
    SessionDep,
    SettingsDep,
    require_device,
    require_scope,
)
from heatgrid.coordinator.api.mining_schemas import (
    MiningReportInfo,
    PayoutAddressInfo,
    PayoutAddressRequest,
)
from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError
from heatgrid.coordinator.mining_payouts import get_payout_address, set_payout_address
from heatgrid.coordinator.mining_report import device_mining, mining_report
from heatgrid.core.economics import MarketSnapshot
from heatgrid.protocol import v1

__all__ = ["router"]

router = APIRouter(prefix="/v1/mining", tags=["mining"])

_Reader = Annotated[AccountPrincipal, Depends(require_scope("devices:read"))]
_Writer = Annotated[AccountPrincipal, Depends(require_scope("devices:write"))]
_DEFAULT_MARKET = MarketSnapshot()
_YEAR_S = 366 * 86_400.0


@router.get("/report")
def report(
    *,
    actor: _Reader,
    session: SessionDep,
    now_ts: NowTs,
    window_s: Annotated[
        float, Query(gt=0.0, le=_YEAR_S, description="Window of work and hashrate [s].")
    ] = 86_400.0,
    until_ts: Annotated[
        float | None, Query(ge=0.0, le=1e11, description="End of the window (default: now).")
    ] = None,
    difficulty: Annotated[
        float, Query(ge=1.0, le=1e20, description="Network difficulty for the prediction.")
    ] = _DEFAULT_MARKET.difficulty,
    subsidy_btc: Annotated[float, Query(ge=0.0, le=50.0, description="Block subsidy [BTC].")] = (
        _DEFAULT_MARKET.subsidy_btc
    ),
    fees_btc_per_block: Annotated[
        float, Query(ge=0.0, le=1000.0, description="Mean fees per block [BTC].")
    ] = _DEFAULT_MARKET.fees_btc_per_block,
) -> MiningReportInfo:
    """Show the caller's mining: work, rejects, hashrate, blocks and earnings per device.

    An operator sees every device; economics' prediction stands beside each device's earnings.
    """
    market = MarketSnapshot(
        difficulty=difficulty,
        subsidy_btc=subsidy_btc,
        fees_btc_per_block=fees_btc_per_block,
        as_of=_DEFAULT_MARKET.as_of if difficulty == _DEFAULT_MARKET.difficulty else "given",
    )
    found = mining_report(
        session,
        owner_id=None if actor.is_operator else actor.account_id,
        until_ts=now_ts if until_ts is None else until_ts,
        window_s=window_s,
        market=market,
    )
    return MiningReportInfo.model_validate(found)


def _owner(actor: AccountPrincipal) -> int:
    if actor.role != "owner":
        raise ForbiddenError(
            "Authorization: only a heater owner has a payout address "
            "(an operator sets one with `heatgrid mining address OWNER ADDRESS`)"
        )
    return actor.account_id


@router.put("/payout-address")
def put_payout_address(
    body: PayoutAddressRequest,
    actor: _Writer,
    session: SessionDep,
    settings: SettingsDep,
    now_ts: NowTs,
) -> PayoutAddressInfo:
    """Register the caller's Bitcoin payout address, checked for the coordinator's network.

    A bad address is answered 422 with the reason.
    """
    row = set_payout_address(
        session, _owner(actor), body.address, settings.bitcoin_network, now_ts=now_ts
    )
    return PayoutAddressInfo.model_validate(row)


@router.get("/payout-address")
def read_payout_address(actor: _Reader, session: SessionDep) -> PayoutAddressInfo:
    """Show the caller's payout address (404 until one is registered)."""
    return PayoutAddressInfo.model_validate(get_payout_address(session, _owner(actor)))


@router.get("/devices/{device_id}")
def read_device_mining(
    device: Annotated[Device, Depends(require_device)], session: SessionDep, now_ts: NowTs
) -> v1.DeviceMining:
    """Show the calling device's accepted work, hashrate, blocks and credit (its token only)."""
    return device_mining(session, device.id, now_ts=now_ts)
