"""The dashboard's pages, its login and logout, and its server-sent event streams.

Pages are rendered on the server from the read models of :mod:`heatgrid.coordinator.views`;
a browser without a session gets the login page and nothing else. The fleet page and a heater's
page subscribe to an event stream that polls the database (cheaply: the newest heartbeat among
the heaters on view) and sends fresh fragments when a heartbeat arrives, so every coordinator
process behind one database shows the same fleet.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from heatgrid.coordinator import views
from heatgrid.coordinator.auth import AccountPrincipal, authenticate_account
from heatgrid.coordinator.dashboard import session as sessions
from heatgrid.coordinator.db.models import ApiKey, Device, TelemetrySampleRow
from heatgrid.coordinator.errors import NotFoundError, UnauthorizedError
from heatgrid.coordinator.mining_report import OwnerMining, mining_report
from heatgrid.coordinator.settings import Settings
from heatgrid.core.economics import MarketSnapshot

__all__ = ["EVENT_POLL_S", "EVENT_STREAM_S", "FLEET_PAGE_SIZE", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"
"""The vendored and own front-end assets, served under ``/static``."""

FLEET_PAGE_SIZE = 100
"""Heaters on one page of the fleet view."""

EVENT_POLL_S = 1.0
"""How often an event stream looks for new heartbeats [s]."""

EVENT_STREAM_S = 15.0
"""How long one event stream lasts; the browser reconnects by itself [s]. Short, because a
stopping server waits for open responses to end (uvicorn tells a stream nothing)."""

_REFRESH_S = 30.0  # a fleet event at least this often: heaters go offline without a heartbeat
_HISTORY_S = 24 * 3600.0
_MINING_WINDOW_S = 24 * 3600.0
_TEMPLATES_DIR = Path(__file__).parent / "templates"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- rendering


def _utc(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: float | None, now_ts: float) -> str:
    if ts is None:
        return "never"
    age_s = max(0.0, now_ts - ts)
    if age_s < 90:
        return f"{age_s:.0f} s ago"
    if age_s < 90 * 60:
        return f"{age_s / 60:.0f} min ago"
    if age_s < 36 * 3600:
        return f"{age_s / 3600:.0f} h ago"
    return f"{age_s / 86400:.0f} d ago"


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}" if unit else text


@functools.cache
def _environment() -> Any:
    import jinja2  # noqa: PLC0415 - only a coordinator serving pages needs it

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["utc"] = _utc
    environment.filters["num"] = _num
    environment.globals["ago"] = _ago
    return environment


def _render_text(template: str, **context: Any) -> str:
    return str(_environment().get_template(template).render(**context))


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    viewer: AccountPrincipal | None = getattr(request.state, "viewer", None)
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    csrf = sessions.csrf_token(_settings(request).session_secret, cookie) if cookie else ""
    body = _render_text(template, viewer=viewer, csrf_token=csrf, path=request.url.path, **context)
    return HTMLResponse(body, status_code=status_code, headers=_HEADERS)


# --------------------------------------------------------------------------- plumbing


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _now_ts(request: Request) -> float:
    return float(request.app.state.clock())


def _with_session(request: Request, work: Callable[[Session], _T]) -> _T:
    with request.app.state.session_factory() as session:
        return work(session)


def _viewer(request: Request) -> AccountPrincipal | None:
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if not cookie:
        return None
    viewer = _with_session(
        request,
        lambda session: sessions.open_session(
            session, _settings(request).session_secret, cookie, now_ts=_now_ts(request)
        ),
    )
    request.state.viewer = viewer
    return viewer


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _not_found(request: Request, message: str) -> HTMLResponse:
    return _page(request, "error.html", status_code=404, title="Not found", message=message)


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    return min(int(text), 1_000_000) if text.isdigit() and int(text) >= 1 else 1


def _fleet(request: Request, viewer: AccountPrincipal) -> views.FleetView:
    offset = (_page_number(request) - 1) * FLEET_PAGE_SIZE
    return _with_session(
        request,
        lambda session: views.fleet_view(
            session,
            viewer,
            now_ts=_now_ts(request),
            online_window_s=_settings(request).online_window_s,
            limit=FLEET_PAGE_SIZE,
            offset=offset,
        ),
    )


def _history(request: Request, viewer: AccountPrincipal, device_id: str) -> views.DeviceHistory:
    now_ts = _now_ts(request)
    return _with_session(
        request,
        lambda session: views.device_history(
            session,
            viewer,
            device_id,
            now_ts=now_ts,
            online_window_s=_settings(request).online_window_s,
            since_ts=now_ts - _HISTORY_S,
        ),
    )


def _points(history: views.DeviceHistory) -> list[list[float | None]]:
    return [
        [point.ts, point.room_temp_c, point.setpoint_c, point.power_w] for point in history.points
    ]


# --------------------------------------------------------------------------- login, logout


def _login_page(
    request: Request, *, message: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = request.cookies.get(sessions.LOGIN_CSRF_COOKIE) or sessions.new_login_token()
    response = _page(
        request,
        "login.html",
        status_code=status_code,
        title="Log in",
        message=message,
        login_token=token,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    """Show the login form (an API key), or go home when already logged in."""
    if _viewer(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange an API key for a session cookie; a wrong key gets the form back with why."""
    form = await _form(request)
    if not sessions.tokens_match(
        request.cookies.get(sessions.LOGIN_CSRF_COOKIE), form.get("login_token")
    ):
        return _login_page(
            request,
            message="The login form expired or was not sent by this page; please try again.",
            status_code=403,
        )
    api_key = form.get("api_key", "").strip()
    if not api_key:
        return _login_page(request, message="Enter your API key (hgk_…).", status_code=422)

    def authenticate(session: Session) -> tuple[AccountPrincipal, ApiKey] | str:
        try:
            principal = authenticate_account(session, api_key)
        except UnauthorizedError as error:
            return str(error).removeprefix("Authorization: ")
        return principal, session.get_one(ApiKey, principal.key_id)

    outcome = await anyio.to_thread.run_sync(_with_session, request, authenticate)
    if isinstance(outcome, str):
        return _login_page(request, message=f"Login failed: {outcome}.", status_code=401)
    _, key = outcome
    settings = _settings(request)
    cookie = sessions.session_cookie(
        settings.session_secret,
        key,
        now_ts=_now_ts(request),
        lifetime_s=settings.dashboard_session_s,
    )
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        sessions.SESSION_COOKIE,
        cookie,
        max_age=int(settings.dashboard_session_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session: only with the form's CSRF token; without it nothing changes (403)."""
    form = await _form(request)
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    expected = sessions.csrf_token(_settings(request).session_secret, cookie) if cookie else None
    if not sessions.tokens_match(expected, form.get("csrf_token")):
        viewer = await anyio.to_thread.run_sync(_viewer, request)
        if viewer is None:
            return _to_login(request)
        return _page(
            request,
            "error.html",
            status_code=403,
            title="Refused",
            message="The form's CSRF token is missing or wrong: nothing was changed.",
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- pages


@router.get("/")
def fleet_page(request: Request) -> Response:
    """Show the fleet: every heater the viewer may see, updated live."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    if not viewer.is_operator and viewer.role != "owner":
        return RedirectResponse("/jobs", status_code=303)
    return _page(
        request,
        "fleet.html",
        title="Fleet",
        fleet=_fleet(request, viewer),
        page=_page_number(request),
        page_size=FLEET_PAGE_SIZE,
    )


@router.get("/heaters/{device_id}")
def heater_page(request: Request, device_id: str) -> Response:
    """One heater: temperature, setpoint and power over the last day, its plan and its work."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        history = _history(request, viewer, device_id)
    except NotFoundError:
        return _not_found(request, f"No heater {device_id} among those you may see.")
    return _page(
        request,
        "heater.html",
        title=history.status.name,
        history=history,
        now_ts=_now_ts(request),
        points_json=json.dumps(_points(history)),
    )


@router.get("/jobs")
def jobs_page(request: Request) -> Response:
    """List the jobs the viewer may see, newest first."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    jobs = _with_session(request, lambda session: views.jobs_view(session, viewer))
    return _page(request, "jobs.html", title="Jobs", jobs=jobs)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    """One job: its tasks and their progress, the heaters that ran them, its checkpoints."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        job = _with_session(request, lambda session: views.job_detail_view(session, viewer, job_id))
    except NotFoundError:
        return _not_found(request, f"No job {job_id} among those you may see.")
    return _page(request, "job.html", title=job.summary.name, job=job)


@router.get("/mining")
def mining_page(request: Request) -> Response:
    """Show what the viewer's heaters mined over the last day (an operator: every heater)."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    if not viewer.is_operator and viewer.role != "owner":
        return RedirectResponse("/jobs", status_code=303)
    now_ts = _now_ts(request)

    def read(session: Session) -> tuple[views.MiningView, list[OwnerMining]]:
        report = mining_report(
            session,
            owner_id=None if viewer.is_operator else viewer.account_id,
            until_ts=now_ts,
            window_s=_MINING_WINDOW_S,
            market=MarketSnapshot(),
        )
        shared = [owner for owner in report.owners if owner.accepted_shares or owner.balance_sat]
        return views.mining_view(session, viewer, now_ts=now_ts), shared

    mining, proxy_owners = _with_session(request, read)
    return _page(request, "mining.html", title="Mining", mining=mining, proxy_owners=proxy_owners)


@router.get("/ledger")
def ledger_page(request: Request) -> Response:
    """Show the viewer's ledger account (an operator may open any account)."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        account = views.ledger_account_for(viewer, request.query_params.get("account"))
    except NotFoundError:
        return _not_found(request, "That ledger account is not yours.")
    ledger = _with_session(request, lambda session: views.ledger_view(session, viewer, account))
    return _page(request, "ledger.html", title="Ledger", ledger=ledger)


# --------------------------------------------------------------------------- events


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _newest_heartbeat(request: Request, viewer: AccountPrincipal) -> float | None:
    query = select(func.max(Device.last_seen_ts))
    if not viewer.is_operator:
        query = query.where(Device.owner_id == viewer.account_id)
    return _with_session(request, lambda session: session.scalar(query))


def _newest_sample(request: Request, device_id: str) -> float | None:
    query = select(func.max(TelemetrySampleRow.sample_ts)).where(
        TelemetrySampleRow.device_id == device_id
    )
    return _with_session(request, lambda session: session.scalar(query))


def _stream(
    request: Request, changed: Callable[[], Any], render: Callable[[], bytes]
) -> StreamingResponse:
    """Stream ``render()`` at once and whenever ``changed()`` returns something new."""

    async def events() -> AsyncIterator[bytes]:
        ends_s = time.monotonic() + EVENT_STREAM_S
        last: Any = None
        refreshed_s = 0.0
        yield b"retry: 1000\n\n"
        while time.monotonic() < ends_s and not await request.is_disconnected():
            current = await anyio.to_thread.run_sync(changed)
            if current != last or time.monotonic() - refreshed_s >= _REFRESH_S:
                last = current
                refreshed_s = time.monotonic()
                yield await anyio.to_thread.run_sync(render)
            await anyio.sleep(EVENT_POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/events/fleet")
async def fleet_events(request: Request) -> Response:
    """Server-sent events: the fleet table and totals, again whenever a heartbeat arrives."""
    viewer = await anyio.to_thread.run_sync(_viewer, request)
    if viewer is None:
        return Response("log in first", status_code=401, media_type="text/plain")

    def render() -> bytes:
        fleet = _fleet(request, viewer)
        return _event(
            "fleet",
            {
                "rows": _render_text("_fleet_rows.html", fleet=fleet),
                "summary": _render_text("_fleet_summary.html", fleet=fleet),
                "last_seen_ts": fleet.last_seen_ts,
            },
        )

    return _stream(request, lambda: _newest_heartbeat(request, viewer), render)


@router.get("/events/heaters/{device_id}")
async def heater_events(request: Request, device_id: str) -> Response:
    """Server-sent events: a heater's status and history, again whenever a sample arrives."""
    viewer = await anyio.to_thread.run_sync(_viewer, request)
    if viewer is None:
        return Response("log in first", status_code=401, media_type="text/plain")
    try:
        await anyio.to_thread.run_sync(_history, request, viewer, device_id)
    except NotFoundError:
        return Response("no such heater among yours", status_code=404, media_type="text/plain")

    def render() -> bytes:
        history = _history(request, viewer, device_id)
        return _event(
            "heater",
            {
                "status": _render_text(
                    "_heater_status.html", status=history.status, now_ts=_now_ts(request)
                ),
                "points": _points(history),
            },
        )

    return _stream(request, lambda: _newest_sample(request, device_id), render)
