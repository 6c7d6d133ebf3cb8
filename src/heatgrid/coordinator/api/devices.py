"""Routes for heaters (enroll, heartbeat) and for the people who own them (list, show, revoke)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from heatgrid.coordinator import challenges, devices, leases, verification
from heatgrid.coordinator.api.bodies import json_body
from heatgrid.coordinator.api.deps import (
    Cursor,
    DeviceIdentityDep,
    Limit,
    NowTs,
    SessionDep,
    SettingsDep,
    device_identity,
    require_device_identity,
    require_scope,
    writing_as_device,
)
from heatgrid.coordinator.api.schemas import (
    DeviceDetail,
    DeviceInfo,
    DevicePage,
    DeviceRelease,
    LatestSample,
)
from heatgrid.coordinator.auth import AccountPrincipal, DeviceIdentity
from heatgrid.coordinator.db.models import Account, Device
from heatgrid.coordinator.errors import ForbiddenError, UnauthorizedError
from heatgrid.coordinator.heartbeats import HeartbeatWriter, StoredHeartbeat
from heatgrid.coordinator.ledger import MICRO_EUR_PER_EUR
from heatgrid.coordinator.pages import DEFAULT_PAGE_LIMIT, PageRequest
from heatgrid.coordinator.settings import Settings
from heatgrid.protocol import v1
from heatgrid.protocol.challenge import (
    ChallengeCommit,
    ChallengeOrder,
    ChallengeReveal,
    ChallengeSeal,
    ChallengeVerdict,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/devices", tags=["devices"])

_Reader = Annotated[AccountPrincipal, Depends(require_scope("devices:read"))]
_Writer = Annotated[AccountPrincipal, Depends(require_scope("devices:write"))]


def _owner_names(session: Session, owner_ids: set[int]) -> dict[int, str]:
    if not owner_ids:
        return {}
    rows = session.execute(select(Account.id, Account.name).where(Account.id.in_(owner_ids)))
    return {row.id: row.name for row in rows}


def _info(device: Device, owner_name: str, settings: Settings, now_ts: float) -> DeviceInfo:
    online = devices.is_online(device, now_ts=now_ts, online_window_s=settings.online_window_s)
    return DeviceInfo(
        device_id=device.id,
        owner_name=owner_name,
        name=device.name,
        kind=device.kind,  # type: ignore[arg-type]  # checked by the database
        hardware=v1.Hardware.model_validate(device.hardware),
        has_room=device.has_room,
        energy_price_eur_per_kwh=device.energy_price_eur_per_kwh,
        enrolled_ts=device.enrolled_ts,
        last_seen_ts=device.last_seen_ts,
        revoked_ts=device.revoked_ts,
        online=online,
        quarantined_ts=device.quarantined_ts,
        quarantine_reason=device.quarantine_reason,
        agent_features=device.agent_features,
        claim_unproven_reason=device.claim_unproven_reason,
    )


@router.post("/enroll", status_code=status.HTTP_201_CREATED)
def enroll(
    body: v1.EnrollRequest, session: SessionDep, now_ts: NowTs, settings: SettingsDep
) -> v1.EnrollResponse:
    """Enroll a heater with a one-time code (public: the code is the credential)."""
    device, token = devices.enroll_device(session, body, now_ts=now_ts)
    if settings.hardware_challenges:
        challenges.mark_due(device, now_ts=now_ts)
        session.commit()
    return v1.EnrollResponse(
        device_id=device.id,
        device_token=token,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )


async def heartbeat(
    body: v1.Heartbeat,
    request: Request,
    *,
    device: Annotated[DeviceIdentity, Depends(require_device_identity)],
) -> Response:
    """Store a heater's telemetry and heat window, and renew its leases (own token only).

    Heartbeats are stored in batches (:mod:`heatgrid.coordinator.heartbeats`); one that
    changes the device's kind or hardware, and every one while hardware challenges are on
    (``serve --hardware-challenges``: a heartbeat may hand out a challenge), is stored on its
    own.

    The answer is a :class:`~heatgrid.protocol.v1.HeartbeatResponse` built and serialized
    once here: FastAPI passes a ``Response`` through, instead of validating the returned model
    again against ``response_model`` and encoding it twice (``response_model`` still
    documents it). The clock and the settings are read here, not through dependencies:
    FastAPI's dependency solving costs more than they do, on the busiest route. For the same
    reason FastAPI solves nothing here at all (:class:`_HeartbeatRoute`).
    """
    state = request.app.state
    now_ts = float(state.clock())
    settings: Settings = state.settings
    devices.check_clock(body, now_ts=now_ts, max_clock_skew_s=settings.max_clock_skew_s)
    cache = request.app.state.device_cache
    order = None
    changes_hardware = devices.reports_new_hardware(device, body)
    if changes_hardware or settings.hardware_challenges:
        factory: sessionmaker[Session] = request.app.state.session_factory

        def store() -> tuple[StoredHeartbeat, ChallengeOrder | None]:
            with factory() as session:
                result = devices.record_heartbeat(
                    session, device, body, now_ts=now_ts, max_clock_skew_s=settings.max_clock_skew_s
                )
                held = leases.renew_device_leases(
                    session, device.device_id, now_ts=now_ts, settings=settings
                )
                order = None
                if settings.hardware_challenges:
                    row = session.get_one(Device, device.device_id)
                    devices.record_features(row, body.features)
                    if result.hardware_changed:
                        challenges.mark_due(row, now_ts=now_ts)
                    order = challenges.issue_due(session, row, now_ts=now_ts, settings=settings)
                session.commit()
            stored = StoredHeartbeat(
                revoked=False,
                stored_samples=result.stored_samples,
                duplicate_samples=result.duplicate_samples,
                leased_task_ids=tuple(held),
            )
            return stored, order

        try:
            stored, order = await anyio.to_thread.run_sync(store)
        except UnauthorizedError:  # revoked since its token was verified
            cache.forget(device.device_id)
            raise
        if changes_hardware:  # the cached identity holds the old hardware
            cache.forget(device.device_id)
    else:
        writer: HeartbeatWriter = request.app.state.heartbeat_writer
        stored = await writer.write(device.device_id, body, now_ts=now_ts)
        if stored.revoked:  # since its token was verified
            cache.forget(device.device_id)
            raise UnauthorizedError("Authorization: the device was revoked")
    request.app.state.metrics.heartbeats.inc()
    held = list(stored.leased_task_ids)
    answer = v1.HeartbeatResponse(
        challenge=order,
        leased_task_ids=held,
        lease_expires_ts=now_ts + settings.lease_s if held else None,
        server_ts=now_ts,
        next_heartbeat_s=settings.heartbeat_interval_s,
        stored_samples=stored.stored_samples,
        duplicate_samples=stored.duplicate_samples,
    )
    return Response(answer.model_dump_json(), media_type="application/json")


class _HeartbeatRoute(APIRoute):
    """The heartbeat's route: its handler authenticates, reads the body and calls the route.

    FastAPI's per-request dependency solving (the token, the path, the body, each through its
    own machinery) cost the heartbeat more than its authentication and its validation
    themselves. This route's handler does what the route's signature declares, in the order
    FastAPI would, with the same code: :func:`~heatgrid.coordinator.api.deps.device_identity`
    (the dependency ``require_device_identity``, so the same 401/403/429), then the body from
    its bytes (:func:`~heatgrid.coordinator.api.bodies.json_body`, the same 422 naming the
    field). The signature still documents both in the OpenAPI document;
    ``test_heartbeat_route_handler_does_what_its_signature_declares`` keeps the two in step.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Return the handler: authenticate, validate the body, run :func:`heartbeat`."""

        async def handle(request: Request) -> Response:
            device = await device_identity(request)
            body = await json_body(request, v1.Heartbeat)
            return await heartbeat(body, request, device=device)

        return handle


router.add_api_route(
    "/{device_id}/heartbeat",
    heartbeat,
    methods=["POST"],
    response_model=v1.HeartbeatResponse,
    route_class_override=_HeartbeatRoute,
)


@router.get("")
def list_devices(
    *,
    actor: _Reader,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> DevicePage:
    """List the caller's devices (an operator: every device), oldest first, a page at a time."""
    page = PageRequest.from_query(limit, cursor, devices.DEVICE_CURSOR_KINDS)
    found, next_cursor = devices.list_devices(session, actor, page)
    names = _owner_names(session, {device.owner_id for device in found})
    return DevicePage(
        items=[_info(device, names[device.owner_id], settings, now_ts) for device in found],
        next_cursor=next_cursor,
    )


@router.get("/{device_id}")
def show_device(
    device_id: str, actor: _Reader, session: SessionDep, now_ts: NowTs, settings: SettingsDep
) -> DeviceDetail:
    """Show one device with its newest sample and its heat window."""
    device = devices.get_device(session, device_id, actor)
    names = _owner_names(session, {device.owner_id})
    sample = devices.latest_sample(session, device.id)
    return DeviceDetail(
        **_info(device, names[device.owner_id], settings, now_ts).model_dump(),
        latest_sample=None
        if sample is None
        else LatestSample(
            sample_ts=sample.sample_ts,
            room_temp_c=sample.room_temp_c,
            setpoint_c=sample.setpoint_c,
            power_w=sample.power_w,
            device_temp_c=sample.device_temp_c,
            workload=sample.workload,  # type: ignore[arg-type]  # checked by the database
            hashrate_ths=sample.hashrate_ths,
            received_ts=sample.received_ts,
        ),
        heat_window=[
            v1.HeatWindowSegment(
                start_ts=row.start_ts, duration_s=row.duration_s, heat_power_w=row.heat_power_w
            )
            for row in devices.heat_window(session, device.id)
        ],
    )


@router.delete("/{device_id}")
def revoke_device(
    device_id: str,
    request: Request,
    *,
    actor: _Writer,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> DeviceInfo:
    """Revoke a device: its token stops working; its history stays."""
    device = devices.revoke_device(session, device_id, actor, now_ts=now_ts)
    request.app.state.device_cache.forget(device.id)
    names = _owner_names(session, {device.owner_id})
    return _info(device, names[device.owner_id], settings, now_ts)


@router.post("/{device_id}/challenges/{challenge_id}/commit")
async def commit_challenge(
    *,
    challenge_id: str,
    body: ChallengeCommit,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> ChallengeVerdict:
    """Commit to a challenge's rows (own token only); answers the places to show, or fails."""
    return await writing_as_device(
        request,
        identity,
        lambda session, device: challenges.commit(
            session, device, challenge_id, body, now_ts=now_ts, settings=settings
        ),
    )


@router.post("/{device_id}/challenges/{challenge_id}/seal")
async def seal_challenge(
    *,
    challenge_id: str,
    body: ChallengeSeal,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> ChallengeVerdict:
    """Seal the working set's blocks to show (own token only), timed; answers, or fails."""
    return await writing_as_device(
        request,
        identity,
        lambda session, device: challenges.seal(
            session, device, challenge_id, body, now_ts=now_ts, settings=settings
        ),
    )


@router.post("/{device_id}/challenges/{challenge_id}/reveal")
async def reveal_challenge(
    *,
    challenge_id: str,
    body: ChallengeReveal,
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> ChallengeVerdict:
    """Show the rows asked for (own token only); answers passed or failed."""
    return await writing_as_device(
        request,
        identity,
        lambda session, device: challenges.reveal(
            session, device, challenge_id, body, now_ts=now_ts, settings=settings
        ),
    )


@router.post("/{device_id}/release")
def release_device(
    device_id: str,
    *,
    actor: _Writer,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
    keep_clawbacks: Annotated[
        bool,
        Query(
            description="Keep what clawback took from its owner (a released cheat on "
            "probation); by default the release gives it back (the catch was wrong)."
        ),
    ] = False,
) -> DeviceRelease:
    """Lift a device's quarantine (operator only); it owes a new hardware challenge.

    Unless ``keep_clawbacks``, what clawback took back from its owner when it was caught is
    given back in the same transaction (:func:`verification.release`: once per result, so a
    retry gives back nothing twice); the answer says what was restored.
    """
    device = devices.get_device(session, device_id, actor)
    if not actor.is_operator:
        raise ForbiddenError("Authorization: only the operator may release a quarantined device")
    restored = verification.release(session, device, now_ts=now_ts, keep_clawbacks=keep_clawbacks)
    session.commit()
    names = _owner_names(session, {device.owner_id})
    info = _info(device, names[device.owner_id], settings, now_ts)
    return DeviceRelease(
        **dict(info),
        clawbacks_reversed=restored.results,
        owner_restored_eur=restored.owner_micro_eur / MICRO_EUR_PER_EUR,
        fee_restored_eur=restored.fee_micro_eur / MICRO_EUR_PER_EUR,
        from_submitters_eur=restored.from_submitters_micro_eur / MICRO_EUR_PER_EUR,
    )
