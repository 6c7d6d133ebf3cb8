"""Devices: enrollment, heartbeats, listing and revocation — the services behind the device API.

One code path serves SQLite and PostgreSQL; the only dialect-specific piece is the spelling of
"insert, skipping rows already stored" (``ON CONFLICT DO NOTHING`` on both).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import (
    AccountPrincipal,
    DeviceIdentity,
    issue_secret,
    new_id,
    parse_token,
)
from heatgrid.coordinator.auth import secret_matches as _secret_matches
from heatgrid.coordinator.db.models import (
    Device,
    EnrollmentCode,
    HeatWindowSegmentRow,
    TelemetrySampleRow,
)
from heatgrid.coordinator.errors import (
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
)
from heatgrid.coordinator.pages import PageRequest, encode_cursor
from heatgrid.protocol import v1

__all__ = [
    "DEVICE_CURSOR_KINDS",
    "FleetStatus",
    "HeartbeatResult",
    "check_clock",
    "enroll_device",
    "fleet_status",
    "get_device",
    "heat_window",
    "is_online",
    "latest_sample",
    "list_devices",
    "record_features",
    "record_heartbeat",
    "reports_new_hardware",
    "revoke_device",
]

_INVALID_CODE = "enrollment_code: not a valid enrollment code"
_log = logging.getLogger("heatgrid.coordinator.devices")


@dataclass(frozen=True)
class HeartbeatResult:
    """What a heartbeat stored: new and duplicate samples, and a change of kind or hardware."""

    stored_samples: int
    duplicate_samples: int
    hardware_changed: bool = False


@dataclass(frozen=True)
class FleetStatus:
    """The fleet right now: devices online and the heat they deliver.

    Attributes
    ----------
    devices_online : int
        Devices, not revoked, heard from within the online window.
    heat_power_w : float
        Sum over those devices of the power of their latest sample [W] (all of it is heat).
    """

    devices_online: int
    heat_power_w: float


def enroll_device(
    session: Session, request: v1.EnrollRequest, *, now_ts: float
) -> tuple[Device, str]:
    """Spend an enrollment code on a new device and commit; return the device and its token.

    Raises
    ------
    ForbiddenError
        The code is not a valid code.
    ConflictError
        The code was used already (also when two heaters race for it: one wins).
    GoneError
        The code expired.
    """
    parsed = parse_token(request.enrollment_code, "hge")
    code = None if parsed is None else session.get(EnrollmentCode, parsed[0])
    if parsed is None or code is None or not _secret_matches(parsed[1], code.code_hash):
        raise ForbiddenError(_INVALID_CODE)
    if code.used_ts is not None:
        raise ConflictError("enrollment_code: this code was used already; ask for a new one")
    if now_ts >= code.expires_ts:
        raise GoneError(f"enrollment_code: this code expired at {code.expires_ts:.0f} (POSIX s)")
    device_id = new_id()
    issued = issue_secret("hgd", device_id)
    device = Device(
        id=device_id,
        owner_id=code.owner_id,
        name=request.device_name,
        kind=request.device_kind,
        hardware=request.hardware.model_dump(mode="json"),
        has_room=request.has_room,
        energy_price_eur_per_kwh=request.energy_price_eur_per_kwh,
        country_code=request.country_code,
        token_hash=issued.secret_hash,
        enrolled_ts=now_ts,
        last_seen_ts=None,
        revoked_ts=None,
    )
    session.add(device)
    session.flush()
    claimed = session.execute(
        update(EnrollmentCode)
        .where(EnrollmentCode.id == code.id, EnrollmentCode.used_ts.is_(None))
        .values(used_ts=now_ts, device_id=device_id)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        session.rollback()
        raise ConflictError("enrollment_code: this code was used already; ask for a new one")
    session.commit()
    return device, issued.token


def _insert_skipping_stored(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert telemetry rows, skipping those already stored; return how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(TelemetrySampleRow)
        .on_conflict_do_nothing(index_elements=["device_id", "sample_ts"])
        .returning(TelemetrySampleRow.sample_ts)
    )
    return len(session.execute(statement, list(rows)).all())


_MAX_WINDOW_AHEAD_S = 7 * 86_400.0


def _skew(field: str, value_ts: float, now_ts: float, max_clock_skew_s: float) -> InvalidError:
    offset_s = value_ts - now_ts
    side = "ahead of" if offset_s > 0 else "behind"
    return InvalidError(
        f"{field}: {value_ts} is {abs(offset_s):.0f} s {side} the coordinator's clock "
        f"({now_ts:.0f}); at most {max_clock_skew_s:.0f} s of clock skew is allowed"
    )


def check_clock(heartbeat: v1.Heartbeat, *, now_ts: float, max_clock_skew_s: float) -> None:
    """Refuse times that a device with a sane clock could not have sent.

    ``sent_ts`` and the heat window's first start must be within ``max_clock_skew_s`` of
    ``now_ts`` either way; telemetry samples may be old (kept while offline) but not ahead;
    no segment of the window may start more than 7 days (plus the skew) ahead.
    """
    if abs(heartbeat.sent_ts - now_ts) > max_clock_skew_s:
        raise _skew("sent_ts", heartbeat.sent_ts, now_ts, max_clock_skew_s)
    for index, sample in enumerate(heartbeat.telemetry):
        if sample.sample_ts > now_ts + max_clock_skew_s:
            raise _skew(f"telemetry[{index}].sample_ts", sample.sample_ts, now_ts, max_clock_skew_s)
    if heartbeat.heat_window:
        first_ts = heartbeat.heat_window[0].start_ts
        if abs(first_ts - now_ts) > max_clock_skew_s:
            raise _skew("heat_window[0].start_ts", first_ts, now_ts, max_clock_skew_s)
    latest_start_ts = now_ts + max_clock_skew_s + _MAX_WINDOW_AHEAD_S
    for index, segment in enumerate(heartbeat.heat_window):
        if segment.start_ts > latest_start_ts:
            raise InvalidError(
                f"heat_window[{index}].start_ts: {segment.start_ts} is more than "
                f"{_MAX_WINDOW_AHEAD_S / 86_400.0:.0f} days ahead of the coordinator's clock "
                f"({now_ts:.0f}); a heat window looks at most that far"
            )


def record_heartbeat(
    session: Session,
    device: DeviceIdentity,
    heartbeat: v1.Heartbeat,
    *,
    now_ts: float,
    max_clock_skew_s: float,
) -> HeartbeatResult:
    """Store a heartbeat's telemetry (each sample once) and heat window; the caller commits.

    The device's ``last_seen_ts`` is set by one ``UPDATE`` that also checks that the device
    is not revoked, so a token verified a while ago (``credentials``) cannot outlive its
    device's revocation. Only a heartbeat whose kind or hardware differ from ``device``'s
    reads and locks the device's row.

    Parameters
    ----------
    device : DeviceIdentity
        The authenticated device.
    heartbeat : v1.Heartbeat
        The validated message.
    now_ts : float
        The coordinator's clock [POSIX s, UTC].
    max_clock_skew_s : float
        How far ``sent_ts`` and the heat window's start may be from ``now_ts``, and how far
        ahead a sample may be [s]; further is refused (InvalidError, 422), nothing stored.

    Raises
    ------
    UnauthorizedError
        The device was revoked (nothing stored).
    """
    check_clock(heartbeat, now_ts=now_ts, max_clock_skew_s=max_clock_skew_s)
    hardware_changed = reports_new_hardware(device, heartbeat)
    if hardware_changed:
        row = session.get(Device, device.device_id, with_for_update=True)
        if row is None or row.revoked_ts is not None:
            raise UnauthorizedError("Authorization: the device was revoked")
        _update_hardware(row, heartbeat)
        row.last_seen_ts = now_ts
        session.flush()
    else:
        seen = session.execute(
            update(Device)
            .where(Device.id == device.device_id, Device.revoked_ts.is_(None))
            .values(last_seen_ts=now_ts)
            .execution_options(synchronize_session=False)
        )
        if getattr(seen, "rowcount", 0) != 1:
            raise UnauthorizedError("Authorization: the device was revoked")
    rows = [
        {"device_id": device.device_id, "received_ts": now_ts, **sample.model_dump()}
        for sample in heartbeat.telemetry
    ]
    stored = _insert_skipping_stored(session, rows)
    session.execute(
        delete(HeatWindowSegmentRow)
        .where(HeatWindowSegmentRow.device_id == device.device_id)
        .execution_options(synchronize_session=False)
    )
    if heartbeat.heat_window:
        session.execute(  # one statement with a VALUES row per segment
            insert(HeatWindowSegmentRow).values(
                [
                    {"device_id": device.device_id, "received_ts": now_ts, **segment.model_dump()}
                    for segment in heartbeat.heat_window
                ]
            )
        )
    return HeartbeatResult(
        stored_samples=stored,
        duplicate_samples=len(rows) - stored,
        hardware_changed=hardware_changed,
    )


def record_features(device: Device, declared: Sequence[str]) -> None:
    """Store the features the device's agent declared in its heartbeat, sorted; the caller commits.

    Every heartbeat declares them all, so they replace what was stored (an agent rolled back
    to an older version declares fewer, or none).
    """
    features = sorted(declared)
    if device.agent_features != features:
        device.agent_features = features


def reports_new_hardware(device: DeviceIdentity, heartbeat: v1.Heartbeat) -> bool:
    """Return whether ``heartbeat`` changes ``device``'s kind or hardware as last known."""
    if heartbeat.device_kind is not None and heartbeat.device_kind != device.kind:
        return True
    return (
        heartbeat.hardware is not None
        and heartbeat.hardware.model_dump(mode="json") != device.hardware
    )


def _update_hardware(device: Device, heartbeat: v1.Heartbeat) -> bool:
    """Take the kind and hardware a heartbeat reports, where they changed (logged); say if so."""
    changes = []
    if heartbeat.device_kind is not None and heartbeat.device_kind != device.kind:
        changes.append(f"kind {device.kind} -> {heartbeat.device_kind}")
        device.kind = heartbeat.device_kind
    if heartbeat.hardware is not None:
        hardware = heartbeat.hardware.model_dump(mode="json")
        if hardware != device.hardware:
            changes.extend(
                f"{name} {device.hardware.get(name)} -> {value}"
                for name, value in hardware.items()
                if device.hardware.get(name) != value
            )
            device.hardware = hardware
    if changes:
        _log.info("device %s reports new hardware: %s", device.id, ", ".join(changes))
    return bool(changes)


DEVICE_CURSOR_KINDS = (float, str)
"""Types of the sort key (enrolled_ts, id) in a cursor of :func:`list_devices`."""


def list_devices(
    session: Session, actor: AccountPrincipal | None, page: PageRequest
) -> tuple[list[Device], str | None]:
    """Return a page of the devices ``actor`` may see (an operator or None: all), oldest first.

    Returns
    -------
    tuple of (list of Device, str or None)
        The page's devices, and the cursor of the next page (None after the last).
    """
    query = select(Device).order_by(Device.enrolled_ts, Device.id)
    if actor is not None and not actor.is_operator:
        query = query.where(Device.owner_id == actor.account_id)
    if page.after is not None:
        query = query.where(tuple_(Device.enrolled_ts, Device.id) > tuple_(*page.after))
    found = list(session.scalars(query.limit(page.limit + 1)))
    if len(found) <= page.limit:
        return found, None
    last = found[page.limit - 1]
    return found[: page.limit], encode_cursor((last.enrolled_ts, last.id))


def get_device(session: Session, device_id: str, actor: AccountPrincipal | None) -> Device:
    """Return a device that ``actor`` may see; another owner's device is not found."""
    device = None if "\x00" in device_id else session.get(Device, device_id)
    if device is None or (
        actor is not None and not actor.is_operator and device.owner_id != actor.account_id
    ):
        raise NotFoundError(f"device_id: no device {device_id!r}")
    return device


def revoke_device(
    session: Session, device_id: str, actor: AccountPrincipal | None, *, now_ts: float
) -> Device:
    """Revoke a device's token and commit; its heartbeats are refused from then on."""
    device = get_device(session, device_id, actor)
    if device.revoked_ts is None:
        device.revoked_ts = now_ts
        session.commit()
    return device


def latest_sample(session: Session, device_id: str) -> TelemetrySampleRow | None:
    """Return the device's newest telemetry sample, or None."""
    return session.scalars(
        select(TelemetrySampleRow)
        .where(TelemetrySampleRow.device_id == device_id)
        .order_by(TelemetrySampleRow.sample_ts.desc())
        .limit(1)
    ).first()


def heat_window(session: Session, device_id: str) -> list[HeatWindowSegmentRow]:
    """Return the device's latest heat window, in time order."""
    return list(
        session.scalars(
            select(HeatWindowSegmentRow)
            .where(HeatWindowSegmentRow.device_id == device_id)
            .order_by(HeatWindowSegmentRow.start_ts)
        )
    )


def is_online(device: Device, *, now_ts: float, online_window_s: float) -> bool:
    """Return whether ``device`` counts as online: not revoked, heard from within the window.

    Parameters
    ----------
    device : Device
        The device.
    now_ts : float
        The present [POSIX s].
    online_window_s : float
        A device whose last heartbeat is at most this old is online [s]
        (``heatgrid serve --online-window-s``, 180 s by default).
    """
    return (
        device.revoked_ts is None
        and device.last_seen_ts is not None
        and device.last_seen_ts >= now_ts - online_window_s
    )


def fleet_status(session: Session, *, now_ts: float, online_window_s: float) -> FleetStatus:
    """Count online devices and sum the power of their latest samples.

    Parameters
    ----------
    now_ts : float
        The coordinator's clock [POSIX s, UTC].
    online_window_s : float
        A device heard from within this long is online [s].
    """
    online = (
        select(Device.id)
        .where(Device.revoked_ts.is_(None), Device.last_seen_ts >= now_ts - online_window_s)
        .subquery()
    )
    newest = (
        select(
            TelemetrySampleRow.device_id, func.max(TelemetrySampleRow.sample_ts).label("sample_ts")
        )
        .where(TelemetrySampleRow.device_id.in_(select(online.c.id)))
        .group_by(TelemetrySampleRow.device_id)
        .subquery()
    )
    power_w = session.scalar(
        select(func.coalesce(func.sum(TelemetrySampleRow.power_w), 0.0)).join(
            newest,
            (TelemetrySampleRow.device_id == newest.c.device_id)
            & (TelemetrySampleRow.sample_ts == newest.c.sample_ts),
        )
    )
    count = session.scalar(select(func.count()).select_from(online))
    return FleetStatus(devices_online=int(count or 0), heat_power_w=float(power_w or 0.0))
