"""The dashboard's login, session cookie, CSRF checks and pages, over HTTP without a browser
(the browser tests are in test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from heatgrid.coordinator.dashboard import routes
from heatgrid.coordinator.dashboard import session as sessions
from heatgrid.coordinator.dashboard.routes import STATIC_DIR

from .conftest import Coordinator
from .dashboard_fleet import Fleet, populate
from .mining_data import enroll_miners, insert_shares


@pytest.fixture
def backend() -> str:
    """The dashboard reads through the read models, tested on both databases: SQLite here."""
    return "sqlite"


@pytest.fixture
def fleet(coordinator: Coordinator) -> Fleet:
    return populate(coordinator.client, coordinator.operator_key, coordinator.clock())


def _cookies(coordinator: Coordinator) -> httpx.Cookies:
    return coordinator.client._client.cookies


def _login_token(coordinator: Coordinator) -> str:
    page = coordinator.client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


def _log_in(coordinator: Coordinator, key: str, next_path: str = "/") -> httpx.Response:
    token = _login_token(coordinator)
    return coordinator.client.post(
        "/login", data={"login_token": token, "api_key": key, "next": next_path}
    )


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert match is not None, page.text
    return match.group(1)


def test_without_a_session_every_page_leads_to_the_login_page(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    study = fleet.heaters["study"][0]
    for path in ("/", "/jobs", f"/jobs/{fleet.job_id}", f"/heaters/{study}", "/ledger"):
        answer = coordinator.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")
    for path in ("/events/fleet", f"/events/heaters/{study}"):
        assert coordinator.client.get(path).status_code == 401
    page = coordinator.client.get("/login")
    assert 'name="api_key"' in page.text
    assert "study" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"


def test_logging_in_sets_an_http_only_strict_cookie_without_the_key(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    key = fleet.keys["alice"]
    answer = _log_in(coordinator, key, next_path="/ledger")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ledger"
    set_cookie = next(
        header
        for header in answer.headers.get_list("set-cookie")
        if header.startswith(f"{sessions.SESSION_COOKIE}=")
    )
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie
    assert key.split("_", 2)[2] not in set_cookie  # the secret never leaves the login form
    page = coordinator.client.get("/")
    assert page.status_code == 200
    assert "living room" in page.text
    assert "attic office" not in page.text  # bob's


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_login_redirects_only_to_this_site(
    coordinator: Coordinator, fleet: Fleet, target: str
) -> None:
    answer = _log_in(coordinator, fleet.keys["alice"], next_path=target)
    assert answer.headers["location"] == "/"


def test_a_wrong_or_missing_key_or_form_token_is_refused_with_a_message(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    wrong = _log_in(coordinator, "hgk_0123456789abcdef_wrong")
    assert wrong.status_code == 401
    assert "Login failed: the API key is not valid." in wrong.text
    empty = _log_in(coordinator, "")
    assert empty.status_code == 422
    assert "Enter your API key" in empty.text
    device_token = fleet.heaters["study"][1]
    assert "not an API key" in _log_in(coordinator, device_token).text
    forged = coordinator.client.post(
        "/login", data={"login_token": "made-up", "api_key": fleet.keys["alice"]}
    )
    assert forged.status_code == 403
    assert "try again" in forged.text
    assert sessions.SESSION_COOKIE not in _cookies(coordinator)


def test_logout_needs_the_csrf_token(coordinator: Coordinator, fleet: Fleet) -> None:
    _log_in(coordinator, fleet.keys["alice"])
    page = coordinator.client.get("/")
    token = _csrf(page)
    for data in ({}, {"csrf_token": "0" * 64}):
        refused = coordinator.client.post("/logout", data=data)
        assert refused.status_code == 403
        assert "nothing was changed" in refused.text
        assert sessions.SESSION_COOKIE in _cookies(coordinator)
    done = coordinator.client.post("/logout", data={"csrf_token": token})
    assert done.status_code == 303
    assert sessions.SESSION_COOKIE not in _cookies(coordinator)
    assert coordinator.client.get("/").status_code == 303


def test_a_forged_expired_or_revoked_session_is_no_session(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    _log_in(coordinator, fleet.keys["alice"])
    cookie = _cookies(coordinator)[sessions.SESSION_COOKIE]
    key_id, expires_text, mac = cookie.split(".")
    forgeries = [
        f"{key_id}.{int(expires_text) + 86_400}.{mac}",  # a longer life
        f"{key_id}.{expires_text}.{'0' * 64}",
        f"{fleet.keys['bob'].split('_')[1]}.{expires_text}.{mac}",  # another key
        "garbage",
    ]
    for forged in forgeries:
        _cookies(coordinator).set(sessions.SESSION_COOKIE, forged, domain="coordinator.test")
        assert coordinator.client.get("/").status_code == 303, forged
    _cookies(coordinator).set(sessions.SESSION_COOKIE, cookie, domain="coordinator.test")
    assert coordinator.client.get("/").status_code == 200
    coordinator.clock.advance(sessions.SESSION_S + 1.0)
    assert coordinator.client.get("/").status_code == 303  # expired
    coordinator.clock.advance(-sessions.SESSION_S - 1.0)
    assert coordinator.client.get("/").status_code == 200
    revoked = coordinator.client.delete(
        f"/v1/admin/keys/{key_id}", headers=coordinator.auth(coordinator.operator_key)
    )
    assert revoked.status_code == 200, revoked.text
    assert coordinator.client.get("/").status_code == 303


@pytest.mark.parametrize("settings_overrides", [{"dashboard_session_s": 600.0}])
def test_a_session_lasts_as_long_as_the_setting_says(
    coordinator: Coordinator, fleet: Fleet, settings_overrides: dict[str, float]
) -> None:
    response = _log_in(coordinator, fleet.keys["alice"])
    assert "Max-Age=600" in response.headers["set-cookie"]
    coordinator.clock.advance(599.0)
    assert coordinator.client.get("/").status_code == 200
    coordinator.clock.advance(2.0)
    assert coordinator.client.get("/").status_code == 303  # expired on the coordinator's clock


def test_each_role_sees_its_pages(coordinator: Coordinator, fleet: Fleet) -> None:
    study, attic = fleet.heaters["study"][0], fleet.heaters["attic office"][0]
    _log_in(coordinator, fleet.keys["alice"])
    heater = coordinator.client.get(f"/heaters/{study}")
    assert heater.status_code == 200
    assert "digits-cnn" in heater.text  # what her heater computed, by name
    assert f'href="/jobs/{fleet.job_id}"' not in heater.text  # but carol's job is not hers
    assert coordinator.client.get(f"/heaters/{attic}").status_code == 404
    assert coordinator.client.get(f"/jobs/{fleet.job_id}").status_code == 404
    assert "digits-cnn" not in coordinator.client.get("/jobs").text
    assert coordinator.client.get("/ledger?account=platform").status_code == 404
    _cookies(coordinator).clear()

    _log_in(coordinator, fleet.keys["carol"])
    home = coordinator.client.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/jobs"
    assert "digits-cnn" in coordinator.client.get("/jobs").text
    job = coordinator.client.get(f"/jobs/{fleet.job_id}")
    assert job.status_code == 200
    assert "attic office" in job.text
    _cookies(coordinator).clear()

    _log_in(coordinator, fleet.keys["operator"])
    fleet_page = coordinator.client.get("/")
    assert all(name in fleet_page.text for name in fleet.heaters)
    ledger = coordinator.client.get("/ledger")
    assert "alice" in ledger.text
    assert "carol" in ledger.text
    assert coordinator.client.get("/ledger?account=owner:2").status_code == 200


def test_the_assets_are_served_by_the_coordinator(coordinator: Coordinator) -> None:
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "dashboard.js", "dashboard.css"):
        answer = coordinator.client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert answer.content == (STATIC_DIR / name).read_bytes()
    assert (STATIC_DIR / "uPlot.LICENSE").read_text().startswith("The MIT License")


def test_the_grafana_dashboard_queries_metrics_that_metrics_exposes(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    board = json.loads((docs / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"heatgrid_\w+", target["expr"])
    }
    assert len(queried) >= 6
    exposed = coordinator.client.get("/metrics").text
    exposed_names = set(re.findall(r"^(heatgrid_\w+)", exposed, flags=re.MULTILINE))
    assert queried <= exposed_names, queried - exposed_names
    assert "heatgrid-coordinator" in (docs / "operations.md").read_text()  # the scrape example


def test_the_fleet_stream_sends_the_visible_fleet_and_ends_by_itself(
    coordinator: Coordinator, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "EVENT_STREAM_S", 0.3)
    monkeypatch.setattr(routes, "EVENT_POLL_S", 0.05)
    _log_in(coordinator, fleet.keys["bob"])
    answer = coordinator.client.get("/events/fleet")  # returns once the stream has ended
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [block for block in answer.text.split("\n\n") if block.startswith("event: fleet")]
    assert events  # sent at once, then only when a heartbeat arrives
    data = json.loads(events[0].split("data: ", 1)[1])
    assert "attic office" in data["rows"]
    assert "living room" not in data["rows"]  # alice's
    assert "2 / 2" in data["summary"]


def test_a_large_fleet_is_shown_a_page_at_a_time(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "FLEET_PAGE_SIZE", 2)
    owner = coordinator.owner_key("dora")
    enrolled = [
        coordinator.enroll(coordinator.enrollment_code(owner), f"heater {name}")[0]
        for name in ("a", "b", "c", "d", "e")
    ]
    _log_in(coordinator, owner)
    silent = coordinator.client.get(f"/heaters/{enrolled[0]}")  # never sent a heartbeat
    assert silent.status_code == 200
    assert "0 samples" in silent.text
    assert "offline" in silent.text
    pages = [coordinator.client.get(f"/?page={page}").text for page in (1, 2, 3)]
    shown = [re.findall(r">(heater \w)</a>", page) for page in pages]
    assert shown == [["heater a", "heater b"], ["heater c", "heater d"], ["heater e"]]
    assert "Heaters 3–4 of 5" in pages[1]
    assert 'href="/?page=3" rel="next"' in pages[1]
    assert 'rel="next"' not in pages[2]
    assert re.findall(r">(heater \w)</a>", coordinator.client.get("/?page=x").text)[0] == "heater a"


def test_the_mining_page_shows_an_owner_only_their_miners(
    coordinator: Coordinator, fleet: Fleet
) -> None:
    assert coordinator.client.get("/mining").status_code == 303  # no session: the login page
    assert _log_in(coordinator, fleet.keys["alice"]).status_code == 303
    page = coordinator.client.get("/mining")
    assert page.status_code == 200
    assert "living room" in page.text
    assert "kitchen" not in page.text  # bob's
    assert "study" not in page.text  # alice's, but it ran tasks, not mining
    assert re.search(r'id="mining-hashrate">[0-9.]+ TH/s<', page.text), page.text
    _cookies(coordinator).clear()
    assert _log_in(coordinator, fleet.keys["carol"]).status_code == 303
    assert coordinator.client.get("/mining").headers["location"] == "/jobs"


def test_the_mining_page_shows_the_proxys_shares_per_owner_to_whom_may_see_them(
    coordinator: Coordinator,
) -> None:
    from heatgrid.coordinator.db import make_engine, make_session_factory  # noqa: PLC0415

    alice, bob = enroll_miners(coordinator, {"alice": 1, "bob": 1})
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            now_ts = coordinator.clock()
            insert_shares(session, alice.device_id, [2.0] * 7, start_ts=now_ts - 3600.0)
            insert_shares(session, bob.device_id, [0.5] * 3, start_ts=now_ts - 7200.0)
            insert_shares(session, bob.device_id, [4.0] * 9, start_ts=now_ts - 2 * 86_400.0)
    finally:
        engine.dispose()
    assert _log_in(coordinator, coordinator.operator_key).status_code == 303
    table = coordinator.client.get("/mining").text.split('id="proxy-owners"')[1]
    rows = re.findall(
        r'data-label="Owner">(\w+)</th>\s*<td data-label="Shares accepted">(\d+)<', table
    )
    assert rows == [("alice", "7"), ("bob", "3")]  # bob's older shares are outside the day
    assert ">14<" in table  # alice's work: 7 shares of difficulty 2
    _cookies(coordinator).clear()
    assert _log_in(coordinator, alice.owner_key).status_code == 303
    page = coordinator.client.get("/mining").text
    assert re.findall(r'data-label="Owner">(\w+)</th>', page.split('id="proxy-owners"')[1]) == [
        "alice"
    ]
    _cookies(coordinator).clear()
    assert _log_in(coordinator, coordinator.owner_key("dora")).status_code == 303
    assert (
        "No share reached the proxy in the last 24 hours." in coordinator.client.get("/mining").text
    )
