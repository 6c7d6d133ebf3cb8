"""Routes giving a device's mining credentials to its agent (device token) and its owner.

``GET`` tells the proxy's URL, the user name and when the password in force was issued;
``POST`` issues a new password (the old one stops working) and shows it, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from sqlalchemy.orm import Session

from heatgrid.coordinator import devices, mining_credentials
from heatgrid.coordinator.api.deps import (
    BearerToken,
    NowTs,
    SessionDep,
    SettingsDep,
    require_device_or_scope,
)
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.errors import ForbiddenError
from heatgrid.coordinator.settings import Settings
from heatgrid.protocol import v1

__all__ = ["router"]

router = APIRouter(prefix="/v1/devices", tags=["mining"])


def _authorized_device(scope: str) -> Callable[[str, Request, Session, str], Device]:
    """Return a dependency admitting the device's own token, or its owner's or an operator's key."""
    either = require_device_or_scope(scope)

    def dependency(
        device_id: str, request: Request, session: SessionDep, token: BearerToken
    ) -> Device:
        actor = either(request, session, token)
        if isinstance(actor, Device):
            if actor.id != device_id:
                raise ForbiddenError("Authorization: this device token belongs to another device")
            return actor
        return devices.get_device(session, device_id, actor)

    return dependency


_Reader = Annotated[Device, Depends(_authorized_device("devices:read"))]
_Writer = Annotated[Device, Depends(_authorized_device("devices:write"))]


def _answer(
    settings: Settings, device: Device, password: str | None, created_ts: float | None
) -> v1.MiningCredentials:
    return v1.MiningCredentials(
        device_id=device.id,
        pool_url=settings.stratum_url,
        user=device.id,
        password=password,
        created_ts=created_ts,
    )


@router.get("/{device_id}/mining-credentials")
def show_credentials(
    device: _Reader, session: SessionDep, settings: SettingsDep
) -> v1.MiningCredentials:
    """Show the proxy's URL, the user name, and when the password was issued (not the password)."""
    credential = mining_credentials.get_credential(session, device.id)
    return _answer(settings, device, None, None if credential is None else credential.created_ts)


@router.post("/{device_id}/mining-credentials", status_code=status.HTTP_201_CREATED)
def issue_credentials(
    device: _Writer, session: SessionDep, settings: SettingsDep, now_ts: NowTs
) -> v1.MiningCredentials:
    """Issue a new mining password (the old one stops working) and show it, once."""
    issued = mining_credentials.issue_password(session, device, now_ts=now_ts)
    return _answer(settings, device, issued.password, issued.created_ts)
